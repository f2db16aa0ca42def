"""smux sessions over any conn: many streams over one TCP/TLS/WebSocket connection (GOST's mux),
xtaci/smux protocol versions 1 and 2.

Rules (as xtaci/smux; the shared ones are in session.py):
1. One reader demultiplexes frames into per-stream buffers. On the server that reader is the
   ``accept()`` generator, driven by the connection's greenlet, which yields each stream the
   peer opens; a client session runs the same loop in a greenlet of its own and refuses
   streams the peer opens (answers FIN).
2. Writers share the conn under one lock; payloads are cut at ``frame_size`` and the frames of
   one write go out together, so frames never interleave.
3. A stream has no half-close: FIN ends it both ways, so ``shutdown`` is a no-op (relay's idle
   limit ends a half-done tunnel) and ``close`` sends FIN. After the peer's FIN, buffered
   bytes are still read, then ``recv`` returns ``b""`` and ``sendall`` raises BrokenPipeError.
4. Session back-pressure: when the bytes buffered for all streams reach ``max_receive`` the
   reader stops reading the conn until streams are read (smux's session token bucket).
5. Version 2 adds per-stream flow control: a writer keeps at most the peer's window
   (262144 bytes until its first UPD) beyond what the peer said it consumed; a reader sends
   UPD(consumed, ``max_stream_buffer``) on its first read and after each half window read.
   So one slow stream holds back its own writer, not the whole session. A peer that sends
   beyond the window it was given ends the session (smux trusts it; we bound the buffer).
6. ``open(first=…)`` (a stream that starts with bytes of ours: the tunnel's preamble) holds
   its SYN and those bytes until the stream's first write, read or close, and sends them in
   that same write: the peer gets the same frames in the same order, in one segment rather
   than three.
7. Keepalive: a NOP every ``keepalive_interval``; a session that received nothing for
   ``keepalive_timeout`` (while not stalled by rule 4) is closed. Disabled with interval 0.
"""
import time

from gevent.event import Event

from ...errors import ProtocolError
from ...protocols import smux
from .session import BufferedStream, FramedSession

#: frames joined into one write (rule 2): fewer syscalls for bulk data
FRAMES_PER_WRITE = 8


class Stream(BufferedStream):
    """One smux stream: the conn interface (no ``fileno``: it is not a socket)."""

    __slots__ = ("num_read", "incr", "num_written", "peer_consumed", "peer_window", "held")
    kind = "smux"
    #: shutdown cannot reach the far end (see relay._can_half_close)
    half_close = False

    def __init__(self, session, sid):
        super().__init__(session, sid)
        # version 2 flow control, all mod 2**32 as smux counts them (rule 5)
        self.num_read = 0          # bytes the application read
        self.incr = 0              # read since the last UPD we sent
        self.num_written = 0       # bytes we sent
        self.peer_consumed = 0     # bytes the peer said it read
        self.peer_window = smux.INITIAL_PEER_WINDOW
        self.held = b""            # frames not sent yet (rule 6)

    def _wait(self):
        if self.held:   # the peer cannot answer a stream it has not heard of
            self.session._flush_held(self)
        super()._wait()

    def _check_send(self):
        if self.closed or self.remote_ended:
            raise self._gone()

    def shutdown(self, how):
        # FIN closes a smux stream both ways: there is no half-close to send (rule 3)
        pass


class Session(FramedSession):
    """smux over ``conn``. ``client=True`` opens streams (``open``), else accepts them (``accept``)."""

    kind = "smux"
    #: ``open(first)`` holds the first bytes with the SYN (rule 6)
    holds_first = True

    def __init__(self, conn, client, config=None, log=None):
        super().__init__(conn, client, log)
        if config is None:
            from .config import MuxConfig
            config = MuxConfig()
        self.config = config
        self.version = config.version
        self.next_sid = 1 if client else 0
        self.buffered = 0               # bytes in stream buffers, not read yet (rule 4)
        self.drained = Event()
        self.drained.set()
        # rule 5: what a stream may hold unread before the peer broke its window
        self.stream_cap = max(smux.INITIAL_PEER_WINDOW, config.max_stream_buffer)
        if config.keepalive_interval > 0:
            self._spawn_helper(lambda: self._keepalive_loop(config.keepalive_interval))

    # --- writing -------------------------------------------------------------------------
    def _frame(self, cmd, sid):
        return smux.encode_header(cmd, sid, 0, self.version)

    def _window(self, st, want):
        if self.version < 2:
            return want
        inflight = (st.num_written - st.peer_consumed) & 0xFFFFFFFF
        if inflight >= 0x80000000:    # the peer acknowledged more than we sent
            raise ProtocolError(f"smux: stream {st.sid}: peer consumed more than was sent")
        return max(0, min(want, st.peer_window - inflight))

    def _send_data(self, st, mv):
        step = self.config.frame_size
        version = self.version
        if len(mv) <= step:   # the usual write (a request, a response): one frame, no loop
            frame = smux.encode_header(smux.PSH, st.sid, len(mv), version) + mv
            if st.held:
                frame, st.held = st.held + frame, b""
            self._write(frame)
            st.num_written = (st.num_written + len(mv)) & 0xFFFFFFFF
            return
        parts = []
        if st.held:
            parts.append(st.held)
            st.held = b""
        for i in range(0, len(mv), step):
            chunk = mv[i:i + step]
            parts.append(smux.encode_header(smux.PSH, st.sid, len(chunk), version))
            parts.append(chunk)
            if len(parts) >= 2 * FRAMES_PER_WRITE:
                self._write(b"".join(parts))
                parts.clear()
        if parts:
            self._write(b"".join(parts))
        st.num_written = (st.num_written + len(mv)) & 0xFFFFFFFF

    def open(self, first=b""):
        """A new stream to the peer (client side); ``first``: its first bytes, held with the
        SYN until the next write, read or close (rule 6)."""
        if self.closed:
            raise BrokenPipeError("smux session is closed")
        self.next_sid += 2
        if self.next_sid > 0xFFFFFFFF:
            raise BrokenPipeError("smux stream ids exhausted")
        st = self._add(Stream(self, self.next_sid))
        syn = self._frame(smux.SYN, st.sid)
        if first and len(first) <= self.config.frame_size:
            st.held = syn + smux.encode_header(smux.PSH, st.sid, len(first), self.version) + first
            st.num_written = len(first)
            return st
        try:
            self._write(syn)
        except OSError:
            self.streams.pop(st.sid, None)
            raise
        if first:
            st.sendall(first)
        return st

    def _flush_held(self, st):
        held, st.held = st.held, b""
        if held and not self.closed:
            self._write(held)

    def _refuse(self, st):
        self.streams.pop(st.sid, None)
        self._post(self._frame(smux.FIN, st.sid))

    def _stream_closed(self, st):
        if self.streams.pop(st.sid, None) is None:
            return
        self._release(len(st.buf))
        st.buf = bytearray()
        if not self.closed:
            # also after the peer's FIN: smux answers a FIN with its own when the stream closes
            held, st.held = st.held, b""
            try:
                self._write(held + self._frame(smux.FIN, st.sid))
            except OSError:
                pass

    def _consumed(self, st, n):
        """The application read ``n`` bytes of ``st``: free the session's budget (rule 4) and,
        in version 2, tell the peer (rule 5)."""
        self._release(n)
        if self.version < 2:
            return
        st.num_read = (st.num_read + n) & 0xFFFFFFFF
        st.incr += n
        if st.incr >= self.config.max_stream_buffer // 2 or st.num_read == n:
            st.incr = 0
            self._post(smux.encode_upd(st.sid, st.num_read, self.config.max_stream_buffer, self.version))

    def _release(self, n):
        self.buffered -= n
        if self.buffered < self.config.max_receive:
            self.drained.set()

    # --- reading -------------------------------------------------------------------------
    def _await_room(self):
        while self.buffered >= self.config.max_receive and not self.closed:
            self.drained.clear()
            self.drained.wait()

    def _frames(self, buf):
        pos = 0
        streams = self.streams
        for cmd, sid, payload, pos in self.parsed(smux.parse_frame, buf, self.version):
            if cmd == smux.PSH:
                st = streams.get(sid)
                if st is not None and payload:
                    st.buf += payload
                    self.buffered += len(payload)
                    if self.version >= 2 and len(st.buf) > self.stream_cap:
                        raise ProtocolError(f"smux: stream {sid} overran its window "
                                            f"({len(st.buf)} bytes unread)")
                    st.ready.set()
            elif cmd == smux.UPD:
                st = streams.get(sid)
                if st is not None:
                    st.peer_consumed, st.peer_window = smux.parse_upd(payload)
                    st.wnd.set()
            elif cmd == smux.SYN:
                if sid not in streams:
                    yield self._add(Stream(self, sid))
            elif cmd == smux.FIN:
                st = streams.get(sid)
                if st is not None:
                    st._end()
        return pos

    def _keepalive_tick(self):
        self._write(self._frame(smux.NOP, 0))
        timeout = self.config.keepalive_timeout
        # a reader stalled by rule 4 receives nothing by our choice: that is no dead peer
        return not (timeout and time.monotonic() - self.last_rx > timeout
                    and self.buffered < self.config.max_receive)

    def _wake(self):
        self.drained.set()
