"""Multiplexing listeners, as GOST's: ``mtcp`` (TCP + mux), ``mtls`` (TLS + mux), ``mws``
(WebSocket + mux), ``mwss`` (TLS + WebSocket + mux); the mux is smux version 1 or 2, or
yamux (``mux.type``, ``mux.version``: see transport/mux/config.py).

``wrap`` runs the transport handshake (TLS, WebSocket upgrade) as the plain listener does and
returns a mux session; the Service sees its ``multiplex`` flag, reads the session in the
connection's greenlet and hands every stream the peer opens to the handler as a connection
of its own (admission, limits and bypass apply per connection and per stream as on ``tcp``).
GOST metadata: the transport's, plus the ``mux.*`` keys."""
from ..transport.mux.config import MuxConfig
from ..core.registry import listeners
from .tcp import TCPListener
from .tls import TLSListener
from .ws import WSListener, WSSListener


class _MuxMixin:
    #: the smux version when ``mux.version`` is not set (GOST: 1, but 2 on mtcp)
    mux_version = 1

    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)  # the transport below (TCP, TLS, ws, wss)
        self.mux_config = MuxConfig.from_md(md, self.mux_version)

    def wrap(self, sock):
        return self.mux_config.session(super().wrap(sock), client=False)


@listeners.register("mtcp")
class MTCPListener(_MuxMixin, TCPListener):
    mux_version = 2


@listeners.register("mtls")
class MTLSListener(_MuxMixin, TLSListener):
    pass


@listeners.register("mws")
class MWSListener(_MuxMixin, WSListener):
    pass


@listeners.register("mwss")
class MWSSListener(_MuxMixin, WSSListener):
    pass
