"""SOCKS5 (RFC 1928, RFC 1929) messages, both directions.

Rules:
1. Client greets with VER=5 and its methods; server picks one (0xFF = none acceptable).
2. Method 0x02: one username/password sub-negotiation (VER=1), status 0 = success.
3. Request: VER CMD RSV ATYP ADDR PORT; reply has the same shape with REP in place of CMD.
Each ``parse_*`` returns the message and the number of bytes it used.
"""
import ipaddress
import socket
import struct

from ..errors import ProtocolError
from .reader import Reader

VERSION = 5
METHOD_NONE = 0x00
METHOD_USERPASS = 0x02
METHOD_NO_ACCEPTABLE = 0xFF

CMD_CONNECT = 1
CMD_BIND = 2
CMD_UDP = 3

ATYP_IPV4 = 1
ATYP_DOMAIN = 3
ATYP_IPV6 = 4

SUCCEEDED = 0
GENERAL_FAILURE = 1
NOT_ALLOWED = 2
NETWORK_UNREACHABLE = 3
HOST_UNREACHABLE = 4
CONNECTION_REFUSED = 5
TTL_EXPIRED = 6
COMMAND_NOT_SUPPORTED = 7
ADDRESS_NOT_SUPPORTED = 8

REPLY_TEXT = {
    SUCCEEDED: "succeeded", GENERAL_FAILURE: "general failure", NOT_ALLOWED: "not allowed",
    NETWORK_UNREACHABLE: "network unreachable", HOST_UNREACHABLE: "host unreachable",
    CONNECTION_REFUSED: "connection refused", TTL_EXPIRED: "TTL expired",
    COMMAND_NOT_SUPPORTED: "command not supported", ADDRESS_NOT_SUPPORTED: "address type not supported",
}


def _version(r):
    v = r.u8()
    if v != VERSION:
        raise ProtocolError(f"bad SOCKS version {v:#x}")


def read_addr(r):
    atyp = r.u8()
    if atyp == ATYP_IPV4:
        host = socket.inet_ntop(socket.AF_INET, r.take(4))
    elif atyp == ATYP_IPV6:
        host = socket.inet_ntop(socket.AF_INET6, r.take(16))
    elif atyp == ATYP_DOMAIN:
        raw = r.counted()
        if not raw:
            raise ProtocolError("empty domain name", reply=ADDRESS_NOT_SUPPORTED)
        try:
            host = raw.decode("utf-8")  # passed on as sent, as GOST does
        except UnicodeError:
            raise ProtocolError("undecodable domain name", reply=ADDRESS_NOT_SUPPORTED) from None
    else:
        raise ProtocolError(f"bad address type {atyp:#x}", reply=ADDRESS_NOT_SUPPORTED)
    return host, r.u16()


def encode_addr(host, port):
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raw = host.encode("utf-8")
        if not raw or len(raw) > 255:
            raise ProtocolError(f"cannot encode domain name of {len(raw)} bytes")
        return bytes((ATYP_DOMAIN, len(raw))) + raw + struct.pack("!H", port)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped   # as gosocks5 (Go's To4): ::ffff:a.b.c.d goes as IPv4
    if ip.version == 4:
        return bytes((ATYP_IPV4,)) + ip.packed + struct.pack("!H", port)
    return bytes((ATYP_IPV6,)) + ip.packed + struct.pack("!H", port)


def parse_greeting(buf):
    r = Reader(buf)
    _version(r)
    n = r.u8()
    if n == 0:
        raise ProtocolError("no methods offered")
    return set(r.take(n)), r.pos


def encode_greeting(methods):
    return bytes((VERSION, len(methods))) + bytes(methods)


def parse_method_reply(buf):
    r = Reader(buf)
    _version(r)
    return r.u8(), r.pos


def encode_method_reply(method):
    return bytes((VERSION, method))


def parse_userpass(buf):
    r = Reader(buf)
    v = r.u8()
    if v != 1:
        raise ProtocolError(f"bad auth sub-negotiation version {v:#x}")
    user = r.counted()
    password = r.counted()
    return user.decode("utf-8", "replace"), password.decode("utf-8", "replace"), r.pos


def encode_userpass(user, password):
    u, p = user.encode(), password.encode()
    if len(u) > 255 or len(p) > 255:
        raise ProtocolError("username or password longer than 255 bytes")
    return bytes((1, len(u))) + u + bytes((len(p),)) + p


def parse_userpass_reply(buf):
    r = Reader(buf)
    r.u8()
    return r.u8(), r.pos


def encode_userpass_reply(ok):
    return bytes((1, 0 if ok else 1))


def parse_request(buf):
    """→ ``(cmd, host, port, used)``."""
    r = Reader(buf)
    _version(r)
    cmd = r.u8()
    r.u8()  # RSV
    host, port = read_addr(r)
    return cmd, host, port, r.pos


def encode_request(cmd, host, port):
    return bytes((VERSION, cmd, 0)) + encode_addr(host, port)


def parse_reply(buf):
    """→ ``(rep, host, port, used)``."""
    r = Reader(buf)
    _version(r)
    rep = r.u8()
    r.u8()
    host, port = read_addr(r)
    return rep, host, port, r.pos


def encode_reply(rep, host="0.0.0.0", port=0):
    if port == 0 and host == "0.0.0.0":   # GOST's reply to CONNECT: no bound address
        return bytes((VERSION, rep, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0))
    return bytes((VERSION, rep, 0)) + encode_addr(host, port)


# --- UDP (RFC 1928 §7) and GOST's UDP-TUN framing -------------------------------------------
# A datagram header is RSV(2) FRAG(1) ATYP ADDR PORT. Over a stream GOST reuses it: RSV carries
# the payload length and FRAG is 0xFF, so frames can be cut out of the byte stream (UDP-TUN,
# CMD 0xF3; the same framing carries relay and http UDP).

CMD_MBIND = 0xF2
CMD_UDP_TUN = 0xF3
FRAG_TUN = 0xFF
#: the largest UDP payload (IPv4 limit); UDP-TUN's 16-bit length cannot say more either
MAX_DATAGRAM = 65535


def encode_udp_datagram(host, port, data):
    """A standard SOCKS5 UDP datagram (RSV 0, FRAG 0)."""
    return b"\0\0\0" + encode_addr(host, port) + data


def parse_udp_datagram(buf):
    """→ ``(host, port, payload)`` of one whole datagram. Fragments (FRAG ≠ 0) are refused,
    as most servers do: nothing sends them."""
    r = Reader(buf, partial=False)
    r.u16()
    frag = r.u8()
    if frag != 0:
        raise ProtocolError(f"fragmented datagram (FRAG={frag}) not supported")
    host, port = read_addr(r)
    return host, port, bytes(buf[r.pos:])


def encode_udp_tun(host, port, data):
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return struct.pack("!HB", len(data), FRAG_TUN) + encode_addr(host, port) + data


def parse_udp_tun(buf):
    """One UDP-TUN frame off a stream → ``(host, port, payload, used)``; NeedData when short.
    RSV = 0 is a zero-length datagram (GOST always writes the length)."""
    r = Reader(buf)
    length = r.u16()
    r.u8()  # FRAG: 0xFF from GOST, 0 from plain SOCKS5 code; the length rules either way
    host, port = read_addr(r)
    data = r.take(length)
    return host, port, data, r.pos
