"""The HTTP forward proxy's fast paths give what the general ones give: canonical heads
(one regex) against the line-by-line parser, framing read from header text against framing
read from pairs, the hand-cut absolute URL against urlsplit; plus the proxy's per-request
writes (head and body in one send) and the quiet read (no recv before the socket is readable)."""
import gevent
import pytest
from gevent import socket as gsocket
from hypothesis import example, given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.handlers import http as hh
from gostg.protocols import http
from gostg.transport.buffered import Stream, send_all

PROPS = settings(max_examples=400, deadline=None)


def _slow(parse_lines, raw):
    """The line-by-line way on the same bytes, or the exception it raises."""
    end = http._head_end(bytearray(raw))
    return parse_lines(http._lines(bytes(raw[:end]).decode("latin-1"))), end


def _outcome(fn, *a):
    try:
        return fn(*a)
    except (NeedData, ProtocolError, ValueError) as exc:
        return type(exc), str(exc)


def _same_message(a, b):
    if isinstance(a, tuple) and isinstance(a[0], type):
        return a == b
    (ma, ea), (mb, eb) = a, b
    fields = [f for f in type(ma).__slots__ if f != "headers"]
    return ea == eb and [getattr(ma, f) for f in fields] == [getattr(mb, f) for f in fields] \
        and ma.headers.items == mb.headers.items and ma.encode() == mb.encode()


names = st.sampled_from(["Host", "Connection", "content-length", "Transfer-Encoding", "X-A", "Proxy-Connection",
                         "ETag", "a b", "", "Bad:Name", "\xe9"])
values = st.text(alphabet=st.sampled_from(list("ab ,;\t0123456789\x0b\x0c\r\xa0\x85\xe9\"")), max_size=12)
seps = st.sampled_from([": ", ":", ":  ", ": \t", " : "])
eols = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"])
header_lines = st.lists(st.tuples(names, seps, values, eols).map(lambda t: "".join(t)) |
                        st.sampled_from([" folded\r\n", "\tfolded\r\n"]), max_size=8)


@PROPS
@given(st.sampled_from(["GET", "POST", "G T", "get", ""]),
       st.sampled_from(["http://h/", "/p?q", "a\tb", "", "x y"]),
       st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1"]), header_lines, eols)
@example("GET", "http://h/", "HTTP/1.1", ["Host: h\r\n", "Connection: keep-alive\r\n"], "\r\n")
@example("GET", "http://h/", "HTTP/1.1", ["Host:  h \r\n", "X-A:\r\n", "X-A: \r\n"], "\r\n")
def test_canonical_request_parses_as_the_line_by_line_way(method, target, version, lines, eol):
    raw = f"{method} {target} {version}\r\n{''.join(lines)}{eol}".encode("latin-1")
    fast = _outcome(http.parse_request_head, bytearray(raw))
    slow = _outcome(_slow, http._request_from_lines, raw)
    assert _same_message(fast, slow), (raw, fast, slow)


@PROPS
@given(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/1.x", "HTTP/2"]),
       st.sampled_from(["200", "204", "101", "2000", "20", "\xb200", "abc"]),
       st.sampled_from([" OK", " ", "", " Not Found", "  x"]), header_lines, eols)
@example("HTTP/1.1", "200", " OK", ["Content-Length: 5\r\n", "Connection: close\r\n"], "\r\n")
def test_canonical_response_parses_as_the_line_by_line_way(version, status, reason, lines, eol):
    raw = f"{version} {status}{reason}\r\n{''.join(lines)}{eol}".encode("latin-1")
    fast = _outcome(http.parse_response_head, bytearray(raw))
    slow = _outcome(_slow, http._response_from_lines, raw)
    assert _same_message(fast, slow), (raw, fast, slow)


def test_canonical_head_keeps_its_text_until_changed():
    raw = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n"
    r, used = http.parse_response_head(bytearray(raw))
    assert r.headers._raw is not None and r.headers._items is None   # pairs not built yet
    assert http.response_framing(r, "GET")[0] is True and r.headers._items is None
    assert r.encode() == raw
    r.headers.remove_all({"proxy-connection"})      # nothing removed: text still good
    assert r.headers._raw is not None
    r.headers.set("Connection", "close")
    assert r.headers._raw is None
    assert r.encode() == b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    r2, _ = http.parse_response_head(bytearray(raw))
    r2.headers.items.append(("X", "y"))             # a caller that edits the list directly
    assert r2.encode().endswith(b"Connection: keep-alive\r\nX: y\r\n\r\n")


framing_names = st.sampled_from(["Connection", "CONNECTION", "Transfer-Encoding", "transfer-encoding",
                                 "Content-Length", "content-LENGTH", "X-Content-Length", "Connections"])
framing_values = st.sampled_from(["close", "keep-alive", "Keep-Alive, Upgrade", "chunked", "gzip, chunked",
                                  "5", "5, 5", "7", "", "x"])


@PROPS
@given(st.lists(st.tuples(framing_names, framing_values), max_size=6), st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
       st.sampled_from(["GET", "HEAD"]), st.sampled_from([200, 204, 304, 101]))
def test_framing_from_text_is_framing_from_pairs(pairs, version, method, status):
    raw = f"{version} {status} X\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n"
    from_text, _ = http.parse_response_head(bytearray(raw))
    from_pairs = http.Response(version, status, "X", http.Headers(pairs))
    assert from_text.headers._raw is not None or any(not v for _, v in pairs)

    def describe(r):
        try:
            keep, framer = http.response_framing(r, method)
        except ProtocolError as exc:
            return str(exc)
        return keep, type(framer).__name__, getattr(framer, "left", None)

    assert describe(from_text) == describe(from_pairs)
    assert describe(from_pairs)[:1] == (http.keep_alive(version, http.Headers(pairs)),) or isinstance(
        describe(from_pairs), str)


hosts = st.sampled_from(["h", "Example.COM", "127.0.0.1", "a-b.c", "", "[::1]", "h.", "x@h", "h_1", "\xe9"])
ports = st.sampled_from(["", ":80", ":8080", ":0", ":080", ":65535", ":65536", ":", ":x", ":123456"])
paths = st.sampled_from(["/", "", "/a/b", "/a?b", "/a?", "/a?b?", "?q", "/a#f", "/a b", "/\t", "/%20", "/\xe9",
                         "/a?b#c", "#f"])


@PROPS
@given(st.sampled_from(["http://", "HTTP://", "https://", "http:/"]), hosts, ports, paths)
@example("http://", "127.0.0.1", ":18080", "/")
def test_hand_cut_target_is_urlsplit(scheme, host, port, path):
    t = scheme + host + port + path
    r = http.Request("GET", t, "HTTP/1.1", http.Headers())
    assert _outcome(hh._target, r) == _outcome(hh._target_by_urlsplit, t), t


# --- the per-request writes and reads ----------------------------------------------------------

class _Recorder:
    """A conn that records each write call."""

    def __init__(self):
        self.writes = []

    def sendall(self, data):
        self.writes.append(bytes(data))


class _Wire:
    def __init__(self, data):
        self.data = [data]

    def recv(self, n):
        return self.data.pop(0) if self.data else b""

    def sendall(self, data):
        pass


class _Ctx:
    target = "h:80"


def test_response_head_and_buffered_body_go_out_in_one_write():
    body = b"x" * 64
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\nConnection: keep-alive\r\n\r\n" + body
    s = Stream(_Wire(b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"))
    req = s.read(http.parse_request_head)
    client, upstream = _Recorder(), _Recorder()
    tally = [0]
    keep = hh.round_trip(client, s, req, "/", upstream, Stream(_Wire(resp)), _Ctx, tally, 5, None)
    assert keep is True
    assert upstream.writes == [b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"]
    assert client.writes == [resp]                 # one write: head and body together
    assert tally == [len(resp)]


def test_response_body_not_yet_read_follows_the_head():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    s = Stream(_Wire(b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"))
    req = s.read(http.parse_request_head)
    client = _Recorder()
    up = Stream(_Wire(head + b"01234"))
    up.conn.data.append(b"56789")
    tally = [0]
    hh.round_trip(client, s, req, "/", _Recorder(), up, _Ctx, tally, 5, None)
    assert client.writes == [head + b"01234", b"56789"] and tally == [len(head) + 10]


def test_send_all_small_and_larger_than_the_socket_buffer():
    """A message the kernel takes whole goes in one send; one it takes in part is finished by
    sendall (the reader drains it meanwhile)."""
    a, b = gsocket.socketpair()
    try:
        send_all(a, b"hello")
        assert b.recv(10) == b"hello"
        big = bytes(range(256)) * 40000            # ~10 MB: far past any socket buffer
        got = bytearray()

        def drain():
            while len(got) < len(big):
                got.extend(b.recv(1 << 20))

        g = gevent.spawn(drain)
        send_all(a, big)
        g.get(timeout=10)
        assert got == big
    finally:
        a.close()
        b.close()


def test_quiet_read_waits_for_the_peer_and_takes_pipelined_bytes_from_the_buffer():
    a, b = gsocket.socketpair()
    try:
        s = Stream(a)
        g = gevent.spawn(s.read, http.parse_request_head, quiet=True)
        gevent.sleep(0.01)
        assert not g.ready()                   # parked on the watcher, nothing read
        b.sendall(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        assert g.get(timeout=2).target == "/1"
        second = gevent.with_timeout(2, s.read, http.parse_request_head, quiet=True)
        assert second.target == "/2"           # already buffered: no wait for the socket
    finally:
        a.close()
        b.close()


def test_quiet_read_sees_eof():
    a, b = gsocket.socketpair()
    try:
        g = gevent.spawn(Stream(a).read, http.parse_request_head, quiet=True)
        gevent.sleep(0.01)
        b.close()
        with pytest.raises(EOFError):
            g.get(timeout=2)
    finally:
        a.close()


def test_quiet_read_of_a_closed_socket_raises_what_a_plain_read_raises():
    a, b = gsocket.socketpair()
    b.close()
    a.close()
    with pytest.raises(OSError) as plain:
        Stream(a).read(http.parse_request_head)
    with pytest.raises(OSError) as quiet:
        Stream(a).read(http.parse_request_head, quiet=True)
    assert type(quiet.value) is type(plain.value) and quiet.value.errno == plain.value.errno


def test_out_of_range_port_is_a_bad_request():
    """urlsplit raises ValueError for these: the client gets 400 like any bad target."""
    for t in ["http://h:65536/", "http://h:99999999/x", "http://[::1/"]:
        with pytest.raises(ProtocolError) as e:
            hh._target(http.Request("GET", t, "HTTP/1.1", http.Headers()))
        assert e.value.reply == 400, t
