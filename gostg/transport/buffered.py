"""Conn helpers: a socket with bytes pushed back, and a message reader over any conn."""
from gevent.socket import socket as _GeventSocket

from .._compat import wait_readable
from ..errors import NeedData, ProtocolError


class BufferedConn:
    """A conn whose first reads return bytes already taken off the wire (a peeked handshake,
    the tail of a proxy reply). Everything else goes to the wrapped conn."""

    __slots__ = ("sock", "pending")

    def __init__(self, sock, pending=b""):
        self.sock = sock
        self.pending = bytes(pending)

    def recv(self, n):
        if self.pending:
            data, self.pending = self.pending[:n], self.pending[n:]
            return data
        return self.sock.recv(n)

    def recv_into(self, buf, nbytes=0):
        if self.pending:
            n = min(len(buf) if not nbytes else nbytes, len(self.pending))
            buf[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n
        # 0 means "the whole buffer" to a socket but "nothing" to an SSLSocket: pass it only when set
        return self.sock.recv_into(buf, nbytes) if nbytes else self.sock.recv_into(buf)

    def take_pending(self):
        data, self.pending = self.pending, b""
        return data

    def __getattr__(self, name):  # sendall, shutdown, close, getpeername, settimeout, fileno …
        return getattr(self.sock, name)


class HostConn(BufferedConn):
    """A conn that came through a reverse tunnel knowing the host its visitor asked for (GOST's
    bind-conn metadata ``host``): the forwarder chooses its node by it as if sniffed."""

    __slots__ = ("host",)

    def __init__(self, sock, pending=b"", host=""):
        super().__init__(sock, pending)
        self.host = host


class HostAddr(str):
    """A peer address (``host:port``) of a UDP visitor that came through a reverse tunnel, with
    the host it asked for (``.host``): what HostConn is for a stream, for a rudp session."""

    __slots__ = ("host",)


class SockWrapper:
    """Mixin for conns wrapping another in ``self.sock``: the calls that only pass through."""

    __slots__ = ()

    def close(self):
        return self.sock.close()

    def settimeout(self, t):
        return self.sock.settimeout(t)

    def getpeername(self):
        return self.sock.getpeername()

    def getsockname(self):
        return self.sock.getsockname()


def unwrap(conn):
    """→ ``(inner_conn, pending_bytes)`` peeling BufferedConn layers."""
    pending = b""
    while isinstance(conn, BufferedConn):
        pending += conn.take_pending()
        conn = conn.sock
    return conn, pending


class Stream:
    """Reads whole messages off a conn with a sans-IO ``parse(buf) -> (..., used)`` function,
    keeping what follows the message for the next read or for the relay."""

    __slots__ = ("conn", "buf", "limit", "received")

    #: default cap on bytes buffered while waiting for one message
    LIMIT = 80 * 1024

    def __init__(self, conn, limit=LIMIT):
        self.conn = conn
        self.buf = bytearray()
        self.limit = limit
        self.received = 0  # every byte read off the conn, for GOST's inputBytes

    def fill(self, n=65536):
        """Read once more from the conn into the buffer; False at EOF."""
        data = self.conn.recv(n)
        if not data:
            return False
        self.buf += data
        self.received += len(data)
        return True

    def read(self, parse, quiet=False):
        """The next message ``parse`` finds. ``quiet``: the peer has nothing to say until it
        has read what was just sent to it (a response to our request, a client's next request
        after our response), so with nothing buffered the first recv would only fail with
        EAGAIN: park on the socket's read watcher first (one syscall and one exception less)."""
        if quiet and not self.buf and type(self.conn) is _GeventSocket:
            # a plain socket only: a TLS or buffered conn may already hold the bytes; a closed
            # one has no watcher, and its recv below raises what a read of it always raised
            wait_readable(self.conn)
        while True:
            if self.buf:
                try:
                    res = parse(self.buf)
                except NeedData:
                    pass
                else:
                    del self.buf[:res[-1]]
                    return res[0] if len(res) == 2 else res[:-1]
            if len(self.buf) > self.limit:
                raise ProtocolError("message too large")
            if not self.fill(16384):
                if self.buf:
                    raise ProtocolError("truncated message: peer closed mid-handshake")
                raise EOFError("peer closed")

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill(max(16384, n - len(self.buf))):
                raise ProtocolError("truncated message: peer closed mid-handshake")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take(self):
        """Bytes read past the last message (and clears them)."""
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def conn_with_rest(self):
        """The conn, with any bytes read past the last message pushed back."""
        rest = self.take()
        return BufferedConn(self.conn, rest) if rest else self.conn


def send_all(conn, data):
    """``conn.sendall(data)``. On a plain gevent socket: ``send`` until all went (gevent's
    sendall asks SO_SNDBUF and the clock on every call before it writes; its ``send`` waits
    for room itself, within the socket's timeout); a message usually fits in one."""
    if type(conn) is _GeventSocket:
        n = conn.send(data)
        if n == len(data):
            return
        mv = memoryview(data).cast("B")
        while n < len(mv):
            n += conn.send(mv[n:])
        return
    conn.sendall(data)
