"""A plain-socket tunnel in a service's connection pool leaves its greenlet at its first wait
(relay/tcp.py rule 6): it goes on from watcher callbacks, keeps its pool slot, ends with
``finish`` and its owner's ``then``, and a pool ``kill``/``join`` covers it."""
import socket as stdsocket

import gevent

from gostg.core.connpool import ConnPool
from gostg.relay import tcp

from .test_relay_tcp import _pair


class _Conn:
    """One proxied connection: client ⇄ (client_side | pipe | upstream_side) ⇄ server."""

    def __init__(self, pool):
        self.client_side, self.client = _pair()
        self.upstream_side, self.server = _pair()
        self.finished, self.ended, self.started = [], [], []
        self.g = pool.spawn(self._run)

    def _run(self):
        tcp.pipe(self.client_side, self.upstream_side, lambda: self.started.append(1),
                 lambda inp, out: self.finished.append((inp, out)), detach=True)
        t = gevent.getcurrent().tunnel
        if t is None:
            self.ended.append("greenlet")
        else:
            t.then(self.ended.append, "then")

    def tunnel(self):
        return self.g.tunnel

    def echo(self, data):
        self.client.sendall(data)
        got = b""
        while len(got) < len(data):
            got += self.server.recv(65536)
        self.server.sendall(got)
        back = b""
        while len(back) < len(data):
            back += self.client.recv(65536)
        return back

    def close(self):
        self.client.close()
        self.server.close()


def _idle(conn):
    with gevent.Timeout(5):
        while conn.g:          # the greenlet ends once the tunnel waits
            gevent.sleep(0.01)


def test_an_idle_tunnel_leaves_its_greenlet_keeps_its_slot_and_still_relays():
    pool = ConnPool(10)
    c = _Conn(pool)
    _idle(c)
    t = c.tunnel()
    assert t is not None and c.started == [1]
    assert len(pool) == 1 and pool.tunnels == {t} and pool.free_count() == 9
    with gevent.Timeout(5):
        assert c.echo(b"x" * 300_000) == b"x" * 300_000   # bulk, with bursts, from callbacks
        assert c.echo(b"hi") == b"hi"
        c.client.shutdown(stdsocket.SHUT_WR)
        assert c.server.recv(10) == b""                   # half-close passed on
        c.server.sendall(b"late")
        assert c.client.recv(10) == b"late"
        c.server.close()
        assert c.client.recv(10) == b""
    gevent.sleep(0.05)
    assert c.finished == [(300_002, 300_006)] and c.ended == ["then"]
    assert len(pool) == 0 and pool.free_count() == 10 and not pool.tunnels
    assert c.client_side.fileno() == -1 and c.upstream_side.fileno() == -1   # both closed
    c.close()


def test_a_detached_tunnel_counts_against_the_pool_size():
    pool = ConnPool(1)
    c = _Conn(pool)
    _idle(c)
    assert pool.full()                  # the accept loop would stop here
    with gevent.Timeout(5):
        c.client.close()
        c.server.close()
        while pool.full():
            gevent.sleep(0.01)
    assert c.finished and c.ended == ["then"]


def test_kill_ends_detached_tunnels_without_their_finish_and_join_waits_for_them():
    pool = ConnPool(10)
    conns = [_Conn(pool) for _ in range(3)]
    for c in conns:
        _idle(c)
    assert not pool.join(timeout=0.1)    # tunnels still open: join is not done
    pool.kill(block=True, timeout=1)
    assert len(pool) == 0 and pool.join(timeout=0)
    for c in conns:
        assert c.finished == [] and c.ended == ["then"]   # as a killed greenlet: no ">-<" line
        assert c.client_side.fileno() == -1 and c.upstream_side.fileno() == -1
        with gevent.Timeout(5):
            assert c.client.recv(10) == b"" and c.server.recv(10) == b""
        c.close()


def test_the_half_close_idle_limit_ends_a_detached_tunnel(monkeypatch):
    monkeypatch.setattr(tcp, "half_close_idle", 0.2)
    pool = ConnPool(10)
    c = _Conn(pool)
    _idle(c)
    c.client.shutdown(stdsocket.SHUT_WR)   # the server never answers nor closes
    with gevent.Timeout(5):
        assert c.server.recv(10) == b""
        while not c.ended:
            gevent.sleep(0.02)
    assert c.finished == [(0, 0)] and len(pool) == 0
    c.close()


def test_an_error_in_a_callback_ends_the_tunnel_and_reaches_its_owner_not_the_hub(monkeypatch):
    pool = ConnPool(10)
    c = _Conn(pool)
    _idle(c)
    errors = []
    monkeypatch.setattr(gevent.get_hub(), "handle_error", lambda *a: errors.append(a))

    def boom(self):
        raise RuntimeError("bug")
    monkeypatch.setattr(tcp._Direction, "step", boom)
    c.client.sendall(b"x")
    with gevent.Timeout(5):
        while not c.ended:
            gevent.sleep(0.01)
    assert c.client_side.fileno() == -1 and c.upstream_side.fileno() == -1   # closed (a reset: "x" unread)
    t = c.tunnel()
    assert isinstance(t.error, RuntimeError) and c.finished == [] and errors == []
    assert len(pool) == 0
    c.close()


def test_no_detach_outside_a_connection_pool():
    client_side, client = _pair()
    upstream_side, server = _pair()
    g = gevent.spawn(tcp.pipe, client_side, upstream_side, None,
                     lambda inp, out: None, True)      # a plain greenlet: no pool slot to keep
    gevent.sleep(0.05)
    assert not g.dead
    client.close()
    server.close()
    with gevent.Timeout(5):
        assert g.get() == (0, 0)



def test_no_detach_unless_the_caller_asks():
    pool = ConnPool(10)
    client_side, client = _pair()
    upstream_side, server = _pair()
    g = pool.spawn(tcp.pipe, client_side, upstream_side, None, lambda inp, out: None)
    gevent.sleep(0.05)
    assert not g.dead and g.tunnel is None
    client.close()
    server.close()
    with gevent.Timeout(5):
        assert g.get() == (0, 0)
