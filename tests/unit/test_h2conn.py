"""gostg.h2conn over a socketpair (both sides ours), the http2 handler's small codecs
(GOST 2.x target names, chunked-body decoding)."""
import base64
import binascii
import hashlib
import os

import gevent
import pytest
from gevent import socket
from hypothesis import given, settings
from hypothesis import strategies as st

from gostg.transport.buffered import Stream
from gostg.errors import ProtocolError
from gostg.transport.mux.h2 import H2Session
from gostg.handlers.body import dechunk as _dechunk
from gostg.handlers.http2 import decode_server_name
from gostg.protocols.http import ChunkedFramer

CONNECT = [(":method", "CONNECT"), (":authority", "example.com:443")]


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    server = H2Session(a, client=False)
    client = H2Session(b, client=True).start()
    accepted = []

    def serve():
        try:
            for s in server.accept():
                accepted.append(s)
        except ProtocolError:
            pass
    g = gevent.spawn(serve)
    yield client, server, accepted
    client.close()
    server.close()
    g.kill()


def _accepted(accepted, n=1):
    with gevent.Timeout(5):
        while len(accepted) < n:
            gevent.sleep(0.001)
    return accepted[n - 1]


def _read_all(conn):
    out = bytearray()
    with gevent.Timeout(20):
        while True:
            d = conn.recv(1 << 20)
            if not d:
                return bytes(out)
            out += d


def test_request_response_and_both_ways_beyond_the_windows(pair):
    client, _, accepted = pair
    c = client.open(CONNECT)
    s = _accepted(accepted)
    assert (s.method, s.authority) == ("CONNECT", "example.com:443")
    s.respond(200, [("x-test", "1")])
    assert c.response() == (200, [("x-test", "1")])
    up, down = os.urandom(24 << 20), os.urandom(20 << 20)   # more than stream and connection windows
    g1 = gevent.spawn(lambda: (c.sendall(up), c.shutdown(socket.SHUT_WR)))
    g2 = gevent.spawn(lambda: (s.sendall(down), s.shutdown(socket.SHUT_WR)))
    got_s = gevent.spawn(_read_all, s)
    got_c = _read_all(c)
    assert hashlib.sha256(got_s.get(timeout=20)).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got_c).digest() == hashlib.sha256(down).digest()
    gevent.joinall([g1, g2], raise_error=True, timeout=5)


def test_close_with_the_peer_still_sending_resets_the_stream(pair):
    client, _, accepted = pair
    c = client.open(CONNECT)
    s = _accepted(accepted)
    s.respond(200)
    c.response()
    c.close()   # the server never ended its side: RST_STREAM(CANCEL)
    with gevent.Timeout(5):
        assert s.recv(10) == b""
        while not s.reset:
            gevent.sleep(0.001)
    with pytest.raises(BrokenPipeError):
        s.sendall(b"x")


def test_many_streams_and_closing_the_session_ends_them_all(pair):
    client, server, accepted = pair
    streams = [client.open(CONNECT) for _ in range(20)]
    _accepted(accepted, 20)
    for s in accepted:
        s.respond(200)
    for c in streams:
        assert c.response()[0] == 200
    server.close()
    with gevent.Timeout(5):
        for c in streams:
            assert c.recv(10) == b""
            with pytest.raises(BrokenPipeError):
                c.sendall(b"x")
        while client.alive:
            gevent.sleep(0.001)
    with pytest.raises(BrokenPipeError):
        client.open(CONNECT)


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00", os.urandom(64)],
                         ids=["http-request", "tls-record", "random"])
def test_garbage_is_a_protocol_error(junk):
    a, b = socket.socketpair()
    server = H2Session(a, client=False)
    b.sendall(junk)
    with pytest.raises(ProtocolError), gevent.Timeout(5):
        for _ in server.accept():
            pass
    assert server.closed
    b.close()


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=600))
def test_frames_of_garbage_after_the_preface_end_cleanly_or_raise_protocol_error(junk):
    a, b = socket.socketpair()
    server = H2Session(a, client=False)
    b.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + junk)
    b.shutdown(socket.SHUT_WR)
    try:
        with gevent.Timeout(5):
            for st_ in server.accept():
                st_.close()
    except ProtocolError:
        pass
    assert server.closed
    b.close()


def _encode_name(name):
    raw = name.encode()
    inner = base64.urlsafe_b64encode(raw).rstrip(b"=")
    return base64.urlsafe_b64encode(binascii.crc32(raw).to_bytes(4, "big") + inner).rstrip(b"=").decode()


@given(st.from_regex(r"[a-z0-9.-]{1,40}:[0-9]{1,5}", fullmatch=True))
def test_gost_target_round_trip(name):
    assert decode_server_name(_encode_name(name)) == name


@given(st.text(max_size=80))
def test_gost_target_garbage_is_refused(s):
    decode_server_name(s)   # None or a name; never an exception


class _Sink:
    def __init__(self):
        self.data = bytearray()

    def sendall(self, b):
        self.data += b


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=3000), max_size=8), st.integers(1, 97))
def test_dechunk_yields_the_payload(chunks, cut):
    wire = b"".join(b"%x;ext=1\r\n" % len(c) + c + b"\r\n" for c in chunks) + b"0\r\nTrailer: x\r\n\r\nNEXT"
    a, b = socket.socketpair()
    try:
        def feed():
            for i in range(0, len(wire), cut):
                b.sendall(wire[i:i + cut])
        g = gevent.spawn(feed)
        src, sink = Stream(a), _Sink()
        with gevent.Timeout(5):
            n = _dechunk(src, ChunkedFramer(), sink)
        g.join()
        assert bytes(sink.data) == b"".join(chunks) and n == len(sink.data)
        assert b"NEXT".startswith(bytes(src.buf))   # what follows the body stays unread
    finally:
        a.close()
        b.close()
