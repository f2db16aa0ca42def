"""Sniffed HTTP through a forwarder, request by request (GOST's ``Sniffer.HandleHTTP``): the
reverse proxy of tutorials/reverse-proxy.md.

Rules:
1. Each request head is read whole; its Host (port 80 unless given) is checked against the
   service bypass (403, and the connection ends) and, with its path, query and headers, chooses
   a forwarder node (none matches: 503). A node without ``addr`` goes to the Host itself.
2. The node's ``http`` settings apply (:mod:`gostg.handlers.nodehttp`): ``auth`` (401 with
   ``WWW-Authenticate: Basic`` and the connection ends), then the Host, header and URL
   rewrites, and ``responseHeader`` on the way back.
3. The upstream connection (and its node) is kept while the next request names the same
   Host, as GOST does; a kept-alive upstream that closed while idle gets one fresh try for a
   request that is safe to repeat. The loop ends when either side asks to close, after
   ``IDLE`` seconds without a next request, or on a 101 upgrade (then bytes are relayed).
4. A request without a usable Host goes to the nodes without a host filter; with no
   forwarder at all there is nothing to route it by: 400. A head that does not parse
   (garbage after the first request) answers 400 and ends.
5. Inside a proxy tunnel (http CONNECT, socks, relay with ``sniffing``) the upstream is the
   one the client asked for: every request goes there, and every request's Host is judged
   by the bypass (a kept-alive tunnel cannot slip a refused Host in after an allowed one).
6. The steady state of a kept-alive connection (the usual origin-form request to the Host the
   upstream was opened for, its usual response: :mod:`gostg.protocols.httpquick`) is relayed
   as cut, without parsing either head into objects; whatever that cut does not take (another
   Host, a body, a close, an odd head, an upstream gone while idle) goes the general way above,
   which would have sent the very same bytes. Nodes with ``http`` settings always go the
   general way (their rewrites edit every head).
"""
import time

import gevent
from gevent.socket import socket as _GeventSocket

from .._compat import wait_readable
from ..errors import ProtocolError
from ..protocols import http, httpquick, sniff as sp
from ..transport.buffered import BufferedConn, Stream, send_all
from .body import send_body
from .http import round_trip
from .sniffing import sniffed_target

#: seconds an idle kept-alive client connection waits for its next request
IDLE = 60.0
_FIXED = object()     # the key of a tunnel's upstream: never "another Host"
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 502: "Bad Gateway",
            503: "Service Unavailable"}


def _reply(conn, status, extra=()):
    headers = http.Headers([*extra, ("Content-Length", "0"), ("Connection", "close")])
    try:
        conn.sendall(http.Response("HTTP/1.1", status, _REASONS[status], headers).encode())
    except OSError:
        pass


_targets = {}


def _host_target(host):
    """A Host header value (bytes) → what ``sniffed_target`` makes of it (memoised: a
    connection names one host again and again)."""
    t = _targets.get(host)
    if t is None:
        if len(_targets) >= 1024:
            _targets.clear()
        t = _targets[host] = sniffed_target(sp.Sniffed(sp.PROTO_HTTP, host.decode("latin-1").strip()))
    return t


def _yes(_upstream):
    return True


def _origin_form(target):
    if target.startswith("/") or target == "*":
        return target
    found = sp.of_request(http.Request("GET", target, "HTTP/1.1", http.Headers()))
    q = "&".join(f"{k}={v}" for k, vs in found.query.items() for v in vs)
    return found.path + ("?" + q if q else "")


class _Session:
    """One client connection's state: the upstream kept alive between requests."""

    def __init__(self, handler, conn, ctx, upstream=None):
        pending = b""
        if type(conn) is BufferedConn:   # the sniffed bytes: into the Stream, the socket itself for the rest
            conn, pending = conn.sock, conn.take_pending()
        self.h, self.conn, self.ctx = handler, conn, ctx
        self.s = Stream(conn)
        self.s.buf += pending
        self.s.received = len(pending)
        self.upstream = self.up = self.key = self.node = None
        self.tally = [0]
        #: rule 6 applies to the next request (an upstream of ours, opened for ``key``)
        self.quick = False
        #: ``(client_keep, unsent)`` of a request rule 6 sent and handed on for its response
        self.sent = None
        #: a proxy tunnel's one upstream (rule 5): every request goes there, judged on its own
        self.fixed = upstream is not None
        if self.fixed:
            self.upstream, self.up, self.key = upstream, Stream(upstream), _FIXED

    def close_upstream(self):
        if self.upstream is not None:
            self.upstream.close()
        self.upstream = self.up = self.key = self.node = None
        self.quick, self.sent = False, None

    def _node_ok(self, req, node):
        if node.http is None or node.http.allows(req.headers):
            return True
        self.ctx.log.warning(f"node {node.name}: 401 unauthorized", node=node.name)
        _reply(self.conn, 401, [("WWW-Authenticate", "Basic")])
        return False

    def _open(self, req, found, target):
        """Choose and dial a node for this request. → the node (None: no forwarder), or
        False once the client has its answer."""
        vetoed = []

        def check(node):
            if self._node_ok(req, node):
                return True
            vetoed.append(node)
            return False
        opened = self.h.open(self.ctx, "tcp", found, check=check, client=self.conn)
        if opened is False:   # the handler answered the client itself (tunnel entrypoint: 502)
            return False
        if opened is None:
            if not vetoed:
                _reply(self.conn, 503)
            return False
        self.node, addr, self.upstream = opened
        self.up, self.key = Stream(self.upstream), target
        # rule 6: the handler may keep an upstream out of it (the tunnel entrypoint's to another node)
        self.quick = ((self.node is None or self.node.http is None)
                      and getattr(self.h, "quick_upstream", _yes)(self.upstream))
        self.ctx.log.info(f"{self.ctx.src} <-> {addr}", dst=addr,
                          node=self.node.name if self.node else None)
        return self.node

    def serve(self):
        ctx, s = self.ctx, self.s
        req = s.read(http.parse_request_head)      # sniffing saw it whole
        while req is not None:
            found = sp.of_request(req)
            target = sniffed_target(found)
            ctx.log = ctx.log.bind(host=found.host, proto=found.proto)
            hop = self.h.options.forwarder
            if not target and not self.fixed and (hop is None or not hop.nodes):
                # nothing to route by: only a forwarder's nodes could take it (GOST sends a
                # Host-less request to the nodes without a host filter)
                ctx.log.warning("http: request without a usable Host and no forwarder: 400")
                return _reply(self.conn, 400)
            if target and self.h.router.bypassed(target):
                ctx.log.info(f"bypass: {target}: 403", dst=target)
                return _reply(self.conn, 403)
            if self.key != target and not self.fixed:   # as GOST: one upstream per Host
                self.close_upstream()
            fresh = self.key is None
            if fresh:
                if self._open(req, found, target) is False:
                    return
            elif self.node is not None and not self._node_ok(req, self.node):
                return
            path = _origin_form(req.target)
            nh = self.node.http if self.node is not None else None
            if nh is not None:
                nh.rewrite(req.headers)
                path = nh.rewrite_target(path)
            sent, self.sent = self.sent, None
            try:
                keep = round_trip(self.conn, s, req, path, self.upstream, self.up, ctx, self.tally,
                                  self.h.read_timeout, self.h.relay, nh.response_header if nh else None,
                                  sent=sent)
            except EOFError:
                if not fresh and not self.fixed and req.method in _IDEMPOTENT and http.request_body(req) is None:
                    self.close_upstream()
                    continue          # one fresh try: the kept upstream closed while idle
                ctx.log.error("upstream closed without a response", dst=ctx.target)
                return _reply(self.conn, 502)
            if not keep:
                return
            req = self._next()

    def _next(self):
        while self.quick:
            ready = self._head_ready()
            if ready is None:
                return None
            q = httpquick.origin_request(self.s.buf) if ready else None
            if q is None:
                break
            req = self._quick(*q)
            if req is not True:
                return req
        with gevent.Timeout(IDLE, False):
            try:
                return self.s.read(http.parse_request_head)
            except EOFError:
                return None
            except ProtocolError as exc:
                self.ctx.log.warning(f"http: bad request: {exc}: 400")
                _reply(self.conn, 400)
                return None
        return None

    # --- rule 6 ----------------------------------------------------------------------------
    def _head_ready(self):
        """Wait for a whole request head in the buffer: True; False when there will be none
        (the general read says what went wrong); None after ``IDLE`` seconds."""
        s = self.s
        with gevent.Timeout(IDLE, False):
            if not s.buf and type(s.conn) is _GeventSocket:
                wait_readable(s.conn)   # the client speaks only after our last response
            while b"\r\n\r\n" not in s.buf:
                if len(s.buf) > s.limit or not s.fill():
                    return False
            return True
        return None

    def _quick(self, method, host, data, used):
        """One usual request to the upstream's Host. → True (done, next), or the request
        parsed for the general path: before it went (another Host, one the bypass or the
        handler must judge) or after (an unusual response: ``self.sent``)."""
        s, up = self.s, self.up
        target = _host_target(host)
        if target != self.key or self.h.router.bypassed(target):
            return s.read(http.parse_request_head)
        raw = s.buf[:used]   # (already a copy) parsed only if the response is unusual
        del s.buf[:used]
        send_all(self.upstream, data)
        while b"\r\n\r\n" not in up.buf:
            if len(up.buf) > up.limit or not up.fill():
                break
        q = httpquick.response(up.buf, method)
        if q is None:   # the general path reads this response (or meets the upstream's EOF)
            self.sent = (True, b"")
            return http.parse_request_head(raw)[0]
        head, length = q
        n = min(length, len(up.buf) - head)
        out = bytes(up.buf[:head + n])
        del up.buf[:head + n]
        conn = self.conn
        send_all(conn, out)
        self.tally[0] += len(out)
        if length > n:
            send_body(up, conn, http.LengthFramer(length - n), self.tally)
        return True


def serve(handler, conn, ctx, upstream=None):
    """Serve a sniffed HTTP connection for ForwardHandler ``handler`` (rules 1–4), or, with
    ``upstream``, a proxy tunnel's HTTP for any handler (rule 5)."""
    sess = _Session(handler, conn, ctx, upstream)
    ctx.flow = (sess.s, sess.tally)   # Context.bytes() reads these live
    if upstream is not None:
        ctx.log.info(f"{ctx.src} <-> {ctx.target}", dst=ctx.target)
    t0 = time.monotonic()
    counted = handler.client_begin(ctx)
    try:
        sess.serve()
    finally:
        sess.close_upstream()
        handler.client_end(counted, sess.s.received, sess.tally[0])
        ctx.stats_bytes(sess.s.received, sess.tally[0])
        ctx.log.info(f"{ctx.src} >-< {ctx.target}", dst=ctx.target, duration=round(time.monotonic() - t0, 6),
                     inputBytes=sess.s.received, outputBytes=sess.tally[0])
