"""gostg.listeners.udp.PacketServer: gevent's BaseServer lifecycle over a UDP socket (start,
stop, serve_forever, started/closed, a pool as the session limit) with the Demux as reader."""
import gevent
from gevent import socket
from gevent.baseserver import BaseServer
from gevent.pool import Pool

from gostg.listeners.udp import PacketServer
from gostg.relay.udp import bind_udp


class _Listener:
    """What PacketServer reads of a udp listener."""
    keepalive, ttl, read_buffer_size, read_queue_size, backlog = True, 5.0, 65535, 16, 128

    def __init__(self):
        self.socket = bind_udp("127.0.0.1", 0)


def _echo(session, addr):
    while True:
        data, _ = session.read_from()
        session.write_to(data.upper())


def _exchange(port, data=b"ping"):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(2)
    try:
        c.sendto(data, ("127.0.0.1", port))
        return c.recvfrom(65535)[0]
    finally:
        c.close()


def test_start_serve_stop():
    lst = _Listener()
    pool = Pool(10)
    srv = PacketServer(lst, _echo, pool)
    assert isinstance(srv, BaseServer) and not srv.started and not srv.closed
    port = lst.socket.getsockname()[1]
    assert srv.server_port == port
    srv.start()
    assert srv.started
    assert _exchange(port) == b"PING"
    assert _exchange(port, b"x" * 60000) == b"X" * 60000    # whole datagrams, not 8192 bytes
    assert len(pool) == 2
    srv.stop(timeout=1)
    assert srv.closed and not srv.started
    assert lst.socket.fileno() < 0
    assert len(pool) == 0 and not srv.demux.sessions


def test_stopped_server_is_not_restarted_by_a_freed_pool_slot():
    lst = _Listener()
    pool = Pool(1)
    srv = PacketServer(lst, lambda s, a: s.read_from(), pool)
    srv.start()
    port = lst.socket.getsockname()[1]
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.sendto(b"a", ("127.0.0.1", port))
    gevent.sleep(0.1)
    srv._stop_event.set()       # what a retired Service does (_compat.mark_server_stopped)
    srv.stop_accepting()
    assert srv._reader is None
    pool.kill()                 # frees the slot: gevent calls start_accepting if started
    gevent.sleep(0.05)
    assert srv._reader is None and not srv.closed
    c.close()
    srv.close()


def test_serve_forever_returns_after_stop():
    lst = _Listener()
    srv = PacketServer(lst, _echo, Pool(4))
    g = gevent.spawn(srv.serve_forever)
    gevent.sleep(0.05)
    assert srv.started
    assert _exchange(lst.socket.getsockname()[1]) == b"PING"
    srv.stop(timeout=0.5)
    g.join(timeout=2)
    assert g.dead and srv.closed
