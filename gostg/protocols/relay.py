"""GOST's relay protocol (``go-gost/relay``), both directions.

Rules:
1. Request:  VER=0x01 | CMD/FLAGS(1) | FEALEN(2, BE) | FEATURES.
   Response: VER=0x01 | STATUS(1)    | FEALEN(2, BE) | FEATURES.
   The low nibble of CMD is the command (0 or 1 CONNECT, 2 BIND, 3 ASSOCIATE); 0x80 is the
   legacy UDP flag (superseded by the Network feature).
2. FEATURES is exactly FEALEN bytes of TYPE(1) | LEN(2, BE) | DATA records. A record that runs
   past the block, or whose DATA is too short for its type, or an unknown TYPE, is a protocol
   error (GOST refuses them too); bytes after a feature's own fields are ignored, as GOST does.
3. Features: 0x01 UserAuth ``ULEN USER PLEN PASS``; 0x02 Addr ``ATYP ADDR PORT`` (ATYP 1 IPv4,
   3 domain = LEN(1)+name, 4 IPv6); 0x03 Tunnel (an id of at least 16 bytes, kept raw);
   0x04 Network ``u16`` (0 tcp, 1 udp, 2 ip, 0x10 unix, 0x11 serial; unknown ids mean tcp).
4. A version other than 1 is refused as soon as its byte is seen; until FEALEN bytes of
   features have arrived the answer is ``NeedData``.
Each ``parse_*`` returns the message and the number of bytes it used.
"""
import ipaddress
import socket
import struct
import uuid
from dataclasses import dataclass

from ..errors import ProtocolError
from .addr import join_host_port, split_host_port
from .reader import Reader

VERSION = 0x01

CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_ASSOCIATE = 0x03
CMD_MASK = 0x0F
FLAG_UDP = 0x80

STATUS_OK = 0x00
STATUS_BAD_REQUEST = 0x01
STATUS_UNAUTHORIZED = 0x02
STATUS_FORBIDDEN = 0x03
STATUS_TIMEOUT = 0x04
STATUS_SERVICE_UNAVAILABLE = 0x05
STATUS_HOST_UNREACHABLE = 0x06
STATUS_NETWORK_UNREACHABLE = 0x07
STATUS_INTERNAL_SERVER_ERROR = 0x08

STATUS_TEXT = {
    STATUS_OK: "ok", STATUS_BAD_REQUEST: "bad request", STATUS_UNAUTHORIZED: "unauthorized",
    STATUS_FORBIDDEN: "forbidden", STATUS_TIMEOUT: "timeout",
    STATUS_SERVICE_UNAVAILABLE: "service unavailable", STATUS_HOST_UNREACHABLE: "host unreachable",
    STATUS_NETWORK_UNREACHABLE: "network unreachable",
    STATUS_INTERNAL_SERVER_ERROR: "internal server error",
}

FEATURE_USER_AUTH = 0x01
FEATURE_ADDR = 0x02
FEATURE_TUNNEL = 0x03
FEATURE_NETWORK = 0x04

ATYP_IPV4 = 1
ATYP_DOMAIN = 3
ATYP_IPV6 = 4

NETWORK_TCP = 0x00
NETWORK_UDP = 0x01
NETWORK_IP = 0x02
NETWORK_UNIX = 0x10
NETWORK_SERIAL = 0x11
NETWORK_NAMES = {NETWORK_TCP: "tcp", NETWORK_UDP: "udp", NETWORK_IP: "ip",
                 NETWORK_UNIX: "unix", NETWORK_SERIAL: "serial"}

#: a tunnel/connector id is 16 bytes (GOST's TunnelID adds flag, reserved and weight: 20)
TUNNEL_ID_LEN = 16

_HEADER = struct.Struct("!BBH")
_FEATURE_HEADER = struct.Struct("!BH")


@dataclass(frozen=True)
class UserAuth:
    user: str = ""
    password: str = ""
    type = FEATURE_USER_AUTH


@dataclass(frozen=True)
class Addr:
    host: str = ""
    port: int = 0
    type = FEATURE_ADDR


@dataclass(frozen=True)
class Tunnel:
    raw: bytes = bytes(TUNNEL_ID_LEN)
    type = FEATURE_TUNNEL


@dataclass(frozen=True)
class Network:
    network: int = NETWORK_TCP
    type = FEATURE_NETWORK

    @property
    def name(self):
        return NETWORK_NAMES.get(self.network, "tcp")


@dataclass(frozen=True)
class Request:
    cmd: int = CMD_CONNECT  # the whole CMD/FLAGS byte
    features: tuple = ()

    def find(self, ftype):
        """The last feature of that class (GOST lets a later one win), or None."""
        return next((f for f in reversed(self.features) if isinstance(f, ftype)), None)

    @property
    def command(self):
        return self.cmd & CMD_MASK


@dataclass(frozen=True)
class Response:
    status: int = STATUS_OK
    features: tuple = ()

    find = Request.find


# --- features -----------------------------------------------------------------------------

def addr_from_text(address):
    """GOST's AddrFeature.ParseFrom: "host:port", or (not a host:port) all of it the host, port 0."""
    try:
        host, port = split_host_port(address, 0)
    except Exception:
        host, port = address, 0
    return Addr(host, port)


def _encode_user_auth(f):
    u, p = f.user.encode("utf-8"), f.password.encode("utf-8")
    if len(u) > 255 or len(p) > 255:
        raise ProtocolError("relay: username or password longer than 255 bytes")
    return bytes((len(u),)) + u + bytes((len(p),)) + p


_addr_heads = {}


def _encode_addr(f):
    if not 0 <= f.port <= 0xFFFF:
        raise ProtocolError(f"relay: port {f.port} out of range")
    head = _addr_heads.get(f.host)
    if head is None:   # memoised: a tunnel names the same few hosts on every stream
        head = _addr_head(f.host)
        if len(_addr_heads) >= 1024:
            _addr_heads.clear()
        _addr_heads[f.host] = head
    return head + struct.pack("!H", f.port)


def _addr_head(host):
    """The address type and address of ``host`` (an IP or a domain name)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raw = host.encode("utf-8")
        if len(raw) > 255:
            raise ProtocolError(f"relay: domain name of {len(raw)} bytes") from None
        return bytes((ATYP_DOMAIN, len(raw))) + raw
    if ip.version == 6 and ip.ipv4_mapped is not None:  # Go's To4() sees these as IPv4
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return bytes((ATYP_IPV4,)) + ip.packed
    return bytes((ATYP_IPV6,)) + ip.packed


def _encode_tunnel(f):
    if len(f.raw) < TUNNEL_ID_LEN:
        raise ProtocolError("relay: tunnel id shorter than 16 bytes")
    return bytes(f.raw)


def _encode_network(f):
    return struct.pack("!H", f.network)


_ENCODERS = {UserAuth: _encode_user_auth, Addr: _encode_addr, Tunnel: _encode_tunnel,
             Network: _encode_network}


def encode_feature(f):
    data = _ENCODERS[type(f)](f)
    return _FEATURE_HEADER.pack(f.type, len(data)) + data


def _text(raw, what):
    try:
        return raw.decode("utf-8")
    except UnicodeError:
        raise ProtocolError(f"relay: undecodable {what}") from None


def _decode_user_auth(r):
    user = r.counted()
    password = r.counted()
    return UserAuth(_text(user, "username"), _text(password, "password"))


def _decode_addr(r):
    atyp = r.u8()
    if atyp == ATYP_IPV4:
        host = socket.inet_ntop(socket.AF_INET, r.take(4))
    elif atyp == ATYP_IPV6:
        host = socket.inet_ntop(socket.AF_INET6, r.take(16))
    elif atyp == ATYP_DOMAIN:
        host = _text(r.counted(), "domain name")
    else:
        raise ProtocolError(f"relay: bad address type {atyp:#x}")
    return Addr(host, r.u16())


def _decode_tunnel(r):
    if r.end - r.pos < TUNNEL_ID_LEN:
        raise ProtocolError("relay: tunnel id shorter than 16 bytes")
    return Tunnel(r.rest())


def _decode_network(r):
    return Network(r.u16())


_DECODERS = {FEATURE_USER_AUTH: _decode_user_auth, FEATURE_ADDR: _decode_addr,
             FEATURE_TUNNEL: _decode_tunnel, FEATURE_NETWORK: _decode_network}


def _parse_features(block):
    r = Reader(block, partial=False)  # the block is complete: an overrun is garbage
    out = []
    while r.pos < r.end:
        ftype = r.u8()
        data = r.take(r.u16())
        decode = _DECODERS.get(ftype)
        if decode is None:
            raise ProtocolError(f"relay: unknown feature {ftype:#x}")
        out.append(decode(Reader(data, partial=False)))
    return tuple(out)


# --- messages -----------------------------------------------------------------------------

def _encode(first, features):
    body = b"".join(encode_feature(f) for f in features)
    if len(body) > 0xFFFF:
        raise ProtocolError("relay: features longer than 65535 bytes")
    return _HEADER.pack(VERSION, first, len(body)) + body


def _parse(buf):
    r = Reader(buf)
    v = r.u8()
    if v != VERSION:
        raise ProtocolError(f"relay: bad version {v:#x}")
    first = r.u8()
    block = r.take(r.u16())
    return first, _parse_features(block), r.pos


def encode_request(req):
    return _encode(req.cmd & 0xFF, req.features)


def parse_request(buf):
    """→ ``(Request, used)``."""
    cmd, features, used = _parse(buf)
    return Request(cmd, features), used


def encode_response(resp):
    return _encode(resp.status & 0xFF, resp.features)


def parse_response(buf):
    """→ ``(Response, used)``."""
    status, features, used = _parse(buf)
    return Response(status, features), used


# --- tunnel and connector ids (go-gost/relay TunnelID, ConnectorID) ------------------------
# 20 bytes: ID(16) | FLAG(1) | RSV(2) | WEIGHT(1). Two ids are the same tunnel when their first
# 16 bytes are equal (flags and weight ride along). A tunnel FLAG 0x80 marks a private ingress
# endpoint ("$uuid"); a connector FLAG 0x01 marks a UDP connection.

ID_LEN = 20
ZERO_ID = bytes(ID_LEN)
FLAG_PRIVATE = 0x80
FLAG_UDP_CONNECTOR = 0x01
MAX_WEIGHT = 0xFF


_tunnel_ids = {}


def parse_tunnel_id(text):
    """GOST's ParseTunnelID: ``[$]uuid`` → 20-byte id (``$`` sets the private flag); an empty or
    unparsable text is the zero id (callers check :func:`id_is_zero`). Memoised: an ingress
    gives the same few endpoints for every request."""
    tid = _tunnel_ids.get(text)
    if tid is None:
        if len(_tunnel_ids) >= 1024:
            _tunnel_ids.clear()
        tid = _tunnel_ids[text] = _parse_tunnel_id(text)
    return tid


def _parse_tunnel_id(text):
    text = (text or "").strip()
    private = text.startswith("$")
    try:
        raw = uuid.UUID(text[1:] if private else text).bytes
    except ValueError:
        return ZERO_ID
    return raw + bytes((FLAG_PRIVATE if private else 0, 0, 0, 0))


def new_id(raw16, flag=0, weight=0):
    return bytes(raw16[:TUNNEL_ID_LEN]) + bytes((flag & 0xFF, 0, 0, weight & 0xFF))


def full_id(raw):
    """A Tunnel feature's bytes as a 20-byte id (GOST copies what came, zero-filled)."""
    raw = bytes(raw[:ID_LEN])
    return raw + bytes(ID_LEN - len(raw))


def id_text(raw):
    """The uuid text of an id (its first 16 bytes), as GOST's String()."""
    h = bytes(raw[:TUNNEL_ID_LEN]).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def id_is_zero(raw):
    return not any(raw[:TUNNEL_ID_LEN])


def id_same(a, b):
    return a[:TUNNEL_ID_LEN] == b[:TUNNEL_ID_LEN]


def id_private(raw):
    return len(raw) > TUNNEL_ID_LEN and bool(raw[TUNNEL_ID_LEN] & FLAG_PRIVATE)


def id_udp(raw):
    return len(raw) > TUNNEL_ID_LEN and bool(raw[TUNNEL_ID_LEN] & FLAG_UDP_CONNECTOR)


def id_weight(raw):
    return raw[19] if len(raw) >= ID_LEN else 0


def id_with_weight(raw, weight):
    raw = full_id(raw)
    return raw[:19] + bytes((weight & 0xFF,))


def request_parts(req):
    """A tunnel request's fields as GOST's tunnel handler reads them → ``(user, password, src,
    dst, network, tunnel id)``: the first Addr is the source, a later one the destination
    (``host:port`` texts, "" when absent); the Tunnel feature as a 20-byte id (zero when absent);
    the network from the Network feature (tcp without one)."""
    user = password = ""
    src = dst = None
    network, tid = "tcp", ZERO_ID
    for f in req.features:
        if isinstance(f, UserAuth):
            user, password = f.user, f.password
        elif isinstance(f, Addr):
            a = join_host_port(f.host, f.port)
            if src is None:
                src = a
            else:
                dst = a
        elif isinstance(f, Tunnel):
            tid = full_id(f.raw)
        elif isinstance(f, Network):
            network = f.name
    return user, password, src or "", dst or "", network, tid
