"""WebSocket over any conn (GOST's ``ws``/``wss`` transports), framed by wsproto.

Rules (as GOST, ``x:internal/net/ws``-style conns over gorilla/websocket):
1. Every ``sendall`` is one binary message; received payload bytes (binary or text) are the
   stream, whatever the message boundaries were. Leftover bytes wait for the next ``recv``.
2. Pings are answered with pongs; pongs are ignored.
3. A close frame (or a frame that cannot be parsed) is EOF: the close reply goes out once,
   later ``recv`` calls return ``b""`` and later ``sendall`` calls raise ``BrokenPipeError``.
4. No half-close: ``shutdown`` is a no-op, ``close`` sends a close frame best-effort and then
   closes the inner conn.
5. The handshake functions leave bytes that followed the HTTP head inside the wsproto
   connection, so a client that sends its first tunnel bytes eagerly loses nothing.
6. Keepalive (GOST's dialer ``ws.keepalive``): a ping every interval while the conn is open,
   from one greenlet that only exists when asked for, so idle tunnels through proxies and
   NATs that drop silent connections stay up.
Errors wsproto raises while the tunnel is up become ``OSError``s, which is what relay expects.
"""
import gevent
from gevent.lock import Semaphore
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Message, Ping,
                            RejectConnection, RejectData, Request, TextMessage)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..errors import ProtocolError

#: default request path of GOST's ws/wss listener and dialer
DEFAULT_PATH = "/ws"
#: bytes read off the inner conn at a time
READ_SIZE = 65536

_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _headers(header):
    """GOST's ``header`` metadata (a map of name → value) → wsproto header pairs."""
    if not header or not isinstance(header, dict):
        return []
    return [(str(k).encode("latin-1"), str(v).encode("latin-1")) for k, v in header.items()]


class WSConn:
    """The conn interface over a WebSocket that finished its handshake."""

    __slots__ = ("conn", "ws", "buf", "eof", "wlock", "pinger")
    #: shutdown cannot reach the far end (see relay._can_half_close)
    half_close = False

    def __init__(self, conn, ws):
        self.conn = conn
        self.ws = ws
        self.buf = bytearray()
        self.eof = False
        # the two relay pumps share this conn: a pong or close written by the reading side
        # must not interleave with a message being written by the other side
        self.wlock = Semaphore()
        self.pinger = None

    def keepalive(self, interval):
        """Send a ping every ``interval`` seconds until the conn closes (rule 6)."""
        if interval > 0 and self.pinger is None:
            self.pinger = gevent.spawn(self._ping_loop, interval)

    def _ping_loop(self, interval):
        while not self.eof and self.ws.state is ConnectionState.OPEN:
            gevent.sleep(interval)
            try:
                self._write(Ping())
            except OSError:
                return

    def _write(self, event):
        with self.wlock:
            try:
                data = self.ws.send(event)
            except LocalProtocolError as exc:
                raise BrokenPipeError(f"websocket: {exc}") from None
            self.conn.sendall(data)

    def _fill(self):
        """Read until payload bytes are buffered or the stream ends."""
        while not self.buf and not self.eof:
            for ev in self.ws.events():
                if isinstance(ev, BytesMessage):
                    self.buf += ev.data
                elif isinstance(ev, TextMessage):
                    self.buf += ev.data.encode()
                elif isinstance(ev, Ping):
                    self._write(ev.response())
                elif isinstance(ev, CloseConnection):
                    self.eof = True
                    if self.ws.state is ConnectionState.REMOTE_CLOSING or self.ws.state is ConnectionState.OPEN:
                        try:
                            self._write(ev.response())
                        except OSError:
                            pass
                    break
            if self.buf or self.eof:
                return
            data = self.conn.recv(READ_SIZE)
            try:
                self.ws.receive_data(data or None)
            except LocalProtocolError:
                self.eof = True

    def recv(self, n):
        if not self.buf:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def recv_into(self, buf, nbytes=0):
        if not self.buf:
            self._fill()
        n = min(nbytes or len(buf), len(self.buf))
        buf[:n] = self.buf[:n]
        del self.buf[:n]
        return n

    def sendall(self, data):
        if data:
            self._write(BytesMessage(data=bytes(data)))

    def shutdown(self, how):
        # WebSocket has no half-close (GOST's ws conn has none either): a close frame ends both
        pass

    def close(self):
        if self.pinger is not None:
            self.pinger.kill(block=False)
        try:
            if self.ws.state is ConnectionState.OPEN:
                self._write(CloseConnection(code=1000))
        except OSError:
            pass
        finally:
            self.conn.close()

    def settimeout(self, t):
        self.conn.settimeout(t)

    def getpeername(self):
        return self.conn.getpeername()


def server_handshake(conn, path=DEFAULT_PATH, header=None):
    """Answer the HTTP upgrade on ``conn``. A request for another path gets 404, anything that
    is not a WebSocket upgrade gets 400; both raise ProtocolError. → WSConn"""
    ws = WSConnection(ConnectionType.SERVER)
    while True:
        data = conn.recv(READ_SIZE)
        try:
            ws.receive_data(data or None)
            for ev in ws.events():
                if isinstance(ev, Request):
                    target = ev.target.split("?", 1)[0]
                    if target != path:
                        conn.sendall(ws.send(RejectConnection(status_code=404, has_body=False)))
                        raise ProtocolError(f"websocket: path {target!r} not found", reply=404)
                    conn.sendall(ws.send(AcceptConnection(extra_headers=_headers(header))))
                    return WSConn(conn, ws)
        except RemoteProtocolError as exc:
            try:
                conn.sendall(_BAD_REQUEST)
            except OSError:
                pass
            raise ProtocolError(f"websocket handshake: {exc}", reply=400) from None
        if not data:
            raise ProtocolError("websocket handshake: connection closed before the request")


def client_handshake(conn, host, path=DEFAULT_PATH, header=None):
    """Send the upgrade request (``Host: host``, ``GET path``) and require 101. → WSConn"""
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        conn.sendall(ws.send(Request(host=host, target=path or DEFAULT_PATH, extra_headers=_headers(header))))
        while True:
            data = conn.recv(READ_SIZE)
            ws.receive_data(data or None)
            for ev in ws.events():
                if isinstance(ev, AcceptConnection):
                    return WSConn(conn, ws)
                if isinstance(ev, (RejectConnection, RejectData)):
                    code = getattr(ev, "status_code", None)
                    raise ProtocolError(f"websocket handshake: bad status {code}")
            if not data:
                raise ProtocolError("websocket handshake: connection closed before the response")
    except RemoteProtocolError as exc:
        raise ProtocolError(f"websocket handshake: {exc}") from None
