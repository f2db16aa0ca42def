"""handlers/httpfast.py on socket pairs: what it relays itself, what it hands back to the
greenlet path and in which state (nothing of a handed-back message consumed, or exactly the
unsent bytes), and a socket closed under it by another greenlet."""
import socket

import gevent
import gevent.socket as gsocket
import pytest

from gostg.handlers import httpfast
from gostg.handlers.http import send_response
from gostg.transport.buffered import Stream

TARGET = "127.0.0.1:80"
URL = "http://127.0.0.1/"


class Pair:
    """A fast-path session between two socket pairs: ``client`` and ``origin`` are the test's
    ends, ``conn``/``upstream`` the proxy's."""

    def __init__(self, idle=5.0):
        self.client, self.conn = gsocket.socketpair()
        self.origin, self.upstream = gsocket.socketpair()
        self.s, self.up = Stream(self.conn), Stream(self.upstream)
        self.tally = [0]
        self.g = gevent.spawn(httpfast.serve, self.conn, self.s, self.upstream, self.up, TARGET,
                              self.tally, idle)

    def result(self, timeout=5):
        return self.g.get(timeout=timeout)

    def request(self, extra=b"", url=URL, method=b"GET"):
        self.client.sendall(method + b" " + url.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")

    def origin_head(self):
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.origin.recv(65536)
        return buf

    def close(self):
        self.g.kill()
        for sock in (self.client, self.conn, self.origin, self.upstream):
            sock.close()


@pytest.fixture
def pair():
    p = Pair()
    yield p
    p.close()


def test_relays_requests_and_ends_on_client_eof(pair):
    for i in range(3):
        pair.request()
        assert pair.origin_head() == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        pair.origin.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab")
        gevent.sleep(0.01)
        pair.origin.sendall(b"c")
        got = b""
        while not got.endswith(b"abc"):
            got += pair.client.recv(100)
        assert got == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    pair.client.shutdown(socket.SHUT_WR)
    assert pair.result() == (httpfast.DONE,)
    assert pair.tally[0] == 3 * len(got)
    assert pair.s.received == 3 * len(b"GET " + URL.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")


@pytest.mark.parametrize("extra, upstream_extra", [
    (b"", b""),                                                    # the byte-level cut
    (b"Proxy-Connection: Keep-Alive\r\nProxy-Authorization: Basic dTpw\r\nA: b\r\n", b"A: b\r\n"),
    (b"Connection: keep-alive\r\n", b"Connection: keep-alive\r\n"),
    (b"A:  b \r\nProxy-Connection: x\r\n", b"A: b\r\n"),       # not canonical: parsed
])
@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",         # the byte-level cut
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nServer:  x\r\nContent-Length: 3\r\n\r\nabc",
])
def test_both_ways_of_reading_a_message_relay_the_same(pair, extra, upstream_extra, response):
    """Each request and response, whichever way it is read (protocols/httpquick.py or the
    general parser), goes out as the greenlet path would send it, and the session goes on."""
    for i in range(2):
        pair.request(extra)
        assert pair.origin_head() == b"GET / HTTP/1.1\r\nHost: x\r\n" + upstream_extra + b"\r\n"
        pair.origin.sendall(response)
        want = response.replace(b"Server:  x", b"Server: x")
        got = b""
        pair.client.settimeout(5)
        while len(got) < len(want):
            got += pair.client.recv(100)
        assert got == want
    assert httpfast.counters[1] >= 2 and not pair.g.ready()


@pytest.mark.parametrize("extra, url", [
    (b"Content-Length: 4\r\n\r\nbody", URL),                 # a body: the greenlet path's sender
    (b"", "http://127.0.0.1:81/"),                          # another target: a dial
    (b"", "ftp://127.0.0.1/"),                              # a 400
])
def test_requests_it_does_not_take_are_left_whole(pair, extra, url):
    pair.request(extra, url)
    assert pair.result() == (httpfast.NEXT,)
    assert bytes(pair.s.buf).startswith(b"GET " + url.encode())


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 2000 What\r\n\r\n",
])
def test_responses_it_does_not_take_are_left_whole(pair, head):
    pair.request()
    pair.origin_head()
    pair.origin.sendall(head)
    kind, req, path, sent = pair.result()
    assert (kind, req.method, path, sent) == (httpfast.SENT, "GET", "/", (True, b""))
    assert bytes(pair.up.buf) == head and pair.tally[0] == 0


def test_upstream_gone_while_idle_hands_the_next_request_back_sent(pair):
    pair.origin.shutdown(socket.SHUT_WR)     # its FIN, read while idle
    gevent.sleep(0.05)
    pair.request()
    kind, req, path, sent = pair.result()
    assert kind == httpfast.SENT and pair.up.buf == b""


def test_a_send_the_kernel_does_not_take_whole_hands_back_the_rest(pair):
    for sock in (pair.conn, pair.client):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = bytes(range(256)) * 8192    # 2 MiB
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    pair.request()
    pair.origin_head()
    sender = gevent.spawn(pair.origin.sendall, head + body)
    kind, framer, keep, unsent = pair.result()
    assert kind == httpfast.BODY and keep and unsent
    # what the greenlet path then does, while the client reads
    finish = gevent.spawn(send_response, pair.conn, pair.up, unsent, framer, pair.tally)
    got = b""
    while len(got) < len(head) + len(body):
        got += pair.client.recv(1 << 20)
    finish.get(timeout=5)
    sender.get(timeout=5)
    assert got == head + body and pair.tally[0] == len(got)


def test_a_socket_closed_by_another_greenlet_ends_it_with_the_read_error(pair):
    gevent.sleep(0.02)
    pair.conn.close()
    with pytest.raises(OSError):
        pair.result()


def test_idle_timeout(pair):
    p = Pair(idle=0.2)
    try:
        t0 = gevent.get_hub().loop.now()
        assert p.result() == (httpfast.DONE,)
        assert 0.15 <= gevent.get_hub().loop.now() - t0 < 1.0
    finally:
        p.close()
