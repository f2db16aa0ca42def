"""Multiplexing dialers: ``mtcp``, ``mtls``, ``mws``, ``mwss`` — the client side of the listeners
of the same names (as GOST's: smux version 1, version 2 on mtcp, or yamux by ``mux.type``).

Rules (one session per node, kept across routes: see dialers/session.py):
1. ``dial`` returns the node's mux session (TCP, the transport handshake, the mux).
2. ``handshake`` opens a new stream on that session: every route through the node is one
   stream of the same connection.
GOST metadata: the transport's (``path``, ``host``, ``header`` …) plus the ``mux.*`` keys
(transport/mux/config.py)."""
from ..errors import DialError
from ..transport.mux.config import MuxConfig
from ..transport.mux.session import MuxSession
from ..core.registry import dialers
from .session import SessionDialer
from .tcp import TCPDialer
from .tls import TLSDialer
from .ws import WSDialer, WSSDialer


class MuxDialer(SessionDialer):
    #: the dialer whose handshake makes the transport under the session
    transport_class = TLSDialer
    #: the smux version when ``mux.version`` is not set (GOST: 1, but 2 on mtcp)
    mux_version = 1

    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)
        self.transport = self.transport_class(md, auth, tls)
        self.mux_config = MuxConfig.from_md(md, self.mux_version)

    # build.py sets node_addr after construction: the transport needs it (ws Host header)
    @property
    def node_addr(self):
        return self.transport.node_addr

    @node_addr.setter
    def node_addr(self, value):
        self.transport.node_addr = value

    def _new_session(self, conn):
        return self.mux_config.session(self.transport.handshake(conn), client=True).start()

    def handshake(self, conn):
        if isinstance(conn, MuxSession):
            try:
                return conn.open()
            except OSError as exc:
                conn.close()
                raise DialError(f"mux: cannot open a stream: {exc}") from exc
        session = self._new_session(conn)  # a later hop: a session for this one stream
        stream = session.open()
        stream.owns_session = True
        return stream


@dialers.register("mtcp")
class MTCPDialer(MuxDialer):
    transport_class = TCPDialer
    mux_version = 2


@dialers.register("mtls")
class MTLSDialer(MuxDialer):
    transport_class = TLSDialer


@dialers.register("mws")
class MWSDialer(MuxDialer):
    transport_class = WSDialer


@dialers.register("mwss")
class MWSSDialer(MuxDialer):
    transport_class = WSSDialer
