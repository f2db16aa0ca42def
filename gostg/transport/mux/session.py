"""What every multiplexed session shares (smux in ``smux.py``, yamux in ``yamux.py``, HTTP/2
in ``h2.py``): many streams over one conn, each behaving like a blocking socket.

Rules (each subclass adds its wire format's own on top):
1. One reader per session: ``_incoming()`` reads the conn, feeds the streams and yields every
   stream the peer opens. On a server ``accept()`` drives it from the connection's greenlet;
   a client runs it in a greenlet of its own (``start``) and refuses the streams the peer
   opens.
2. Writers share the conn under ``wlock``; ``_send`` is the only ``conn.sendall``. A failed
   send closes the session from a greenlet of its own (the writer may be the reader's caller).
3. A stream waits for bytes on its ``ready`` event, bounded by its own ``settimeout``; the
   reader sets it when bytes arrive or the stream ends (``_end``).
4. ``close`` ends the session: every stream sees EOF (as after a reset), the conn is closed,
   the reader and helper greenlets (keepalive, flusher) stop.
5. The reader never blocks on a write: control frames it (or a stream's reader) causes — window
   updates, ping answers, stream acks and refusals — are queued (``_post``) and sent by the
   flusher greenlet, so two peers whose socket buffers are full cannot wait on each other.
6. Framed sessions (smux, yamux; ``FramedSession``) keep each stream's received bytes in one
   buffer (``BufferedStream``); a writer sends only what the peer's window allows
   (``_window``) and waits on the stream's ``wnd`` event for more.
"""
import time
from collections import deque

import gevent
from gevent import socket
from gevent.event import Event
from gevent.lock import Semaphore
from ...errors import NeedData, ProtocolError
from ..buffered import send_all

#: bytes read off the conn at a time by a framed session
READ_SIZE = 256 * 1024


class MuxStream:
    """One stream of a session: the conn interface (no ``fileno``: it is not a socket).
    Subclasses keep the received bytes and say when there is something to read
    (``_readable``)."""

    __slots__ = ("session", "sid", "ready", "remote_ended", "reset", "closed", "timeout",
                 "owns_session")
    #: the name in reprs and errors
    kind = "mux"

    def __init__(self, session, sid):
        self.session = session
        self.sid = sid
        self.ready = Event()      # bytes arrived, or the stream ended
        self.remote_ended = False  # the peer ended the stream, or the session died
        self.reset = False        # ended abruptly (RST_STREAM, or the session died)
        self.closed = False       # closed locally
        self.timeout = None
        #: a stream that is its session's only reason to exist (a mux hop inside a chain)
        self.owns_session = False

    def __repr__(self):
        return f"<{self.kind} stream {self.sid}>"

    def _readable(self):
        raise NotImplementedError

    def _wake(self):
        """Wake whoever waits on this stream (it ended or was closed)."""
        self.ready.set()

    # called by the session's reader
    def _end(self, reset=False):
        self.remote_ended = True
        if reset:
            self.reset = True
        self._wake()

    def _wait(self):
        while not self._readable():
            self.ready.clear()
            if not self.ready.wait(self.timeout):
                raise socket.timeout("timed out")

    def _gone(self):
        return BrokenPipeError(f"{self.kind} stream {self.sid} is closed")

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._wake()
        self.session._stream_closed(self)
        if self.owns_session:
            self.session.close()

    def settimeout(self, t):
        self.timeout = t

    def gettimeout(self):
        return self.timeout

    def getpeername(self):
        return self.session.conn.getpeername()


class MuxSession:
    """Streams over ``conn``. ``client=True`` opens them; else ``accept`` yields the peer's."""

    #: marks a conn that carries streams: Service hands each accepted stream to the handler
    multiplex = True
    #: the name in reprs; the prefix of log lines and what one session is called there
    kind = "mux"
    log_name = "mux"
    noun = "session"

    def __init__(self, conn, client, log=None):
        self.conn = conn
        self.client = client
        self.log = log
        self.streams = {}
        self.closed = False
        #: the peer takes no new streams (HTTP/2 GOAWAY, yamux Go Away)
        self.goaway = False
        self.opened = 0                 # streams opened or accepted so far
        self.wlock = Semaphore()
        self._reader = None
        self._helpers = []              # greenlets that end with the session
        self._ctrl = deque()            # control frames for the flusher (rule 5)
        self._ctrl_ready = Event()
        self._flusher = None

    def __repr__(self):
        return f"<{self.kind} session {'client' if self.client else 'server'} streams={len(self.streams)}>"

    @property
    def alive(self):
        return not self.closed and not self.goaway

    def _spawn_helper(self, fn):
        self._helpers.append(gevent.spawn(fn))

    def start(self):
        """Client side: run the reader in a greenlet of its own."""
        self._reader = gevent.spawn(self._run_client)
        return self

    def _debug(self, msg):
        if self.log is not None:
            self.log.debug(f"{self.log_name}: {msg}")

    # --- writing -------------------------------------------------------------------------
    def _send(self, data):
        """``conn.sendall``; the caller holds ``wlock`` (rule 2)."""
        try:
            send_all(self.conn, data)   # (a frame usually fits the socket buffer: one send)
        except OSError:
            gevent.spawn(self.close)   # not from here: we may be the reader's caller
            raise

    def _write(self, data):
        """One frame (or several, joined) onto the conn under ``wlock``."""
        if self.closed:
            raise BrokenPipeError(f"{self.kind} session is closed")
        with self.wlock:
            self._send(data)

    def _post(self, frame):
        """Queue a control frame for the flusher (rule 5); never blocks."""
        if self.closed:
            return
        self._ctrl.append(frame)
        self._kick()

    def _kick(self):
        """Wake the flusher (started on first use): it sends what ``_take_ctrl`` gives."""
        self._ctrl_ready.set()
        if self._flusher is None and not self.closed:
            self._flusher = gevent.spawn(self._flush_loop)
            self._helpers.append(self._flusher)

    def _take_ctrl(self):
        """The bytes the flusher sends now; called under ``wlock`` (HTTP/2 takes h2's)."""
        data = b"".join(self._ctrl)
        self._ctrl.clear()
        return data

    def _flush_loop(self):
        while not self.closed:
            self._ctrl_ready.wait()
            self._ctrl_ready.clear()
            if self.closed:
                return
            try:
                with self.wlock:
                    data = self._take_ctrl()
                    if data:
                        self._send(data)
            except OSError:
                return

    def _add(self, st):
        self.streams[st.sid] = st
        self.opened += 1
        return st

    # --- reading -------------------------------------------------------------------------
    def _incoming(self):
        """Read the conn until it ends; yield every stream the peer opens."""
        raise NotImplementedError

    def accept(self):
        """Server side: read the conn, yield every stream the peer opens; ends when the
        session does (then it is closed)."""
        try:
            yield from self._incoming()
        finally:
            self.close()

    def _refuse(self, st):
        """A client takes no streams the peer opens."""
        st.close()

    def _run_client(self):
        try:
            for st in self._incoming():
                self._refuse(st)
        except (OSError, ProtocolError) as exc:
            self._debug(f"{self.noun} ended: {exc}")
        finally:
            self.close()

    # --- teardown ------------------------------------------------------------------------
    def _stream_closed(self, st):
        raise NotImplementedError

    def _wake(self):
        """Wake every greenlet waiting on the session (it is closing)."""

    def _keepalive_loop(self, interval):
        """Every ``interval`` seconds ``_keepalive_tick()``, until it says the session is dead."""
        while not self.closed:
            gevent.sleep(interval)
            if self.closed:
                return
            try:
                alive = self._keepalive_tick()
            except OSError:
                return
            if not alive and not self.closed:
                self._debug("keepalive timeout")
                gevent.spawn(self.close)
                return

    def _keepalive_tick(self):
        raise NotImplementedError

    def close(self):
        if self.closed:
            return
        self.closed = True
        streams, self.streams = self.streams, {}
        for st in streams.values():
            st._end(reset=True)
        self._wake()
        self._ctrl_ready.set()
        cur = gevent.getcurrent()
        for g in (*self._helpers, self._reader):
            if g is not None and g is not cur:
                g.kill(block=False)
        try:
            self.conn.close()
        except OSError:
            pass
        self._debug(f"{self.noun} closed after {self.opened} streams")

    def settimeout(self, t):
        self.conn.settimeout(t)

    def getpeername(self):
        return self.conn.getpeername()


class BufferedStream(MuxStream):
    """A framed session's stream (rule 6): received bytes wait in ``buf``; ``sendall`` sends
    what the peer's window allows and waits on ``wnd`` for the rest."""

    __slots__ = ("buf", "wnd")

    def __init__(self, session, sid):
        super().__init__(session, sid)
        self.buf = bytearray()
        self.wnd = Event()        # the peer opened its window, or the stream ended

    def _readable(self):
        return self.buf or self.remote_ended or self.closed

    def _wake(self):
        self.ready.set()
        self.wnd.set()

    def _check_send(self):
        """Raise if this stream can send no more."""
        raise NotImplementedError

    def recv(self, n):
        self._wait()
        data = bytes(self.buf[:n])
        if data:
            del self.buf[:len(data)]
            self.session._consumed(self, len(data))
        return data

    def recv_into(self, buf, nbytes=0):
        self._wait()
        n = min(nbytes or len(buf), len(self.buf))
        if n:
            with memoryview(self.buf) as m:
                buf[:n] = m[:n]
            del self.buf[:n]
            self.session._consumed(self, n)
        return n

    def sendall(self, data):
        mv = memoryview(data).cast("B")
        s = self.session
        while mv:
            self._check_send()
            n = s._window(self, len(mv))
            if n > 0:
                s._send_data(self, mv[:n])
                mv = mv[n:]
                continue
            self.wnd.clear()      # no yield since the window was read: an update sets it again
            if not self.wnd.wait(self.timeout):
                raise socket.timeout("timed out")


class FramedSession(MuxSession):
    """A session whose wire is frames parsed from one growing buffer (smux, yamux)."""

    def __init__(self, conn, client, log=None):
        super().__init__(conn, client, log)
        self.last_rx = time.monotonic()

    def _await_room(self):
        """Called before each read of the conn: block while the streams hold too much."""

    def _frames(self, buf):
        """Handle the complete frames in ``buf``; yield each stream the peer opens; return the
        offset of the first byte not used (a generator: ``pos = yield from …``)."""
        raise NotImplementedError

    def _incoming(self):
        buf = bytearray()
        conn = self.conn
        # one receive buffer for the session's life: a fresh 256 KiB bytes per recv is an
        # mmap and a munmap each time
        rbuf = bytearray(READ_SIZE)
        rmv = memoryview(rbuf)
        while not self.closed:
            self._await_room()
            n = conn.recv_into(rbuf)
            if not n:
                return
            self.last_rx = time.monotonic()
            buf += rmv[:n]
            pos = yield from self._frames(buf)
            if pos:
                del buf[:pos]

    @staticmethod
    def parsed(parse, buf, *args):
        """Frames of ``buf`` by ``parse(buf, pos, *args)`` until one is incomplete; each item
        is the parsed tuple, whose last member is the next offset."""
        pos = 0
        try:
            while True:
                frame = parse(buf, pos, *args)
                pos = frame[-1]
                yield frame
        except NeedData:
            return
