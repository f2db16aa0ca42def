import base64

from ..relay import udp
from ..transport.buffered import Stream
from ..errors import DialError
from ..protocols import http
from ..core.registry import connectors
from .base import Connector


@connectors.register("http")
class HTTPConnector(Connector):
    """HTTP CONNECT, with Basic proxy auth when the node has credentials."""

    def connect(self, conn, network, address, ctx=None):
        if network not in ("tcp", "udp"):
            raise DialError(f"http connector cannot carry {network}")
        address = address or "0.0.0.0:0"   # a UDP association has no single target
        headers = http.Headers([("Host", address), ("Proxy-Connection", "keep-alive")])
        if network == "udp":   # GOST's UDP over HTTP: the tunnel then carries UDP-TUN frames
            headers.items.append(("X-Gost-Protocol", "udp"))
        if self.auth:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers.items.append(("Proxy-Authorization", f"Basic {token}"))
        for k, v in (self.md.map("header") or {}).items():
            headers.items.append((str(k), str(v)))
        conn.sendall(http.Request("CONNECT", address, "HTTP/1.1", headers).encode())
        s = Stream(conn)
        resp = s.read(http.parse_response_head)
        if resp.status != 200:
            raise DialError(f"CONNECT {address}: {resp.status} {resp.reason}".strip())
        if network == "udp":
            return udp.TunConn(conn, target="" if address == "0.0.0.0:0" else address, stream=s)
        return s.conn_with_rest()
