"""HTTP/1.x heads and body framing (RFC 9112): vectors, framing rules, properties."""
import pytest
from hypothesis import example, given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols import http

PROPS = settings(max_examples=250, deadline=None)


def req(raw):
    r, used = http.parse_request_head(raw)
    return r


def resp(raw):
    r, used = http.parse_response_head(raw)
    return r


# --- heads ------------------------------------------------------------------------------------

def test_connect_request():
    raw = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Connection: keep-alive\r\n\r\n"
    r, used = http.parse_request_head(raw + b"\x16\x03\x01")
    assert used == len(raw)
    assert (r.method, r.target, r.version) == ("CONNECT", "example.com:443", "HTTP/1.1")
    assert r.headers.get("host") == "example.com:443"
    assert r.headers.get("PROXY-CONNECTION") == "keep-alive"
    assert r.headers.get("missing", "d") == "d"


def test_absolute_form_get_keeps_header_spelling_and_order():
    raw = (b"GET http://example.com/a?b=c HTTP/1.0\r\nUser-Agent: curl/8\r\nX-Dup: 1\r\nx-dup: 2\r\n"
           b"Accept:*/*\r\n\r\n")
    r, used = http.parse_request_head(raw)
    assert used == len(raw)
    assert r.target == "http://example.com/a?b=c" and r.version == "HTTP/1.0"
    assert r.headers.items == [("User-Agent", "curl/8"), ("X-Dup", "1"), ("x-dup", "2"), ("Accept", "*/*")]
    assert r.headers.get_all("X-DUP") == ["1", "2"]


def test_bare_lf_head_is_tolerated():
    raw = b"GET / HTTP/1.1\nHost: a\n\nBODY"
    r, used = http.parse_request_head(raw)
    assert used == len(raw) - 4 and r.headers.get("Host") == "a"


def test_header_value_whitespace_is_trimmed():
    r = req(b"GET / HTTP/1.1\r\nHost:   a.b   \r\nX-Empty:\r\n\r\n")
    assert r.headers.get("Host") == "a.b"
    assert r.headers.get("X-Empty") == ""


def test_obs_fold_continuation_joined():
    r = req(b"GET / HTTP/1.1\r\nX-Long: a\r\n  b\r\n\tc\r\n\r\n")
    assert r.headers.get("X-Long") == "a b c"


def test_continuation_without_header_is_error():
    with pytest.raises(ProtocolError):
        http.parse_request_head(b"GET / HTTP/1.1\r\n continued\r\n\r\n")


@pytest.mark.parametrize("raw", [
    b"GET /\r\n\r\n",                            # HTTP/0.9 style
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",                  # empty target between two spaces
    b"G(T / HTTP/1.1\r\n\r\n",                   # method is not a token
    b" / HTTP/1.1\r\n\r\n",
    b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",       # whitespace before the colon (RFC 9112 §5.1)
])
def test_bad_request_heads(raw):
    with pytest.raises(ProtocolError):
        http.parse_request_head(raw)


def test_unsupported_version_replies_505():
    for v in (b"HTTP/2.0", b"HTTP/0.9", b"FOO"):
        with pytest.raises(ProtocolError) as ei:
            http.parse_request_head(b"GET / " + v + b"\r\n\r\n")
        assert ei.value.reply == 505


def test_head_limit():
    big = b"GET / HTTP/1.1\r\nX: " + b"a" * http.MAX_HEAD
    with pytest.raises(ProtocolError) as ei:
        http.parse_request_head(big)
    assert ei.value.reply == 431
    with pytest.raises(ProtocolError):
        http.parse_request_head(big + b"\r\n\r\n")
    with pytest.raises(NeedData):
        http.parse_request_head(b"GET / HTTP/1.1\r\nX: " + b"a" * (http.MAX_HEAD - 100))


def test_response_heads():
    r, used = http.parse_response_head(b"HTTP/1.1 200 Connection established\r\n\r\nrest")
    assert (r.version, r.status, r.reason, used) == ("HTTP/1.1", 200, "Connection established", 39)
    r = resp(b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"gost\"\r\n\r\n")
    assert r.status == 407 and r.headers.get("proxy-authenticate") == 'Basic realm="gost"'
    assert resp(b"HTTP/1.1 204\r\n\r\n").reason == ""
    assert resp(b"HTTP/1.1 200 \r\n\r\n").reason == ""


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 20 OK\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n", b"ICY 200 OK\r\n\r\n", b"HTTP/1.1\r\n\r\n",
])
def test_bad_status_lines(raw):
    with pytest.raises(ProtocolError):
        http.parse_response_head(raw)


def test_head_prefixes_need_data():
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            http.parse_request_head(raw[:i])
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            http.parse_response_head(raw[:i])


def test_encode_round_trip():
    h = http.Headers([("Host", "a"), ("X-Y", "1, 2")])
    r = http.Request("POST", "/p", "HTTP/1.1", h)
    raw = r.encode()
    assert raw == b"POST /p HTTP/1.1\r\nHost: a\r\nX-Y: 1, 2\r\n\r\n"
    r2, used = http.parse_request_head(raw)
    assert (r2.method, r2.target, r2.version, r2.headers.items, used) == (
        "POST", "/p", "HTTP/1.1", h.items, len(raw))
    s = http.Response("HTTP/1.1", 502, "Bad Gateway", http.Headers([("Content-Length", "0")]))
    s2, used = http.parse_response_head(s.encode())
    assert (s2.status, s2.reason, s2.headers.items) == (502, "Bad Gateway", [("Content-Length", "0")])


def test_headers_helpers():
    h = http.Headers([("Connection", "Keep-Alive, Upgrade"), ("connection", "TE")])
    assert h.has_token("CONNECTION", "upgrade") and h.has_token("Connection", "te")
    assert not h.has_token("Connection", "close")
    h.set("Connection", "close")
    assert h.items == [("Connection", "close")]
    h.remove("CONNECTION")
    assert h.items == []


# --- body framing rules -----------------------------------------------------------------------

def test_request_without_length_has_no_body():
    assert http.request_body(req(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")) is None
    assert http.request_body(req(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")) is None


def test_request_content_length():
    f = http.request_body(req(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"))
    assert isinstance(f, http.LengthFramer) and not f.done
    assert f.feed(b"he") == 2 and not f.done
    assert f.feed(b"lloGET / HTTP/1.1") == 3 and f.done
    assert f.feed(b"more") == 0


def test_chunked_wins_over_content_length():
    f = http.request_body(req(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"))
    assert isinstance(f, http.ChunkedFramer)
    f = http.request_body(req(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"))
    assert isinstance(f, http.ChunkedFramer)


def test_identical_content_length_list_is_accepted():
    f = http.request_body(req(b"POST / HTTP/1.1\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n"))
    assert f.left == 7


@pytest.mark.parametrize("values", [
    [b"5, 6"], [b"5", b"6"], [b"-1"], [b"abc"], [b""], [b"0x10"], [b"1e3"], [b"+5"], [b"5 5"],
    [b"\xb2"],   # SUPERSCRIPT TWO: str.isdigit() says yes, int() says no
    [b"\xb9\xb3"],
])
def test_bad_or_conflicting_content_length(values):
    head = b"POST / HTTP/1.1\r\n" + b"".join(b"Content-Length: " + v + b"\r\n" for v in values) + b"\r\n"
    r = req(head)
    with pytest.raises(ProtocolError):
        http.request_body(r)
    resp_head = b"HTTP/1.1 200 OK\r\n" + head.split(b"\r\n", 1)[1]
    with pytest.raises(ProtocolError):
        http.response_body(resp(resp_head), "GET")


@pytest.mark.parametrize("status", [100, 101, 103, 199, 204, 304])
def test_responses_without_body(status):
    r = resp(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n" % status)
    assert http.response_body(r, "GET") is None


def test_response_to_head_has_no_body():
    r = resp(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert http.response_body(r, "HEAD") is None
    assert http.response_body(r, "GET").left == 1000


def test_response_framing():
    assert isinstance(http.response_body(resp(b"HTTP/1.1 200 OK\r\n\r\n"), "GET"), http.UntilClose)
    assert http.response_body(resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "GET") is None
    assert isinstance(http.response_body(resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                              b"Content-Length: 3\r\n\r\n"), "POST"), http.ChunkedFramer)
    assert isinstance(http.response_body(resp(b"HTTP/1.1 205 Reset\r\n\r\n"), "GET"), http.UntilClose)
    u = http.UntilClose()
    assert u.feed(b"abc") == 3 and not u.done


@pytest.mark.parametrize("version,conn,expect", [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "Close", False),
    ("HTTP/1.1", "keep-alive, close", False),
    ("HTTP/1.1", "Upgrade", True),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "keep-alive", True),
    ("HTTP/1.0", "Keep-Alive", True),
    ("HTTP/1.0", "Upgrade, keep-alive", True),
    ("HTTP/1.0", "close", False),
])
def test_keep_alive(version, conn, expect):
    h = http.Headers([("Connection", conn)] if conn else [])
    assert http.keep_alive(version, h) is expect


# --- chunked framing --------------------------------------------------------------------------

CHUNKED = (b"5\r\nhello\r\n"
           b"6;name=value;x=\"q\"\r\n world\r\n"   # chunk extensions
           b"A\r\n0123456789\r\n"                  # upper-case hex
           b"0\r\n"
           b"Expires: never\r\nX-Trailer: 1\r\n"  # trailers
           b"\r\n")


def _feed_all(framer, pieces):
    used = 0
    for p in pieces:
        n = framer.feed(p)
        assert 0 <= n <= len(p)
        used += n
        if framer.done:
            break
    return used


def test_chunked_whole():
    f = http.ChunkedFramer()
    assert f.feed(CHUNKED + b"HTTP/1.1 200 OK\r\n") == len(CHUNKED)
    assert f.done


def test_chunked_byte_by_byte():
    f = http.ChunkedFramer()
    for i in range(len(CHUNKED)):
        assert not f.done, i
        assert f.feed(CHUNKED[i:i + 1]) == 1
    assert f.done
    assert f.feed(b"X") == 0


def test_chunked_no_trailers_and_bare_lf():
    f = http.ChunkedFramer()
    body = b"3\nabc\n0\n\n"
    assert f.feed(body + b"next") == len(body) and f.done


def test_chunked_empty_body():
    f = http.ChunkedFramer()
    assert f.feed(b"0\r\n\r\n") == 5 and f.done


def test_chunked_data_may_contain_crlf_and_zero_lines():
    data = b"0\r\n\r\n\r\n"
    body = b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"
    f = http.ChunkedFramer()
    assert f.feed(body) == len(body) and f.done


def test_chunked_missing_crlf_after_data():
    with pytest.raises(ProtocolError):
        http.ChunkedFramer().feed(b"3\r\nabcX\r\n0\r\n\r\n")


@pytest.mark.parametrize("size", [b"xyz", b"", b"\xff", b"5 5"])
def test_chunked_bad_size(size):
    with pytest.raises(ProtocolError):
        http.ChunkedFramer().feed(size + b"\r\n")


@pytest.mark.parametrize("size,lax_len", [(b"0x5", 5), (b"+5", 5), (b"-0", 0), (b"1_0", 16), (b" 0x1", 1)])
def test_chunked_size_is_hexdig_only(size, lax_len):
    """RFC 9112 §7.1: chunk-size = 1*HEXDIG. A lenient parse (Python's int() accepts '0x',
    signs and '_') lets a front end and a back end disagree on where a body ends. The body
    below is well formed under the lenient reading, so only the size check can reject it."""
    body = size + b"\r\n" + (b"x" * lax_len + b"\r\n0\r\n" if lax_len else b"") + b"\r\n"
    with pytest.raises(ProtocolError):
        http.ChunkedFramer().feed(body)


def test_chunked_line_too_long():
    f = http.ChunkedFramer()
    with pytest.raises(ProtocolError):
        f.feed(b"1;" + b"e" * (http.ChunkedFramer.MAX_LINE + 10))
    f = http.ChunkedFramer()
    with pytest.raises(ProtocolError):
        for _ in range(http.ChunkedFramer.MAX_LINE + 10):
            f.feed(b"0")


def test_chunked_large_chunk_counts_exactly():
    data = b"z" * 70000
    body = b"%x\r\n" % len(data) + data + b"\r\n0\r\n\r\n"
    f = http.ChunkedFramer()
    assert _feed_all(f, [body[i:i + 4096] for i in range(0, len(body), 4096)] + [b"tail"]) == len(body)
    assert f.done


chunk_lists = st.lists(st.binary(min_size=1, max_size=40), max_size=6)
exts = st.sampled_from([b"", b";a=b", b";x", b' ; q="v"'])
trailers = st.lists(st.sampled_from([b"X-A: 1", b"Expires: 0", b"T:"]), max_size=3)


def _encode_chunked(chunks, ext, trailer_lines):
    out = b"".join(b"%x%s\r\n" % (len(c), ext) + c + b"\r\n" for c in chunks)
    return out + b"0" + ext + b"\r\n" + b"".join(t + b"\r\n" for t in trailer_lines) + b"\r\n"


@PROPS
@given(chunk_lists, exts, trailers, st.lists(st.integers(1, 30), max_size=40), st.binary(max_size=10))
def test_chunked_any_split_finds_the_end(chunks, ext, trailer_lines, cuts, tail):
    body = _encode_chunked(chunks, ext, trailer_lines)
    stream = body + tail
    pieces, i = [], 0
    for c in cuts:
        pieces.append(stream[i:i + c])
        i += c
    pieces.append(stream[i:])
    f = http.ChunkedFramer()
    used = 0
    for p in pieces:
        assert not f.done
        used += f.feed(p)
        if f.done:
            break
    assert f.done and used == len(body)


@PROPS
@given(chunk_lists, exts, trailers)
def test_chunked_not_done_before_last_byte(chunks, ext, trailer_lines):
    body = _encode_chunked(chunks, ext, trailer_lines)
    f = http.ChunkedFramer()
    assert f.feed(body[:-1]) == len(body) - 1 and not f.done
    assert f.feed(body[-1:]) == 1 and f.done


@PROPS
@given(st.lists(st.binary(max_size=50), max_size=5))
@example([b"5\r\nabcde\r\n", b"\xb2\r\n"])
@example([b"\xd9\xa3\r\n"])
def test_chunked_garbage_never_crashes(pieces):
    f = http.ChunkedFramer()
    try:
        for p in pieces:
            n = f.feed(p)
            assert 0 <= n <= len(p)
    except ProtocolError:
        pass


# --- head properties --------------------------------------------------------------------------

tokens = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                 min_size=1, max_size=12)
values = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=20) | st.builds(
    lambda a, b: a + " " + b, tokens, tokens)
targets = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)


@PROPS
@given(tokens, targets, st.sampled_from(["HTTP/1.0", "HTTP/1.1"]), st.lists(st.tuples(tokens, values), max_size=8),
       st.binary(max_size=10))
def test_request_head_round_trip(method, target, version, items, tail):
    raw = http.Request(method, target, version, http.Headers(items)).encode()
    r, used = http.parse_request_head(raw + tail)
    assert used == len(raw)
    assert (r.method, r.target, r.version, r.headers.items) == (method, target, version, items)
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            http.parse_request_head(raw[:i])


@PROPS
@given(st.integers(100, 599), st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
       .map(str.strip), st.lists(st.tuples(tokens, values), max_size=6))
def test_response_head_round_trip(status, reason, items):
    raw = http.Response("HTTP/1.1", status, reason, http.Headers(items)).encode()
    r, used = http.parse_response_head(raw)
    assert (r.status, r.reason, r.headers.items, used) == (status, reason, items, len(raw))


def _all_head_consumers(buf):
    """Everything a handler does with a head: parse it, then ask for framing and keep-alive."""
    for parse in (http.parse_request_head, http.parse_response_head):
        try:
            m, used = parse(buf)
        except (NeedData, ProtocolError):
            continue
        assert 0 < used <= len(buf)
        try:
            if parse is http.parse_request_head:
                http.request_body(m)
            else:
                http.response_body(m, "GET")
        except ProtocolError:
            pass
        http.keep_alive(m.version, m.headers)


@PROPS
@given(st.binary(max_size=200))
def test_garbage_heads_never_crash(buf):
    _all_head_consumers(buf)
    _all_head_consumers(buf + b"\r\n\r\n")


header_line = st.builds(lambda k, v: k + b":" + v, st.sampled_from(
    [b"Content-Length", b"Transfer-Encoding", b"Connection", b"Host", b"X"]), st.binary(max_size=12))


@PROPS
@given(st.lists(header_line | st.binary(max_size=20), max_size=6),
       st.sampled_from([b"GET / HTTP/1.1", b"POST http://h/ HTTP/1.0", b"HTTP/1.1 200 OK", b"HTTP/1.0 304 NM"]))
@example([b"Content-Length:\xb2"], b"POST / HTTP/1.1")
@example([b"Content-Length:\xb3"], b"HTTP/1.1 200 OK")
def test_structured_garbage_heads_never_crash(lines, first):
    buf = first + b"\r\n" + b"".join(line.replace(b"\n", b"") + b"\r\n" for line in lines) + b"\r\n"
    _all_head_consumers(buf)
