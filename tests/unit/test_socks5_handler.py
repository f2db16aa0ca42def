"""The SOCKS5 handler in-process on loopback sockets: what it sends, in how many sends."""
import struct

import gevent
import pytest
from gevent import socket

from gostg.config.metadata import Metadata
from gostg.core.context import Context
from gostg.errors import BypassError, DialError
from gostg.handlers import socks5 as handler_mod
from gostg.handlers.base import Options
from gostg.observe.log import make_logger

GREETING = b"\x05\x01\x00"
OK = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"


class Router:
    def __init__(self, upstream=None, error=None):
        self.upstream, self.error = upstream, error

    def dial(self, network, target, ctx):
        if self.error is not None:
            raise self.error
        return self.upstream


def request(port=80, cmd=1):
    return bytes((5, cmd, 0, 1, 127, 0, 0, 1)) + struct.pack("!H", port)


@pytest.fixture
def run(monkeypatch):
    """run(client_bytes_in_segments, router) → (list of the handler's sends, client socket)"""
    sends = []
    real = handler_mod.send_reply

    def spy(conn, data):
        sends.append(bytes(data))
        return real(conn, data)
    monkeypatch.setattr(handler_mod, "send_reply", spy)

    def go(segments, router):
        srv, cli = socket.socketpair()
        h = handler_mod.SOCKS5Handler(Metadata({}), Options(router))
        ctx = Context("svc", "127.0.0.1:1", "127.0.0.1:2", make_logger("error", "json", "none"))
        g = gevent.spawn(h.handle, srv, ctx)
        for seg in segments:
            cli.sendall(seg)
            gevent.sleep(0.05)
        return g, sends, cli, srv
    return go


def test_pipelined_greeting_and_request_get_one_send(run):
    up, far = socket.socketpair()
    g, sends, cli, srv = run([GREETING + request()], Router(up))
    assert sends == [b"\x05\x00" + OK]          # method answer and CONNECT reply together
    assert cli.recv(100) == b"\x05\x00" + OK
    cli.close()
    far.close()
    g.join(5)


def test_greeting_then_request_get_two_sends(run):
    up, far = socket.socketpair()
    g, sends, cli, srv = run([GREETING, request()], Router(up))
    assert sends == [b"\x05\x00", OK]            # a waiting client gets its answer at once
    cli.close()
    far.close()
    g.join(5)


@pytest.mark.parametrize("router,reply", [(Router(error=DialError("no")), 4), (Router(error=BypassError("b")), 2)])
def test_pipelined_refusal_carries_the_held_answer(run, router, reply):
    g, sends, cli, srv = run([GREETING + request()], router)
    g.join(5)
    srv.close()   # the service closes the client conn after the handler
    data = b""
    while True:
        d = cli.recv(100)
        if not d:
            break
        data += d
    assert data.startswith(b"\x05\x00" + bytes((5, reply)))


def test_pipelined_bad_request_still_gets_the_method_answer(run):
    g, sends, cli, srv = run([GREETING + b"\x05\x01\x00\x09" + b"\x00" * 6], Router())
    with pytest.raises(Exception):
        g.get(timeout=5)
    srv.close()
    data = cli.recv(100)
    assert data == b"\x05\x00" + b"\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00"   # address type not supported
