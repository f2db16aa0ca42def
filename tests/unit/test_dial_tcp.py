"""router.dial_tcp: an IP-literal dial the kernel completes at once (loopback) returns without
waiting in the hub; refusals keep their exception type; Nagle is off."""
import errno
import socket as stdsocket

import pytest
from gevent import socket

from gostg.core import router

from .test_sockopts import listener  # noqa: F401  (the fixture: a loopback listening socket)


def test_loopback_dial_completes_without_waiting_in_the_hub(listener, monkeypatch):
    waits = []
    original = socket.socket.connect

    def counted(self, *a, **kw):
        waits.append(1)
        return original(self, *a, **kw)
    monkeypatch.setattr(socket.socket, "connect", counted)
    for _ in range(20):   # the kernel may defer a handshake under load: most, not all
        s = router.dial_tcp("127.0.0.1:%d" % listener.getsockname()[1], 5)
        try:
            assert s.getpeername() == listener.getsockname()
            assert s.getsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY)
        finally:
            s.close()
        listener.accept()[0].close()
    assert len(waits) < 10


def test_refused_dial_raises_connection_refused():
    s = stdsocket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()   # nothing listens there now
    with pytest.raises(ConnectionRefusedError) as info:
        router.dial_tcp(f"127.0.0.1:{port}", 5)
    assert info.value.errno == errno.ECONNREFUSED
