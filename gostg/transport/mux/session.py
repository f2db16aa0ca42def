"""What every multiplexed session shares (smux in ``smux.py``, HTTP/2 in ``h2.py``): many
streams over one conn, each behaving like a blocking socket.

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
"""
import gevent
from gevent import socket
from gevent.event import Event
from gevent.lock import Semaphore

from ...errors import ProtocolError


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
        #: the peer takes no new streams (HTTP/2 GOAWAY)
        self.goaway = False
        self.opened = 0                 # streams opened or accepted so far
        self.wlock = Semaphore()
        self._reader = None
        self._helpers = []              # greenlets that end with the session

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
            self.conn.sendall(data)
        except OSError:
            gevent.spawn(self.close)   # not from here: we may be the reader's caller
            raise

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

    def _run_client(self):
        try:
            for st in self._incoming():
                st.close()    # a client accepts no streams
        except (OSError, ProtocolError) as exc:
            self._debug(f"{self.noun} ended: {exc}")
        finally:
            self.close()

    # --- teardown ------------------------------------------------------------------------
    def _stream_closed(self, st):
        raise NotImplementedError

    def _wake(self):
        """Wake every greenlet waiting on the session (it is closing)."""

    def close(self):
        if self.closed:
            return
        self.closed = True
        streams, self.streams = self.streams, {}
        for st in streams.values():
            st._end(reset=True)
        self._wake()
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
