"""Relay BIND (GOST x/handler/relay/bind.go), ``bind=true`` only: TCP listens on the asked
address and carries each peer over an smux stream opened by us, starting with a response
whose Addr feature names the peer; UDP (BIND|FUDP, also GOST's UDP association) binds a UDP
socket and carries datagrams as UDP-TUN frames over the control stream."""
from ..core import netns
from ..relay import bind, udp
from ..protocols import relay as rp
from ..protocols.addr import join_host_port, split_host_port


def _ok(conn, bound):
    host, port = split_host_port(bound, 0)
    conn.sendall(rp.encode_response(rp.Response(rp.STATUS_OK, (rp.Addr(host, port),))))


def serve(h, conn, s, ctx, network, addr):
    address = join_host_port(addr.host or "0.0.0.0", addr.port) if addr else "0.0.0.0:0"
    ctx.target = address
    if not h.md.bool("bind"):
        ctx.log.error("relay: BIND is disabled")
        return h._reply(conn, rp.STATUS_FORBIDDEN)
    if network == "udp":
        host, port = split_host_port(address, 0)
        try:
            with netns.inside(h.options.netns):
                sock = udp.bind_udp("" if host in ("0.0.0.0", "::") else host, port)
            pc = udp.UDPSocket(sock, resolve=h.router._map_name)
        except OSError as exc:
            ctx.log.error(f"relay: udp bind on {address}: {exc}")
            return h._reply(conn, rp.STATUS_SERVICE_UNAVAILABLE)
        _ok(conn, pc.local_addr)
        ctx.log.info(f"bind on {pc.local_addr}/udp OK")
        return h.relay_udp(udp.TunConn(conn, stream=s), pc, ctx, pc.local_addr)
    try:
        with netns.inside(h.options.netns):
            lsock = bind.listen(address)
    except OSError as exc:
        ctx.log.error(f"relay: bind on {address}: {exc}")
        return h._reply(conn, rp.STATUS_SERVICE_UNAVAILABLE)
    bound = bind.addr_of(lsock.getsockname())
    try:
        _ok(conn, bound)
    except OSError:
        lsock.close()
        raise
    ctx.log.info(f"bind on {bound}/tcp OK")

    def preamble(peer):
        host, port = split_host_port(peer)
        return rp.encode_response(rp.Response(rp.STATUS_OK, (rp.Addr(host, port),)))

    bind.serve_mux(s.conn_with_rest(), lsock, ctx, preamble, h.md)
