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
from gevent import socket
from gevent.event import Event
from gevent.lock import Semaphore

from ...errors import ConfigError, NeedData, ProtocolError
from ...protocols import smux

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


class Stream:
    """One smux stream: the conn interface (no ``fileno``: it is not a socket)."""

    __slots__ = ("session", "sid", "buf", "ready", "eof", "closed", "timeout", "owns_session")
    #: shutdown cannot reach the far end (see relay._can_half_close)
    half_close = False

    def __init__(self, session, sid):
        self.session = session
        self.sid = sid
        self.buf = bytearray()
        self.ready = Event()      # set when bytes arrived or the stream ended
        self.eof = False          # the peer sent FIN, or the session died
        self.closed = False       # closed locally
        self.timeout = None
        #: a stream that is its session's only reason to exist (a mux hop inside a chain)
        self.owns_session = False

    def __repr__(self):
        return f"<smux stream {self.sid}>"

    # called by the session's reader
    def _push(self, data):
        self.buf += data
        self.ready.set()

    def _end(self):
        self.eof = True
        self.ready.set()

    def _wait(self):
        while not self.buf and not self.eof and not self.closed:
            self.ready.clear()
            if not self.ready.wait(self.timeout):
                raise socket.timeout("timed out")

    def _consumed(self, n):
        if n:
            self.session._release(n)

    def recv(self, n):
        self._wait()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        self._consumed(len(data))
        return data

    def recv_into(self, buf, nbytes=0):
        self._wait()
        n = min(nbytes or len(buf), len(self.buf))
        buf[:n] = self.buf[:n]
        del self.buf[:n]
        self._consumed(n)
        return n

    def sendall(self, data):
        if self.closed or self.eof:
            raise BrokenPipeError(f"smux stream {self.sid} is closed")
        self.session._send_data(self.sid, data)

    def shutdown(self, how):
        # FIN closes a smux stream both ways: there is no half-close to send (rule 3)
        pass

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.ready.set()
        self.session._stream_closed(self)
        if self.owns_session:
            self.session.close()

    def settimeout(self, t):
        self.timeout = t

    def gettimeout(self):
        return self.timeout

    def getpeername(self):
        return self.session.conn.getpeername()


class Session:
    """smux over ``conn``. ``client=True`` opens streams (``open``), else accepts them (``accept``)."""

    #: marks a conn that carries streams: Service hands each accepted stream to the handler
    multiplex = True

    def __init__(self, conn, client, config=None, log=None):
        self.conn = conn
        self.client = client
        self.config = config or MuxConfig()
        self.log = log
        self.streams = {}
        self.next_sid = 1 if client else 0
        self.closed = False
        self.buffered = 0               # bytes in stream buffers, not read yet (rule 4)
        self.drained = Event()
        self.drained.set()
        self.wlock = Semaphore()
        self.last_rx = time.monotonic()
        self.opened = 0                 # streams opened or accepted so far
        self._reader = None
        self._keepalive = None
        if self.config.keepalive_interval > 0:
            self._keepalive = gevent.spawn(self._keepalive_loop)

    def __repr__(self):
        return f"<smux session {'client' if self.client else 'server'} streams={len(self.streams)}>"

    def start(self):
        """Client side: run the reader in a greenlet of its own."""
        self._reader = gevent.spawn(self._run_client)
        return self

    @property
    def alive(self):
        return not self.closed

    # --- writing -------------------------------------------------------------------------
    def _write(self, frame):
        if self.closed:
            raise BrokenPipeError("smux session is closed")
        with self.wlock:
            try:
                self.conn.sendall(frame)
            except OSError:
                gevent.spawn(self.close)   # not from here: we may be the reader's caller
                raise

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
        st = Stream(self, self.next_sid)
        self.streams[st.sid] = st
        self.opened += 1
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
    def accept(self):
        """Server side: read the conn, yield every stream the peer opens; ends when the
        session does (then it is closed)."""
        try:
            yield from self._frames()
        finally:
            self.close()

    def _run_client(self):
        try:
            for st in self._frames():
                st.close()    # a client accepts no streams
        except (OSError, ProtocolError) as exc:
            if self.log is not None:
                self.log.debug(f"mux: session ended: {exc}")
        finally:
            self.close()

    def _frames(self):
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
                            st._push(payload)
                            self.buffered += len(payload)
                    elif cmd == smux.SYN:
                        if sid not in self.streams:
                            st = Stream(self, sid)
                            self.streams[sid] = st
                            self.opened += 1
                            yield st
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
                if self.log is not None:
                    self.log.debug("mux: keepalive timeout")
                gevent.spawn(self.close)
                return

    # --- teardown ------------------------------------------------------------------------
    def close(self):
        if self.closed:
            return
        self.closed = True
        streams, self.streams = self.streams, {}
        for st in streams.values():
            st._end()
        self.drained.set()
        cur = gevent.getcurrent()
        for g in (self._keepalive, self._reader):
            if g is not None and g is not cur:
                g.kill(block=False)
        try:
            self.conn.close()
        except OSError:
            pass
        if self.log is not None:
            self.log.debug(f"mux: session closed after {self.opened} streams")

    def settimeout(self, t):
        self.conn.settimeout(t)

    def getpeername(self):
        return self.conn.getpeername()
