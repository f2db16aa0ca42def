"""The ``udp`` listener: one socket, a session (a packet conn) per client address.

GOST's rules (x/internal/net/udp):
1. A datagram from a new address opens a session, handled like an accepted connection.
2. Without ``keepAlive`` a session ends after its first answer (one exchange: DNS-style).
3. A session that moved nothing for ``ttl`` (default 5 s) is closed; the sweep runs every
   ``ttl``, so an idle session lives between one and two ``ttl``.
4. Each session queues at most ``readQueueSize`` datagrams; more are dropped, as UDP may.
Datagrams are read whole: ``readBufferSize`` defaults to 65535 here, since GOST's 4096
silently truncates bigger datagrams (WireGuard, DNS over EDNS).
"""
import gevent
from gevent.baseserver import BaseServer
from gevent.event import Event
from gevent.queue import Full, Queue

from .._compat import raw_socket
from ..errors import ConfigError, ProtocolError
from ..protocols.addr import split_host_port
from ..core.registry import listeners
from ..relay.udp import MAX_DATAGRAM, _fmt, bind_udp
from .base import Listener

_CLOSED = object()


class Session:
    """A packet conn for one client of a udp listener (``key`` = how the socket names it)."""

    multiplex = False
    is_packet = True

    def __init__(self, demux, key, queue_size, keepalive):
        self.demux = demux
        self.key = key
        self.addr = _fmt(key) if isinstance(key, tuple) else key
        self.queue = Queue(queue_size)
        self.keepalive = keepalive
        self.idle = False
        self.closed = False
        self.sink = None        # the fast relay's callback (gostg.udpfast), when running
        self.on_close = None

    def feed(self, data):
        self.idle = False
        if self.sink is not None:
            return self.sink(data, self.addr)
        try:
            self.queue.put_nowait(data)
        except Full:
            pass

    @property
    def fast_capable(self):
        return isinstance(self.demux.source, SocketPackets)

    def fast_start(self, on_datagram, on_close, fail):
        while not self.queue.empty():       # what arrived before the relay started
            data = self.queue.get_nowait()
            if data is _CLOSED:
                break
            on_datagram(data, self.addr)
        if self.closed:
            on_close()
        else:
            self.sink, self.on_close = on_datagram, on_close

        def stop():
            self.sink = self.on_close = None
        return stop

    def send_nowait(self, data, addr=None):
        if self.closed:
            raise EOFError("session closed")
        self.idle = False
        self.demux.source.send_nowait(data, self.key)
        if not self.keepalive:
            self.close()

    def read_from(self):
        if self.closed:
            raise EOFError("session closed")
        data = self.queue.get()
        if data is _CLOSED:
            raise EOFError("session closed")
        self.idle = False
        return data, self.addr

    def write_to(self, data, addr=None):
        if self.closed:
            raise EOFError("session closed")
        self.idle = False
        self.demux.send(data, self.key)
        if not self.keepalive:
            self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.demux.sessions.pop(self.key, None)
            self.queue.queue.clear()
            self.queue.put_nowait(_CLOSED)
            cb, self.on_close = self.on_close, None
            self.sink = None
            if cb is not None:
                cb()


class SocketPackets:
    """A bound UDP socket as a packet source; keys are socket addresses (no formatting per
    datagram)."""

    def __init__(self, sock, bufsize):
        self.sock = sock
        self.buf = bytearray(bufsize)
        self.view = memoryview(self.buf)

    def read_from(self):
        while True:
            try:
                n, sockaddr = self.sock.recvfrom_into(self.buf)
                return bytes(self.view[:n]), sockaddr
            except OSError:
                if self.sock.fileno() < 0:
                    raise
                # ICMP errors surface here on Linux; the socket stays usable

    def write_to(self, data, key):
        self.sock.sendto(data, key)

    def send_nowait(self, data, key):
        try:
            raw_socket(self.sock).sendto(data, key)
        except (BlockingIOError, InterruptedError):
            pass

    def close(self):
        self.sock.close()


class Demux:
    """Datagrams from a packet source → one Session per sender, each handed to
    ``handle(session, key)`` in a ``pool`` greenlet (rules 1-4). ``run()`` returns when the
    source fails or closes; every session ends with it."""

    def __init__(self, source, handle, pool, opts, log=None):
        self.source = source
        self.handle = handle
        self.pool = pool
        self.opts = opts              # the listener: keepalive, ttl, read_queue_size, backlog
        self.sessions = {}
        self.log = log

    def send(self, data, key):
        self.source.write_to(data, key)

    def run(self):
        if isinstance(self.source, SocketPackets):
            return self._run_callbacks()
        sweeper = gevent.spawn(self._sweep)
        try:
            while True:
                try:
                    data, key = self.source.read_from()
                except (OSError, EOFError, ProtocolError) as exc:
                    if self.log is not None:
                        self.log.debug(f"udp: source ended: {exc}")
                    return
                self._dispatch(data, key)
        finally:
            sweeper.kill(block=False)
            self.close_sessions()

    def _run_callbacks(self):
        """A local socket is read from a libev callback (gostg.udpfast): no greenlet switch
        per datagram; new sessions still get a pool greenlet each."""
        from ..relay.udpfast import read_batch, watch
        done = Event()
        src = self.source
        raw, buf, view = raw_socket(src.sock), src.buf, src.view

        def deliver(n, key):
            self._dispatch(bytes(view[:n]), key)

        def fail(exc):
            if self.log is not None:
                self.log.debug(f"udp: socket ended: {exc}")
            done.set()

        sweeper = gevent.spawn(self._sweep)
        stop = watch(src.sock, lambda: read_batch(raw, buf, deliver, fail))
        try:
            done.wait()
        finally:
            stop()
            sweeper.kill(block=False)
            self.close_sessions()

    def _dispatch(self, data, key):
        s = self.sessions.get(key)
        if s is None:
            if len(self.sessions) >= self.opts.backlog * 64 or self.pool.full():
                return
            s = Session(self, key, self.opts.read_queue_size, self.opts.keepalive)
            self.sessions[key] = s
            s.feed(data)
            self.pool.spawn(self._run, s)
        else:
            s.feed(data)

    def _run(self, session):
        try:
            host, port = split_host_port(session.addr, 0)
            self.handle(session, (host, port))
        finally:
            session.close()

    def _sweep(self):
        ttl = self.opts.ttl
        while True:
            gevent.sleep(ttl)
            for s in list(self.sessions.values()):
                if s.idle:
                    s.close()
                else:
                    s.idle = True

    def close_sessions(self):
        for s in list(self.sessions.values()):
            s.close()


class PacketServer(BaseServer):
    """What a StreamServer is to TCP, for a udp listener's socket: gevent's server lifecycle
    (``start``, ``stop``, ``serve_forever``, ``started``/``closed``, the pool as the session
    limit), with the Demux reading the socket in one greenlet where a StreamServer has its
    accept watcher."""

    #: ``stop()`` without a timeout waits for every session's handler (the Service passes its
    #: drain timeout)
    stop_timeout = None

    def __init__(self, listener, handle, pool):
        self.listener = listener
        self.demux = Demux(SocketPackets(listener.socket, listener.read_buffer_size), handle, pool, listener)
        self._reader = None
        super().__init__(listener.socket, handle, spawn=pool)

    def start_accepting(self):
        # also called (by gevent) when a pool slot frees: one reader at most
        if self._reader is None:
            self._reader = gevent.spawn(self.demux.run)

    def stop_accepting(self):
        g, self._reader = self._reader, None
        if g is not None:
            # blocking: its watcher must be stopped before anyone closes the socket
            g.kill(block=True, timeout=1)

    def close(self):
        super().close()               # stops reading, closes the socket
        self.demux.close_sessions()


def bind_listen_udp(addr):
    """A listener's UDP socket on ``[host]:port``; a failure is a ConfigError."""
    host, port = split_host_port(addr or ":0", 0)
    try:
        return bind_udp(host, port)
    except OSError as exc:
        raise ConfigError("", f"cannot listen on udp {addr}: {exc.strerror or exc}") from None


class UDPOptions:
    """GOST's udp listener metadata (shared by udp and rudp)."""

    def __init__(self, md):
        self.keepalive = md.bool("keepalive", "keepAlive")
        self.ttl = md.duration("ttl", "keepalive.ttl", default=0) or 5.0
        self.read_buffer_size = md.int("readBufferSize", "udp.bufferSize", default=0) or MAX_DATAGRAM
        self.read_queue_size = md.int("readQueueSize", "recvQueueSize", default=0) or 128
        self.backlog = md.int("backlog", default=0) or 128


@listeners.register("udp")
class UDPListener(Listener):
    is_packet = True

    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        o = UDPOptions(md)
        self.keepalive, self.ttl, self.read_buffer_size = o.keepalive, o.ttl, o.read_buffer_size
        self.read_queue_size, self.backlog = o.read_queue_size, o.backlog

    def bind(self):
        self.socket = bind_listen_udp(self.addr)
        return self.socket

    def server(self, handle, pool):
        return PacketServer(self, handle, pool)
