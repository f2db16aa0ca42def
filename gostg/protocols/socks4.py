"""SOCKS4 and SOCKS4a requests and replies.

Rules:
1. Request: VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL; SOCKS4a sets DSTIP to 0.0.0.x (x≠0) and
   appends the host name NUL-terminated.
2. Reply: VN=0 CD (90 granted, 91 rejected, 92/93 identd failures) DSTPORT DSTIP.
"""
import socket
import struct

from ..errors import ProtocolError
from .addr import is_ip
from .reader import Reader

VERSION = 4
CMD_CONNECT = 1
CMD_BIND = 2

GRANTED = 90
REJECTED = 91
IDENT_FAILED = 92
IDENT_MISMATCH = 93  # also what GOST answers for a failed userid auth

#: USERID and 4a host names are NUL-terminated; bound them so a peer cannot make us buffer forever.
MAX_FIELD = 255


def parse_request(buf):
    """→ ``(cmd, host, port, userid, used)``."""
    r = Reader(buf)
    v = r.u8()
    if v != VERSION:
        raise ProtocolError(f"bad SOCKS4 version {v:#x}")
    cmd = r.u8()
    port = r.u16()
    ip = r.take(4)
    userid = r.until(b"\x00", MAX_FIELD).decode("utf-8", "replace")
    if ip[:3] == b"\x00\x00\x00" and ip[3] != 0:
        raw = r.until(b"\x00", MAX_FIELD)
        if not raw:
            raise ProtocolError("empty SOCKS4a host name")
        host = raw.decode("ascii", "replace")
    else:
        host = socket.inet_ntoa(ip)
    return cmd, host, port, userid, r.pos


def encode_request(cmd, host, port, userid=""):
    uid = userid.encode() + b"\x00"
    if is_ip(host):
        try:
            ip = socket.inet_aton(host)
        except OSError:
            raise ProtocolError("SOCKS4 carries IPv4 addresses only") from None
        # 0.0.0.x (x≠0) is the SOCKS4a marker: send such an address as a 4a host name instead
        if not (ip[:3] == b"\x00\x00\x00" and ip[3] != 0):
            return struct.pack("!BBH", VERSION, cmd, port) + ip + uid
    raw = host.encode("utf-8")
    if not raw or b"\x00" in raw or len(raw) > MAX_FIELD:
        raise ProtocolError("bad SOCKS4a host name")
    return struct.pack("!BBH", VERSION, cmd, port) + b"\x00\x00\x00\x01" + uid + raw + b"\x00"


def parse_reply(buf):
    """→ ``(code, used)``."""
    r = Reader(buf)
    r.u8()
    code = r.u8()
    r.take(6)
    return code, r.pos


def encode_reply(code, host="0.0.0.0", port=0):
    try:
        ip = socket.inet_aton(host)
    except OSError:
        ip = b"\x00" * 4
    return struct.pack("!BBH", 0, code, port) + ip
