"""Message conns: what the ``dns`` listener hands the ``dns`` handler, one per transport.

Each has ``read_message()`` → the next query's bytes, or None when the client is done;
``write_message(reply)``; ``reject(status)`` for a query the handler will not answer (DoH
answers that HTTP status, a stream closes, a datagram is simply not answered); ``max_size``,
the largest reply the transport carries (0: as the query's EDNS size says, i.e. UDP); and
``close()``. They are ``is_packet`` so the service never wraps them as byte streams.

Deadlines (GOST's listener ``readTimeout``/``writeTimeout``, 2 s each by default): the first
query of a connection must arrive within ``read_timeout``, a later one within
``IDLE_TIMEOUT`` (8 s, RFC 7766 and miekg/dns's default); each reply is written within
``write_timeout``. A message cut short by EOF or by its deadline is a ProtocolError (the
service logs it); silence after a whole message is a quiet end.
"""
import gevent
from gevent import socket

from ..errors import NeedData, ProtocolError
from ..dns import wire
from ..protocols import http

#: seconds a stream may sit idle between two queries
IDLE_TIMEOUT = 8.0
#: queries served on one stream before it is closed (every loop bounded)
MAX_QUERIES = 65536
_REASONS = {400: "Bad Request", 405: "Method Not Allowed", 413: "Payload Too Large",
            415: "Unsupported Media Type", 500: "Internal Server Error"}


class DatagramQuery:
    """One UDP datagram: one query, answered with one datagram to its sender."""

    __slots__ = ("sock", "addr", "data")
    is_packet = True
    max_size = 0

    def __init__(self, sock, data, addr):
        self.sock, self.data, self.addr = sock, data, addr

    def read_message(self):
        data, self.data = self.data, None
        return data

    def write_message(self, reply):
        self.sock.sendto(reply, self.addr)

    def reject(self, status=400):
        pass

    def close(self):
        pass   # the listening socket is not ours to close


class _Deadlines:
    """Deadline bookkeeping shared by the stream and DoH conns."""

    __slots__ = ()

    def _next_deadline(self):
        t = self.read_timeout if self.served == 0 else IDLE_TIMEOUT
        self.served += 1
        if self.served > MAX_QUERIES:
            return None
        return t

    def _read_until(self, parse, what):
        """Read until ``parse(buf)`` gives a value; None on a quiet end (EOF or deadline
        before any byte)."""
        t = self._next_deadline()
        if t is None:
            return None
        timer = gevent.Timeout(t or None)
        timer.start()
        try:
            while True:
                if self.buf:
                    try:
                        return parse(self.buf)
                    except NeedData:
                        pass
                chunk = self.conn.recv(65536)
                if not chunk:
                    if self.buf:
                        raise ProtocolError(f"truncated {what}: {len(self.buf)} bytes, then EOF")
                    return None
                self.buf += chunk
                if len(self.buf) > 2 * 65536 + http.MAX_HEAD:
                    raise ProtocolError(f"{what} too large")
        except gevent.Timeout as t_exc:
            if t_exc is not timer:
                raise
            if self.buf:
                raise ProtocolError(f"truncated {what}: {len(self.buf)} bytes, then no more within {t:g}s") from None
            return None
        finally:
            timer.close()

    def _send(self, data):
        with gevent.Timeout(self.write_timeout or None, ProtocolError("reply not written within writeTimeout")):
            self.conn.sendall(data)


class StreamMessages(_Deadlines):
    """DNS over TCP or TLS (RFC 1035 4.2.2, RFC 7858): length-prefixed messages, answered in
    the order they came."""

    __slots__ = ("conn", "buf", "served", "read_timeout", "write_timeout")
    is_packet = True
    max_size = 65535

    def __init__(self, conn, read_timeout, write_timeout):
        self.conn, self.buf, self.served = conn, bytearray(), 0
        self.read_timeout, self.write_timeout = read_timeout, write_timeout

    def read_message(self):
        def frame(buf):
            msg, used = wire.parse_tcp_frame(buf)
            del buf[:used]
            return msg
        return self._read_until(frame, "DNS message")

    def write_message(self, reply):
        self._send(wire.tcp_frame(reply))

    def reject(self, status=400):
        self.served = MAX_QUERIES   # no more queries on this stream

    def close(self):
        self.conn.close()

    def getpeername(self):
        return self.conn.getpeername()


def _http_reply(status, body=b"", close=False):
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\n"
    if status == 200:
        head += "Content-Type: application/dns-message\r\n"
    head += f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    return head.encode("latin-1") + body


class DoHConn(_Deadlines):
    """DNS over HTTPS (RFC 8484) on HTTP/1.1: one query per request, keep-alive as the
    client asks. A request the listener cannot read as a query is answered 400/405/415 (as
    GOST's) and ends the connection."""

    __slots__ = ("conn", "buf", "served", "read_timeout", "write_timeout", "keep")
    is_packet = True
    max_size = 65535

    def __init__(self, conn, read_timeout, write_timeout):
        self.conn, self.buf, self.served, self.keep = conn, bytearray(), 0, True
        self.read_timeout, self.write_timeout = read_timeout, write_timeout

    @staticmethod
    def _request(buf):
        req, end = http.parse_request_head(bytes(buf[:http.MAX_HEAD + 4]))
        if req.headers.has_token("Transfer-Encoding", "chunked"):
            raise ProtocolError("DoH: chunked request bodies are not accepted", reply=400)
        n = http.content_length(req.headers) or 0
        if n > wire.MAX_BODY:
            raise ProtocolError("DoH: body too large", reply=413)
        if len(buf) < end + n:
            raise NeedData()
        body = bytes(buf[end:end + n])
        del buf[:end + n]
        return req, body

    def read_message(self):
        if not self.keep:
            return None
        try:
            got = self._read_until(self._request, "HTTP request")
            if got is None:
                return None
            req, body = got
            self.keep = http.keep_alive(req.version, req.headers)
            return wire.parse_doh_request(req.method, req.target, req.headers.get("Content-Type"), body)
        except ProtocolError as exc:
            self.reject(exc.reply or 400)
            raise

    def write_message(self, reply):
        self._send(_http_reply(200, reply, close=not self.keep))

    def reject(self, status=400):
        self.keep = False
        try:
            self._send(_http_reply(status, close=True))
        except (OSError, ProtocolError):
            pass

    def close(self):
        self.conn.close()

    def getpeername(self):
        return self.conn.getpeername()


class DoHStream:
    """One HTTP/2 request stream of a DoH connection: one query, one reply."""

    __slots__ = ("st", "done", "read_timeout", "write_timeout")
    is_packet = True
    max_size = 65535

    def __init__(self, st, read_timeout, write_timeout):
        self.st, self.done = st, False
        self.read_timeout, self.write_timeout = read_timeout, write_timeout

    @property
    def sid(self):
        return self.st.sid

    def read_message(self):
        if self.done:
            return None
        self.done = True
        st = self.st
        body = bytearray()
        if st.method == "POST":
            with gevent.Timeout(self.read_timeout or None, ProtocolError("DoH: request body not read within readTimeout")):
                while True:
                    chunk = st.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > wire.MAX_BODY:
                        self.reject(413)
                        raise ProtocolError("DoH: body too large")
        try:
            return wire.parse_doh_request(st.method, st.path, st.header("content-type"), body)
        except ProtocolError as exc:
            self.reject(exc.reply or 400)
            raise

    def write_message(self, reply):
        with gevent.Timeout(self.write_timeout or None, ProtocolError("reply not written within writeTimeout")):
            self.st.respond(200, [("content-type", "application/dns-message"), ("content-length", str(len(reply)))])
            self.st.sendall(reply)
            self.st.shutdown(socket.SHUT_WR)

    def reject(self, status=400):
        try:
            self.st.respond(status, end_stream=True)
        except (OSError, ProtocolError):
            pass

    def close(self):
        self.st.close()


class DoHSession:
    """An HTTP/2 DoH connection: every request stream is a query conn of its own (the
    service serves each in its own greenlet, as it does any multiplexed listener's)."""

    multiplex = True

    def __init__(self, session, read_timeout, write_timeout):
        self.session = session
        self.read_timeout, self.write_timeout = read_timeout, write_timeout

    def accept(self):
        for st in self.session.accept():
            yield DoHStream(st, self.read_timeout, self.write_timeout)

    def close(self):
        self.session.close()

    def getpeername(self):
        return self.session.getpeername()
