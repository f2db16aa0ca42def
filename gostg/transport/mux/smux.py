"""smux sessions over any conn: many streams over one TLS/WebSocket connection (GOST's mux).

Rules (as xtaci/smux version 1, what GOST speaks by default):
1. One reader demultiplexes frames into per-stream buffers. On the server that reader is the
   ``accept()`` generator, driven by the connection's greenlet, which yields each stream the
   peer opens; a client session runs the same loop in a greenlet of its own and refuses
   streams the peer opens (answers FIN).
2. Writers share the conn under one lock, one frame per ``sendall``, so frames never
   interleave; payloads are cut at ``frame_size``.
3. A stream has no half-close: FIN ends it both ways, so ``shutdown`` is a no-op (relay's idle
   limit ends a half-done tunnel) and ``close`` sends FIN. After the peer's FIN, buffered
   bytes are still read, then ``recv`` returns ``b""`` and ``sendall`` raises BrokenPipeError.
4. Back-pressure: when the bytes buffered for all streams reach ``max_receive`` the reader
   stops reading the conn until streams are read (smux's session token bucket).
5. Keepalive: a NOP every ``keepalive_interval``; a session that received nothing for
   ``keepalive_timeout`` (while not stalled by rule 4) is closed. Disabled with interval 0.
6. ``close`` ends the session: every stream sees EOF, the conn is closed, greenlets stop.
"""
import time

import gevent
from gevent.event import Event

from ...errors import ConfigError, NeedData
from ...protocols import smux
from .session import MuxSession, MuxStream

#: bytes read off the conn at a time
READ_SIZE = 65536


class MuxConfig:
    """GOST's ``mux*`` metadata (smux.Config); immutable after build."""

    __slots__ = ("frame_size", "max_receive", "keepalive_interval", "keepalive_timeout")

    def __init__(self, frame_size=smux.DEFAULT_FRAME_SIZE, max_receive=4 * 1024 * 1024,
                 keepalive_interval=10.0, keepalive_timeout=30.0):
        self.frame_size = max(1, min(frame_size, smux.MAX_PAYLOAD))
        self.max_receive = max_receive
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout

    @classmethod
    def from_md(cls, md):
        """GOST 3.x's ``mux.*`` keys, or the older ``mux*`` spellings."""
        version = md.int("mux.version", "muxVersion", default=1) or 1
        if version != 1:
            raise ConfigError("metadata.mux.version", f"smux version {version} is not supported "
                              "(version 1 is GOST's default)")
        kind = md.str("mux.type", "muxType", default="smux").lower() or "smux"
        if kind != "smux":
            raise ConfigError("metadata.mux.type", f"mux type {kind!r} is not supported (smux only)")
        d = cls()
        interval = 0.0 if md.bool("mux.keepaliveDisabled", "muxKeepAliveDisabled") else (
            md.duration("mux.keepaliveInterval", "muxKeepAliveInterval", default=0) or d.keepalive_interval)
        return cls(frame_size=md.int("mux.maxFrameSize", "muxMaxFrameSize", default=0) or d.frame_size,
                   max_receive=md.int("mux.maxReceiveBuffer", "muxMaxReceiveBuffer", default=0) or d.max_receive,
                   keepalive_interval=interval,
                   keepalive_timeout=md.duration("mux.keepaliveTimeout", "muxKeepAliveTimeout", default=0)
                   or d.keepalive_timeout)


class Stream(MuxStream):
    """One smux stream: the conn interface (no ``fileno``: it is not a socket)."""

    __slots__ = ("buf",)
    kind = "smux"
    #: shutdown cannot reach the far end (see relay._can_half_close)
    half_close = False

    def __init__(self, session, sid):
        super().__init__(session, sid)
        self.buf = bytearray()

    def _readable(self):
        return self.buf or self.remote_ended or self.closed

    def recv(self, n):
        self._wait()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        if data:
            self.session._release(len(data))
        return data

    def recv_into(self, buf, nbytes=0):
        self._wait()
        n = min(nbytes or len(buf), len(self.buf))
        buf[:n] = self.buf[:n]
        del self.buf[:n]
        if n:
            self.session._release(n)
        return n

    def sendall(self, data):
        if self.closed or self.remote_ended:
            raise self._gone()
        self.session._send_data(self.sid, data)

    def shutdown(self, how):
        # FIN closes a smux stream both ways: there is no half-close to send (rule 3)
        pass


class Session(MuxSession):
    """smux over ``conn``. ``client=True`` opens streams (``open``), else accepts them (``accept``)."""

    kind = "smux"

    def __init__(self, conn, client, config=None, log=None):
        super().__init__(conn, client, log)
        self.config = config or MuxConfig()
        self.next_sid = 1 if client else 0
        self.buffered = 0               # bytes in stream buffers, not read yet (rule 4)
        self.drained = Event()
        self.drained.set()
        self.last_rx = time.monotonic()
        if self.config.keepalive_interval > 0:
            self._spawn_helper(self._keepalive_loop)

    # --- writing -------------------------------------------------------------------------
    def _write(self, frame):
        if self.closed:
            raise BrokenPipeError("smux session is closed")
        with self.wlock:
            self._send(frame)

    def _send_data(self, sid, data):
        mv = memoryview(data).cast("B")
        step = self.config.frame_size
        for i in range(0, len(mv), step):
            chunk = mv[i:i + step]
            self._write(smux.encode_header(smux.PSH, sid, len(chunk)) + chunk)

    def open(self):
        """A new stream to the peer (client side)."""
        if self.closed:
            raise BrokenPipeError("smux session is closed")
        self.next_sid += 2
        if self.next_sid > 0xFFFFFFFF:
            raise BrokenPipeError("smux stream ids exhausted")
        st = self._add(Stream(self, self.next_sid))
        try:
            self._write(smux.encode_frame(smux.SYN, st.sid))
        except OSError:
            self.streams.pop(st.sid, None)
            raise
        return st

    def _stream_closed(self, st):
        if self.streams.pop(st.sid, None) is None:
            return
        self._release(len(st.buf))
        st.buf = bytearray()
        if not self.closed:
            # also after the peer's FIN: smux answers a FIN with its own when the stream closes
            try:
                self._write(smux.encode_frame(smux.FIN, st.sid))
            except OSError:
                pass

    def _release(self, n):
        self.buffered -= n
        if self.buffered < self.config.max_receive:
            self.drained.set()

    # --- reading -------------------------------------------------------------------------
    def _incoming(self):
        buf = bytearray()
        conn = self.conn
        max_receive = self.config.max_receive
        while not self.closed:
            if self.buffered >= max_receive:
                self.drained.clear()
                self.drained.wait()
                continue
            data = conn.recv(READ_SIZE)
            if not data:
                return
            self.last_rx = time.monotonic()
            buf += data
            pos = 0
            try:
                while True:
                    cmd, sid, payload, pos2 = smux.parse_frame(buf, pos)
                    pos = pos2
                    if cmd == smux.PSH:
                        st = self.streams.get(sid)
                        if st is not None and payload:
                            st.buf += payload
                            st.ready.set()
                            self.buffered += len(payload)
                    elif cmd == smux.SYN:
                        if sid not in self.streams:
                            yield self._add(Stream(self, sid))
                    elif cmd == smux.FIN:
                        st = self.streams.get(sid)
                        if st is not None:
                            st._end()
            except NeedData:
                pass
            del buf[:pos]

    def _keepalive_loop(self):
        interval = self.config.keepalive_interval
        timeout = self.config.keepalive_timeout
        while not self.closed:
            gevent.sleep(interval)
            if self.closed:
                return
            try:
                self._write(smux.encode_frame(smux.NOP, 0))
            except OSError:
                return
            if (timeout and time.monotonic() - self.last_rx > timeout
                    and self.buffered < self.config.max_receive):
                self._debug("keepalive timeout")
                gevent.spawn(self.close)
                return

    def _wake(self):
        self.drained.set()
