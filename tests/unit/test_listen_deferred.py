"""A starting worker (-workers N) binds every service before any socket listens: a port's
SO_REUSEPORT group hands new connections only to listening sockets, so a worker whose third
bind fails closes its first two without dropping a connection the kernel had queued there."""
import socket

import pytest

from gostg.listeners import tcp


@pytest.fixture
def worker_start(monkeypatch):
    monkeypatch.setattr(tcp, "reuse_port", True)
    monkeypatch.setattr(tcp, "defer_listen", True)
    monkeypatch.setattr(tcp, "_deferred", [])


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except ConnectionRefusedError:
        return False


def test_bound_sockets_listen_only_once_every_service_is_bound(worker_start):
    a, b = tcp.bind_tcp("127.0.0.1:0", 16), tcp.bind_tcp("127.0.0.1:0", 16)
    try:
        ports = [s.getsockname()[1] for s in (a, b)]
        assert not any(_connects(p) for p in ports)      # bound, not listening: nothing queues
        b.close()                                         # (a start that failed closes what it bound)
        tcp.listen_deferred()
        assert _connects(ports[0]) and not tcp.defer_listen and tcp._deferred == []
        c = tcp.bind_tcp("127.0.0.1:0", 16)               # after start-up: listening at once
        assert _connects(c.getsockname()[1])
        c.close()
    finally:
        a.close()


def test_without_workers_sockets_listen_at_once(monkeypatch):
    monkeypatch.setattr(tcp, "defer_listen", True)       # (only a worker's sockets wait)
    s = tcp.bind_tcp("127.0.0.1:0", 16)
    try:
        assert _connects(s.getsockname()[1])
    finally:
        s.close()
