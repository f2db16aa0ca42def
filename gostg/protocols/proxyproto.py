"""HAProxy's PROXY protocol, versions 1 (text) and 2 (binary), sans-IO.

A proxy in front of gostg (haproxy ``send-proxy``, nginx ``proxy_protocol on``, another GOST)
opens each connection with one header naming the client it accepted; gostg then uses that
address for admission, limiters and logs.

Rules (haproxy's proxy-protocol.txt):
1. A header is recognised by its signature only: ``"PROXY "`` (v1) or the 12-byte v2 signature.
   Bytes that cannot begin either are "no header" (GOST's listener makes the header optional);
   a buffer that is still a prefix of a signature needs more data.
2. v1 is one CRLF-terminated line of at most 107 bytes: ``PROXY TCP4|TCP6 src dst sport dport``
   or ``PROXY UNKNOWN …`` (addresses unknown: the receiver keeps the real peer).
3. v2 is 16 bytes (signature, version/command, family/transport, length) plus ``length`` bytes:
   the addresses for the family (INET 12, INET6 36, UNIX 216), then TLVs, which we skip (each
   must still fit: a TLV running past the header is garbage). Command LOCAL (a health check of
   the proxy itself) and family UNSPEC carry no client: the receiver keeps the real peer.
4. Anything else that starts with a signature is a ProtocolError: the connection is refused,
   never served with a made-up address.
"""
import ipaddress
import struct

from ..errors import NeedData, ProtocolError
from .reader import Reader

V1_SIG = b"PROXY "
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
#: longest v1 line, CRLF included (the spec's worst case: TCP6 with full addresses)
V1_MAX = 107

LOCAL, PROXY = 0, 1
UNSPEC, INET, INET6, UNIX = 0, 1, 2, 3
_V2_ADDR_LEN = {INET: 12, INET6: 36, UNIX: 216}
_FAMILY_NAMES = {UNSPEC: "UNSPEC", INET: "INET", INET6: "INET6", UNIX: "UNIX"}


class Header:
    """A parsed header. ``src``/``dst`` are ``(ip, port)`` when it names a client, else None
    (v1 UNKNOWN, v2 LOCAL, UNSPEC or UNIX)."""

    __slots__ = ("version", "command", "family", "src", "dst", "tlvs")

    def __init__(self, version, command=PROXY, family=UNSPEC, src=None, dst=None, tlvs=()):
        self.version, self.command, self.family = version, command, family
        self.src, self.dst, self.tlvs = src, dst, tuple(tlvs)

    def __eq__(self, other):
        return isinstance(other, Header) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __repr__(self):
        return (f"Header(v{self.version}, {'PROXY' if self.command else 'LOCAL'}, "
                f"{_FAMILY_NAMES.get(self.family, self.family)}, {self.src} -> {self.dst})")


def _is_prefix(buf, sig):
    n = min(len(buf), len(sig))
    return bytes(buf[:n]) == sig[:n]


def parse(buf):
    """→ ``(Header, used)``, or ``(None, 0)`` when ``buf`` does not start with a header.
    Raises NeedData while ``buf`` may still become one, ProtocolError on a malformed one."""
    if _is_prefix(buf, V1_SIG):
        if len(buf) < len(V1_SIG):
            raise NeedData()
        return _parse_v1(buf)
    if _is_prefix(buf, V2_SIG):
        if len(buf) < len(V2_SIG):
            raise NeedData()
        return _parse_v2(buf)
    return None, 0


def _port(tok):
    if not tok.isdigit() or len(tok) > 5 or (len(tok) > 1 and tok[0] == "0"):
        raise ProtocolError(f"PROXY v1: bad port {tok[:8]!r}")
    port = int(tok)
    if port > 65535:
        raise ProtocolError(f"PROXY v1: port out of range {tok!r}")
    return port


def _ip(tok, version):
    try:
        ip = ipaddress.ip_address(tok)
    except ValueError:
        raise ProtocolError(f"PROXY v1: bad address {tok[:48]!r}") from None
    if ip.version != version:
        raise ProtocolError(f"PROXY v1: {tok!r} is not an IPv{version} address")
    return str(ip)


def _parse_v1(buf):
    end = bytes(buf[:V1_MAX]).find(b"\r\n")
    if end < 0:
        if len(buf) >= V1_MAX:
            raise ProtocolError(f"PROXY v1: no CRLF within {V1_MAX} bytes")
        raise NeedData()
    try:
        line = bytes(buf[:end]).decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("PROXY v1: header is not ASCII") from None
    parts = line.split(" ")
    used = end + 2
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return Header(1, PROXY, UNSPEC), used   # the sender does not know the client
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProtocolError(f"PROXY v1: malformed header {line[:60]!r}")
    version = 4 if parts[1] == "TCP4" else 6
    src = (_ip(parts[2], version), _port(parts[4]))
    dst = (_ip(parts[3], version), _port(parts[5]))
    return Header(1, PROXY, INET if version == 4 else INET6, src, dst), used


def _parse_v2(buf):
    r = Reader(buf, len(V2_SIG))
    ver_cmd, fam = r.u8(), r.u8()
    length = r.u16()
    if ver_cmd >> 4 != 2:
        raise ProtocolError(f"PROXY v2: unsupported version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command not in (LOCAL, PROXY):
        raise ProtocolError(f"PROXY v2: unknown command {command}")
    family, transport = fam >> 4, fam & 0x0F
    if family not in _FAMILY_NAMES or transport > 2:
        raise ProtocolError(f"PROXY v2: unknown address family/transport 0x{fam:02x}")
    body = r.take(length)   # NeedData until the whole header is here
    used = r.pos
    if command == LOCAL or family == UNSPEC:
        # rule 3: the addresses (if any) say nothing about a client
        return Header(2, command, family if command == PROXY else UNSPEC), used
    need = _V2_ADDR_LEN[family]
    if length < need:
        raise ProtocolError(f"PROXY v2: {_FAMILY_NAMES[family]} needs {need} address bytes, header has {length}")
    b = Reader(body, partial=False)
    src = dst = None
    if family == INET:
        s, d = b.take(4), b.take(4)
        src = (str(ipaddress.IPv4Address(s)), b.u16())
        dst = (str(ipaddress.IPv4Address(d)), b.u16())
    elif family == INET6:
        s, d = b.take(16), b.take(16)
        src = (str(ipaddress.IPv6Address(s)), b.u16())
        dst = (str(ipaddress.IPv6Address(d)), b.u16())
    else:
        b.take(need)   # UNIX paths: no IP to decide on; the receiver keeps the real peer
    return Header(2, command, family, src, dst, _tlvs(b)), used


def _tlvs(b):
    out = []
    while b.pos < b.end:
        kind = b.u8()
        out.append((kind, b.take(b.u16())))   # ProtocolError if it runs past the header
    return out


# ---------------------------------------------------------------------------------------------
# Encoding: what a gostg service sends to the node or target behind it.

def _pair(src, dst):
    """Both addresses as ip_address objects of one family (an IPv4-mapped IPv6 address counts
    as IPv4; when the families still differ the IPv4 one is mapped to IPv6)."""
    a, b = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    a = a.ipv4_mapped or a if a.version == 6 else a
    b = b.ipv4_mapped or b if b.version == 6 else b
    if a.version != b.version:
        a, b = (ipaddress.IPv6Address(f"::ffff:{x}") if x.version == 4 else x for x in (a, b))
    return a, b


def encode(version, src, dst, tlvs=()):
    """The header announcing a client ``src`` = ``(ip, port)`` that reached ``dst``.
    Without both addresses (or with non-IP ones) it is v1 ``UNKNOWN`` / v2 ``LOCAL``."""
    try:
        a, b = _pair(src, dst) if src and dst else (None, None)
    except ValueError:
        a = b = None
    if version == 1:
        if a is None:
            return b"PROXY UNKNOWN\r\n"
        fam = "TCP4" if a.version == 4 else "TCP6"
        return f"PROXY {fam} {a} {b} {int(src[1])} {int(dst[1])}\r\n".encode("ascii")
    if version != 2:
        raise ValueError(f"PROXY protocol version must be 1 or 2, not {version!r}")
    extra = b"".join(struct.pack("!BH", k, len(v)) + v for k, v in tlvs)
    if a is None:
        return V2_SIG + struct.pack("!BBH", 0x20 | LOCAL, 0, len(extra)) + extra
    family = INET if a.version == 4 else INET6
    addrs = a.packed + b.packed + struct.pack("!HH", int(src[1]), int(dst[1]))
    return V2_SIG + struct.pack("!BBH", 0x20 | PROXY, family << 4 | 1, len(addrs) + len(extra)) + addrs + extra
