"""Move bytes both ways between two conns until both sides are done.

Rules:
1. At most one greenlet per tunnel: for two plain sockets, the connection's own greenlet
   drives both directions with non-blocking I/O and waits on whichever watchers it needs (or
   leaves, rule 6). A wake-up steps the direction whose watcher fired; the other stays
   parked on its watcher.
2. Buffers come from a shared pool only while bytes are in flight: an idle tunnel holds none.
   A direction reads 64 KiB at a time until a read fills the buffer, then 1 MiB (bulk).
   os.splice was measured and lost: 2.1 GB/s against 3.2 GB/s for 1 MiB reads, at the same CPU.
3. EOF on one side becomes ``shutdown(SHUT_WR)`` on the other; the other direction goes on,
   with ``half_close_idle`` as its idle limit so a peer that never closes cannot pin the tunnel.
   The second EOF needs no shutdown: both sockets are closed at once, which sends the FIN.
4. An error on either side ends both; both conns are closed on return.
5. After ``BURST`` reads without blocking, the pump yields so one fast tunnel cannot starve the
   others.
6. A tunnel of two plain sockets whose caller passed ``finish`` and ``detach`` (handlers/base.py)
   and which runs in a service's connection greenlet leaves that greenlet the first time it
   would wait (a parked greenlet with its frames is ~8 KiB of an idle SOCKS5 tunnel: 11.4 →
   3.2 KiB measured): the two sockets' watcher callbacks step
   the directions from then on (``_Detached``), a burst yielding through ``loop.run_callback``;
   the pool slot stays taken until the tunnel ends (core/connpool.py). At its end it closes
   both sockets (watchers stopped first), calls ``finish(input, output)``, then what the
   connection's greenlet would have done after it (``then``). Nothing a callback raises
   reaches the hub: OSError ends the tunnel as it ends a greenlet's, anything else too, and is
   handed to the connection's ending.
Conns that are not plain sockets (TLS, WebSocket wrappers …) use one blocking pump greenlet per
direction instead.
"""
import os
import sys

import gevent
from gevent import get_hub, getcurrent, socket, ssl
from gevent.hub import Waiter

from .._compat import has_raw_socket, io_watchers, raw_socket
from ..transport.buffered import send_all, unwrap
from ..errors import ProtocolError

#: first read size of a direction; enough for interactive traffic
SMALL_BUFFER = 64 * 1024
#: read size once a read has filled the small buffer (a bulk transfer): 1 MiB moved 3.2 GB/s
#: at 0.24 CPU-s/GiB on loopback, against 2.1 GB/s at 256 KiB and 1.2 GB/s at 64 KiB
BUFFER_SIZE = int(os.environ.get("GOSTG_RELAY_BUFFER", 1024 * 1024))
#: bytes of idle buffers kept for reuse (per size); more are allocated under load and dropped
POOL_BYTES = 16 * 1024 * 1024
#: after one direction ends, the other ends if idle this long (seconds)
half_close_idle = 30.0
#: chunks moved before yielding to other greenlets (reads up to 1 MiB each)
BURST = 8

_pools = {}

_READ, _WRITE, _YIELD, _DONE = 1, 2, 3, 4


def _take(size):
    pool = _pools.get(size)
    return pool.pop() if pool else bytearray(size)


def _give(buf):
    pool = _pools.setdefault(len(buf), [])
    if (len(pool) + 1) * len(buf) <= POOL_BYTES:
        pool.append(buf)


#: a read shorter than this drained the socket (interactive traffic): once its bytes are sent,
#: wait for readability instead of reading again into EAGAIN (a syscall and an exception)
SHORT_READ = 4096


class _Direction:
    __slots__ = ("src", "dst", "buf", "pending", "count", "done", "rw", "ww", "size", "short", "need")

    def __init__(self, src, dst, rw, ww, count=0):
        self.src, self.dst = src, dst      # raw non-blocking stdlib sockets
        self.rw, self.ww = rw, ww          # io watchers: src's for reading, dst's for writing
        self.buf = None
        self.pending = None
        self.count = count                 # bytes moved (from the start: those the handshake read ahead)
        self.done = False
        self.size = SMALL_BUFFER
        self.short = False
        # _READ / _WRITE while waiting on that watcher; None: step it. A tunnel starts waiting
        # to read: its first bytes are rarely there yet, and a read would fail with EAGAIN
        self.need = _READ

    def step(self):
        """Move bytes until something would block. → what to wait for (``_DONE`` at EOF: the
        caller tells ``dst``)."""
        for _ in range(BURST):
            if self.pending is not None:
                try:
                    n = self.dst.send(self.pending)
                except BlockingIOError:
                    return _WRITE
                if n < len(self.pending):
                    self.pending = self.pending[n:]
                    continue
                self.pending = None
                _give(self.buf)
                self.buf = None
                if self.short:
                    return _READ
            buf = _take(self.size)
            try:
                n = self.src.recv_into(buf)
            except BlockingIOError:
                _give(buf)
                return _READ
            except BaseException:
                _give(buf)
                raise
            if not n:
                _give(buf)
                self.done = True
                return _DONE
            self.count += n
            self.short = n < SHORT_READ
            # a full read means more is waiting: read big; a short one means the burst is over
            self.size = BUFFER_SIZE if n == len(buf) else (SMALL_BUFFER if n < SMALL_BUFFER else self.size)
            self.buf = buf
            self.pending = memoryview(buf)[:n]
        return _YIELD

    def release(self):
        if self.buf is not None:
            self.pending = None
            _give(self.buf)
            self.buf = None


def _stop(watchers):
    for w in watchers:
        w.stop()


def _pipe_sockets(a, b, started, detach=None, extra=(0, 0), ctx=None):
    """→ ``(input, output)`` (counted from ``extra``), or None when ``detach(up, down,
    watchers, idle)`` took the tunnel over (it returns True) at the first wait."""
    ra, rb = raw_socket(a), raw_socket(b)
    # the sockets' own watchers: this greenlet owns both sockets while it relays, and a
    # tunnel then makes no watchers of its own (gevent closes these with the sockets)
    (ar, aw), (br, bw) = io_watchers(a), io_watchers(b)
    watchers = (ar, aw, br, bw)
    up = _Direction(ra, rb, ar, bw, extra[0])      # client → upstream
    down = _Direction(rb, ra, br, aw, extra[1])    # upstream → client
    if ctx is not None:
        ctx.flow = (up, down)   # Context.bytes() reads the counts live; the tunnel adds nothing
    idle = None
    try:
        while not (up.done and down.done):
            waiter = None
            yielded = False
            for d, other in ((up, down), (down, up)):
                if d.done:
                    continue
                if d.need is None:   # runnable; a direction still waiting is only re-armed
                    need = d.step()
                    if need == _DONE:
                        # EOF: half-close toward dst, unless the other way ended already; then
                        # both sockets close at once, which sends the same FIN (all was read)
                        if not other.done:
                            try:
                                d.dst.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass
                        continue
                    if need == _YIELD:
                        yielded = True
                        continue
                    d.need = need
                if waiter is None:
                    waiter = Waiter()
                (d.rw if d.need == _READ else d.ww).start(waiter.switch, d)
            if (up.done or down.done) and idle is None:
                idle = half_close_idle
            if yielded:
                _stop(watchers)
                up.need = down.need = None   # a bulk burst: poll the other way each round
                gevent.sleep(0)
                continue
            if waiter is None:
                continue
            if started is not None:   # idle until a watcher fires: the caller's bookkeeping delays no byte now
                started()
                started = None        # once: no call per wait in the relay loop
            if detach is not None:
                _stop(watchers)
                if detach(up, down, watchers, idle):
                    up = down = None    # the tunnel's now: this greenlet releases nothing
                    return None
                detach = None
                continue
            try:
                if idle is None:
                    waiter.get().need = None
                else:
                    with gevent.Timeout(idle, False):
                        waiter.get().need = None
                        continue
                    break  # idle after half-close
            finally:
                _stop(watchers)
    except OSError:
        pass
    finally:
        if up is not None:
            up.release()
            down.release()
            _stop(watchers)
    return up.count, down.count


class _Detached:
    """A plain-socket tunnel driven by its sockets' watcher callbacks (rule 6)."""

    __slots__ = ("a", "b", "up", "down", "watchers", "idle", "timer", "finish",
                 "ending", "on_slot", "ended", "error")

    def __init__(self, a, b, up, down, watchers, idle, finish):
        self.a, self.b, self.up, self.down, self.watchers = a, b, up, down, watchers
        self.idle = idle            # the half-close idle limit once one direction ended
        self.timer = None
        self.finish = finish
        self.ending = self.on_slot = self.error = None
        self.ended = False

    def start(self):
        if self.idle is not None:
            self._arm_timer()
        for d in (self.up, self.down):
            if not d.done:
                (d.rw if d.need == _READ else d.ww).start(self._wake, d)

    # -- the owner's side (core/connpool.py, core/service.py) ---------------------------------

    def keep_slot(self, release):
        """The pool asks, once the greenlet ended: → True, and ``release(self)`` will run at
        the end; False when the tunnel ended already (the pool releases the slot itself)."""
        if self.ended:
            return False
        self.on_slot = release
        return True

    def then(self, fn, *args):
        """``fn(*args)`` after the end: what the connection's greenlet does after its
        handler (right now when the tunnel ended already)."""
        self.ending = (fn, args)
        if self.ended:
            self._ending()

    def kill(self):
        """End now, as a killed greenlet would: no ``finish`` (no stats, no ">-<" line)."""
        self.finish = None
        self._end()

    def abort(self):
        """End now, as an error on a socket would: both closed, ``finish`` and the
        connection's ending run (the tunnel is counted and logged). For a caller outside the
        relay (``Service.close_tunnel``)."""
        self._end()

    # -- callbacks ---------------------------------------------------------------------------

    def _wake(self, d):
        if not self.ended:
            (d.rw if d.need == _READ else d.ww).stop()
            d.need = None
            self._run(d)

    def _step(self, d):
        need = d.step()
        if self.timer is not None:
            self._arm_timer()    # activity: the half-close idle limit counts from now
        if need == _DONE:
            other = self.down if d is self.up else self.up
            if other.done:
                self._end()
                return
            try:
                d.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.idle = half_close_idle
            self._arm_timer()
            return
        if need == _YIELD:     # a burst: let the others run, then go on
            get_hub().loop.run_callback(self._run, d)
            return
        d.need = need
        (d.rw if need == _READ else d.ww).start(self._wake, d)

    def _run(self, d):
        if self.ended:
            return
        try:
            self._step(d)
        except OSError:
            self._end()
        except BaseException as exc:   # nothing reaches the hub; the connection's ending logs it
            self._failed(exc)

    def _arm_timer(self):
        if self.timer is None:   # repeating: libev's "again" restarts a timer from its repeat
            self.timer = get_hub().loop.timer(self.idle, self.idle)
        self.timer.again(self._end)

    def _failed(self, exc):
        self.error = exc
        self.finish = None    # as in a greenlet, where the exception skips the caller's finish
        self._end()

    def _end(self):
        """Idempotent; never raises (it runs from the hub): what the ending calls raises is
        the hub's to print, as a greenlet's uncaught error."""
        if self.ended:
            return
        try:
            self._close()
        except BaseException:
            get_hub().handle_error(self, *sys.exc_info())

    def _close(self):
        self.ended = True
        _stop(self.watchers)   # before the sockets close: a live watcher on a closed fd breaks its reuse
        if self.timer is not None:
            self.timer.close()
            self.timer = None
        self.up.release()
        self.down.release()
        _close(self.a)
        _close(self.b)
        try:
            if self.finish is not None:
                self.finish(self.up.count, self.down.count)
        finally:
            self._ending()

    def _ending(self):
        try:
            if self.ending is not None:
                fn, args = self.ending
                self.ending = None
                fn(*args)
        finally:
            if self.on_slot is not None:
                release, self.on_slot = self.on_slot, None
                release(self)


def _half_close(conn):
    """shutdown(SHUT_WR), except on TLS: Python's SSLSocket.shutdown drops the TLS layer, and the
    other direction still needs it (the idle limit then ends the tunnel instead)."""
    if isinstance(conn, ssl.SSLSocket):
        return
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass


#: indexes of the generic pump's state: [bytes in, bytes out, aborted]
_IN, _OUT, _ABORTED = 0, 1, 2


def _pump(src, dst, state, key):
    """Copy ``src`` → ``dst`` until EOF (then half-close ``dst``); bytes moved are added to
    ``state[key]`` as they move, so a pump killed midway still has its count (and
    Context.bytes() reads it live)."""
    buf = bytearray(SMALL_BUFFER)
    mv = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            send_all(dst, mv[:n])   # a plain socket: one send first (gevent's sendall asks SO_SNDBUF each time)
            state[key] += n
    except (OSError, EOFError, ProtocolError):
        # a wrapped conn (TLS, ss, h2 …) may fail with its own errors: all end the tunnel
        state[_ABORTED] = True
        _close(src)
        _close(dst)
        return
    _half_close(dst)


def _close(c):
    try:
        c.close()
    except OSError:
        pass


def _can_half_close(c):
    """False for conns whose ``shutdown`` cannot tell the far end (TLS, WebSocket, smux
    streams): once one direction toward such a conn ends, the tunnel ends, as GOST's does."""
    return getattr(c, "half_close", True) and not isinstance(c, ssl.SSLSocket)


def _pipe_generic(a, b, state):
    """a → b in a greenlet, b → a in this one, counted in ``state``. After one
    direction ends the other gets ``half_close_idle`` to finish, unless the side it ended
    toward cannot half-close."""
    g = gevent.spawn(_pump, a, b, state, _IN)
    if not _can_half_close(b):
        # the client is done and b's far end cannot be told: end b → a too (closing wakes it)
        g.link(lambda _: (_close(a), _close(b)))
    try:
        _pump(b, a, state, _OUT)
        if _can_half_close(a) and not state[_ABORTED]:
            with gevent.Timeout(half_close_idle, False):
                g.join()
    finally:
        g.kill(block=False)
    return state[_IN], state[_OUT]


def _plain(c):
    return isinstance(c, socket.socket) and type(c) is socket.socket and has_raw_socket(c)


def pipe(client, upstream, started=None, finish=None, detach=False, ctx=None):
    """Relay until both directions end; closes both conns. → ``(input_bytes, output_bytes)``:
    input = from the client, output = to the client (GOST's inputBytes/outputBytes).

    ``started()`` (the caller's "tunnel open" log line) runs once, before this returns: after
    the bytes the handshake read ahead (a pipelined request, the first payload of a chain's
    next hop) have gone on, so the line delays none of them; for two plain sockets the first
    time the relay waits.

    With ``finish``, ``finish(input_bytes, output_bytes)`` is called at the end too. With
    ``detach`` as well (the caller leaves both conns to the relay and returns at once), this
    returns None when the tunnel went on without this greenlet (rule 6): the greenlet's owner
    then ends the connection through the greenlet's ``tunnel.then``.

    ``ctx`` (the connection's Context) gets ``ctx.flow``: the counters the relay keeps, which
    ``Context.bytes()`` reads while the tunnel runs."""
    once = [started]

    def start():
        if once[0] is not None:
            hook, once[0] = once[0], None
            hook()

    client, cpend = unwrap(client)
    upstream, upend = unwrap(upstream)
    state = None
    try:
        if cpend:
            upstream.sendall(cpend)
        if upend:
            client.sendall(upend)
        if _plain(client) and _plain(upstream):
            leave = None
            if detach and finish is not None and hasattr(getcurrent(), "tunnel"):
                leave = _detacher(client, upstream, finish, ctx)
            counts = _pipe_sockets(client, upstream, start, leave, (len(cpend), len(upend)), ctx)
            if counts is None:
                client = upstream = None
                return None
            inp, out = counts
        else:
            start()
            state = [len(cpend), len(upend), False]
            if ctx is not None:
                ctx.flow = state
            inp, out = _pipe_generic(client, upstream, state)
    except OSError:   # (also what Service.close_tunnel throws in: the counts so far stand)
        inp, out = (state[_IN], state[_OUT]) if state is not None else (len(cpend), len(upend))
    finally:
        if client is not None:
            _close(client)
            _close(upstream)
            start()
    if finish is None:
        return inp, out
    finish(inp, out)
    return inp, out


def _detacher(a, b, finish, ctx):
    def detach(up, down, watchers, idle):
        t = _Detached(a, b, up, down, watchers, idle, finish)
        if ctx is not None:
            ctx.flow = t   # it holds both directions: the (up, down) tuple goes (an idle tunnel's memory)
        getcurrent().tunnel = t
        t.start()
        return True
    return detach
