"""Move bytes both ways between two conns until both sides are done.

- Buffers (``BUFFER_SIZE``) come from a shared pool only while bytes move: an idle tunnel
  waits for readability without holding one.
- EOF on one side becomes ``shutdown(SHUT_WR)`` on the other; the other direction goes on, with
  ``half_close_idle`` as its idle limit so a peer that never closes cannot pin the tunnel.
- An error on either side aborts both.
- Plain sockets are read through their raw non-blocking socket and gevent's per-socket watcher
  (no per-read watcher allocation); any other conn falls back to blocking ``recv_into``.
"""
import socket as _stdsocket

import gevent
from gevent import socket

from .conn import unwrap

#: bytes per read; 64 KiB is where CPU per GiB flattens out (peers.md B.4)
BUFFER_SIZE = 64 * 1024
#: buffers kept for reuse; more are allocated under load and dropped afterwards
POOL_MAX = 64
#: after one direction ends, the other ends if idle this long (seconds)
half_close_idle = 30.0

_pool = []


def _take():
    return _pool.pop() if _pool else bytearray(BUFFER_SIZE)


def _give(buf):
    if len(_pool) < POOL_MAX:
        _pool.append(buf)


def _pump(src, dst):
    """Copy src→dst until EOF. Returns bytes copied. Raises on I/O errors."""
    total = 0
    raw = getattr(src, "_sock", None)
    wait = getattr(src, "_wait", None)
    if raw is not None and wait is not None and isinstance(src, socket.socket):
        ev = src._read_event
        recv_into = raw.recv_into
        while True:
            buf = _take()
            try:
                n = recv_into(buf)
            except BlockingIOError:
                _give(buf)
                wait(ev)  # honours src.timeout (socket.timeout when idle too long)
                continue
            except BaseException:
                _give(buf)
                raise
            if not n:
                _give(buf)
                return total
            try:
                dst.sendall(memoryview(buf)[:n])
            finally:
                _give(buf)
            total += n
    buf = bytearray(BUFFER_SIZE)
    mv = memoryview(buf)
    while True:
        n = src.recv_into(buf)
        if not n:
            return total
        dst.sendall(mv[:n])
        total += n


def _close(c):
    try:
        c.close()
    except OSError:
        pass


def _half(src, dst, state):
    try:
        n = _pump(src, dst)
    except (OSError, gevent.GreenletExit, _stdsocket.timeout):
        state["aborted"] = True
        _close(src)
        _close(dst)
        raise
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    # The other direction now has an idle limit: reading from dst.
    if not state.get("done"):
        state["done"] = True
        try:
            dst.settimeout(half_close_idle)
        except OSError:
            pass
    return n


def _half_safe(src, dst, state):
    try:
        return _half(src, dst, state)
    except (OSError, gevent.GreenletExit, _stdsocket.timeout):
        return state.get("partial", 0)


def pipe(client, upstream):
    """Relay until both directions end; closes both conns. → ``(input_bytes, output_bytes)``:
    input = from the client, output = to the client (GOST's inputBytes/outputBytes)."""
    client, cpend = unwrap(client)
    upstream, upend = unwrap(upstream)
    state = {}
    try:
        if cpend:
            upstream.sendall(cpend)
        if upend:
            client.sendall(upend)
        g = gevent.spawn(_half_safe, client, upstream, state)
        try:
            out = _half_safe(upstream, client, state)
        finally:
            if state.get("aborted"):
                g.kill(block=False)
            inp = g.get() or 0
    finally:
        _close(client)
        _close(upstream)
    return inp + len(cpend), out + len(upend)
