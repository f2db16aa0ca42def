import base64

from ..conn import Stream
from ..errors import DialError
from ..protocols import http
from ..registry import connectors
from .base import Connector


@connectors.register("http")
class HTTPConnector(Connector):
    """HTTP CONNECT, with Basic proxy auth when the node has credentials."""

    def connect(self, conn, network, address, ctx=None):
        headers = http.Headers([("Host", address), ("Proxy-Connection", "keep-alive")])
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers.items.append(("Proxy-Authorization", f"Basic {token}"))
        for k, v in (self.md.raw("header") or {}).items() if isinstance(self.md.raw("header"), dict) else ():
            headers.items.append((str(k), str(v)))
        conn.sendall(http.Request("CONNECT", address, "HTTP/1.1", headers).encode())
        s = Stream(conn)
        resp = s.read(http.parse_response_head)
        if resp.status != 200:
            raise DialError(f"CONNECT {address}: {resp.status} {resp.reason}".strip())
        return s.conn_with_rest()
