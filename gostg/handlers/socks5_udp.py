"""The SOCKS5 handler's UDP and BIND commands (GOST x/handler/socks/v5 udp.go, udp_tun.go,
bind.go, mbind.go), kept apart from the CONNECT path they share the handshake with.

- UDP ASSOCIATE (0x03): a relay socket on the control connection's local IP; datagrams carry
  SOCKS5 UDP headers; the association lives as long as the TCP control connection.
- UDP-TUN (0xF3): the same datagrams framed over the control stream itself (GOST peers).
  Port 0 asks for a relay (``udp=true``); another port binds it here (``bind=true``).
- BIND (0x02) / MBIND (0xF2): see :mod:`gostg.handlers.socks5_bind`.
"""
import gevent

from ..core import netns
from ..relay import udp
from ..errors import DialError
from ..protocols import socks5
from ..protocols.addr import join_host_port, split_host_port


def _refuse(conn, ctx, what):
    ctx.log.error(f"socks5: {what} is disabled")
    conn.sendall(socks5.encode_reply(socks5.NOT_ALLOWED))


def _local_ip(conn, ctx):
    try:
        return conn.getsockname()[0]
    except (AttributeError, OSError):
        return split_host_port(ctx.local, 0)[0] or "127.0.0.1"


def serve(h, cmd, conn, s, ctx, host, port):
    if cmd == socks5.CMD_UDP:
        return associate(h, conn, s, ctx)
    if cmd == socks5.CMD_UDP_TUN:
        return udp_tun(h, conn, s, ctx, host, port)
    from . import socks5_bind
    return socks5_bind.serve(h, cmd, conn, s, ctx, host, port)


def _dial_association(h, conn, ctx):
    try:
        return h.router.dial("udp", "", ctx)
    except DialError as exc:
        ctx.log.error(f"socks5: udp: {exc}")
        conn.sendall(socks5.encode_reply(socks5.GENERAL_FAILURE))
        return None


def associate(h, conn, s, ctx):
    if not h.enable_udp:
        return _refuse(conn, ctx, "UDP relay")
    ip = _local_ip(conn, ctx)
    if ip.startswith("::ffff:"):
        ip = ip[7:]
    try:
        with netns.inside(h.options.netns):
            sock = udp.bind_udp(ip, 0)
    except OSError as exc:
        ctx.log.error(f"socks5: udp: cannot bind on {ip}: {exc}")
        conn.sendall(socks5.encode_reply(socks5.GENERAL_FAILURE))
        return
    client = udp.Socks5Relay(sock, split_host_port(ctx.src, 0)[0])
    upstream = _dial_association(h, conn, ctx)
    if upstream is None:
        client.close()
        return
    bound = sock.getsockname()
    public = h.md.str("publicAddr") or bound[0]
    conn.sendall(socks5.encode_reply(socks5.SUCCEEDED, public, bound[1]))
    ctx.log.debug(f"socks5: udp associate bound on {client.local_addr}")
    g = gevent.spawn(h.relay_udp, client, upstream, ctx, client.local_addr)
    try:
        # the association lasts as long as the control connection (RFC 1928 §6)
        while not g.dead and s.fill(4096):
            s.buf.clear()
    except OSError:
        pass
    finally:
        client.close()
        g.join(timeout=2)
        g.kill(block=True, timeout=1)
        upstream.close()


def udp_tun(h, conn, s, ctx, host, port):
    if port == 0:
        if not h.enable_udp:
            return _refuse(conn, ctx, "UDP relay")
        upstream = _dial_association(h, conn, ctx)
        if upstream is None:
            return
        bound = getattr(upstream, "local_addr", "0.0.0.0:0")
    else:
        if not h.enable_bind:
            return _refuse(conn, ctx, "BIND")
        try:
            with netns.inside(h.options.netns):
                sock = udp.bind_udp(host if host not in ("", "0.0.0.0", "::") else "", port)
            upstream = udp.UDPSocket(sock, resolve=h.router._map_name)
        except OSError as exc:
            ctx.log.error(f"socks5: udp bind on {join_host_port(host, port)}: {exc}")
            conn.sendall(socks5.encode_reply(socks5.GENERAL_FAILURE))
            return
        bound = upstream.local_addr
        ctx.log.info(f"bind on {bound}/udp OK")
    bhost, bport = split_host_port(bound, 0)
    conn.sendall(socks5.encode_reply(socks5.SUCCEEDED, bhost or "0.0.0.0", bport))
    h.relay_udp(udp.TunConn(conn, stream=s), upstream, ctx, bound)
