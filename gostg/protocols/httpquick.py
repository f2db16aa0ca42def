"""The commonest kept-alive exchange of a plain HTTP proxy, cut at the byte level.

``protocols/http.py`` parses any head into a Request/Response and encodes it back. For the
steady state of a kept-alive session (handlers/httpfast.py) that object round trip was most
of the Python time per request. The two functions here recognise only the usual shape and
say None for anything else, so that the caller takes the general path for it:

- a request ``METHOD http://host[:port]/path HTTP/1.1`` in canonical header shape (what
  ``http._CANONICAL`` accepts) with no body headers and a Connection that is absent or just
  ``keep-alive``. Its upstream form is the same bytes with the origin-form path in the request
  line and the proxy's hop headers (``handlers/http._HOP_HEADERS``) left out;
- the same request in origin form (``METHOD /path HTTP/1.1``, what a reverse proxy gets) with
  exactly one Host header, which names its target instead (``origin_request``);
- a response ``HTTP/1.1 NNN reason`` in canonical shape, not 1xx, with a Content-Length (or no
  body by status or method), no Transfer-Encoding and a Connection absent or ``keep-alive``.
  For a kept-alive HTTP/1.1 client its head goes to the client unchanged.

Rule: whatever these accept, the general path would turn into the very same bytes and the same
framing (tests/unit/test_httpquick.py checks it over generated heads).
"""
import re

from .http import MAX_HEAD

_T = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_V = rb"[^ \t\r\n\x0b\x0c]"
_LINES = rb"((?:" + _T + rb": (?:" + _V + rb"(?:[^\r\n\x0b\x0c]*" + _V + rb")?)?\r\n)*+)\r\n"
# The path: printable ASCII but "#" (handlers/http._URL_ODD sends anything else through
# urlsplit); a "/" right after the authority, which is a plain name or IPv4 with a port.
_REQUEST = re.compile(rb"(" + _T + rb") http://([A-Za-z0-9.-]+(?::[0-9]{1,5})?)(/[!\"$-~]*) HTTP/1\.1\r\n" + _LINES)
_RESPONSE = re.compile(rb"HTTP/1\.1 ([0-9]{3}) [^\r\n]*\r\n" + _LINES)
# header names that make a request or response other than the usual one (checked on the
# header block with "\r\n" in front, so each name is matched at a line start)
_REQUEST_ODD = re.compile(rb"\n(?:connection|transfer-encoding|content-length|proxy-authorization"
                          rb"|proxy-connection|gost-target|x-gost-target):", re.IGNORECASE)
_RESPONSE_LINE = re.compile(rb"\n(?:(connection)|(transfer-encoding)|(content-length)): ([^\r\n]*)",
                            re.IGNORECASE)
_HOP_LINE = re.compile(rb"(?<=\n)(?:proxy-authorization|proxy-connection|gost-target|x-gost-target):"
                       rb"[^\r\n]*\r\n", re.IGNORECASE)
_CONNECTION_LINE = re.compile(rb"\nconnection: ([^\r\n]*)", re.IGNORECASE)
_ORIGIN_REQUEST = re.compile(rb"(" + _T + rb") (/[!\"$-~]*) HTTP/1\.1\r\n" + _LINES)
_HOST_LINE = re.compile(rb"\nhost: ([^\r\n]*)", re.IGNORECASE)


def request(buf):
    """→ ``(method, authority, upstream request, used)`` (bytes but ``used``) for the usual request at the start
    of ``buf``, or None (not that shape, or not all of it here yet)."""
    m = _REQUEST.match(buf)
    if m is None or m.end() > MAX_HEAD:
        return None
    method, authority, path, lines = m.groups()
    if path.endswith(b"?"):   # urlsplit drops an empty query's "?": the general path says what
        return None
    block = b"\r\n" + lines
    if _REQUEST_ODD.search(block) is not None:
        block = _usual_hop_headers(block)
        if block is None:
            return None
    return method, authority, b"%s %s HTTP/1.1%s\r\n" % (method, path, block), m.end()


def origin_request(buf):
    """→ ``(method, Host value, upstream request, used)`` (bytes but ``used``) for the usual
    origin-form request at the start of ``buf``, or None. A target with "://" in it is read as
    an absolute URL by the general path (sniff.of_request): None."""
    m = _ORIGIN_REQUEST.match(buf)
    if m is None or m.end() > MAX_HEAD:
        return None
    method, path, lines = m.groups()
    if b"://" in path:
        return None
    block = b"\r\n" + lines
    hosts = _HOST_LINE.findall(block)
    if len(hosts) != 1:
        return None
    if _REQUEST_ODD.search(block) is not None:
        block = _usual_hop_headers(block)
        if block is None:
            return None
    return method, hosts[0], b"%s %s HTTP/1.1%s\r\n" % (method, path, block), m.end()


def _usual_hop_headers(block):
    """``block`` without the proxy's hop headers, when Connection is at most ``keep-alive``
    and there is no body header; else None."""
    kept = _HOP_LINE.sub(b"", block)
    for v in _CONNECTION_LINE.findall(kept):
        if v.lower() != b"keep-alive":
            return None
    if re.search(rb"\n(?:transfer-encoding|content-length):", kept, re.IGNORECASE):
        return None
    return kept


#: statuses whose responses have no body (RFC 9112 §6.3)
_NO_BODY = frozenset((204, 304))


def response(buf, method):
    """→ ``(used, body length)`` for the usual response at the start of ``buf`` to a request
    with ``method``, or None. Its head goes to the client as it is."""
    m = _RESPONSE.match(buf)
    if m is None or m.end() > MAX_HEAD:
        return None
    status = int(m.group(1))
    if status < 200:
        return None
    length = None
    for conn, te, cl, v in _RESPONSE_LINE.findall(b"\r\n" + m.group(2)):
        if conn:
            if v.lower() != b"keep-alive":
                return None
        elif te or length is not None or not v.isdigit():
            return None   # chunked, several Content-Lengths or an odd one: the general path's
        else:
            length = int(v)
    if method == b"HEAD" or status in _NO_BODY:
        return m.end(), 0
    if length is None:
        return None   # until close
    return m.end(), length
