"""WebSocket listeners: ``ws`` (TCP + WebSocket) and ``wss`` (TLS + WebSocket).

GOST metadata: ``path`` (default ``/ws``; another path is answered 404), ``header`` (extra
response headers), ``handshakeTimeout`` (bounds TLS and the HTTP upgrade together)."""
import gevent

from ..errors import ProtocolError
from ..core.registry import listeners
from ..transport.ws import DEFAULT_PATH, server_handshake
from .tcp import TCPListener
from .tls import TLSListener


class _WSMixin:
    #: seconds a client may take to finish the WebSocket upgrade
    handshake_timeout = 10.0

    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)  # the transport below (TCP or TLS)
        self.path = md.str("ws.path", "path", default=DEFAULT_PATH) or DEFAULT_PATH
        self.header = md.map("ws.header", "header")
        self.handshake_timeout = md.duration("handshakeTimeout", default=self.handshake_timeout)

    def wrap(self, sock):
        conn = super().wrap(sock)
        try:
            with gevent.Timeout(self.handshake_timeout, ProtocolError("websocket handshake timeout")):
                return server_handshake(conn, self.path, self.header)
        except ProtocolError:
            conn.close()
            raise
        except OSError as exc:
            conn.close()
            raise ProtocolError(f"websocket handshake: {exc}") from None


@listeners.register("ws")
class WSListener(_WSMixin, TCPListener):
    pass


@listeners.register("wss")
class WSSListener(_WSMixin, TLSListener):
    pass
