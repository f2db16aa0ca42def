"""HTTP/1.x message heads and body framing, for the proxy handler and the CONNECT connector.

Rules:
1. A head ends at the first CRLFCRLF (bare LF tolerated) and may not exceed ``MAX_HEAD``.
2. Body length (RFC 9112 §6): Transfer-Encoding chunked wins over Content-Length; a request
   with neither has no body; a response to HEAD, or 1xx/204/304, has no body; any other
   response without either runs until the connection closes.
3. The proxy passes bodies through unchanged; ``ChunkedFramer`` only finds where they end.
"""
import base64
import re

from ..errors import NeedData, ProtocolError

MAX_HEAD = 64 * 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_T = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"   # an RFC 9110 token (method, header name)
_TOKEN_RE = re.compile(_T)


class Headers:
    """Ordered, case-insensitive header list that keeps the peer's spelling.

    Parsed from a head in canonical shape (see ``_CANONICAL``) it keeps that text and builds
    the list only when asked: a head forwarded unchanged is never split into pairs and is
    re-encoded byte for byte."""

    __slots__ = ("_items", "_raw")

    def __init__(self, items=None, raw=None):
        self._items = list(items or []) if raw is None else None
        self._raw = raw   # the "Name: value\r\n" lines, while the headers are unchanged

    def _list(self):
        if self._items is None:
            self._items = _HEADER.findall(self._raw)
        return self._items

    @property
    def items(self):
        items = self._list()
        self._raw = None   # the caller may change the list: the text no longer speaks for it
        return items

    @items.setter
    def items(self, items):
        self._items, self._raw = items, None

    def get(self, name, default=None):
        n = name.lower()
        for k, v in self._list():
            if k.lower() == n:
                return v
        return default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self._list() if k.lower() == n]

    def remove(self, name):
        n = name.lower()
        self.items = [(k, v) for k, v in self._list() if k.lower() != n]

    def remove_all(self, lowered):
        """Drops every header whose lower-cased name is in ``lowered`` (a set), in one pass."""
        if self._raw is not None and type(lowered) is frozenset \
                and not _names_line(lowered).search(self._raw):
            return   # canonical text: unchanged (and unsplit) when none is there
        items = self._list()
        kept = [kv for kv in items if kv[0].lower() not in lowered]
        if len(kept) != len(items):
            self.items = kept

    def set(self, name, value):
        self.remove(name)
        self._items.append((name, value))

    def has_token(self, name, token):
        token = token.lower()
        return any(token == t.strip().lower() for v in self.get_all(name) for t in v.split(","))

    def text(self):
        if self._raw is not None:
            return self._raw
        return "".join([f"{k}: {v}\r\n" for k, v in self._items])

    def encode(self):
        return self.text().encode("latin-1")


_NAMES_LINE = {}


def _names_line(lowered):
    """A regex finding a canonical header line named by one of ``lowered`` (memoised)."""
    r = _NAMES_LINE.get(lowered)
    if r is None:
        r = _NAMES_LINE[lowered] = re.compile(
            "^(?:%s):" % "|".join(map(re.escape, sorted(lowered))), re.IGNORECASE | re.MULTILINE | re.ASCII)
    return r


class Request:
    __slots__ = ("method", "target", "version", "headers")

    def __init__(self, method, target, version, headers):
        self.method, self.target, self.version, self.headers = method, target, version, headers

    def encode(self):
        return f"{self.method} {self.target} {self.version}\r\n{self.headers.text()}\r\n".encode("latin-1")


class Response:
    __slots__ = ("version", "status", "reason", "headers")

    def __init__(self, version, status, reason, headers):
        self.version, self.status, self.reason, self.headers = version, status, reason, headers

    def encode(self):
        return f"{self.version} {self.status} {self.reason}\r\n{self.headers.text()}\r\n".encode("latin-1")


def _head_end(buf):
    """Index just past the blank line ending the head, or raise NeedData/ProtocolError."""
    i = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    # a bare-LF blank line may end the head earlier (only a CRLF head skips the second search)
    j = buf.find(b"\n\n", 0, MAX_HEAD + 2 if i < 0 else i + 2)
    if j >= 0:
        end = j + 2
    elif i >= 0:
        end = i + 4
    else:
        if len(buf) > MAX_HEAD:
            raise ProtocolError("HTTP head too large", reply=431)
        raise NeedData()
    if end > MAX_HEAD:
        raise ProtocolError("HTTP head too large", reply=431)
    return end


# HTTP whitespace a header value is trimmed of (bytes.strip()'s set: str.strip() would also
# take latin-1's NBSP and NEL)
_WS = " \t\r\n\x0b\x0c"


def _parse_headers(lines):
    items = []
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":
            if not items:
                raise ProtocolError("header continuation without a header")
            k, v = items[-1]
            items[-1] = (k, v + " " + line.strip(_WS))
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise ProtocolError(f"bad header line {line[:40].encode('latin-1')!r}")
        items.append((name, value.strip(_WS)))
    return Headers(items)


def _lines(text):
    """The head's lines (CRLF, or a bare LF anywhere: either ends a line)."""
    if text.count("\n") != text.count("\r\n"):  # a bare LF somewhere: split on either
        return text.replace("\r\n", "\n").split("\n")
    return text.split("\r\n")


# A head in canonical shape: CRLF lines "Name: value" (one space after the colon, no blanks
# around the value, no VT, FF or lone CR; folded lines are not canonical) is exactly what
# encode() would write back. It parses with one regex call and keeps its header text; any
# other head goes the line-by-line way below to the same result (tests/unit/test_http_parse.py).
_V = r"[^ \t\r\n\x0b\x0c]"
# (possessive "*+": a header line never starts with CRLF, so giving lines back cannot help)
_CANONICAL = rf"((?:{_T}: (?:{_V}(?:[^\r\n\x0b\x0c]*{_V})?)?\r\n)*+)\r\n"
_CANONICAL_REQUEST = re.compile(rf"({_T}) ([^ \r\n]+) (HTTP/1\.[01])\r\n{_CANONICAL}")
_CANONICAL_RESPONSE = re.compile(rf"(HTTP/1\.[^ \r\n]*) ([0-9]{{3}}) ([^\r\n]*)\r\n{_CANONICAL}")
_HEADER = re.compile(rf"({_T}): ([^\r\n]*)\r\n")
# over "\n" + the lower-cased text (cheaper than a case-blind match: latin-1 lower-cases
# only letters, and framing reads its tokens lower-cased and its lengths as digits anyway)
_FRAMING_LINE = re.compile(r"\n(?:(connection)|(transfer-encoding)|(content-length)): ([^\r\n]*)")


def _canonical(pattern, buf):
    """The canonical-shape match at the start of a small ``buf`` (its end is where
    ``_head_end`` would put it: such a head has no bare LF), or None."""
    if len(buf) <= _SMALL:
        return pattern.match(buf.decode("latin-1"))   # latin-1: one code point per byte
    return None


_SMALL = 4096


def parse_request_head(buf):
    """→ ``(Request, used)``; the request line must be ``METHOD SP target SP HTTP/x.y``."""
    m = _canonical(_CANONICAL_REQUEST, buf)
    if m is not None:
        method, target, version, lines = m.groups()
        return Request(method, target, version, Headers(raw=lines)), m.end()
    end = _head_end(buf)
    return _request_from_lines(_lines(buf[:end].decode("latin-1"))), end


def _request_from_lines(lines):
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN_RE.fullmatch(parts[0]) or not parts[1]:
        raise ProtocolError(f"bad request line {lines[0][:60].encode('latin-1')!r}")
    version = parts[2]
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        raise ProtocolError(f"unsupported HTTP version {version[:20]!r}", reply=505)
    return Request(parts[0], parts[1], version, _parse_headers(lines[1:]))


def parse_response_head(buf):
    """→ ``(Response, used)``."""
    m = _canonical(_CANONICAL_RESPONSE, buf)
    if m is not None:
        version, status, reason, lines = m.groups()
        return Response(version, int(status), reason, Headers(raw=lines)), m.end()
    end = _head_end(buf)
    return _response_from_lines(_lines(buf[:end].decode("latin-1"))), end


def _response_from_lines(lines):
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit() \
            or not parts[1].isascii():
        raise ProtocolError(f"bad status line {lines[0][:60].encode('latin-1')!r}")
    reason = parts[2] if len(parts) == 3 else ""
    return Response(parts[0], int(parts[1]), reason, _parse_headers(lines[1:]))


_FRAMING = {"connection": 0, "transfer-encoding": 1, "content-length": 2}


def framing_headers(headers):
    """One pass over ``headers`` → ``(Connection values, Transfer-Encoding values,
    Content-Length values)``: all that keep-alive and body framing depend on."""
    found = ([], [], [])
    if headers._raw is not None:   # canonical text: only the lines that matter are looked at
        for conn, te, cl, v in _FRAMING_LINE.findall("\n" + headers._raw.lower()):
            found[0 if conn else 1 if te else 2].append(v)
        return found
    get = _FRAMING.get
    for k, v in headers._list():
        i = get(k.lower())
        if i is not None:
            found[i].append(v)
    return found


def _tokens(values):
    if len(values) == 1 and "," not in values[0]:   # the usual single token
        return {values[0].strip().lower()}
    return {t.strip().lower() for v in values for t in v.split(",")}


def _content_length(values):
    if not values:
        return None
    if len(values) == 1 and "," not in values[0]:
        vals = {values[0].strip()}
    else:
        vals = {v.strip() for val in values for v in val.split(",")}
    if len(vals) != 1:
        raise ProtocolError("conflicting Content-Length")
    v = vals.pop()
    if not (v.isascii() and v.isdigit()):
        raise ProtocolError(f"bad Content-Length {v[:20]!r}")
    return int(v)


def content_length(headers):
    """The one Content-Length of ``headers`` (a list of equal values counts as one), or None;
    conflicting or malformed values are a ProtocolError (RFC 9112 §6.3 rule 5)."""
    return _content_length(headers.get_all("Content-Length"))


def _keep_alive(version, connection):
    if not connection:
        return version != "HTTP/1.0"
    tokens = _tokens(connection)
    if "close" in tokens:
        return False
    return version != "HTTP/1.0" or "keep-alive" in tokens


def keep_alive(version, headers):
    """Whether the sender of these headers expects the connection to stay open."""
    return _keep_alive(version, headers.get_all("Connection"))


def request_framing(req):
    """→ ``(keep_alive, body framer or None)`` of a request, from one pass over its headers."""
    connection, te, cl = framing_headers(req.headers)
    if te and "chunked" in _tokens(te):
        return _keep_alive(req.version, connection), ChunkedFramer()
    n = _content_length(cl)
    return _keep_alive(req.version, connection), (LengthFramer(n) if n else None)


def request_body(req):
    """A framer for the request body, or None when there is no body."""
    return request_framing(req)[1]


def response_framing(resp, method):
    """→ ``(keep_alive, body framer)`` of a response; framer None = no body, ``UntilClose`` =
    read to EOF."""
    connection, te, cl = framing_headers(resp.headers)
    keep = _keep_alive(resp.version, connection)
    if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
        return keep, None
    if te and "chunked" in _tokens(te):
        return keep, ChunkedFramer()
    n = _content_length(cl)
    if n is None:
        return keep, UntilClose()
    return keep, (LengthFramer(n) if n else None)


def response_body(resp, method):
    """A framer for the response body; None = no body; ``UntilClose`` = read to EOF."""
    return response_framing(resp, method)[1]


class LengthFramer:
    __slots__ = ("left",)

    def __init__(self, n):
        self.left = n

    @property
    def done(self):
        return self.left == 0

    def feed(self, data):
        """How many leading bytes of ``data`` belong to the body."""
        n = min(self.left, len(data))
        self.left -= n
        return n


class UntilClose:
    done = False

    def feed(self, data):
        return len(data)


class ChunkedFramer:
    """Finds the end of a chunked body without decoding it.

    States: size line → data (+CRLF) → … → last chunk (size 0) → trailer lines → blank line.
    """

    __slots__ = ("state", "left", "line", "done")
    MAX_LINE = 4096

    def __init__(self):
        self.state = "size"
        self.left = 0
        self.line = bytearray()
        self.done = False

    def feed(self, data):
        mv = memoryview(data)
        i, n = 0, len(mv)
        while i < n and not self.done:
            if self.state == "data":
                take = min(self.left, n - i)
                i += take
                self.left -= take
                if self.left == 0:
                    self.state = "size"
                    self.left = -1  # CRLF after data must be skipped: an empty size line
                continue
            j = bytes(mv[i:min(n, i + self.MAX_LINE + 1)]).find(b"\n")
            if j < 0:
                self.line += mv[i:]
                if len(self.line) > self.MAX_LINE:
                    raise ProtocolError("chunk line too long")
                return n
            self.line += mv[i:i + j]
            i += j + 1
            line = bytes(self.line).strip()
            self.line = bytearray()
            self._line(line)
        return i

    def _line(self, line):
        if self.state == "size":
            if self.left == -1:  # the CRLF closing a data chunk
                self.left = 0
                if line:
                    raise ProtocolError("missing CRLF after chunk data")
                return
            size = line.split(b";", 1)[0].strip()
            # RFC 9112: 1*HEXDIG only; int() would also take "0x5", "+5", "1_0" — a smuggling risk
            if not _HEX.fullmatch(size):
                raise ProtocolError(f"bad chunk size {size[:20]!r}")
            self.left = int(size, 16)
            self.state = "data" if self.left else "trailer"
        elif self.state == "trailer":
            if not line:
                self.done = True


def basic_credentials(value):
    """An ``Authorization: Basic …`` value → ``(user, password)``, or None when it is not
    Basic or does not decode (strict base64, UTF-8)."""
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeError):
        return None
    return user, password
