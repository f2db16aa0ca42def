"""Context.bytes(): the bytes a tunnel moved so far, read from the relay's own counters while
it runs, in each way a tunnel runs (greenlet over two plain sockets, detached from its
greenlet, the generic pump of wrapped conns), counting what the handshake read ahead; and
Service.close_tunnel ending a relaying greenlet with its count intact."""
import gevent
from gevent import socket

from gostg.core.connpool import ConnPool
from gostg.core.context import Context
from gostg.relay import tcp
from gostg.transport.buffered import Stream

from .test_relay_tcp import _pair


class _Log:
    def bind(self, **kw):
        return self


def _ctx():
    return Context("svc", "127.0.0.1:1", "127.0.0.1:2", _Log())


class _Wrapped(socket.socket):
    """A socket relay must not take for a plain one: the generic pump moves it."""


def _wrapped_pair():
    ours, far = _pair()
    w = _Wrapped(fileno=ours.detach())
    return w, far


def _move(client, server, up, down):
    """``up`` bytes client → server, ``down`` back; → once both arrived."""
    client.sendall(b"u" * up)
    got = 0
    while got < up:
        got += len(server.recv(65536))
    server.sendall(b"d" * down)
    got = 0
    while got < down:
        got += len(client.recv(65536))


def _until(pred):
    with gevent.Timeout(5):
        while not pred():
            gevent.sleep(0.01)


def _tunnel(make_client_side, detach, read_ahead=b""):
    """→ (ctx, client, server, greenlet, result list) of a running pipe."""
    ctx = _ctx()
    client_side, client = make_client_side()
    upstream_side, server = _pair()
    if read_ahead:   # bytes a handshake read past its end: counted as moved
        client.sendall(read_ahead)
        s = Stream(client_side)
        _until(lambda: s.fill() and len(s.buf) >= len(read_ahead))
        client_side = s.conn_with_rest()
    done = []
    pool = ConnPool(10)
    g = pool.spawn(tcp.pipe, client_side, upstream_side, None, lambda i, o: done.append((i, o)), detach, ctx)
    return ctx, client, server, g, done


def _check_live(ctx, client, server, base_in=0):
    _until(lambda: ctx.bytes() == (base_in, 0) and ctx.flow is not None)
    _move(client, server, 1000, 5000)
    _until(lambda: ctx.bytes() == (base_in + 1000, 5000))
    _move(client, server, 300, 70000)
    _until(lambda: ctx.bytes() == (base_in + 1300, 75000))


def test_no_relay_yet_is_zero():
    assert _ctx().bytes() == (0, 0)


def test_greenlet_tunnel_counts_live_with_read_ahead():
    ctx, client, server, g, done = _tunnel(_pair, False, read_ahead=b"early")
    got = b""
    while len(got) < 5:
        got += server.recv(10)
    assert got == b"early"
    _check_live(ctx, client, server, base_in=5)
    assert type(ctx.flow) is tuple and g   # still the greenlet's
    client.close()
    server.close()
    g.join(5)
    assert done == [(1305, 75000)]


def test_detached_tunnel_counts_live():
    ctx, client, server, g, done = _tunnel(_pair, True)
    _until(lambda: g.dead)             # idle: it left its greenlet
    assert isinstance(ctx.flow, tcp._Detached)
    _check_live(ctx, client, server)
    ctx.flow.abort()                   # what Service.close_tunnel does to a detached tunnel
    assert done == [(1300, 75000)]
    assert client.recv(10) == b""


def test_generic_pump_counts_live():
    ctx, client, server, g, done = _tunnel(_wrapped_pair, True)
    _until(lambda: type(ctx.flow) is list)
    _check_live(ctx, client, server)
    client.close()
    server.close()
    g.join(5)
    assert done == [(1300, 75000)]


def test_thrown_close_keeps_the_counts():
    """Service.close_tunnel throws an OSError into a relaying greenlet: the relay ends as on a
    socket error, both conns closed, ``finish`` gets the bytes moved so far."""
    from gostg.core.service import ClosedByApi
    for make in (_pair, _wrapped_pair):
        ctx, client, server, g, done = _tunnel(make, False)
        _move(client, server, 10, 20)
        _until(lambda: ctx.bytes() == (10, 20))
        g.kill(ClosedByApi(103, "closed"), block=True, timeout=5)
        assert done == [(10, 20)], make
        client.settimeout(5)
        try:
            assert client.recv(10) == b""
        except ConnectionResetError:
            pass
        client.close()
        server.close()
