"""The relay connector's lazy header (GOST's ``nodelay=false`` default) on a socket pair: nothing
goes on the wire at connect time, the request rides in the same write as the first payload, and
the response is consumed by the first read; ``nodelay=true`` sends and checks it at connect."""
import socket

import pytest
from gevent import socket as gsocket

from gostg.connectors.relay import RelayConnector, RelayRefused
from gostg.config.metadata import Metadata
from gostg.protocols import relay as rp

TARGET = "example.test:80"


def _expected_header(auth=None):
    features = [rp.UserAuth(*auth)] if auth else []
    features.append(rp.Addr("example.test", 80))
    return rp.encode_request(rp.Request(rp.CMD_CONNECT, tuple(features)))


def _pair():
    a, b = gsocket.socketpair()
    a.settimeout(2)
    b.settimeout(2)
    return a, b


def _nothing_waiting(sock):
    sock.setblocking(False)
    try:
        with pytest.raises((BlockingIOError, socket.timeout)):
            sock.recv(1)
    finally:
        sock.settimeout(2)


def test_default_sends_nothing_until_the_first_write():
    client, server = _pair()
    with client, server:
        conn = RelayConnector(Metadata({}), ("u", "p")).connect(client, "tcp", TARGET)
        _nothing_waiting(server)
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        want = _expected_header(("u", "p")) + b"GET / HTTP/1.0\r\n\r\n"
        got = b""
        while len(got) < len(want):
            got += server.recv(4096)
        assert got == want
        server.sendall(rp.encode_response(rp.Response(rp.STATUS_OK)) + b"HTTP/1.0 200 OK\r\n")
        assert conn.recv(100) == b"HTTP/1.0 200 OK\r\n"


def test_default_refusal_shows_on_first_read():
    client, server = _pair()
    with client, server:
        conn = RelayConnector(Metadata({}), None).connect(client, "tcp", TARGET)
        conn.sendall(b"x")
        server.recv(4096)
        server.sendall(rp.encode_response(rp.Response(rp.STATUS_UNAUTHORIZED)))
        with pytest.raises(RelayRefused, match=r"status 2 \(unauthorized\)"):
            conn.recv(10)


def test_empty_upload_still_sends_the_request_on_shutdown():
    client, server = _pair()
    with client, server:
        conn = RelayConnector(Metadata({}), None).connect(client, "tcp", TARGET)
        conn.shutdown(socket.SHUT_WR)
        assert server.recv(4096) == _expected_header()


def test_nodelay_sends_and_checks_at_connect():
    client, server = _pair()
    with client, server:
        server.sendall(rp.encode_response(rp.Response(rp.STATUS_OK)))   # answer waits in the buffer
        conn = RelayConnector(Metadata({"nodelay": "true"}), None).connect(client, "tcp", TARGET)
        assert server.recv(4096) == _expected_header()
        conn.sendall(b"after")
        assert server.recv(4096) == b"after"
