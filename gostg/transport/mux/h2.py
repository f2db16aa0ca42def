"""HTTP/2 connections over any conn, driven by the sans-IO ``h2`` library: the engine under
GOST's ``http2`` proxy and its ``h2``/``h2c`` stream tunnels (both sides).

Rules:
1. One reader per connection feeds the bytes it reads to ``h2`` and dispatches the events. On a
   server the reader is the ``accept()`` generator, driven by the connection's greenlet, which
   yields every request stream; a client session runs the same loop in a greenlet of its own.
2. ``h2`` state is touched without yielding in between; bytes it wants sent are taken out of it
   only under the write lock and sent before the lock is released, so frames (and HPACK
   blocks) leave in the order they were made.
3. The reader never blocks on a write: control frames it causes (SETTINGS/PING acks, window
   updates, an answer made by a listener) are sent by the session's flusher greenlet, so two
   peers whose socket buffers are full cannot wait on each other.
4. Flow control: a writer sends only within the peer's window and waits for its
   WINDOW_UPDATE; received bytes are acknowledged when the application reads them, so a stream
   buffers at most its window (``STREAM_WINDOW``) and the connection at most ``CONN_WINDOW``.
5. A stream half-closes: ``shutdown(SHUT_WR)`` sends END_STREAM and the other direction goes
   on. ``close`` ends what is still open: END_STREAM when the peer is done, RST_STREAM(CANCEL)
   when it is still sending. After the peer's END_STREAM, buffered bytes are read, then
   ``recv`` returns ``b""``; after RST_STREAM, ``sendall`` raises BrokenPipeError.
6. ``close`` ends the connection: every stream sees EOF, the conn is closed, greenlets stop.
   A GOAWAY from the peer lets running streams finish but the session takes no new ones.
"""
from collections import deque

import gevent
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hyperframe.exceptions
from gevent import socket
from gevent.event import Event

from ..._compat import patch_hyperframe_repr
from ...errors import ProtocolError
from .session import MuxSession, MuxStream

#: bytes read off the conn at a time
READ_SIZE = 256 * 1024
#: bytes a peer may send on one stream before we have read them (our SETTINGS_INITIAL_WINDOW_SIZE)
STREAM_WINDOW = 4 * 1024 * 1024
#: bytes a peer may send on the whole connection before we have read them
CONN_WINDOW = 16 * 1024 * 1024
#: largest frame we accept (SETTINGS_MAX_FRAME_SIZE): big frames mean fewer Python-level steps
MAX_FRAME = 1024 * 1024
#: streams a client may have open at once on a server session (Go's server allows 250)
MAX_STREAMS = 1000

# h2 builds every frame's repr even when nothing logs: make it cheap (see _compat)
patch_hyperframe_repr()

_H2_ERRORS = (h2.exceptions.H2Error, hpack.HPACKError, hyperframe.exceptions.HyperframeError,
              UnicodeError, ValueError)
_STREAM_GONE = (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError)


class H2Stream(MuxStream):
    """One HTTP/2 stream: the conn interface (no ``fileno``: it is not a socket).

    Server side: ``headers`` holds the request (``method``, ``authority``, ``path`` and
    ``scheme`` are its pseudo-headers); ``respond`` answers it. Client side: ``response()``
    waits for the answer's ``(status, headers)``."""

    __slots__ = ("chunks", "head", "wnd", "local_ended", "headers", "resp_headers")
    kind = "h2"

    def __init__(self, session, sid, headers=None):
        super().__init__(session, sid)
        self.chunks = deque()     # received DATA payloads not read yet
        self.head = 0             # offset read into chunks[0]
        self.wnd = Event()        # the peer opened its window, or the stream ended
        self.local_ended = False
        self.headers = headers or []
        self.resp_headers = None

    # --- the request / response ------------------------------------------------------------
    def header(self, name, default=None):
        for k, v in self.headers:
            if k == name:
                return v
        return default

    @property
    def method(self):
        return self.header(":method", "")

    @property
    def authority(self):
        return self.header(":authority") or self.header("host", "")

    @property
    def path(self):
        return self.header(":path", "")

    @property
    def scheme(self):
        return self.header(":scheme", "")

    def respond(self, status, headers=(), end_stream=False):
        """Answer the request (server side). Never blocks: the flusher sends it (rule 3)."""
        s = self.session
        if s.closed or self.reset:
            raise self._gone()
        try:
            s.h2.send_headers(self.sid, [(":status", str(status)), *headers], end_stream=end_stream)
        except _STREAM_GONE as exc:
            raise BrokenPipeError(f"h2 stream {self.sid}: {exc}") from None
        except _H2_ERRORS as exc:
            raise ProtocolError(f"h2 response: {exc}") from None
        if end_stream:
            self.local_ended = True
        s._kick()

    def response(self):
        """Client side: wait for the response head. → ``(status, headers)``."""
        while self.resp_headers is None:
            if self.reset or self.session.closed:
                raise ConnectionResetError(f"h2 stream {self.sid} reset before its response")
            self.ready.clear()
            if not self.ready.wait(self.timeout):
                raise socket.timeout("timed out")
        hd = self.resp_headers
        status = next((v for k, v in hd if k == ":status"), "")
        try:
            return int(status), [(k, v) for k, v in hd if not k.startswith(":")]
        except ValueError:
            raise ProtocolError(f"bad :status {status[:10]!r}") from None

    # --- the conn interface ---------------------------------------------------------------
    def _readable(self):
        return self.chunks or self.remote_ended or self.closed

    def _wake(self):
        self.ready.set()
        self.wnd.set()

    def _take(self, n):
        chunk = self.chunks[0]
        avail = len(chunk) - self.head
        if n >= avail:
            self.chunks.popleft()
            out = chunk if not self.head else chunk[self.head:]
            self.head = 0
        else:
            out = chunk[self.head:self.head + n]
            self.head += n
        self.session._consumed(self.sid, len(out))
        return out

    def recv(self, n):
        self._wait()
        return self._take(n) if self.chunks else b""

    def recv_into(self, buf, nbytes=0):
        self._wait()
        if not self.chunks:
            return 0
        data = self._take(nbytes or len(buf))
        buf[:len(data)] = data
        return len(data)

    def sendall(self, data):
        mv = memoryview(data).cast("B")
        s = self.session
        while mv:
            if self.closed or self.reset or self.local_ended or s.closed:
                raise self._gone()
            with s.wlock:
                try:
                    window = s.h2.local_flow_control_window(self.sid)
                except _STREAM_GONE:
                    raise self._gone() from None
                if window > 0:
                    n = min(window, len(mv))
                    step = s.h2.max_outbound_frame_size
                    for i in range(0, n, step):
                        s.h2.send_data(self.sid, mv[i:min(n, i + step)])
                    mv = mv[n:]
                    s._drain()
                    continue
                self.wnd.clear()      # under the lock: an update after the check sets it again
            self.wnd.wait()

    def shutdown(self, how):
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self._end_local()

    def _end_local(self):
        s = self.session
        if self.local_ended or self.reset or s.closed:
            return
        self.local_ended = True
        with s.wlock:
            try:
                s.h2.end_stream(self.sid)
            except _STREAM_GONE:
                pass
            try:
                s._drain()
            except OSError:
                pass


class H2Session(MuxSession):
    """HTTP/2 over ``conn``. ``client=True`` opens streams (``open``); else ``accept`` yields
    the peer's requests."""

    kind = log_name = "h2"
    noun = "connection"

    def __init__(self, conn, client, log=None):
        super().__init__(conn, client, log)
        #: the session exists for one stream of a chain (a later hop): not shared
        self.private = False
        self.slot = Event()       # a stream ended: a client waiting for MAX_CONCURRENT_STREAMS
        cfg = h2.config.H2Configuration(client_side=client, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(cfg)
        S = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(client=client, initial_values={
            S.INITIAL_WINDOW_SIZE: STREAM_WINDOW, S.MAX_FRAME_SIZE: MAX_FRAME,
            S.MAX_CONCURRENT_STREAMS: MAX_STREAMS, S.ENABLE_PUSH: 0})
        # h2 read the frame limit from the settings it was built with; ours are in force at once
        self.h2.max_inbound_frame_size = MAX_FRAME
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONN_WINDOW - self.h2.inbound_flow_control_window)
        self._kick()

    # --- writing ----------------------------------------------------------------------------
    def _drain(self):
        """Send what h2 has queued. Caller holds ``wlock`` (rule 2)."""
        while True:
            data = self.h2.data_to_send()
            if not data:
                return
            self._send(data)

    def _take_ctrl(self):
        """What the session's flusher sends (rule 3): all h2 has queued."""
        return self.h2.data_to_send()

    def open(self, headers, end_stream=False):
        """Client side: a new stream whose request is ``headers``."""
        while True:
            with self.wlock:
                if not self.alive:
                    raise BrokenPipeError("h2 session is closed")
                if self.h2.open_outbound_streams < self.h2.remote_settings.max_concurrent_streams:
                    sid = self.h2.get_next_available_stream_id()
                    st = self._add(H2Stream(self, sid))
                    try:
                        self.h2.send_headers(sid, headers, end_stream=end_stream)
                    except _H2_ERRORS as exc:
                        self.streams.pop(sid, None)
                        raise ProtocolError(f"h2 request: {exc}") from None
                    st.local_ended = end_stream
                    self._drain()
                    return st
                self.slot.clear()
            self.slot.wait()

    def _consumed(self, sid, n):
        """The application read ``n`` bytes: give them back to the peer's windows (rule 4)."""
        if n and not self.closed:
            try:
                self.h2.acknowledge_received_data(n, sid)
            except _H2_ERRORS:
                return
            self._kick()

    def _stream_closed(self, st):
        if self.streams.pop(st.sid, None) is None:
            return
        unread = sum(len(c) for c in st.chunks) - st.head
        st.chunks.clear()
        st.head = 0
        self.slot.set()
        if self.closed:
            return
        try:
            if unread:
                self.h2.acknowledge_received_data(unread, st.sid)
            if not st.reset:
                if not st.remote_ended:
                    self.h2.reset_stream(st.sid, h2.errors.ErrorCodes.CANCEL)
                elif not st.local_ended:
                    self.h2.end_stream(st.sid)
        except _H2_ERRORS:
            pass
        st.local_ended = True
        self._kick()

    # --- reading ----------------------------------------------------------------------------
    def _incoming(self):
        conn = self.conn
        streams = self.streams
        while not self.closed:
            data = conn.recv(READ_SIZE)
            if not data:
                return
            try:
                events = self.h2.receive_data(data)
            except _H2_ERRORS as exc:
                self._kick()   # h2 queued a GOAWAY saying why
                gevent.sleep(0)
                raise ProtocolError(f"h2: {exc}") from None
            for ev in events:
                t = type(ev)
                if t is h2.events.DataReceived:
                    st = streams.get(ev.stream_id)
                    pad = ev.flow_controlled_length - len(ev.data)
                    if st is None or st.closed:
                        self._consumed(ev.stream_id, ev.flow_controlled_length)
                        continue
                    if pad:
                        self._consumed(ev.stream_id, pad)
                    if ev.data:
                        st.chunks.append(ev.data)
                        st.ready.set()
                elif t is h2.events.WindowUpdated:
                    if ev.stream_id:
                        st = streams.get(ev.stream_id)
                        if st is not None:
                            st.wnd.set()
                    else:
                        for st in streams.values():
                            st.wnd.set()
                elif t is h2.events.StreamEnded:
                    st = streams.get(ev.stream_id)
                    if st is not None:
                        st._end()
                elif t is h2.events.StreamReset:
                    st = streams.get(ev.stream_id)
                    if st is not None:
                        st._end(reset=True)   # stays listed: close() returns its unread bytes
                    self.slot.set()
                elif t is h2.events.RequestReceived:
                    yield self._add(H2Stream(self, ev.stream_id, ev.headers))
                elif t is h2.events.ResponseReceived:
                    st = streams.get(ev.stream_id)
                    if st is not None:
                        st.resp_headers = ev.headers
                        st.ready.set()
                elif t is h2.events.RemoteSettingsChanged:
                    for st in streams.values():   # the initial window may have grown
                        st.wnd.set()
                elif t is h2.events.ConnectionTerminated:
                    self.goaway = True
                    self._debug(f"GOAWAY {ev.error_code!r}")
                    if not streams:
                        return
            self._kick()

    # --- teardown ---------------------------------------------------------------------------
    def _wake(self):
        self.slot.set()


class SessionRef:
    """What an HTTP/2 dialer hands the route: the session to open a stream on. Closing it
    (a failed route) closes a private session but never the shared one other tunnels use."""

    __slots__ = ("session",)

    def __init__(self, session):
        self.session = session

    def close(self):
        if self.session.private:
            self.session.close()

    def getpeername(self):
        return self.session.getpeername()
