"""WebSocket dialers: ``ws`` (TCP + WebSocket) and ``wss`` (TLS + WebSocket).

GOST metadata: ``path`` (default ``/ws``), ``host`` (the Host header; default the node's
address), ``header`` (extra request headers), ``keepalive`` (ping every ``ttl`` /
``keepalive.interval``, default 15s); each also as ``ws.<key>``. As a later hop only ``handshake`` runs, over the
previous hop's stream."""
from ..errors import DialError, ProtocolError
from ..core.registry import dialers
from ..transport.ws import DEFAULT_PATH, client_handshake
from .tcp import TCPDialer
from .tls import TLSDialer

#: GOST's ping interval when ``keepalive`` is on without ``ttl``
KEEPALIVE_PERIOD = 15.0


class _WSMixin:
    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)  # the transport below (TCP or TLS)
        self.path = md.str("ws.path", "path", default=DEFAULT_PATH) or DEFAULT_PATH
        self.host = md.str("ws.host", "host")
        self.header = md.map("ws.header", "header")
        self.keepalive = 0.0
        if md.bool("ws.keepalive", "keepalive"):
            self.keepalive = md.duration("ttl", "keepalive.interval", default=0) or KEEPALIVE_PERIOD

    def handshake(self, conn):
        conn = super().handshake(conn)
        host = self.host or self.node_addr or "localhost"
        try:
            ws = client_handshake(conn, host, self.path, self.header)
        except ProtocolError as exc:
            raise DialError(str(exc)) from exc
        ws.keepalive(self.keepalive)
        return ws


@dialers.register("ws")
class WSDialer(_WSMixin, TCPDialer):
    pass


@dialers.register("wss")
class WSSDialer(_WSMixin, TLSDialer):
    pass
