"""relay.tcp.pipe on real loopback sockets: bytes both ways, half-close, and how the tunnel
ends (a FIN to each side, never a reset), with the syscalls the fast path saves."""
import socket as stdsocket

import gevent
from gevent import socket

from gostg.relay import tcp


def _pair():
    """(our end, far end) of a loopback TCP connection, gevent sockets."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    far = socket.create_connection(srv.getsockname())
    ours, _ = srv.accept()
    srv.close()
    return ours, far


def _read_all(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            return out
        out += d


def test_request_reply_then_both_ends_see_a_fin():
    client_side, client = _pair()
    upstream_side, server = _pair()
    g = gevent.spawn(tcp.pipe, client_side, upstream_side)
    with gevent.Timeout(10):
        client.sendall(b"ping" * 10)
        assert server.recv(100) == b"ping" * 10
        server.sendall(b"pong")
        assert client.recv(100) == b"pong"
        client.shutdown(stdsocket.SHUT_WR)     # client is done: the server sees EOF ...
        assert server.recv(100) == b""
        server.sendall(b"late reply")          # ... and may still answer (half-close)
        server.close()
        assert _read_all(client) == b"late reply"   # then a FIN, not a reset
        assert g.get() == (40, 4 + len(b"late reply"))
    client.close()


class _Counting:
    """A raw socket that counts the reads that would have blocked, and the shutdowns."""

    def __init__(self, raw, counts):
        self.raw, self.counts = raw, counts

    def recv_into(self, buf):
        try:
            return self.raw.recv_into(buf)
        except BlockingIOError:
            self.counts["eagain"] += 1
            raise

    def send(self, data):
        return self.raw.send(data)

    def shutdown(self, how):
        self.counts["shutdown"] += 1
        return self.raw.shutdown(how)


def test_short_reads_wait_for_readability_and_the_last_eof_needs_no_shutdown(monkeypatch):
    """Interactive traffic: after a short read the relay waits on the watcher rather than
    reading again into EAGAIN; the first EOF half-closes the other side, the second does not
    (both sockets are closed at once, which sends the FIN)."""
    counts = {"eagain": 0, "shutdown": 0}
    monkeypatch.setattr(tcp, "raw_socket", lambda s: _Counting(s._sock, counts))
    client_side, client = _pair()
    upstream_side, server = _pair()
    g = gevent.spawn(tcp.pipe, client_side, upstream_side)
    with gevent.Timeout(10):
        for i in range(20):
            msg = b"m%d" % i
            client.sendall(msg)
            assert server.recv(100) == msg
            server.sendall(msg.upper())
            assert client.recv(100) == msg.upper()
        client.shutdown(stdsocket.SHUT_WR)
        assert server.recv(100) == b""
        server.close()
        assert client.recv(100) == b""
        assert g.get()[0] == sum(len(b"m%d" % i) for i in range(20))
    client.close()
    assert counts == {"eagain": 0, "shutdown": 1}
