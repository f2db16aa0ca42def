"""SOCKS5 BIND (0x02, RFC 1928) and GOST's MBIND (0xF2), ``bind=true`` only.

BIND: listen, reply with the bound address, accept one peer, reply again with the peer's
address and relay it over this connection. MBIND: listen, reply, then this connection is an
smux session in which each accepted peer arrives as a stream opened by us, starting with a
SOCKS5 reply naming the peer (GOST's ``compatibilityMode`` leaves that reply out)."""
import gevent

from ..core import netns
from ..relay import bind
from ..protocols import socks5
from ..protocols.addr import join_host_port, split_host_port
from .socks5_udp import _local_ip, _refuse


def serve(h, cmd, conn, s, ctx, host, port):
    address = join_host_port(host or "0.0.0.0", port)
    ctx.target = address
    if not h.enable_bind:
        return _refuse(conn, ctx, "BIND")
    try:
        with netns.inside(h.options.netns):
            lsock = bind.listen(address)
    except OSError as exc:
        ctx.log.error(f"socks5: bind on {address}: {exc}")
        conn.sendall(socks5.encode_reply(socks5.GENERAL_FAILURE))
        return
    bport = lsock.getsockname()[1]
    bhost = h.md.str("publicAddr") or _local_ip(conn, ctx)
    try:
        conn.sendall(socks5.encode_reply(socks5.SUCCEEDED, bhost, bport))
    except OSError:
        lsock.close()
        raise
    ctx.log.info(f"bind on {join_host_port(bhost, bport)}/tcp OK")
    if cmd == socks5.CMD_MBIND:
        compat = h.md.bool("compatibilityMode")

        def preamble(peer):
            return b"" if compat else socks5.encode_reply(socks5.SUCCEEDED, *split_host_port(peer))

        return bind.serve_mux(s.conn_with_rest(), lsock, ctx, preamble, h.md)
    return _bind_one(h, conn, s, lsock, ctx)


def _bind_one(h, conn, s, lsock, ctx):
    """Plain BIND: one peer; the client closing first cancels the wait."""
    def watch():
        # EOF cancels the wait; early bytes are kept for the peer (bounded)
        while s.fill(4096) and len(s.buf) < (1 << 20):
            pass

    acc = gevent.spawn(lsock.accept)
    watch = gevent.spawn(watch)
    try:
        gevent.joinall([acc, watch], count=1, timeout=h.md.duration("bindTimeout", default=0) or None)
        if not acc.successful():
            if acc.dead:
                conn.sendall(socks5.encode_reply(socks5.GENERAL_FAILURE))
            return
    finally:
        watch.kill(block=False)
        acc.kill(block=False)
        lsock.close()
    peer, sockaddr = acc.value
    paddr = bind.addr_of(sockaddr)
    conn.sendall(socks5.encode_reply(socks5.SUCCEEDED, sockaddr[0], sockaddr[1]))
    h.relay(s.conn_with_rest(), peer, ctx, paddr)
