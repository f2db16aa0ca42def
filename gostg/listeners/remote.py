"""``rtcp`` and ``rudp``: remote port forwarding listeners (GOST spec §6.8).

Without a chain they listen locally like tcp/udp. With a chain (``listener.chain``; the CLI
puts ``-F`` there) the port is opened on the chain's LAST node: the route is dialled hop by
hop and the last connector asked to ``bind`` (SOCKS5 MBIND/UDP-TUN, relay BIND). Peers then
arrive over that connection: TCP ones as smux streams, UDP ones as addressed datagrams, and
go to the handler like local connections. When the node goes away, the bind is retried with
back-off (1 s doubling to 30 s, back to 1 s after a bind that worked), so a restarted server
is picked up again without touching the client.
"""
import gevent
from gevent import socket
from gevent.event import Event

from ..errors import DialError, ProtocolError
from ..protocols.addr import split_host_port
from ..core.registry import listeners
from ..core.router import Router
from .tcp import TCPListener
from .udp import Demux, UDPListener

BACKOFF_MIN = 1.0
BACKOFF_MAX = 30.0


class RemoteServer:
    """Keeps one bind alive on the last chain node and serves what arrives over it."""

    def __init__(self, listener, handle, pool, network):
        self.listener = listener
        self.handle = handle
        self.pool = pool
        self.network = network
        self.log = listener.log
        self._stop_event = Event()
        self._greenlet = None
        self.current = None
        self.binds = 0

    def start(self):
        self._greenlet = gevent.spawn(self._loop)

    def _bind(self):
        ln = self.listener
        chain = ln.registries.chains.get(ln.chain) if ln.registries is not None else None
        if chain is None:
            raise DialError(f"chain {ln.chain} not found")
        route = chain.route(self.network, ln.addr)
        if not route.nodes:
            raise DialError("no node to bind on")
        timeout = Router.DEFAULT_DIAL_TIMEOUT
        with gevent.Timeout(timeout, DialError(f"bind: timeout after {timeout:g}s")):
            return route.bind(self.network, ln.addr, None, timeout), route

    def _loop(self):
        backoff = BACKOFF_MIN
        while not self._stop_event.is_set():
            try:
                bound, route = self._bind()
            except (DialError, OSError, ProtocolError, EOFError) as exc:
                self._log("warning", f"{self.network} bind on {self.listener.addr} via chain "
                          f"{self.listener.chain} failed: {exc}; retrying in {backoff:g}s")
            else:
                self.current = bound
                self.binds += 1
                backoff = BACKOFF_MIN
                self._log("info", f"bind on {bound.addr}/{self.network} OK via {route}")
                try:
                    self._serve(bound)
                finally:
                    bound.close()
                    self.current = None
                if self._stop_event.is_set():
                    return
                self._log("warning", f"{self.network} bind on {bound.addr} lost; re-binding")
                backoff = BACKOFF_MIN
            if self._stop_event.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _serve(self, bound):
        if self.network == "udp":
            Demux(bound, self.handle, self.pool, self.listener, log=self.log).run()
            return
        try:
            for stream in bound.accept():
                self.pool.spawn(self._one, bound, stream)
        except (OSError, ProtocolError) as exc:
            self._log("debug", f"bind session ended: {exc}")

    def _one(self, bound, stream):
        try:
            with gevent.Timeout(15):
                conn, peer = bound.open_peer(stream)
        except (gevent.Timeout, OSError, EOFError, ProtocolError, DialError) as exc:
            self._log("warning", f"bind: bad stream preamble: {exc}")
            stream.close()
            return
        host, port = split_host_port(peer, 0) if peer else ("", 0)
        self.handle(conn, (host, port))

    def _log(self, level, msg):
        if self.log is not None:
            getattr(self.log, level)(msg)

    def stop_accepting(self):
        self._stop_event.set()
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        if self.current is not None:
            self.current.close()

    def stop(self, timeout=None):
        self.stop_accepting()
        self.pool.join(timeout=timeout)
        self.pool.kill(block=True, timeout=1)


class _Remote:
    """Mixin: local listening without a chain, a RemoteServer with one."""

    network = "tcp"
    #: listener.chain means something here (build warns where it does not)
    uses_chain = True
    #: GOST reads no PROXY header on remote (rtcp/rudp) listeners
    stream = False

    @property
    def shareable(self):
        # with a chain, the port is bound on the remote server: one binding, worker 0's
        return not self.chain and super().shareable

    def bind(self):
        if not self.chain:
            return super().bind()
        return None

    def server(self, handle, pool):
        if not self.chain:
            return super().server(handle, pool)
        return RemoteServer(self, handle, pool, self.network)

    def wrap(self, sock):
        if isinstance(sock, socket.socket):
            return super().wrap(sock)
        return sock


@listeners.register("rtcp")
class RTCPListener(_Remote, TCPListener):
    network = "tcp"


@listeners.register("rudp")
class RUDPListener(_Remote, UDPListener):
    network = "udp"
