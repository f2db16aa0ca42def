"""relay.pipe's ``started`` hook (the handler's "<->" log line): bytes already waiting when the
relay starts are forwarded before it runs, it runs exactly once, and before pipe returns."""
import gevent
from gevent import socket

from gostg.relay import tcp as relay
from gostg.transport.buffered import BufferedConn


def _pairs():
    client, client_far = socket.socketpair()      # client_far: the proxy's client
    upstream, upstream_far = socket.socketpair()   # upstream_far: the next hop
    return client, client_far, upstream, upstream_far


def _pending(sock):
    sock.setblocking(False)
    try:
        return sock.recv(100)
    except BlockingIOError:
        return b""
    finally:
        sock.setblocking(True)


def test_bytes_read_with_the_handshake_are_forwarded_before_the_hook_runs():
    client, client_far, upstream, upstream_far = _pairs()
    # the client's first payload came in one segment with its request ("req:"): the handshake
    # reader holds both, and the next hop has both before the "<->" line is written
    seen = []

    def started():
        seen.append(_pending(upstream_far))  # what the next hop has at "<->" time

    g = gevent.spawn(relay.pipe, BufferedConn(client_far, b"req:ping"), upstream, started)
    gevent.sleep(0.05)
    assert seen == [b"req:ping"]
    client.close()
    upstream_far.close()
    assert g.get(timeout=5) == (8, 0)
    assert len(seen) == 1


def test_hook_runs_once_even_when_the_relay_fails_at_once():
    client, client_far, upstream, upstream_far = _pairs()
    upstream_far.close()
    client.close()
    calls = []
    relay.pipe(BufferedConn(client_far, b"x" * 10), upstream, lambda: calls.append(1))
    assert calls == [1]


def test_hook_runs_first_for_wrapped_conns():
    client, client_far, upstream, upstream_far = _pairs()
    order = []

    class Wrapped:   # not a plain socket: the two-greenlet path
        def __init__(self, s):
            self.s = s

        def __getattr__(self, name):
            return getattr(self.s, name)

        def recv_into(self, buf, nbytes=0):
            order.append("read")
            return self.s.recv_into(buf)

    g = gevent.spawn(relay.pipe, Wrapped(client_far), upstream, lambda: order.append("started"))
    gevent.sleep(0.05)
    client.close()
    upstream_far.close()
    g.get(timeout=5)
    assert order[0] == "started" and order.count("started") == 1
