"""The SOCKS5 connector's handshake, byte by byte against a scripted server on a socket pair.

``pipeline=true``: without credentials the greeting and the request arrive before the server
has answered anything (one round trip); with credentials the greeting waits for the server's
pick and the request rides with the credentials. Default: each message waits for the answer
before it (servers such as microsocks read one message per recv and drop what came early).
Either way a refused method or a failed authentication fails the dial, whatever follows it."""
import gevent
import pytest
from gevent import socket as gsocket

from gostg.config.metadata import Metadata
from gostg.connectors.socks5 import SOCKS5Connector
from gostg.errors import DialError
from gostg.protocols import socks5

TARGET = "127.0.0.1:8080"
REQUEST = socks5.encode_request(socks5.CMD_CONNECT, "127.0.0.1", 8080)
OK_REPLY = socks5.encode_reply(socks5.SUCCEEDED, "127.0.0.1", 1)
CREDS = socks5.encode_userpass("user", "pass")
PIPELINE = {"pipeline": "true"}


def _read(sock, n, wait=2.0):
    """Exactly ``n`` bytes, or what came within ``wait`` s (then shorter): never answers."""
    got = b""
    with gevent.Timeout(wait, False):
        while len(got) < n:
            d = sock.recv(n - len(got))
            if not d:
                break
            got += d
    return got


def _quiet(sock, wait=0.2):
    """Nothing more arrives within ``wait`` s."""
    return _read(sock, 1, wait) == b""


def _run(server, md=None, auth=None):
    """Connector on one end, ``server(sock, seen)`` scripted on the other: → (conn or the
    exception, what the server saw)."""
    client, srv = gsocket.socketpair()
    seen = {}
    g = gevent.spawn(server, srv, seen)
    try:
        with gevent.Timeout(5):
            try:
                res = SOCKS5Connector(Metadata(md or {}), auth).connect(client, "tcp", TARGET)
            except (DialError, OSError) as exc:
                res = exc
        g.join(5)
        assert g.successful(), g.exception
        return res, seen
    finally:
        g.kill()
        client.close()
        srv.close()


def test_pipeline_sends_greeting_and_request_before_any_answer():
    def server(sock, seen):
        seen["first"] = _read(sock, 3 + len(REQUEST))   # no answer sent yet
        sock.sendall(b"\x05\x00" + OK_REPLY + b"tail")

    conn, seen = _run(server, PIPELINE)
    assert seen["first"] == b"\x05\x01\x00" + REQUEST
    assert not isinstance(conn, Exception)
    assert conn.recv(10) == b"tail"   # bytes after the reply stay for the tunnel


def test_default_waits_for_each_answer():
    def server(sock, seen):
        seen["greeting"] = _read(sock, 3)
        seen["quiet"] = _quiet(sock)
        sock.sendall(b"\x05\x00")
        seen["request"] = _read(sock, len(REQUEST))
        sock.sendall(OK_REPLY)

    conn, seen = _run(server)
    assert seen == {"greeting": b"\x05\x01\x00", "quiet": True, "request": REQUEST}
    assert not isinstance(conn, Exception)


@pytest.mark.parametrize("md", [PIPELINE, None])
@pytest.mark.parametrize("answer", [b"\x05\xff", b"\x05\x02", b"\x05\x80"])
def test_refused_method_fails_closed(answer, md):
    def server(sock, seen):
        _read(sock, 3 + len(REQUEST), wait=0.3)
        sock.sendall(answer + OK_REPLY)   # even a success reply after the refusal
        sock.close()

    res, _ = _run(server, md)
    assert isinstance(res, DialError)


@pytest.mark.parametrize("md", [PIPELINE, None])
def test_auth_greeting_waits_for_the_pick_and_the_request_for_the_status_unless_pipelined(md):
    def server(sock, seen):
        seen["greeting"] = _read(sock, 4)
        seen["quiet"] = _quiet(sock)                     # nothing more before the pick
        sock.sendall(b"\x05\x02")
        seen["early"] = _read(sock, len(CREDS) + len(REQUEST), wait=0.3)   # before the status is sent
        sock.sendall(b"\x01\x00")
        seen["late"] = _read(sock, len(CREDS) + len(REQUEST) - len(seen["early"]))
        sock.sendall(OK_REPLY)

    conn, seen = _run(server, md, auth=("user", "pass"))
    assert seen["greeting"] == b"\x05\x02\x00\x02"
    assert seen["quiet"]
    assert (seen["early"], seen["late"]) == ((CREDS + REQUEST, b"") if md else (CREDS, REQUEST))
    assert not isinstance(conn, Exception)


@pytest.mark.parametrize("md", [PIPELINE, None])
def test_auth_failure_fails_closed_even_if_a_success_reply_follows(md):
    def server(sock, seen):
        _read(sock, 4)
        sock.sendall(b"\x05\x02")
        _read(sock, len(socks5.encode_userpass("user", "bad")) + len(REQUEST), wait=0.3)
        sock.sendall(b"\x01\x01" + OK_REPLY)   # failure status, then a (bogus) success reply
        sock.close()

    res, _ = _run(server, md, auth=("user", "bad"))
    assert isinstance(res, DialError) and "authentication failed" in str(res)


@pytest.mark.parametrize("md", [PIPELINE, None])
def test_auth_offered_but_server_picks_no_auth(md):
    def server(sock, seen):
        _read(sock, 4)
        sock.sendall(b"\x05\x00")
        seen["request"] = _read(sock, len(REQUEST))
        sock.sendall(OK_REPLY)

    conn, seen = _run(server, md, auth=("user", "pass"))
    assert seen["request"] == REQUEST
    assert not isinstance(conn, Exception)


@pytest.mark.parametrize("md", [PIPELINE, None])
def test_failure_reply_fails_the_dial(md):
    def server(sock, seen):
        _read(sock, 3 + len(REQUEST), wait=0.3)
        sock.sendall(b"\x05\x00")
        _read(sock, len(REQUEST), wait=0.3)
        sock.sendall(socks5.encode_reply(socks5.HOST_UNREACHABLE))

    res, _ = _run(server, md)
    assert isinstance(res, DialError) and "host unreachable" in str(res)
