"""GOST's ``sni`` connector (``-F sni://server:port?host=cdn.example``): the node is an sni
handler that finds the target in the client's own first bytes, so nothing is said on connect.
With ``host`` set, the client's first write is disguised on its way out: a TLS ClientHello gets
``host`` as its SNI (the real name rides in extension 0xFFFE), an HTTP request gets
``Host: host`` (the real one rides in ``Gost-Target``). The sni handler undoes both.
"""
from ..errors import NeedData, ProtocolError
from ..protocols import http, tls_hello
from ..core.registry import connectors
from .base import Connector


def disguise(data, host):
    """The client's first bytes with the host name replaced (unchanged if not TLS/HTTP)."""
    if not data:
        return data
    try:
        if data[0] == tls_hello.HANDSHAKE:
            return tls_hello.rewrite_server_name(data, host)
        req, used = http.parse_request_head(data)
    except (NeedData, ProtocolError):
        return data  # split over writes, or neither TLS nor HTTP: passed through unchanged
    real = req.headers.get("Host")
    if real is None:
        return data
    req.headers.set("Host", host)
    req.headers.set("Gost-Target", tls_hello.encode_target(real.strip()))
    return req.encode() + bytes(data[used:])


class SNIClientConn:
    """Rewrites the first ``sendall``; every later call goes straight to the wrapped conn.
    It has no ``fileno`` on purpose, so the relay never splices past the rewrite."""

    __slots__ = ("conn", "host", "done")

    def __init__(self, conn, host):
        self.conn = conn
        self.host = host
        self.done = False

    def sendall(self, data):
        if not self.done:
            self.done = True
            data = disguise(bytes(data), self.host)
        return self.conn.sendall(data)

    def send(self, data):
        self.sendall(data)
        return len(data)

    def recv(self, n):
        return self.conn.recv(n)

    def recv_into(self, buf, nbytes=0):
        return self.conn.recv_into(buf, nbytes) if nbytes else self.conn.recv_into(buf)

    def shutdown(self, how):
        return self.conn.shutdown(how)

    def close(self):
        return self.conn.close()

    def getpeername(self):
        return self.conn.getpeername()

    def settimeout(self, t):
        return self.conn.settimeout(t)


@connectors.register("sni")
class SNIConnector(Connector):
    def connect(self, conn, network, address, ctx=None):
        host = self.md.str("host")
        if ctx is not None:
            ctx.log.debug(f"sni: connect {address}/{network}", dst=address)
        return SNIClientConn(conn, host) if host else conn
