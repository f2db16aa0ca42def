"""The serving side of remote port forwarding (SOCKS5 BIND/MBIND, relay BIND).

The client asked us to listen; we answer with the bound address and then:
- mux (MBIND, relay TCP BIND): the control connection becomes a mux session (smux, or yamux
  by ``mux.type``) in which WE
  open one stream per accepted peer, starting with a preamble naming the peer (a SOCKS5
  reply or a relay response with an Addr feature), then relay peer ↔ stream;
- plain SOCKS5 BIND: accept ONE peer, send the second reply, relay it over the control conn.
Either way everything ends when the control connection does.
"""
import gevent
from gevent import socket
from gevent.pool import Pool

from . import tcp as relay
from ..listeners.tcp import bind_tcp
from ..transport.mux.config import MuxConfig
from ..protocols.addr import join_host_port, split_host_port

#: peers served at once over one bind session
MAX_PEERS = 1024


def listen(address):
    """A listening TCP socket on ``address`` (strict: a port in use is an error) or OSError."""
    host, port = split_host_port(address or ":0", 0)
    if host in ("0.0.0.0", "::"):
        host = ""
    try:
        return bind_tcp(join_host_port(host, port) if host else f":{port}", 128)
    except Exception as exc:
        raise OSError(str(getattr(exc, "msg", exc))) from None


def addr_of(sockaddr):
    return join_host_port(sockaddr[0], sockaddr[1])


def serve_mux(conn, lsock, ctx, preamble, md=None):
    """Accept peers on ``lsock`` and carry each over a new stream of a mux session on
    ``conn``; ``preamble(peer_addr) → bytes`` is written first on each stream."""
    config = MuxConfig.from_md(md) if md is not None else MuxConfig()
    session = config.session(conn, client=True, log=ctx.log).start()
    peers = Pool(MAX_PEERS)

    def one(peer, addr):
        try:
            peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            st = session.open()
        except OSError:
            peer.close()
            return
        try:
            st.sendall(preamble(addr))
            ctx.log.debug(f"bind: {addr} <-> {ctx.src}", dst=addr)
            relay.pipe(peer, st)
        except OSError:
            pass
        finally:
            peer.close()
            st.close()

    def accept():
        while True:
            peer, sockaddr = lsock.accept()
            peers.spawn(one, peer, addr_of(sockaddr))

    acceptor = gevent.spawn(accept)
    try:
        gevent.joinall([session._reader, acceptor], count=1)
    finally:
        acceptor.kill(block=False)
        lsock.close()
        session.close()
        peers.kill(block=True, timeout=2)
