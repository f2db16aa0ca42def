"""gostg._compat: every private name of another library that gostg uses still exists, and
still means what we use it for, in the installed versions. One test per dependency, named by
library and name, so an upgrade that removes one fails here and says which."""
import inspect
import os
import _socket
from importlib.metadata import version

import pytest
from gevent import socket
from gevent.baseserver import BaseServer
from gevent.event import Event
from gevent.server import StreamServer

from gostg import _compat


def test_gevent_socket__sock_is_the_stdlib_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert _compat.has_raw_socket(s), f"gevent {version('gevent')}: socket._sock is gone"
        raw = _compat.raw_socket(s)
        assert isinstance(raw, _socket.socket)   # the C socket, not a gevent wrapper
        assert raw.fileno() == s.fileno()
        assert raw.gettimeout() == 0.0      # non-blocking: the fast path relies on it
    finally:
        s.close()
    with pytest.raises(OSError):            # after close: gevent's stand-in raises EBADF
        _compat.raw_socket(s).sendto(b"x", ("127.0.0.1", 9))


def test_gevent_socket__read_event__write_event_are_its_io_watchers():
    import gevent
    a, b = socket.socketpair()
    try:
        rw, ww = _compat.io_watchers(a)
        # libev may add its own flag bits to events: READ is 1, WRITE 2
        assert (rw.fd, rw.events & 3) == (a.fileno(), 1) and (ww.fd, ww.events & 3) == (a.fileno(), 2), \
            f"gevent {version('gevent')}: socket._read_event/_write_event changed"
        fired = []
        rw.start(fired.append, "read")
        b.sendall(b"x")
        with gevent.Timeout(2):
            while not fired:
                gevent.sleep(0.01)
        rw.stop()
        assert set(fired) == {"read"} and a.recv(1) == b"x"   # the socket still works after our use
    finally:
        a.close()
        b.close()


def test_gevent_baseserver__stop_event_controls_started():
    assert "_stop_event" in inspect.getsource(BaseServer.__init__), \
        f"gevent {version('gevent')}: BaseServer._stop_event is gone"
    server = StreamServer(("127.0.0.1", 0), lambda *a: None)
    try:
        server.start()
        assert isinstance(server._stop_event, Event) and server.started
        _compat.mark_server_stopped(server)
        assert not server.started          # a freed pool slot no longer restarts accepting
        assert not server.closed           # ... and the socket stays open for a successor
    finally:
        server.close()


def test_hyperframe__raw_data_repr_is_patched_and_gives_the_same_output():
    import hyperframe.frame
    _compat.patch_hyperframe_repr()
    assert hyperframe.frame._raw_data_repr is _compat._raw_data_repr, \
        f"hyperframe {version('hyperframe')}: frame._raw_data_repr is gone"
    # the frames' reprs still go through the module-level name we replace
    assert "_raw_data_repr" in inspect.getsource(hyperframe.frame.DataFrame._body_repr)
    original = _compat.hyperframe_raw_data_repr
    assert original is not None and original is not _compat._raw_data_repr
    for data in (b"", None, b"x", b"0123456789", b"\x00" * 10, b"\xff" * 11, b"ab" * 600000):
        assert _compat._raw_data_repr(data) == original(data)
    assert "<hex:78787878" in repr(hyperframe.frame.DataFrame(1, data=b"x" * 100))


def test_gevent_socket__wait_is_a_wait_on_a_watcher_with_the_timeout():
    import gevent
    a, b = socket.socketpair()
    try:
        a.settimeout(0.05)
        with pytest.raises(socket.timeout):      # nothing to read: the socket's timeout applies
            _compat.wait_readable(a)
        a.settimeout(None)
        gevent.spawn_later(0.02, b.sendall, b"x")
        with gevent.Timeout(2):
            _compat.wait_readable(a)             # returns once the byte is there, without reading it
        assert a.recv(1) == b"x", f"gevent {version('gevent')}: socket._wait changed"
        a.close()
        _compat.wait_readable(a)                 # closed: no watcher, no wait
    finally:
        a.close()
        b.close()


def test_gevent_hub_cancel_wait_throws_into_the_callbacks_owner():
    """Closing a socket whose read watcher is started with a bound method calls
    ``method.__self__.throw(error)`` (httpfast's session relies on it to end like a greenlet)."""
    import gevent

    class Owner:
        thrown = None

        def on_read(self):
            pass

        def throw(self, exc):
            self.thrown = exc

    a, b = socket.socketpair()
    owner = Owner()
    _compat.io_watchers(a)[0].start(owner.on_read)
    a.close()
    gevent.sleep(0.01)
    b.close()
    # an OSError, its class or an instance (``raise`` takes either)
    thrown = owner.thrown if isinstance(owner.thrown, type) else type(owner.thrown)
    assert issubclass(thrown, OSError), f"gevent {version('gevent')}: cancel_wait changed"


def test_gevent_pool__semaphore_is_the_slot_count():
    from gevent.pool import Pool
    pool = Pool(1)
    assert hasattr(pool, "_semaphore"), f"gevent {version('gevent')}: Pool._semaphore is gone"
    pool._semaphore.acquire()            # a slot taken, as by a greenlet that left without giving it back
    assert pool.wait_available(timeout=0) == 0
    _compat.release_pool_slot(pool)
    assert pool.wait_available(timeout=0) == 1 and pool.add(__import__("gevent").Greenlet()) is None


def test_gevent_socket_adopt_socket_moves_the_os_socket_and_its_watchers():
    """``adopt_socket`` relies on gevent's socket slots _sock, _read_event, _write_event, hub."""
    import gevent
    from gevent._socketcommon import SocketMixin
    assert {"_sock", "_read_event", "_write_event", "hub"} <= set(SocketMixin.__slots__), \
        f"gevent {version('gevent')}: socket slots changed"
    a, b = socket.socketpair()
    dst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dst.settimeout(3)
    old_fd, moved_fd = dst.fileno(), a.fileno()
    try:
        _compat.adopt_socket(dst, a)
        assert dst.fileno() == moved_fd and dst.gettimeout() == 3
        a.close()                                   # the giver's close leaves the fd open
        b.sendall(b"ping")
        assert dst.recv(4) == b"ping"               # a wait on the moved watchers (a greenlet switch)
        g = gevent.spawn(dst.recv, 4)
        gevent.sleep(0.01)
        b.sendall(b"pong")
        assert g.get(timeout=3) == b"pong"
        with pytest.raises(OSError):                # the adopter's own OS socket is closed
            os.fstat(old_fd)
    finally:
        dst.close()
        b.close()
