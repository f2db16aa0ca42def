"""Multiplexing dialers: ``mtls``, ``mws``, ``mwss`` — the client side of the listeners of the
same names (as GOST's, smux version 1).

Rules:
1. One session per dialer (a dialer belongs to one node): ``dial`` returns the live session,
   or makes one (TCP, the transport handshake, smux) under a lock, so concurrent dials wait
   for the first instead of each opening a connection; a dead session is replaced.
2. ``handshake`` opens a new stream on that session: every route through the node is one
   stream of the same connection.
3. As a later hop the route is restarted at this node, as GOST does (chain.Route rule 2a):
   ``dial_through(reach)`` keeps the session too, made over ``reach()`` (a conn through the
   previous hops), so every route through the node shares it.
GOST metadata: the transport's (``path``, ``host``, ``header`` …) plus ``mux.maxFrameSize``,
``mux.maxReceiveBuffer``, ``mux.keepaliveDisabled``, ``mux.keepaliveInterval``,
``mux.keepaliveTimeout`` (or the older ``muxMaxFrameSize`` … spellings); ``mux.version`` must be 1."""
from gevent.lock import Semaphore

from ..errors import DialError
from ..transport.mux.smux import MuxConfig, Session
from ..core.registry import dialers
from ..core.router import dial_tcp
from .base import Dialer
from .tls import TLSDialer
from .ws import WSDialer, WSSDialer


class MuxDialer(Dialer):
    multiplex = True
    #: the dialer whose handshake makes the transport under the session
    transport_class = TLSDialer

    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)
        self.transport = self.transport_class(md, auth, tls)
        self.mux_config = MuxConfig.from_md(md)
        self.session = None
        self.lock = Semaphore()

    # build.py sets node_addr after construction: the transport needs it (ws Host header)
    @property
    def node_addr(self):
        return self.transport.node_addr

    @node_addr.setter
    def node_addr(self, value):
        self.transport.node_addr = value

    def _new_session(self, conn):
        return Session(self.transport.handshake(conn), client=True, config=self.mux_config).start()

    def dial(self, addr, timeout):
        return self.dial_through(lambda: dial_tcp(addr, timeout), timeout)

    def dial_through(self, reach, timeout):
        """The live session, or a new one over ``reach()`` (rule 1)."""
        with self.lock:
            s = self.session
            if s is not None and s.alive:
                return s
            self.session = None
            conn = reach()
            try:
                self.session = self._new_session(conn)
            except BaseException:
                conn.close()
                raise
            return self.session

    def handshake(self, conn):
        if isinstance(conn, Session):
            try:
                return conn.open()
            except OSError as exc:
                conn.close()
                raise DialError(f"mux: cannot open a stream: {exc}") from exc
        session = self._new_session(conn)  # a later hop: a session for this one stream
        stream = session.open()
        stream.owns_session = True
        return stream

    def close(self):
        with self.lock:
            if self.session is not None:
                self.session.close()
                self.session = None


@dialers.register("mtls")
class MTLSDialer(MuxDialer):
    transport_class = TLSDialer


@dialers.register("mws")
class MWSDialer(MuxDialer):
    transport_class = WSDialer


@dialers.register("mwss")
class MWSSDialer(MuxDialer):
    transport_class = WSSDialer
