"""WebSocket dialers: ``ws`` (TCP + WebSocket) and ``wss`` (TLS + WebSocket).

GOST metadata: ``path`` (default ``/ws``), ``host`` (the Host header; default the node's
address), ``header`` (extra request headers). As a later hop only ``handshake`` runs, over the
previous hop's stream."""
from ..errors import DialError, ProtocolError
from ..registry import dialers
from ..wsconn import DEFAULT_PATH, client_handshake
from .tcp import TCPDialer
from .tls import TLSDialer


class _WSMixin:
    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)  # the transport below (TCP or TLS)
        self.path = md.str("ws.path", "path", default=DEFAULT_PATH) or DEFAULT_PATH
        self.host = md.str("ws.host", "host")
        self.header = md.map("ws.header", "header")

    def handshake(self, conn):
        conn = super().handshake(conn)
        host = self.host or self.node_addr or "localhost"
        try:
            return client_handshake(conn, host, self.path, self.header)
        except ProtocolError as exc:
            raise DialError(str(exc)) from exc


@dialers.register("ws")
class WSDialer(_WSMixin, TCPDialer):
    pass


@dialers.register("wss")
class WSSDialer(_WSMixin, TLSDialer):
    pass
