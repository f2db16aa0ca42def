"""SNI proxy: the target is read from the client's first bytes, which are then replayed.

Rules:
1. A first byte of 0x16 means TLS: the ClientHello's server name, port 443 unless the name
   carries one. Otherwise the first bytes must be an HTTP/1.x request head: its ``Host``,
   port 80 unless given.
2. What the sni connector hid is taken back out: extension 0xFFFE (TLS) or the ``Gost-Target``
   header (HTTP) names the real host, and the bytes are restored before they are replayed.
3. The peeked bytes go to the target first, unchanged otherwise; then the relay runs.
4. Anything else (garbage, a hello without SNI, a request without Host) is a ProtocolError:
   the connection is closed, nothing is dialed.
"""
from ..transport.buffered import Stream
from ..errors import NeedData, ProtocolError
from ..protocols import http, tls_hello
from ..protocols.addr import join_host_port, split_host_port
from ..core.registry import handlers
from .base import Handler
from .http import _is_self

GOST_TARGET = "Gost-Target"


def _peek(s, parse):
    """Run ``parse`` over the stream's buffer, reading more until it has a whole message,
    without consuming anything (the bytes are replayed to the target)."""
    while True:
        try:
            return parse(s.buf)
        except NeedData:
            pass
        if len(s.buf) > s.limit:
            raise ProtocolError("first message too large")
        if not s.fill(16384):
            raise ProtocolError("truncated first message: peer closed")


def _tls_target(s):
    hello, _ = _peek(s, tls_hello.parse_client_hello)
    host = hello.server_name
    restored, hidden = tls_hello.restore_server_name(s.buf)
    if hidden:
        s.buf[:] = restored
        host = hidden
    if not host:
        raise ProtocolError("TLS ClientHello without a server name")
    return host


def _http_target(s):
    req, used = _peek(s, http.parse_request_head)
    host = req.headers.get("Host")
    hidden = req.headers.get(GOST_TARGET)
    if hidden is not None:
        name = tls_hello.decode_target(hidden.strip())
        if name:
            host = name
            req.headers.set("Host", name)
        req.headers.remove(GOST_TARGET)
        s.buf[:used] = req.encode()
    if not host:
        raise ProtocolError("HTTP request without Host", reply=400)
    return host


@handlers.register("sni")
class SNIHandler(Handler):
    """GOST's ``sni`` handler: TLS by server name, plain HTTP by Host."""

    def handle(self, conn, ctx):
        s = Stream(conn)
        with self.handshake_deadline():
            if not s.fill(16384):
                return
            if s.buf[0] == tls_hello.HANDSHAKE:
                proto, default_port = "tls", 443
                host = _tls_target(s)
            else:
                proto, default_port = "http", 80
                host = _http_target(s)
        h, port = split_host_port(host, default_port)
        if not h:
            raise ProtocolError(f"bad {proto} host {host[:60]!r}")
        target = join_host_port(h, port)
        ctx.target = target
        ctx.log.debug(f"sni: {proto} host {host} -> {target}", dst=target)
        if _is_self(target, ctx.local):
            raise ProtocolError(f"{proto} host {target} is this proxy: refused (loop)")
        upstream = self.dial(target, ctx, lambda reason: None)
        if upstream is None:
            return
        return self.relay(s.conn_with_rest(), upstream, ctx, target, detach=True)
