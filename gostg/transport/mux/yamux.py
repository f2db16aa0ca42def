"""yamux sessions over any conn (hashicorp/yamux, GOST's ``mux.type=yamux``): many streams over
one TCP/TLS/WebSocket connection, each with its own flow-controlled window.

Rules (as hashicorp/yamux; the shared ones are in session.py):
1. One reader demultiplexes frames into per-stream buffers; a server's ``accept()`` yields each
   stream the peer opens (and queues its ACK at once, so the opener never waits on our
   handler); a client refuses them (RST).
2. Flow control: every stream starts with a 256 KiB window each way. A writer sends at most
   the peer's window and waits for its Window Update; a reader gives the window back when the
   application has read half of ``max_stream_window``. Data beyond the window we gave is a
   protocol error (the session ends), so a stream buffers at most its window, and a slow
   reader holds back only its own stream's writer.
3. A stream half-closes: ``shutdown(SHUT_WR)`` sends FIN and the other direction goes on;
   after the peer's FIN, buffered bytes are read, then ``recv`` returns ``b""``. ``close``
   sends FIN if not sent yet and forgets the stream (later frames for it are dropped, as yamux
   does). RST from the peer drops what was buffered: ``recv`` returns ``b""``, ``sendall``
   raises BrokenPipeError.
4. Keepalive: a Ping every ``keepalive_interval``; no answer within ``PING_TIMEOUT`` closes
   the session (yamux's ConnectionWriteTimeout). Pings from the peer are answered.
5. Go Away: normal → no new streams on this session (the dialer makes a new one), running
   streams go on; an error code ends the session.
"""
import itertools

from gevent import socket
from gevent.event import Event

from ...errors import ProtocolError
from ...protocols import yamux
from .session import BufferedStream, FramedSession

#: seconds a ping may wait for its answer (yamux's ConnectionWriteTimeout)
PING_TIMEOUT = 10.0
#: largest Data frame we send: bigger writes are cut so other streams get their turn
MAX_DATA_FRAME = 64 * 1024


class Stream(BufferedStream):
    """One yamux stream: the conn interface (no ``fileno``: it is not a socket)."""

    __slots__ = ("recv_window", "send_window", "local_ended")
    kind = "yamux"
    #: FIN is a real half-close (relay keeps the other direction going)
    half_close = True

    def __init__(self, session, sid):
        super().__init__(session, sid)
        self.recv_window = yamux.INITIAL_WINDOW   # what the peer may still send us
        self.send_window = yamux.INITIAL_WINDOW   # what we may still send the peer
        self.local_ended = False

    def _check_send(self):
        if self.closed or self.local_ended or self.reset or self.session.closed:
            raise self._gone()

    def shutdown(self, how):
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self.session._fin(self)


class Session(FramedSession):
    """yamux over ``conn``. ``client=True`` opens streams (``open``), else accepts them."""

    kind = "yamux"

    def __init__(self, conn, client, config=None, log=None):
        super().__init__(conn, client, log)
        if config is None:
            from .config import MuxConfig
            config = MuxConfig(type="yamux")
        self.config = config
        self.max_window = config.max_stream_window
        self.next_sid = 1 if client else 2
        self._pings = itertools.count(1)
        self._ping_id = 0
        self._pong = Event()
        if config.keepalive_interval > 0:
            self._spawn_helper(lambda: self._keepalive_loop(config.keepalive_interval))

    def _grow(self, st, flags):
        """A Window Update giving the peer our full window (with SYN or ACK when opening)."""
        delta = self.max_window - st.recv_window - len(st.buf)
        st.recv_window += delta
        return yamux.encode_frame(yamux.WINDOW_UPDATE, flags, st.sid, delta)

    # --- writing -------------------------------------------------------------------------
    def _window(self, st, want):
        return min(want, st.send_window)

    def _send_data(self, st, mv):
        parts = []
        for i in range(0, len(mv), MAX_DATA_FRAME):
            chunk = mv[i:i + MAX_DATA_FRAME]
            parts.append(yamux.encode_header(yamux.DATA, 0, st.sid, len(chunk)))
            parts.append(chunk)
        st.send_window -= len(mv)
        self._write(b"".join(parts))

    def open(self):
        """A new stream to the peer (client side, or the serving end of a BIND)."""
        if not self.alive:
            raise BrokenPipeError("yamux session is closed" if self.closed else "yamux peer sent Go Away")
        sid = self.next_sid
        if sid > 0xFFFFFFFF:
            raise BrokenPipeError("yamux stream ids exhausted")
        self.next_sid += 2
        st = self._add(Stream(self, sid))
        try:
            self._write(self._grow(st, yamux.SYN))
        except OSError:
            self.streams.pop(sid, None)
            raise
        return st

    def _fin(self, st):
        """Half-close ``st`` (rule 3)."""
        if st.local_ended or st.reset or self.closed:
            return
        st.local_ended = True
        try:
            self._write(yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.FIN, st.sid))
        except OSError:
            pass

    def _stream_closed(self, st):
        if self.streams.pop(st.sid, None) is None:
            return
        st.buf = bytearray()
        self._fin(st)

    def _consumed(self, st, n):
        """The application read ``n`` bytes: give the window back once half of it is used."""
        if st.closed or st.reset:
            return
        if self.max_window - len(st.buf) - st.recv_window >= self.max_window // 2:
            self._post(self._grow(st, 0))

    # --- reading -------------------------------------------------------------------------
    def _frames(self, buf):
        pos = 0
        streams = self.streams
        for ftype, flags, sid, length, payload, pos in self.parsed(yamux.parse_frame, buf, self.max_window):
            if ftype == yamux.PING:
                if flags & yamux.SYN:
                    self._post(yamux.encode_frame(yamux.PING, yamux.ACK, 0, length))
                elif length == self._ping_id:
                    self._pong.set()
                continue
            if ftype == yamux.GO_AWAY:
                if length != yamux.GOAWAY_NORMAL:
                    raise ProtocolError(f"yamux: peer went away with error code {length}")
                self.goaway = True
                self._debug("peer sent Go Away")
                continue
            if flags & yamux.SYN:
                if sid in streams:
                    raise ProtocolError(f"yamux: stream {sid} opened twice")
                if self.client:       # a client takes no streams (rule 1)
                    self._post(yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.RST, sid))
                    continue
                st = self._add(Stream(self, sid))
                self._post(self._grow(st, yamux.ACK))
                yield st
            st = streams.get(sid)
            if st is None:
                continue          # a stream we closed (or never had): its frames are dropped
            if ftype == yamux.WINDOW_UPDATE:
                st.send_window += length
                st.wnd.set()
            elif length:
                if length > st.recv_window:
                    raise ProtocolError(f"yamux: stream {sid} sent {length} bytes beyond its window")
                st.recv_window -= length
                st.buf += payload
                st.ready.set()
            if flags & yamux.RST:
                st.buf = bytearray()
                streams.pop(sid, None)
                st._end(reset=True)
            elif flags & yamux.FIN:
                st._end()
                if st.local_ended:
                    streams.pop(sid, None)
        return pos

    def _keepalive_tick(self):
        self._ping_id = next(self._pings) & 0xFFFFFFFF
        self._pong.clear()
        self._write(yamux.encode_frame(yamux.PING, yamux.SYN, 0, self._ping_id))
        return self._pong.wait(PING_TIMEOUT) or self.closed

    def _wake(self):
        self._pong.set()
