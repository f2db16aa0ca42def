"""Probe resistance (tutorials/probe-resistance.md), shared by the ``http`` and ``http2``
handlers: what a client that fails proxy authentication is shown instead of a 407.

Rules (GOST's handler/http and handler/http2):
1. ``probeResist: type:value`` acts only when the handler authenticates and the client fails.
2. ``knock`` (host names, comma-separated): a request whose target host is one of them gets the
   real ``407``, so a client that knows the secret host learns that the proxy wants a password.
   The host is the request URL's (CONNECT's authority, an absolute-form URL's host); an
   origin-form request (``GET / HTTP/1.1``, what a scanner sends) never matches.
3. ``code:N`` answers status N with no body; ``file:PATH`` answers 200 ``text/html`` with the
   file (unreadable: 503); ``web:URL`` fetches URL (``http://`` when it has no scheme) straight
   from this host, not through the service's chain, and answers with that page (failure: 503);
   ``host:HOST:PORT`` hands the request itself to HOST:PORT as an origin server would receive
   it and pipes both ways, so the prober talks to that web server.
4. A malformed ``probeResist`` (no ``type:``, an unknown type, a non-numeric code) is a config
   error: GOST would silently answer 503 or 407 instead of the decoy the user asked for.
5. After a decoy the connection ends (GOST closes it too).
"""
from urllib.parse import urlsplit

import gevent
from gevent import ssl

from ..core.router import dial_tcp
from ..errors import ConfigError, ProtocolError
from ..protocols import http
from ..protocols.addr import join_host_port, split_host_port
from ..transport.buffered import Stream
from .body import dechunk, send_body

KINDS = ("code", "web", "host", "file")


class Decoy:
    """A response to show: status, headers [(name, value)], body bytes."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers=(), body=b""):
        self.status, self.headers, self.body = status, list(headers), body


class _Sink:
    """``sendall`` into memory, refusing more than ``limit`` bytes (a decoy page is small)."""

    def __init__(self, limit):
        self.data, self.limit = bytearray(), limit

    def sendall(self, b):
        self.data += b
        if len(self.data) > self.limit:
            raise ProtocolError(f"decoy page larger than {self.limit} bytes")


class ProbeResist:
    #: seconds the ``web`` decoy may take to fetch its page (GOST's http.Client timeout)
    fetch_timeout = 15.0
    #: seconds the ``host`` decoy may take to connect
    dial_timeout = 10.0
    #: largest ``web`` page served (bytes)
    max_page = 4 * 1024 * 1024

    def __init__(self, kind, value, knock=()):
        self.kind, self.value = kind, value
        self.knock = frozenset(k.strip().lower() for k in knock if k.strip())

    @classmethod
    def from_md(cls, md):
        """→ a ProbeResist, or None when ``probeResist`` is unset (rule 4)."""
        raw = md.str("probeResist", "probe_resist").strip()
        if not raw:
            return None
        kind, sep, value = raw.partition(":")
        kind = kind.strip().lower()
        if not sep or not value or kind not in KINDS:
            raise ConfigError("metadata.probeResist",
                              f"want type:value with type one of {', '.join(KINDS)}, not {raw!r}")
        if kind == "code" and not (value.isascii() and value.isdigit() and 100 <= int(value) <= 999):
            raise ConfigError("metadata.probeResist", f"code:{value} is not an HTTP status code")
        if kind == "host":
            try:
                split_host_port(value)
            except ProtocolError as exc:
                raise ConfigError("metadata.probeResist", f"host:{value}: {exc}") from None
        return cls(kind, value, md.str("knock").split(","))

    def applies(self, host):
        """Does a failed client asking for ``host`` ("name" or "name:port", may be empty) get
        the decoy (rule 2)?"""
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
        return name.strip("[]").lower() not in self.knock

    def decoy(self, log):
        """The response for ``code``, ``file`` and ``web`` (rule 3)."""
        if self.kind == "code":
            return Decoy(int(self.value))
        if self.kind == "file":
            try:
                with open(self.value, "rb") as f:
                    body = f.read(self.max_page + 1)
            except OSError as exc:
                log.error(f"probe resistance: file {self.value}: {exc.strerror or exc}")
                return Decoy(503)
            return Decoy(200, [("Content-Type", "text/html")], body[:self.max_page])
        try:
            with gevent.Timeout(self.fetch_timeout, ProtocolError(f"no answer within {self.fetch_timeout:g}s")):
                return self._fetch()
        except (OSError, ProtocolError, EOFError) as exc:
            log.error(f"probe resistance: web {self.value}: {exc}")
            return Decoy(503)

    def _fetch(self):
        url = self.value if "://" in self.value else "http://" + self.value
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ProtocolError(f"unsupported URL {url!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        sock = dial_tcp(join_host_port(u.hostname, port), self.fetch_timeout)
        try:
            if u.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=u.hostname)
            path = (u.path or "/") + (f"?{u.query}" if u.query else "")
            host = u.hostname if u.port is None else f"{u.hostname}:{u.port}"
            sock.sendall(http.Request("GET", path, "HTTP/1.1", http.Headers(
                [("Host", host), ("User-Agent", "Go-http-client/1.1"), ("Connection", "close")])).encode())
            up = Stream(sock)
            resp = up.read(http.parse_response_head)
            while 100 <= resp.status < 200:
                resp = up.read(http.parse_response_head)
            sink = _Sink(self.max_page)
            framer = http.response_body(resp, "GET")
            if isinstance(framer, http.ChunkedFramer):
                dechunk(up, framer, sink)
            elif framer is not None:
                send_body(up, sink, framer)
        finally:
            sock.close()
        ctype = resp.headers.get("Content-Type")
        return Decoy(resp.status, [("Content-Type", ctype)] if ctype else [], bytes(sink.data))

    def dial_host(self):
        """The ``host`` decoy's connection (rule 3), straight from this host, within
        ``dial_timeout`` (dial_tcp leaves bounding an IP literal's connect to its caller)."""
        with gevent.Timeout(self.dial_timeout, TimeoutError(f"connect timeout after {self.dial_timeout:g}s")):
            return dial_tcp(self.value, self.dial_timeout)
