"""protocols/httpquick.py: whatever the byte-level cut accepts, the general parser turns into
the same upstream bytes, the same target, the same response head and the same framing."""
from hypothesis import example, given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.handlers import http as hh
from gostg.protocols import http, httpquick

PROPS = settings(max_examples=600, deadline=None)

names = st.sampled_from(["Host", "Connection", "connection", "Content-Length", "transfer-encoding", "X-A",
                         "Proxy-Connection", "proxy-authorization", "Gost-Target", "X-Gost-Target", "Keep-Alive",
                         "User-Agent", "a b", "", "\xe9"])
values = st.sampled_from(["keep-alive", "Keep-Alive", "close", "keep-alive, close", "chunked", "5", "05", "",
                          "5, 5", "x", "a  b", " a", "a ", "\xe9", "a\tb", "Basic dTpw", "-1", "1x"])
seps = st.sampled_from([": ", ": ", ":", " : "])
eols = st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"])
lines = st.lists(st.tuples(names, seps, values, eols).map("".join) | st.just(" folded\r\n"), max_size=6)
methods = st.sampled_from(["GET", "GET", "HEAD", "POST", "DELETE", "get", "G T", "CONNECT"])
targets = st.sampled_from(["http://h/", "http://127.0.0.1:18080/", "http://H.Example:80/a?b", "http://h/a?",
                           "http://h:65536/", "http://h:0/x", "http://h/a#f", "http://h/\xe9", "http://h",
                           "http://u@h/", "/p", "https://h/", "http://h/a%20b?c=d&e"])
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2"])


def _head(method, target, version, header_lines, eol):
    """A request head from generated parts, with the start of a next request after it."""
    return f"{method} {target} {version}\r\n{''.join(header_lines)}{eol}".encode("latin-1") + b"NEXT"


def _general_request(raw):
    """What handlers/httpfast.py's general branch makes of ``raw``, or None where the quick cut
    must not have answered (a parse error, a body, a close, another version)."""
    try:
        req, used = http.parse_request_head(bytearray(raw))
        target, path = hh._target(req)
        keep, body = http.request_framing(req)
    except (NeedData, ProtocolError):
        return None
    if body is not None or not keep or req.version != "HTTP/1.1":
        return None
    return req.method.encode("latin-1"), target, hh.upstream_request(req, path, keep), used


@PROPS
@given(methods, targets, versions, lines, eols)
@example("GET", "http://127.0.0.1:18080/", "HTTP/1.1", ["Host: 127.0.0.1:18080\r\n"], "\r\n")
@example("GET", "http://h/", "HTTP/1.1", ["Host: h\r\n", "Proxy-Connection: Keep-Alive\r\n",
                                          "Proxy-Authorization: Basic dTpw\r\n"], "\r\n")
@example("GET", "http://h/", "HTTP/1.1", ["Connection: keep-alive\r\n", "Content-Length: 0\r\n"], "\r\n")
def test_quick_request_is_the_general_request(method, target, version, header_lines, eol):
    raw = _head(method, target, version, header_lines, eol)
    quick = httpquick.request(bytearray(raw))
    if quick is None:
        return
    general = _general_request(raw)
    q_method, authority, data, used = quick
    # the session takes the authority only when it names its target (else the general path)
    target = hh._authority(authority.decode("ascii"))
    if target is None:
        assert general is None, (raw, quick)
        return
    assert general is not None, (raw, quick)
    assert (q_method, target, data, used) == general


def test_quick_request_takes_the_usual_shapes():
    """wrk, curl through a proxy (Proxy-Connection), python-requests (Connection: keep-alive)."""
    for raw, sent in [
        (b"GET http://127.0.0.1:8/ HTTP/1.1\r\nHost: 127.0.0.1:8\r\n\r\n",
         b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8\r\n\r\n"),
        (b"GET http://h/a?b HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
         b"Proxy-Connection: Keep-Alive\r\n\r\n",
         b"GET /a?b HTTP/1.1\r\nHost: h\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"),
        (b"HEAD http://h:81/ HTTP/1.1\r\nHost: h:81\r\nConnection: keep-alive\r\n\r\n",
         b"HEAD / HTTP/1.1\r\nHost: h:81\r\nConnection: keep-alive\r\n\r\n"),
    ]:
        assert httpquick.request(bytearray(raw + b"GET")) == (raw.split(b" ")[0], raw.split(b"/")[2].split(b" ")[0],
                                                               sent, len(raw))


def test_quick_request_leaves_the_rest_to_the_general_path():
    for raw in [
        b"GET http://h/ HTTP/1.1\r\nHost: h\r\n",                               # not all here yet
        b"POST http://h/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",            # a body
        b"GET http://h/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\nConnection: close\r\n\r\n",                # the last request
        b"GET http://h/ HTTP/1.0\r\n\r\n",
        b"GET http://h/ HTTP/1.1\r\nHost:  h\r\n\r\n",                          # not canonical
        b"GET http://h/ HTTP/1.1\nHost: h\n\n",
        b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n",                                 # origin form
        b"GET http://h/a#f HTTP/1.1\r\n\r\n",
        b"GET http://h/" + b"a" * http.MAX_HEAD + b" HTTP/1.1\r\n\r\n",        # too large
    ]:
        assert httpquick.request(bytearray(raw)) is None, raw


response_names = st.sampled_from(["Content-Length", "content-length", "Connection", "Transfer-Encoding",
                                  "Server", "ETag", "Keep-Alive", "a b"])
response_lines = st.lists(st.tuples(response_names, seps, values, eols).map("".join), max_size=5)


def _general_response(raw, method):
    """What the general branch sends a kept-alive HTTP/1.1 client, or None where the quick cut
    must not have answered."""
    req = http.Request(method, "/", "HTTP/1.1", http.Headers())
    try:
        resp, used = http.parse_response_head(bytearray(raw))
        if 100 <= resp.status < 200:
            return None
        head = hh.client_head(resp, req, True)
        keep, framer = http.response_framing(resp, method)
    except (NeedData, ProtocolError):
        return None
    if isinstance(framer, (http.UntilClose, http.ChunkedFramer)) or not keep:
        return None
    return head, used, 0 if framer is None else framer.left


@PROPS
@given(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]),
       st.sampled_from(["200", "204", "304", "404", "101", "100", "999", "20"]),
       st.sampled_from([" OK", " ", "", " Not Found"]), response_lines, eols, st.sampled_from(["GET", "HEAD"]))
@example("HTTP/1.1", "200", " OK", ["Content-Length: 5\r\n", "Connection: keep-alive\r\n"], "\r\n", "GET")
@example("HTTP/1.1", "200", " OK", ["Content-Length: 5\r\n", "Content-Length: 5\r\n"], "\r\n", "GET")
@example("HTTP/1.1", "304", " OK", ["Transfer-Encoding: chunked\r\n"], "\r\n", "GET")
def test_quick_response_is_the_general_response(version, status, reason, header_lines, eol, method):
    raw = f"{version} {status}{reason}\r\n{''.join(header_lines)}{eol}".encode("latin-1") + b"body"
    quick = httpquick.response(bytearray(raw), method.encode())
    if quick is None:
        return
    general = _general_response(raw, method)
    assert general is not None, (raw, quick)
    used, length = quick
    assert (raw[:used], used, length) == general


def test_quick_response_takes_nginx_and_leaves_the_rest():
    nginx = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 64\r\n"
             b"Connection: keep-alive\r\nETag: \"6754-40\"\r\n\r\n")
    assert httpquick.response(bytearray(nginx + b"x" * 10), b"GET") == (len(nginx), 64)
    assert httpquick.response(bytearray(nginx), b"HEAD") == (len(nginx), 0)
    for raw in [
        nginx[:-2],                                                              # not all here yet
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n",                                 # until close
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length:  5\r\n\r\n",
    ]:
        assert httpquick.response(bytearray(raw), b"GET") is None, raw


origin_targets = st.sampled_from(["/", "/p", "/a?b", "/a?", "/a#f", "/\xe9", "/r?u=http://x/", "*", "p",
                                  "http://h/", "/a%20b?c=d&e"])
origin_names = st.sampled_from(["Host", "host", "HOST", "Connection", "Content-Length", "Proxy-Connection",
                                "Gost-Target", "User-Agent", "a b"])
origin_values = st.sampled_from(["h", "h:81", "H.Example", "127.0.0.1:18080", "keep-alive", "close", "5", "",
                                 "a b", " h", "[::1]:80", "h:x"])
origin_lines = st.lists(st.tuples(origin_names, seps, origin_values, eols).map("".join), max_size=5)


def _general_origin(raw):
    """What handlers/revproxy.py's general path sends upstream for ``raw`` and the target it
    routes it by, or None where the quick cut must not have answered."""
    from gostg.handlers import revproxy
    from gostg.handlers.sniffing import sniffed_target
    from gostg.protocols import sniff as sp
    try:
        req, used = http.parse_request_head(bytearray(raw))
        keep, body = http.request_framing(req)
    except (NeedData, ProtocolError):
        return None
    if body is not None or not keep or req.version != "HTTP/1.1":
        return None
    target = sniffed_target(sp.of_request(req))
    data = hh.upstream_request(req, revproxy._origin_form(req.target), keep)
    return req.method.encode("latin-1"), target, data, used


@PROPS
@given(methods, origin_targets, versions, origin_lines, eols)
@example("GET", "/", "HTTP/1.1", ["Host: h\r\n", "Proxy-Connection: keep-alive\r\n"], "\r\n")
@example("GET", "/", "HTTP/1.1", ["Host: h\r\n", "host: i\r\n"], "\r\n")
def test_quick_origin_request_is_the_general_request(method, target, version, header_lines, eol):
    from gostg.handlers import revproxy
    raw = _head(method, target, version, header_lines, eol)
    quick = httpquick.origin_request(bytearray(raw))
    if quick is None:
        return
    general = _general_origin(raw)
    assert general is not None, (raw, quick)
    q_method, host, data, used = quick
    assert (q_method, revproxy._host_target(host), data, used) == general


def test_quick_origin_request_takes_wrk_and_curl():
    for raw in (b"GET /small HTTP/1.1\r\nHost: bench.local\r\n\r\n",
                b"GET /a?b HTTP/1.1\r\nHost: h:81\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"):
        method, host, data, used = httpquick.origin_request(bytearray(raw + b"GET"))
        assert (method, data, used) == (b"GET", raw, len(raw)) and host in (b"bench.local", b"h:81")
    for raw in (b"GET /p HTTP/1.1\r\n\r\n",                                    # no Host
                b"GET /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                # two
                b"GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
                b"GET /p?u=http://x/ HTTP/1.1\r\nHost: a\r\n\r\n"):            # read as an absolute URL
        assert httpquick.origin_request(bytearray(raw)) is None, raw
