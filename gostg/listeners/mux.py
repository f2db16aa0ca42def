"""Multiplexing listeners: ``mtls`` (TLS + smux), ``mws`` (WebSocket + smux), ``mwss``
(TLS + WebSocket + smux), as GOST's.

``wrap`` runs the transport handshake (TLS, WebSocket upgrade) as the plain listener does and
returns a ``mux.Session``; the Service sees its ``multiplex`` flag, reads the session in the
connection's greenlet and hands every stream the peer opens to the handler as a connection
of its own. GOST metadata: the transport's, plus ``muxMaxFrameSize``, ``muxMaxReceiveBuffer``,
``muxKeepAliveDisabled``, ``muxKeepAliveInterval``, ``muxKeepAliveTimeout``."""
from ..transport.mux.smux import MuxConfig, Session
from ..core.registry import listeners
from .tls import TLSListener
from .ws import WSListener, WSSListener


class _MuxMixin:
    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)  # the transport below (TLS, ws, wss)
        self.mux_config = MuxConfig.from_md(md)

    def wrap(self, sock):
        return Session(super().wrap(sock), client=False, config=self.mux_config)


@listeners.register("mtls")
class MTLSListener(_MuxMixin, TLSListener):
    pass


@listeners.register("mws")
class MWSListener(_MuxMixin, WSListener):
    pass


@listeners.register("mwss")
class MWSSListener(_MuxMixin, WSSListener):
    pass
