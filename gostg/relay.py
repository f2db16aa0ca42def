"""Move bytes both ways between two conns until both sides are done.

Rules:
1. One greenlet per tunnel: for two plain sockets, the connection's own greenlet drives both
   directions with non-blocking I/O and waits on whichever watchers it needs (a parked
   greenlet costs ~8 KiB, so a second one per tunnel would double idle memory).
2. Buffers (``BUFFER_SIZE``) come from a shared pool only while bytes are in flight: an idle
   tunnel holds none.
3. EOF on one side becomes ``shutdown(SHUT_WR)`` on the other; the other direction goes on,
   with ``half_close_idle`` as its idle limit so a peer that never closes cannot pin the tunnel.
4. An error on either side ends both; both conns are closed on return.
5. After ``BURST`` chunks without blocking, the pump yields so one fast tunnel cannot starve the
   others.
Conns that are not plain sockets (TLS, WebSocket wrappers …) use one blocking pump greenlet per
direction instead.
"""
import gevent
from gevent import socket
from gevent.hub import Waiter, get_hub

from .conn import unwrap

#: bytes per read: 256 KiB moved the most per CPU-second on loopback (peers.md B.4)
BUFFER_SIZE = 256 * 1024
#: buffers kept for reuse; more are allocated under load and dropped afterwards
POOL_MAX = 32
#: after one direction ends, the other ends if idle this long (seconds)
half_close_idle = 30.0
#: chunks moved before yielding to other greenlets
BURST = 16

_pool = []

_READ, _WRITE, _YIELD, _DONE = 1, 2, 3, 4


def _take():
    return _pool.pop() if _pool else bytearray(BUFFER_SIZE)


def _give(buf):
    if len(_pool) < POOL_MAX:
        _pool.append(buf)


class _Direction:
    __slots__ = ("src", "dst", "buf", "pending", "count", "done", "rw", "ww")

    def __init__(self, src, dst, rw, ww):
        self.src, self.dst = src, dst      # raw non-blocking stdlib sockets
        self.rw, self.ww = rw, ww          # read watcher on src, write watcher on dst
        self.buf = None
        self.pending = None
        self.count = 0
        self.done = False

    def step(self):
        """Move bytes until something would block. → what to wait for."""
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
            buf = _take()
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
                try:
                    self.dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return _DONE
            self.count += n
            self.buf = buf
            self.pending = memoryview(buf)[:n]
        return _YIELD

    def release(self):
        if self.buf is not None:
            self.pending = None
            _give(self.buf)
            self.buf = None


def _pipe_sockets(a, b):
    loop = get_hub().loop
    ra, rb = a._sock, b._sock
    fa, fb = ra.fileno(), rb.fileno()
    watchers = (loop.io(fa, 1), loop.io(fb, 2), loop.io(fb, 1), loop.io(fa, 2))
    up = _Direction(ra, rb, watchers[0], watchers[1])      # client → upstream
    down = _Direction(rb, ra, watchers[2], watchers[3])    # upstream → client
    idle = None
    try:
        while not (up.done and down.done):
            waiter = None
            yielded = False
            for d in (up, down):
                if d.done:
                    continue
                need = d.step()
                if need == _YIELD:
                    yielded = True
                elif need in (_READ, _WRITE):
                    if waiter is None:
                        waiter = Waiter()
                    w = d.rw if need == _READ else d.ww
                    w.start(waiter.switch, None)
            if (up.done or down.done) and idle is None:
                idle = half_close_idle
            if yielded:
                for w in watchers:
                    w.stop()
                gevent.sleep(0)
                continue
            if waiter is None:
                continue
            try:
                if idle is None:
                    waiter.get()
                else:
                    with gevent.Timeout(idle, False):
                        waiter.get()
                        continue
                    break  # idle after half-close
            finally:
                for w in watchers:
                    w.stop()
    except OSError:
        pass
    finally:
        up.release()
        down.release()
        for w in watchers:
            w.close()
    return up.count, down.count


def _pump(src, dst, state):
    buf = bytearray(BUFFER_SIZE)
    mv = memoryview(buf)
    total = 0
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(mv[:n])
            total += n
    except OSError:
        state["aborted"] = True
        _close(src)
        _close(dst)
        return total
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    return total


def _close(c):
    try:
        c.close()
    except OSError:
        pass


def _pipe_generic(a, b):
    state = {}
    g = gevent.spawn(_pump, a, b, state)
    try:
        out = _pump(b, a, state)
        with gevent.Timeout(half_close_idle, False):
            return g.get(), out
        return 0, out
    finally:
        g.kill(block=False)


def _plain(c):
    return isinstance(c, socket.socket) and type(c) is socket.socket and hasattr(c, "_sock")


def pipe(client, upstream):
    """Relay until both directions end; closes both conns. → ``(input_bytes, output_bytes)``:
    input = from the client, output = to the client (GOST's inputBytes/outputBytes)."""
    client, cpend = unwrap(client)
    upstream, upend = unwrap(upstream)
    try:
        if cpend:
            upstream.sendall(cpend)
        if upend:
            client.sendall(upend)
        if _plain(client) and _plain(upstream):
            inp, out = _pipe_sockets(client, upstream)
        else:
            inp, out = _pipe_generic(client, upstream)
    except OSError:
        inp = out = 0
    finally:
        _close(client)
        _close(upstream)
    return inp + len(cpend), out + len(upend)
