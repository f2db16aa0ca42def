"""HTTP proxy: CONNECT tunnels and plain forwarding with keep-alive.

Rules:
1. Every request on the client connection is authenticated (Proxy-Authorization: Basic).
2. CONNECT → dial → ``200 Connection established`` → relay.
3. Other methods: absolute-form target (or Host for origin-form), hop-by-hop proxy headers
   stripped, the request sent in origin-form; the upstream connection is reused while the next
   request goes to the same host:port. The loop ends when either side asks to close, or the
   response runs until EOF.
4. Errors answer as GOST: 403 bypass, 407 auth, 400 garbage, 503 upstream failure.
5. A client that fails auth sees what ``probeResist`` says instead of 407, unless it asks for a
   ``knock`` host (probe.py).
"""
import base64
import re
import time
from http.client import responses
from urllib.parse import urlsplit

import gevent

from ..relay import udp
from ..transport.buffered import Stream, send_all
from ..errors import DialError, ProtocolError
from ..protocols import http
from ..protocols.addr import join_host_port, split_host_port
from ..core.context import Context
from ..core.registry import handlers
from .base import Handler
from .body import send_body
from . import httpfast
from .probe import ProbeResist

PROXY_AGENT = "gost/3.0"
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))
_HOP_HEADERS = frozenset(("proxy-authorization", "proxy-connection", "gost-target", "x-gost-target"))


def _reply(conn, status, reason, extra=()):
    headers = http.Headers([("Proxy-Agent", PROXY_AGENT), *extra, ("Content-Length", "0")])
    if status >= 400:
        headers.items.append(("Connection", "close"))
    try:
        conn.sendall(http.Response("HTTP/1.1", status, reason, headers).encode())
    except OSError:
        pass


def _credentials(req):
    v = req.headers.get("Proxy-Authorization", "")
    scheme, _, token = v.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(token.strip()).decode("utf-8", "replace").partition(":")
    except (ValueError, UnicodeError):
        return "", ""
    return user, password


def _target(req):
    """→ ``(host:port, origin-form path)`` of a non-CONNECT request."""
    t = req.target
    if t.startswith("/"):
        host = req.headers.get("Host")
        if not host:
            raise ProtocolError("origin-form request without Host", reply=400)
        return join_host_port(*split_host_port(host, 80)), t
    if t.startswith("http://"):
        # the common absolute form, cut by hand (urlsplit costs more than the rest of the
        # request line): what urlsplit would say, as long as nothing it strips or rejects is there
        rest = t[7:]
        i = rest.find("/")
        if i >= 0 and not _URL_ODD.search(rest) and not rest.endswith("?"):
            hostport = _authority(rest[:i])
            if hostport is not None:
                return hostport, rest[i:]
    return _target_by_urlsplit(t)


def _target_by_urlsplit(t):
    try:
        u = urlsplit(t)
        port = u.port or 80
    except ValueError:   # a port out of range or not a number, a bad IPv6 literal
        u = None
    if u is None or u.scheme.lower() != "http" or not u.hostname:
        raise ProtocolError(f"unsupported request target {t[:60]!r}", reply=400)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return join_host_port(u.hostname, port), path


# what makes the hand cut above differ from urlsplit: a fragment, characters urlsplit strips
# or checks (whitespace, control, non-ASCII), a query or userinfo/IPv6 before the first "/",
# an empty query (urlsplit drops its "?")
_URL_ODD = re.compile(r"[#\x00-\x20\x7f-\U0010ffff]")
_AUTHORITY_OK = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_authorities = {}


def _authority(netloc):
    """``host[:port]`` of an absolute URL → ``host:port`` (lower-cased, port 80 by default), or
    None when it is not a plain name or IPv4 with an optional port. Memoised: a crawler's
    requests name few hosts."""
    hp = _authorities.get(netloc)
    if hp is None:
        if not _AUTHORITY_OK.fullmatch(netloc):
            return None
        host, _, port = netloc.partition(":")
        port = int(port or 0) or 80   # urlsplit's port 0 is "no port" too
        if not host or port > 65535:
            return None
        if len(_authorities) >= 1024:
            _authorities.clear()
        hp = _authorities[netloc] = join_host_port(host.lower(), port)
    return hp


_LOCAL_NAMES = frozenset(("localhost", "127.0.0.1", "::1", "0.0.0.0", "::"))


def _is_self(target, local):
    """An origin-form request whose Host is this proxy would be forwarded to itself forever."""
    try:
        th, tp = split_host_port(target)
        lh, lp = split_host_port(local)
    except ProtocolError:
        return False
    return tp == lp and (th == lh or th.lower() in _LOCAL_NAMES)


def _url_host(req):
    """The host a request names in its URL: CONNECT's authority, an absolute-form URL's host,
    "" for origin-form (GOST's req.URL.Hostname(), what ``knock`` is matched against)."""
    if req.method == "CONNECT":
        return req.target
    if req.target.startswith("/"):
        return ""
    return urlsplit(req.target).netloc.rpartition("@")[2]


def _origin_form(req):
    """The request as an origin server receives it (the ``host`` decoy's upstream)."""
    path = req.target
    if req.method != "CONNECT" and not path.startswith("/"):
        u = urlsplit(path)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    for h in ("Proxy-Authorization", "Proxy-Connection"):
        req.headers.remove(h)
    return http.Request(req.method, path, req.version, req.headers).encode()


def upstream_request(req, path, client_keep):
    """The request as it goes upstream (hop headers dropped, origin-form ``path``)."""
    req.headers.remove_all(_HOP_HEADERS)
    if req.version == "HTTP/1.0" and not client_keep:
        req.headers.set("Connection", "close")
    return http.Request(req.method, path, req.version, req.headers).encode()


def client_head(resp, req, client_keep, response_header=None):
    """The response head as the client gets it."""
    if req.version == "HTTP/1.0":
        resp.version = "HTTP/1.0"
    if not client_keep:
        resp.headers.set("Connection", "close")
    if response_header:
        for k, v in response_header.items():
            resp.headers.set(k, v)
    return resp.encode()


def send_response(conn, up, head, framer, tally):
    """The response head (with any body bytes it carries), then the rest of the body."""
    send_all(conn, head)
    tally[0] += len(head)
    if framer is not None and not framer.done:
        send_body(up, conn, framer, tally)


def round_trip(conn, s, req, path, upstream, up, ctx, tally, read_timeout, relay, response_header=None,
               sent=None, seen=None):
    """Send one request, relay its response (with ``response_header`` set on it). → whether
    the connection may carry another. ``sent``: ``(client_keep, unsent bytes)`` of a request
    the fast path (httpfast.py) already sent but for those bytes. ``seen``: a list the
    response is appended to (a recorder's)."""
    if sent is None:
        client_keep, body = http.request_framing(req)
        send_all(upstream, upstream_request(req, path, client_keep))
    else:
        (client_keep, unsent), body = sent, None
        if unsent:
            send_all(upstream, unsent)
    sender = gevent.spawn(send_body, s, upstream, body) if body else None
    try:
        while True:
            resp = up.read(http.parse_response_head, quiet=True)
            if resp.status == 101 or not (100 <= resp.status < 200):
                break
            head = resp.encode()  # 100 Continue and friends
            conn.sendall(head)
            tally[0] += len(head)
        head = client_head(resp, req, client_keep, response_header)
        if seen is not None:
            seen.append(resp)
        if resp.status == 101:
            conn.sendall(head)
            tally[0] += len(head)
            if sender is not None:
                sender.kill()
            relay(s.conn_with_rest(), up.conn_with_rest(), ctx, ctx.target)
            return False
        # judged on the head the client gets (its version and Connection as edited above)
        keep, framer = http.response_framing(resp, req.method)
        if framer is not None and up.buf:
            # the head and the body bytes already read go out in one write (one segment for
            # a small response)
            n = framer.feed(up.buf)
            head += up.buf[:n]
            del up.buf[:n]
        send_response(conn, up, head, framer, tally)
        if sender is not None:
            sender.get(timeout=read_timeout)
    finally:
        if sender is not None:
            sender.kill()
    if framer is not None and isinstance(framer, http.UntilClose):
        return False
    return client_keep and keep


@handlers.register("http")
class HTTPHandler(Handler):
    #: seconds an idle keep-alive client connection is kept open between requests
    idle_timeout = 60.0

    def __init__(self, md, options):
        super().__init__(md, options)
        self.probe = ProbeResist.from_md(md)

    def handle(self, conn, ctx, stream=None):
        s = stream or Stream(conn)
        try:
            with self.handshake_deadline():
                req = s.read(http.parse_request_head)
        except ProtocolError as exc:
            _reply(conn, exc.reply or 400, "Bad Request")
            raise
        if not self._auth(conn, s, req, ctx):
            return
        if (req.headers.get("X-Gost-Protocol") or "").lower() == "udp":
            return self._udp(conn, s, ctx)
        if req.method == "CONNECT":
            return self._connect(conn, s, req, ctx)
        return self._proxy(conn, s, req, ctx)

    def _auth(self, conn, s, req, ctx):
        """Checks Proxy-Authorization; answers 407 (or the probe-resistance decoy) when it fails."""
        if self.options.auther is None or self.authenticate(ctx, *_credentials(req)):
            return True
        if self.probe is not None and self.probe.applies(_url_host(req)):
            self._decoy(conn, s, req, ctx)
            return False
        _reply(conn, 407, "Proxy Authentication Required",
               [("Proxy-Authenticate", f'Basic realm="{self.md.str("authBasicRealm", default="gost")}"')])
        return False

    def _decoy(self, conn, s, req, ctx):
        """What a web server would answer, without a word that gives the proxy away."""
        ctx.log.debug(f"probe resistance: {self.probe.kind}:{self.probe.value}")
        if self.probe.kind == "host":
            try:
                upstream = self.probe.dial_host()
            except OSError as exc:
                ctx.log.error(f"probe resistance: host {self.probe.value}: {exc}")
            else:
                try:
                    upstream.sendall(_origin_form(req))
                except OSError:
                    upstream.close()
                    raise
                return self.relay(s.conn_with_rest(), upstream, ctx, self.probe.value)
            d = None
        else:
            d = self.probe.decoy(ctx.log)
        status, headers, body = (d.status, d.headers, d.body) if d is not None else (503, [], b"")
        headers = http.Headers([*headers, ("Content-Length", str(len(body))), ("Connection", "close")])
        try:
            conn.sendall(http.Response("HTTP/1.1", status, responses.get(status, ""), headers).encode() + body)
        except OSError:
            pass

    def _dial(self, conn, target, ctx):
        return self.dial(target, ctx, lambda why: _reply(conn, 403, "Forbidden") if why == "bypass"
                         else _reply(conn, 503, "Service Unavailable"))

    def _connect(self, conn, s, req, ctx):
        try:
            target = join_host_port(*split_host_port(req.target))
        except ProtocolError:
            _reply(conn, 400, "Bad Request")
            raise
        ctx.target = target
        if type(ctx) is not Context:
            ctx.proto = "http"   # GOST's HTTP handler's records say so
        upstream = self._dial(conn, target, ctx)
        if upstream is None:
            return
        conn.sendall(f"HTTP/1.1 200 Connection established\r\nProxy-Agent: {PROXY_AGENT}\r\n\r\n".encode())
        self.tunnel(s.conn_with_rest(), upstream, ctx, target)

    def _udp(self, conn, s, ctx):
        """GOST's UDP over HTTP: ``X-Gost-Protocol: udp`` turns the connection into a UDP-TUN
        stream (SOCKS5 UDP frames) for an association dialled through the router."""
        if not self.md.bool("udp"):
            ctx.log.error("http: UDP relay is disabled")
            return _reply(conn, 403, "Forbidden")
        try:
            upstream = self.router.dial("udp", "", ctx)
        except DialError as exc:
            ctx.log.error(f"http: udp: {exc}")
            return _reply(conn, 503, "Service Unavailable")
        conn.sendall(f"HTTP/1.1 200 OK\r\nProxy-Agent: {PROXY_AGENT}\r\n\r\n".encode())
        self.relay_udp(udp.TunConn(conn, stream=s), upstream, ctx, getattr(upstream, "local_addr", "udp"))

    def _proxy(self, conn, s, req, ctx):
        upstream = up = None
        up_target = checked = None
        sent = None   # what the fast path sent of a request it handed back before its response
        t0 = time.monotonic()
        tally = [0]  # bytes sent to the client
        ctx.flow = (s, tally)   # Context.bytes(): what the log's inputBytes/outputBytes will say
        # a service recording its connections: a record per request (GOST's), off the fast path
        seen = [] if type(ctx) is not Context else None
        idle = gevent.Timeout(self.idle_timeout)   # one timer, restarted for each request
        try:
            while True:
                if sent is None:
                    try:
                        target, path = _target(req)
                    except ProtocolError:
                        _reply(conn, 400, "Bad Request")
                        raise
                    ctx.target = target
                    if seen is not None:
                        ctx.http_request(req, s.received, tally[0], seen)
                    if target != checked:
                        if _is_self(target, ctx.local):
                            _reply(conn, 508, "Loop Detected")
                            ctx.log.warning("request addressed to the proxy itself", dst=target)
                            return
                        checked = target
                reused = upstream is not None and target == up_target
                for attempt in range(2):
                    if not reused:
                        if upstream is not None:
                            upstream.close()
                        upstream = self._dial(conn, target, ctx)
                        if upstream is None:
                            return
                        up, up_target = Stream(upstream), target
                        ctx.log.info(f"{ctx.src} <-> {target}", dst=target)
                        sent = None
                    try:
                        keep = round_trip(conn, s, req, path, upstream, up, ctx, tally, self.read_timeout,
                                          self.relay, sent=sent, seen=seen)
                        break
                    except EOFError:
                        # A kept-alive upstream may have closed while idle: one fresh try for
                        # requests that are safe to repeat; otherwise the client learns it.
                        if reused and req.method in _IDEMPOTENT and http.request_body(req) is None:
                            reused = False
                            continue
                        _reply(conn, 502, "Bad Gateway")
                        ctx.log.error("upstream closed without a response", dst=target)
                        return
                sent = None
                if seen is not None:
                    ctx.http_request(None, s.received, tally[0], seen)
                if keep and seen is None and httpfast.eligible(self, conn, s, upstream, up):
                    back = httpfast.serve(conn, s, upstream, up, up_target, tally, self.idle_timeout)
                    if back[0] == httpfast.DONE:
                        return
                    if back[0] == httpfast.SENT:
                        req, path, sent = back[1:]
                        continue
                    if back[0] == httpfast.BODY:
                        framer, keep, unsent = back[1:]
                        send_response(conn, up, unsent, framer, tally)
                req = self._next_request(conn, s, ctx, idle) if keep else None
                if req is None:
                    return
        finally:
            idle.close()
            if upstream is not None:
                upstream.close()
            ctx.stats_bytes(s.received, tally[0])
            if seen is not None:
                ctx.http_request(None, s.received, tally[0], seen)
            ctx.log.info(f"{ctx.src} >-< {ctx.target}", dst=ctx.target, duration=round(time.monotonic() - t0, 6),
                         inputBytes=s.received, outputBytes=tally[0])

    def _next_request(self, conn, s, ctx, idle):
        """The next request on a kept-alive connection; None on EOF, ``idle`` timeout or failed auth."""
        idle.start()
        try:
            req = s.read(http.parse_request_head, quiet=True)
            return req if self._auth(conn, s, req, ctx) else None
        except EOFError:
            return None
        except gevent.Timeout as t:
            if t is not idle:
                raise
            return None
        finally:
            idle.cancel()
