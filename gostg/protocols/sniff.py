"""Sniffing: what a client's first bytes say about the stream (GOST's ``sniffing=true``).

Sans-IO: ``sniff(buf)`` looks at the bytes read so far and returns a :class:`Sniffed`, or
raises ``NeedData`` when a recognised protocol's first message is still incomplete. It never
consumes anything: the caller replays every byte it read to the target.

Rules:
1. A first byte 0x16 followed by 0x03 is TLS: the ClientHello's server name is the host
   (no SNI: host ``""``). A hello that turns out malformed is "unknown", not an error: the
   stream is forwarded untouched, as GOST does.
2. ``SSH-`` is SSH (protocol ``ssh``, no host).
3. An HTTP/1.x method token followed by a space is HTTP: the request head must complete
   (``http.MAX_HEAD``); its ``Host`` header (or an absolute-form target's authority) is the
   host, and method, path, query and headers are kept for the forwarder's matchers.
4. Anything else, or a prefix that cannot become one of the above, is protocol ``""``
   (unknown): raw forwarding.
"""
from urllib.parse import parse_qs, urlsplit

from ..errors import NeedData, ProtocolError
from . import http, tls_hello

PROTO_HTTP, PROTO_TLS, PROTO_SSH = "http", "tls", "ssh"

#: methods GOST's sniffer recognises (net/http's, plus WebDAV's and HTTP/2's preface)
METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
           b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"PRI")
_LONGEST = max(len(m) for m in METHODS) + 1


class Sniffed:
    """What the first message said. ``host`` is as sent (``name`` or ``name:port``)."""

    __slots__ = ("proto", "host", "method", "path", "query", "headers")

    def __init__(self, proto="", host="", method="", path="", query=None, headers=None):
        self.proto, self.host, self.method, self.path = proto, host, method, path
        self.query = query or {}          # name → [values]
        self.headers = headers            # http.Headers or None

    def __repr__(self):
        return f"Sniffed({self.proto!r}, {self.host!r}, {self.method!r}, {self.path!r})"


UNKNOWN = Sniffed()


def _is_prefix(buf, word):
    n = min(len(buf), len(word))
    return bytes(buf[:n]) == word[:n]


def _tls(buf):
    try:
        hello, _ = tls_hello.parse_client_hello(buf)
        name = hello.server_name     # decoded lazily: a bad SNI extension raises here
    except ProtocolError:
        return UNKNOWN
    return Sniffed(PROTO_TLS, name or "")


def _http(buf):
    try:
        req, _ = http.parse_request_head(buf)
    except ProtocolError:
        return UNKNOWN
    return of_request(req)


def of_request(req):
    """A parsed HTTP request head → Sniffed (each request of a kept-alive connection)."""
    host = req.headers.get("Host") or ""
    target = req.target
    if "://" in target:          # absolute form: its authority wins (RFC 9112 §3.2.2)
        parts = urlsplit(target)
        host = parts.netloc.rpartition("@")[2] or host
        path, query = parts.path or "/", parts.query
    else:
        path, _, query = target.partition("?")
    return Sniffed(PROTO_HTTP, host.strip(), req.method, path,
                   parse_qs(query, keep_blank_values=True), req.headers)


def sniff(buf):
    """→ Sniffed for the first message in ``buf``; NeedData while it may still become one."""
    if not buf:
        raise NeedData()
    if buf[0] == tls_hello.HANDSHAKE:
        if len(buf) < 2:
            raise NeedData()
        return _tls(buf) if buf[1] == 3 else UNKNOWN
    if _is_prefix(buf, b"SSH-"):
        if len(buf) < 4:
            raise NeedData()
        return Sniffed(PROTO_SSH)
    head = bytes(buf[:_LONGEST])
    for m in METHODS:
        if head.startswith(m + b" "):
            return _http(buf)
    if len(buf) < _LONGEST and any(_is_prefix(buf, m + b" ") for m in METHODS):
        raise NeedData()
    return UNKNOWN
