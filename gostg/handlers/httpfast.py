"""The steady state of a kept-alive plain HTTP forward session, relayed from libev callbacks.

Once a client connection and its upstream are both plain gevent sockets and a first request
went through the greenlet path (handlers/http.py ``HTTPHandler._proxy``), the next requests to
the same host:port are read, forwarded and answered from the two sockets' read-watcher
callbacks: no greenlet switch and no watcher restart per request (a parked greenlet costs a
switch and an ``epoll_ctl`` per wait). The greenlet waits on one Waiter until the session ends
or hands a request back. Rules:
1. Only what the greenlet path would do in one go is done here: a request without a body to
   the same target, answered by a non-1xx response with a Content-Length or chunked body (or
   none). Anything else is handed back untouched, for the greenlet path to do exactly as it
   always did: the request still unread (``NEXT``: a body, another target, a malformed or
   oversized head, a closed client with half a head), the request sent but its response unread
   (``SENT``: 1xx/101, until-close, a malformed head, the upstream gone), or the response head
   sent and the rest of it not (``BODY``: a send the kernel did not take whole).
2. The callbacks never block (non-blocking calls on the raw sockets) and let nothing escape
   into the hub: an exception ends the session and is raised in the greenlet.
3. Watchers are stopped before the greenlet runs again (it may close the sockets: a watcher
   left active on a closed fd breaks the next socket with that number) and in its ``finally``
   (a service stop kills the greenlet in ``wait``).
4. The idle timeout between requests keeps its meaning: one libev timer, re-armed only when it
   fires early (activity moved the deadline), not per request. As in the greenlet path, the
   wait for the upstream's response has no timeout of its own.
"""
from gevent import get_hub
from gevent.hub import Waiter
from gevent.socket import socket as _GeventSocket

from .._compat import io_watchers, raw_socket
from ..errors import NeedData, ProtocolError
from ..protocols import http, httpquick
from . import http as proxy

#: hand-back kinds (``serve``'s first item)
DONE, NEXT, SENT, BODY = "done", "next", "sent", "body"

_WAIT_REQUEST, _WAIT_RESPONSE, _BODY = range(3)

#: debug counters: [sessions, requests relayed here, watcher starts]
counters = [0, 0, 0]


def eligible(handler, conn, s, upstream, up):
    """Both sides plain gevent sockets read through their Streams, no auther on the handler."""
    return (handler.options.auther is None and s.conn is conn and up.conn is upstream
            and type(conn) is _GeventSocket and type(upstream) is _GeventSocket)


def serve(conn, s, upstream, up, target, tally, idle_timeout):
    """Relay requests to ``target`` until one cannot be done here. → ``(DONE,)``,
    ``(NEXT,)``, ``(SENT, req, path, (client_keep, unsent request bytes))`` or
    ``(BODY, framer, keep, unsent response bytes)``; raises what a socket call raised."""
    return _Session(conn, s, upstream, up, target, tally, idle_timeout).run()


class _Session:
    __slots__ = ("s", "up", "target", "tally", "idle", "loop", "rc", "ru", "cr", "ur", "timer",
                 "waiter", "phase", "deadline", "req", "path", "client_keep", "keep", "framer",
                 "raw", "method", "authority",
                 "client_eof", "client_paused", "up_eof", "up_error", "up_paused", "ended")

    def __init__(self, conn, s, upstream, up, target, tally, idle_timeout):
        self.s, self.up, self.target, self.tally, self.idle = s, up, target, tally, idle_timeout
        self.loop = get_hub().loop
        self.rc, self.ru = raw_socket(conn), raw_socket(upstream)
        self.cr, self.ur = io_watchers(conn)[0], io_watchers(upstream)[0]
        self.timer = None
        self.waiter = Waiter()
        self.req = self.path = self.framer = self.up_error = None
        self.raw = self.method = self.authority = None
        self.client_keep = self.keep = False
        self.phase, self.deadline = _WAIT_REQUEST, 0.0
        self.client_eof = self.client_paused = self.up_eof = self.up_paused = self.ended = False

    def run(self):
        counters[0] += 1
        try:
            self._arm(self.idle)
            self._start(self.cr, self._on_client)
            self._start(self.ur, self._on_upstream)
            self._wait_request()     # a pipelined request may be buffered already
            kind, value = self.waiter.get()
        finally:
            self._stop()
        if kind == "raise":
            raise value
        return value

    # -- watchers --------------------------------------------------------------------------

    def _start(self, w, cb):
        counters[2] += 1
        w.start(cb)

    def _stop(self):
        self.cr.stop()
        self.ur.stop()
        if self.timer is not None:
            self.timer.stop()
            self.timer.close()
            self.timer = None

    def _arm(self, after):
        if self.timer is not None:   # (from its own callback too: gevent.Timeout does the same)
            self.timer.close()
        self.timer = self.loop.timer(max(after, 0.001))
        self.timer.start(self._on_timer)

    def _end(self, kind, value):
        """Stop everything, then wake the greenlet: the last thing a callback does (rule 3)."""
        if self.ended:
            return
        self.ended = True
        self._stop()
        self.waiter.switch((kind, value))

    def throw(self, exc):
        """(``exc``: an exception or its class.) What gevent does to whoever waits on a socket's watcher when another greenlet
        closes that socket (hub.cancel_wait → ``callback.__self__.throw``): as a greenlet
        parked in a read of it, the session ends with that error."""
        self._end("raise", exc)

    def _sent_back(self, unsent=b""):
        """The request went (but for ``unsent``); its response is the greenlet path's."""
        self._parsed()
        self._end("ok", (SENT, self.req, self.path, (self.client_keep, unsent)))

    def _parsed(self):
        """The request as the general parser reads it (the quick cut keeps only its bytes)."""
        if self.req is None:
            self.req = http.parse_request_head(self.raw)[0]
            self.path = proxy._target(self.req)[1]

    def _on_timer(self):
        if self.ended:
            return
        left = self.deadline - self.loop.now() if self.phase == _WAIT_REQUEST else self.idle
        if left <= 0:
            return self._end("ok", (DONE,))
        self._arm(left)

    # -- client side -----------------------------------------------------------------------

    def _on_client(self):
        try:
            data = self.rc.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except Exception as exc:   # rule 2
            return self._end("raise", exc)
        s = self.s
        if not data:
            self.client_eof = True
            self.cr.stop()
            if self.phase == _WAIT_REQUEST:
                self._next_request()
            return
        s.buf += data
        s.received += len(data)
        if self.phase == _WAIT_REQUEST:
            self._next_request()
        elif len(s.buf) > s.limit:   # pipelined past what a head may take: read on later
            self.client_paused = True
            self.cr.stop()

    def _wait_request(self):
        self.phase = _WAIT_REQUEST
        self.deadline = self.loop.now() + self.idle
        if self.client_paused and not self.client_eof:
            self.client_paused = False
            self._start(self.cr, self._on_client)
        self._next_request()

    def _next_request(self):
        s = self.s
        if not s.buf:
            if self.client_eof:
                self._end("ok", (DONE,))
            return
        q = httpquick.request(s.buf)
        if q is not None:
            return self._quick_request(*q)
        try:
            req, used = http.parse_request_head(s.buf)
            target, path = proxy._target(req)
            client_keep, body = http.request_framing(req)
        except NeedData:
            if self.client_eof or len(s.buf) > s.limit:
                self._end("ok", (NEXT,))
            return
        except ProtocolError:
            return self._end("ok", (NEXT,))   # the greenlet path parses it again and answers
        except Exception as exc:
            return self._end("raise", exc)
        if body is not None or target != self.target:
            return self._end("ok", (NEXT,))
        try:
            data = proxy.upstream_request(req, path, client_keep)
            del s.buf[:used]
            self.req, self.path, self.client_keep = req, path, client_keep
            self._forward(data)
        except Exception as exc:
            self._end("raise", exc)

    def _quick_request(self, method, authority, data, used):
        """The usual request (protocols/httpquick.py): sent as cut, parsed only if handed back."""
        if authority != self.authority:
            if proxy._authority(authority.decode("ascii")) != self.target:
                return self._end("ok", (NEXT,))
            self.authority = authority
        s = self.s
        self.raw = s.buf[:used]
        del s.buf[:used]
        self.req, self.method, self.client_keep = None, method, True
        try:
            self._forward(data)
        except Exception as exc:
            self._end("raise", exc)

    def _forward(self, data):
        counters[1] += 1
        try:
            n = self.ru.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n < len(data):
            return self._sent_back(data[n:])
        self.phase = _WAIT_RESPONSE
        if self.up_error is not None:
            return self._end("raise", self.up_error)
        if self.up_buf_ready():
            self._response()

    # -- upstream side ---------------------------------------------------------------------

    def up_buf_ready(self):
        """True when the response can be looked at now: bytes are buffered or the upstream is
        gone (then the greenlet path meets its EOF, as it always did)."""
        if self.up_eof:
            self._sent_back()
            return False
        if self.up_paused:
            self.up_paused = False
            self._start(self.ur, self._on_upstream)
        return bool(self.up.buf)

    def _on_upstream(self):
        try:
            data = self.ru.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except Exception as exc:
            if self.phase != _WAIT_REQUEST:
                return self._end("raise", exc)
            self.up_error = exc     # raised when a request needs this upstream
            self.ur.stop()
            return
        up = self.up
        if not data:
            self.up_eof = True
            self.ur.stop()
            if self.phase == _WAIT_RESPONSE:
                self._sent_back()
            elif self.phase == _BODY:
                self._end("ok", (BODY, self.framer, self.keep, b""))
            return
        up.buf += data
        up.received += len(data)
        try:
            if self.phase == _WAIT_RESPONSE:
                self._response()
            elif self.phase == _BODY:
                self._body()
            elif len(up.buf) > up.limit:   # unasked bytes: the next response read meets them
                self.up_paused = True
                self.ur.stop()
        except Exception as exc:
            self._end("raise", exc)

    def _response(self):
        up = self.up
        if self.req is None:
            q = httpquick.response(up.buf, self.method)
            if q is not None:
                return self._quick_response(*q)
            self._parsed()
        req = self.req
        try:
            resp, used = http.parse_response_head(up.buf)
            if 100 <= resp.status < 200:   # 1xx and 101: the greenlet path's
                return self._sent_back()
            # judged on the head the client gets, as round_trip does
            head = proxy.client_head(resp, req, self.client_keep)
            keep, framer = http.response_framing(resp, req.method)
        except NeedData:
            if len(up.buf) > up.limit:
                self._sent_back()
            return
        except ProtocolError:   # the greenlet path parses it again and fails as it always did
            return self._sent_back()
        if isinstance(framer, http.UntilClose):
            return self._sent_back()
        del up.buf[:used]
        self.keep = self.client_keep and keep
        self.framer = framer
        if framer is not None and up.buf:
            n = framer.feed(up.buf)
            head += up.buf[:n]
            del up.buf[:n]
        if self._send(head):
            self.phase = _BODY
            self._body_done()

    def _quick_response(self, used, length):
        """The usual response: its head goes out as it came, with the body bytes at hand."""
        up = self.up
        n = min(length, len(up.buf) - used)
        data = up.buf[:used + n]
        del up.buf[:used + n]
        self.keep = True
        self.framer = http.LengthFramer(length - n) if length > n else None
        if self._send(data):
            self.phase = _BODY
            self._body_done()

    def _body(self):
        up = self.up
        n = self.framer.feed(up.buf)
        if n:
            data = bytes(up.buf[:n])
            del up.buf[:n]
            if not self._send(data):
                return
        self._body_done()

    def _body_done(self):
        if self.framer is not None and not self.framer.done:
            return   # more to come from the upstream
        if not self.keep:
            return self._end("ok", (DONE,))
        self._wait_request()

    def _send(self, data):
        try:
            n = self.rc.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        self.tally[0] += n
        if n < len(data):
            self._end("ok", (BODY, self.framer, self.keep, data[n:]))
            return False
        return True

