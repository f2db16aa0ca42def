"""DNS transport framing, sans-IO: bytes in, values out.

dnspython builds and parses the DNS messages themselves; this module only frames them for the
transports a nameserver may use (spec §6.3):
- TCP and TLS (DoT, RFC 7858): a 2-byte big-endian length before each message (RFC 1035 4.2.2).
- HTTPS (DoH, RFC 8484): ``POST path`` with ``application/dns-message`` (GOST's choice), or
  ``GET path?dns=<base64url>``, over HTTP/1.1; the reply body is the message.
Short input raises NeedData; input we cannot accept raises ProtocolError.
"""
import base64
import binascii
from urllib.parse import parse_qs, urlsplit

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from ..errors import NeedData, ProtocolError
from ..protocols import http
from ..protocols.reader import Reader

#: largest DoH body we accept (a DNS message cannot exceed 65535 bytes)
MAX_BODY = 65535


def tcp_frame(wire):
    if len(wire) > 0xFFFF:
        raise ProtocolError("DNS message longer than 65535 bytes")
    return len(wire).to_bytes(2, "big") + wire


def parse_tcp_frame(buf):
    """→ ``(message_bytes, used)``."""
    r = Reader(buf)
    n = r.u16()
    if n == 0:
        raise ProtocolError("empty DNS message on a stream transport")
    return bytes(r.take(n)), r.pos


def doh_request(path, host, wire, method="POST"):
    """An HTTP/1.1 DoH request for ``wire``; ``host`` goes in the Host header."""
    path = path or "/dns-query"
    if method == "GET":
        q = base64.urlsafe_b64encode(wire).rstrip(b"=").decode()
        sep = "&" if "?" in path else "?"
        head = f"GET {path}{sep}dns={q} HTTP/1.1\r\n"
        body = b""
        extra = ""
    else:
        head = f"POST {path} HTTP/1.1\r\n"
        body = wire
        extra = f"Content-Type: application/dns-message\r\nContent-Length: {len(wire)}\r\n"
    return (head + f"Host: {host}\r\nAccept: application/dns-message\r\n" + extra
            + "Connection: close\r\n\r\n").encode("latin-1") + body


def _dechunk(buf, pos):
    """A chunked body starting at ``pos`` → ``(body, end)``."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise ProtocolError("chunk size line too long")
            raise NeedData()
        size = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        if not size or not all(c in b"0123456789abcdefABCDEF" for c in size) or len(size) > 8:
            raise ProtocolError(f"bad chunk size {size[:20]!r}")
        n = int(size, 16)
        pos = eol + 2
        if n == 0:
            # trailer lines until an empty one
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    raise NeedData()
                if eol == pos:
                    return bytes(out), eol + 2
                pos = eol + 2
        if len(out) + n > MAX_BODY:
            raise ProtocolError("DoH body too large")
        if len(buf) < pos + n + 2:
            raise NeedData()
        out += buf[pos:pos + n]
        if buf[pos + n:pos + n + 2] != b"\r\n":
            raise ProtocolError("missing CRLF after chunk data")
        pos += n + 2


def parse_doh_response(buf, eof=False):
    """→ ``(status, body, used)``. A body without a length ends at EOF (``eof=True``)."""
    resp, end = http.parse_response_head(bytes(buf))
    if resp.headers.has_token("Transfer-Encoding", "chunked"):
        body, used = _dechunk(buf, end)
        return resp.status, body, used
    n = http.content_length(resp.headers)
    if n is None:
        if not eof:
            raise NeedData()
        n = len(buf) - end
    if n > MAX_BODY:
        raise ProtocolError("DoH body too large")
    if len(buf) < end + n:
        if eof:
            raise ProtocolError("DoH body cut short")
        raise NeedData()
    return resp.status, bytes(buf[end:end + n]), end + n


def parse_doh_request(method, target, content_type, body):
    """A DoH request (RFC 8484) → the DNS query bytes; ProtocolError with the HTTP status to
    answer (``reply``) otherwise. As GOST: any path; ``GET ?dns=<base64url>`` or ``POST`` with
    ``Content-Type: application/dns-message``."""
    if method == "GET":
        q = parse_qs(urlsplit(target).query).get("dns", [""])[0]
        try:
            data = base64.urlsafe_b64decode(q + "=" * (-len(q) % 4))
        except (binascii.Error, ValueError):
            raise ProtocolError("DoH: bad base64 in dns=", reply=400) from None
        if not data:
            raise ProtocolError("DoH: GET without dns=", reply=400)
        return data
    if method == "POST":
        ct = (content_type or "").split(";", 1)[0].strip().lower()
        if ct != "application/dns-message":
            raise ProtocolError(f"DoH: unsupported media type {ct[:60]!r}", reply=415)
        if not body:
            raise ProtocolError("DoH: empty body", reply=400)
        return bytes(body)
    raise ProtocolError(f"DoH: method {method[:20]!r} not allowed", reply=405)


def set_client_subnet(msg, ip):
    """Put an EDNS Client Subnet option (RFC 7871) for ``ip`` in the query ``msg``: /24 for
    IPv4, /64 for IPv6, as gostg's resolver does. A client's own ECS is replaced, and EDNS is
    switched on if the client had none (one OPT record, unlike GOST, which appends a second)."""
    bits = 64 if ":" in ip else 24
    ecs = dns.edns.ECSOption(ip, bits)
    if msg.edns < 0:
        msg.use_edns(0, options=[ecs])
        return
    keep = [o for o in msg.options if o.otype != dns.edns.OptionType.ECS]
    msg.use_edns(msg.edns, msg.ednsflags, msg.payload, options=keep + [ecs])


def message_ttl(msg):
    """Seconds a reply may be cached for: the smallest TTL in its answer; for an answer
    without records, the negative-caching TTL of its SOA (RFC 2308); else 0 (caller's
    default)."""
    ttls = [rrset.ttl for rrset in msg.answer]
    if ttls:
        return min(ttls)
    return answer(msg, dns.rdatatype.A)[1]


def reply_wire(msg, max_size=65535):
    """``msg`` as bytes of at most ``max_size``: a larger reply is truncated and has TC set
    (RFC 1035 4.2.1), so a UDP client asks again over TCP."""
    return msg.to_wire(max_size=max_size, prefer_truncation=True)


def with_id(data, qid):
    """Message bytes with their ID (the header's first field, RFC 1035 4.1.1) set to ``qid``:
    an upstream's reply passed on to the client whose query it answers."""
    return qid.to_bytes(2, "big") + bytes(data[2:])


def is_query(msg):
    """A message to answer: not itself a response (two servers must not answer each other)."""
    return not msg.flags & dns.flags.QR


def parse_message(data):
    """Wire bytes → dns.message.Message (ProtocolError when they are not a DNS message)."""
    try:
        return dns.message.from_wire(bytes(data))
    except Exception as exc:  # dnspython raises many types on garbage; all mean "not DNS"
        raise ProtocolError(f"bad DNS message: {exc}") from None


def answer(msg, rdtype):
    """→ ``(ips, ttl)``: the addresses of type ``rdtype`` in the answer section and the
    smallest TTL among them; for an answer without addresses, the negative-caching TTL of
    the SOA in the authority section (RFC 2308), else 0 (caller's default)."""
    ips, ttl = [], None
    for rrset in msg.answer:
        if rrset.rdtype == rdtype:
            ips.extend(rd.address for rd in rrset)
            ttl = rrset.ttl if ttl is None else min(ttl, rrset.ttl)
    if ttl is None:
        for rrset in msg.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                ttl = min(rrset.ttl, min(rd.minimum for rd in rrset))
                break
    return ips, ttl or 0


def cacheable(msg):
    """Only definite answers are cached: NOERROR (with or without data) and NXDOMAIN.
    A REFUSED or SERVFAIL is the server's trouble of the moment, not a fact about the name."""
    return msg.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
