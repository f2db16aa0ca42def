"""``http2`` handler: GOST's HTTP/2 proxy, one request stream at a time (the ``http2`` listener
yields each stream as a connection).

Rules:
1. The target is ``:authority`` (or GOST 2.x's encoded ``Gost-Target``/``X-Gost-Target``), port
   443 for ``https`` and 80 otherwise when it has none.
2. Every request is authenticated (``Proxy-Authorization: Basic``): failure answers 407 with
   ``Proxy-Authenticate``, or what ``probeResist`` says (probe.py: code, file, web, host)
   unless the host is one of ``knock``.
3. CONNECT → dial → ``200`` → relay the stream's DATA both ways.
4. Other methods are sent upstream as one HTTP/1.1 request (origin-form, ``Connection: close``;
   a body of unknown length goes chunked) and the response comes back on the stream, its
   HTTP/1-only headers dropped and a chunked body decoded.
5. Errors answer as GOST: 403 bypass, 503 upstream failure, 400 for a request without a target.
6. A conn that is not an HTTP/2 stream (a client that chose HTTP/1.1 by ALPN) is served by the
   ``http`` handler with the same metadata and auth.
"""
import base64
import binascii
import time

import gevent
from gevent import socket

from ..transport.buffered import Stream
from ..errors import ProtocolError
from ..transport.mux.h2 import H2Stream
from ..protocols import http
from ..protocols.addr import join_host_port, split_host_port
from ..core.registry import handlers
from .base import Handler
from .body import dechunk, send_body
from .http import HTTPHandler

# headers that belong to one HTTP/1 connection or to the proxy, never forwarded (RFC 9113 §8.2.2)
_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "proxy-authorization", "te",
                  "transfer-encoding", "upgrade", "host", "gost-target", "x-gost-target"))


def decode_server_name(s):
    """GOST 2.x's ``Gost-Target``: base64url(crc32(name) ‖ base64url(name)), unpadded."""
    def b64(v):
        return base64.urlsafe_b64decode(v + "=" * (-len(v) % 4))
    try:
        b = b64(s)
        if len(b) < 4:
            return None
        name = b64(b[4:].decode("ascii"))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if binascii.crc32(name).to_bytes(4, "big") != b[:4]:
        return None
    return name.decode("utf-8", "replace")


def _credentials(value):
    scheme, _, token = (value or "").partition(" ")
    if scheme != "Basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(token, validate=True).decode("utf-8", "replace").partition(":")
    except (ValueError, binascii.Error):
        return "", ""
    return user, password


def _send_request_body(st, upstream, chunked, counts):
    """The request body, client → upstream; its bytes counted in ``counts[0]`` as they go."""
    buf = bytearray(65536)
    mv = memoryview(buf)
    while True:
        n = st.recv_into(buf)
        if not n:
            break
        counts[0] += n
        if chunked:
            upstream.sendall(b"%x\r\n" % n + bytes(mv[:n]) + b"\r\n")
        else:
            upstream.sendall(mv[:n])
    if chunked:
        upstream.sendall(b"0\r\n\r\n")


@handlers.register("http2")
class HTTP2Handler(Handler):
    def __init__(self, md, options):
        super().__init__(md, options)
        h = md.raw("http.header", "header")
        self.header = [(str(k).lower(), str(v)) for k, v in h.items()] if isinstance(h, dict) else []
        self.realm = md.str("authBasicRealm") or "gost"
        self.http1 = HTTPHandler(md, options)
        self.probe = self.http1.probe

    def handle(self, conn, ctx):
        if not isinstance(conn, H2Stream):
            return self.http1.handle(conn, ctx)
        if not conn.headers:
            ctx.log.error("http2: stream without request headers")
            return
        st = conn
        host = self._target(st)
        if host is None:
            st.respond(400, end_stream=True)
            ctx.log.warning("http2: request without a target", method=st.method)
            return
        ctx.target = host
        if not self.authenticate(ctx, *_credentials(st.header("proxy-authorization"))):
            self._refuse_auth(st, host, ctx)
            return
        upstream = self.dial(host, ctx, lambda why: st.respond(403 if why == "bypass" else 503, end_stream=True))
        if upstream is None:
            return
        if st.method == "CONNECT":
            st.respond(200, self.header)
            self.relay(st, upstream, ctx, host)
        else:
            self._forward(st, upstream, ctx, host)

    @staticmethod
    def _target(st):
        authority = st.authority
        for name in ("gost-target", "x-gost-target"):
            v = st.header(name)
            if v:
                authority = decode_server_name(v) or authority
        if not authority:
            return None
        try:
            host, port = split_host_port(authority, 443 if st.scheme == "https" else 80)
        except ProtocolError:
            return None
        return join_host_port(host, port)

    def _refuse_auth(self, st, host, ctx):
        """GOST's answer to failed auth: 407, unless probe resistance hides the proxy (probe.py)."""
        if self.probe is not None and self.probe.applies(host):
            if self.probe.kind == "host":
                try:
                    upstream = self.probe.dial_host()
                except OSError as exc:
                    ctx.log.error(f"probe resistance: host {self.probe.value}: {exc}")
                    st.respond(503, end_stream=True)
                    return
                return self._forward(st, upstream, ctx, self.probe.value)
            d = self.probe.decoy(ctx.log)
            headers = [(k.lower(), v) for k, v in d.headers] + [("content-length", str(len(d.body)))]
            st.respond(d.status, headers, end_stream=not d.body)
            if d.body:
                st.sendall(d.body)
                st.shutdown(socket.SHUT_WR)
            return
        st.respond(407, [("proxy-authenticate", f'Basic realm="{self.realm}"')], end_stream=True)

    def _forward(self, st, upstream, ctx, host):
        t0 = time.monotonic()
        ctx.log.info(f"{ctx.src} <-> {host}", dst=host)
        headers = http.Headers([("Host", st.authority or host)])
        cookies = []
        for k, v in st.headers:
            if k.startswith(":") or k in _HOP:
                continue
            if k == "cookie":
                cookies.append(v)   # HTTP/2 may split one Cookie into many (RFC 9113 §8.2.3)
                continue
            headers.items.append((k, v))
        if cookies:
            headers.items.append(("cookie", "; ".join(cookies)))
        chunked = False
        if headers.get("content-length") is None and (st.chunks or not st.remote_ended):
            if st.remote_ended:   # the whole body is here already: its length is known
                headers.items.append(("content-length", str(sum(len(c) for c in st.chunks) - st.head)))
            else:
                headers.items.append(("transfer-encoding", "chunked"))
                chunked = True
        headers.items.append(("Connection", "close"))
        counts = [0, 0]   # bytes from / to the client so far (Context.bytes() reads them live)
        ctx.flow = counts
        sender = None
        responded = False
        counted = self.client_begin(ctx)
        try:
            upstream.sendall(http.Request(st.method, st.path or "/", "HTTP/1.1", headers).encode())
            sender = gevent.spawn(_send_request_body, st, upstream, chunked, counts)
            up = Stream(upstream)
            while True:
                resp = up.read(http.parse_response_head)
                if not (100 <= resp.status < 200):
                    break
            framer = http.response_body(resp, st.method)
            rh = [(k.lower(), v) for k, v in resp.headers.items if k.lower() not in _HOP]
            st.respond(resp.status, rh + self.header, end_stream=framer is None)
            responded = True
            if framer is not None:
                if isinstance(framer, http.ChunkedFramer):
                    dechunk(up, framer, st, counts, 1)
                else:
                    send_body(up, st, framer, counts, 1)
                st.shutdown(socket.SHUT_WR)
        except (OSError, ProtocolError, EOFError) as exc:
            ctx.log.error(f"http2: forwarding failed: {exc}", dst=host)
            if not responded:
                try:
                    st.respond(503, end_stream=True)
                except OSError:
                    pass
        finally:
            if sender is not None:
                sender.kill(block=False)
            sent, out = counts   # (a body cut short counts what it moved)
            upstream.close()
            self.client_end(counted, sent, out)
            ctx.stats_bytes(sent, out)
            ctx.log.info(f"{ctx.src} >-< {host}", dst=host, duration=round(time.monotonic() - t0, 6),
                         inputBytes=sent, outputBytes=out)
