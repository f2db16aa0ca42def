"""TLS ClientHello: the server name (SNI) in a client's first flight, read and rewritten.

Used by the ``sni`` handler (which host does this TLS client want?) and the ``sni`` connector
(show a middlebox another host name). Only the handshake message is decoded; everything else
in it is carried through unchanged, so a rewrite touches the length fields it must and no more.

Rules:
1. The first flight is one or more handshake records (type 22, version 3.x) whose payloads
   concatenate to one ClientHello message (type 1, 24-bit length). A hello larger than one
   record spans several; nothing else may follow it inside those records.
2. A buffer that is a prefix of such a flight raises ``NeedData``; anything else that is not a
   ClientHello raises ``ProtocolError``. Bytes after the hello's last record are not read.
3. SNI is extension 0: a 16-bit list of (type 0 = host_name, 16-bit name); the first host_name
   wins. No extension 0 → no server name (``None``).
4. GOST's connector hides the real name: it puts its own ``host`` in the SNI and the real name,
   encoded (``encode_target``), in private extension 0xFFFE. The handler takes it out again and
   restores the SNI, so the server sees the client's hello byte for byte and the handshake
   transcript still matches. The same encoding travels in the HTTP ``Gost-Target`` header.
"""
import base64
import binascii
import struct
import zlib

from ..errors import NeedData, ProtocolError
from .reader import Reader

HANDSHAKE = 0x16
CLIENT_HELLO = 1
EXT_SERVER_NAME = 0
#: GOST's private extension carrying the real server name next to a rewritten SNI
EXT_GOST_TARGET = 0xFFFE
#: the largest record payload a sender may use (RFC 8446 §5.1)
MAX_FRAGMENT = 1 << 14
#: a ClientHello larger than this is refused rather than buffered
MAX_HELLO = 64 * 1024


class ClientHello:
    """A decoded ClientHello. ``extensions`` is a list of ``[type, data]`` (``None`` when the
    hello has no extensions block at all, as an SSLv3-era client sends)."""

    __slots__ = ("record_version", "version", "random", "session_id", "cipher_suites",
                 "compression", "extensions")

    def __init__(self, record_version, version, random, session_id, cipher_suites, compression,
                 extensions):
        self.record_version = record_version
        self.version = version
        self.random = random
        self.session_id = session_id
        self.cipher_suites = cipher_suites
        self.compression = compression
        self.extensions = extensions

    def _find(self, ext_type):
        for i, (t, _) in enumerate(self.extensions or ()):
            if t == ext_type:
                return i
        return -1

    @property
    def server_name(self):
        i = self._find(EXT_SERVER_NAME)
        return None if i < 0 else _decode_sni(self.extensions[i][1])

    def set_server_name(self, name):
        data = _encode_sni(name)
        i = self._find(EXT_SERVER_NAME)
        if i >= 0:
            self.extensions[i][1] = data
        else:
            # first, so that pre_shared_key (which must be last) stays last
            self.extensions = [[EXT_SERVER_NAME, data]] + list(self.extensions or ())

    def pop_extension(self, ext_type):
        """Remove extension ``ext_type`` → its data, or None."""
        i = self._find(ext_type)
        if i < 0:
            return None
        return self.extensions.pop(i)[1]

    def encode(self):
        """→ the handshake message (type, 24-bit length, body)."""
        body = (struct.pack("!H", self.version) + self.random
                + bytes((len(self.session_id),)) + self.session_id
                + struct.pack("!H", len(self.cipher_suites)) + self.cipher_suites
                + bytes((len(self.compression),)) + self.compression)
        if self.extensions is not None:
            exts = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in self.extensions)
            if len(exts) > 0xFFFF:
                raise ProtocolError("ClientHello extensions too long")
            body += struct.pack("!H", len(exts)) + exts
        if len(body) > MAX_HELLO:
            raise ProtocolError("ClientHello too long")
        return bytes((CLIENT_HELLO,)) + len(body).to_bytes(3, "big") + body

    def encode_records(self):
        """→ the hello framed as handshake records (one, unless it exceeds a record)."""
        msg = self.encode()
        out = bytearray()
        for i in range(0, len(msg), MAX_FRAGMENT):
            chunk = msg[i:i + MAX_FRAGMENT]
            out += struct.pack("!BHH", HANDSHAKE, self.record_version, len(chunk)) + chunk
        return bytes(out)


def _read_message(buf):
    """→ ``(record_version, handshake_message, used)`` of the first flight's ClientHello."""
    r = Reader(buf)
    msg = bytearray()
    record_version = None
    while True:
        if r.u8() != HANDSHAKE:
            raise ProtocolError("not a TLS handshake record")
        major = r.u8()
        minor = r.u8()
        if major != 3 or minor > 4:
            raise ProtocolError(f"not a TLS record version ({major}.{minor})")
        n = r.u16()
        if n == 0 or n > MAX_FRAGMENT + 2048:
            raise ProtocolError(f"bad TLS record length {n}")
        if record_version is None:
            record_version = (major << 8) | minor
        if len(msg) + n > MAX_HELLO + 4:
            raise ProtocolError("ClientHello too long")
        if not msg and r.end > r.pos and buf[r.pos] != CLIENT_HELLO:
            # say "garbage" as early as we can, before the whole record has arrived
            raise ProtocolError("first handshake message is not a ClientHello")
        msg += r.take(n)
        if len(msg) < 4:
            continue
        if msg[0] != CLIENT_HELLO:
            raise ProtocolError("first handshake message is not a ClientHello")
        need = 4 + int.from_bytes(msg[1:4], "big")
        if need > MAX_HELLO + 4:
            raise ProtocolError("ClientHello too long")
        if len(msg) == need:
            return record_version, bytes(msg), r.pos
        if len(msg) > need:
            raise ProtocolError("data after the ClientHello in its record")


def _decode_message(record_version, msg):
    r = Reader(msg, 4, partial=False)
    version = r.u16()
    random = r.take(32)
    session_id = r.counted()
    if len(session_id) > 32:
        raise ProtocolError("ClientHello session id longer than 32 bytes")
    cipher_suites = r.take(r.u16())
    compression = r.counted()
    extensions = None
    if r.pos < r.end:
        block = r.take(r.u16())
        if r.pos != r.end:
            raise ProtocolError("bytes after the ClientHello extensions")
        er = Reader(block, partial=False)
        extensions = []
        while er.pos < er.end:
            t = er.u16()
            extensions.append([t, er.take(er.u16())])
    return ClientHello(record_version, version, random, session_id, cipher_suites, compression,
                       extensions)


def parse_client_hello(buf):
    """→ ``(ClientHello, used)``; ``used`` counts the records holding the hello."""
    record_version, msg, used = _read_message(buf)
    return _decode_message(record_version, msg), used


def server_name(buf):
    """The SNI host name in the ClientHello at the start of ``buf``, or None."""
    return parse_client_hello(buf)[0].server_name


def _decode_sni(data):
    r = Reader(data, partial=False)
    lr = Reader(r.take(r.u16()), partial=False)
    if r.pos != r.end:
        raise ProtocolError("bytes after the server name list")
    while lr.pos < lr.end:
        kind = lr.u8()
        name = lr.take(lr.u16())
        if kind == 0:
            if not name or b"\x00" in name:
                raise ProtocolError("empty or bad SNI host name")
            try:
                return name.decode("ascii")
            except UnicodeDecodeError as exc:
                raise ProtocolError("SNI host name is not ASCII") from exc
    return None


def _encode_sni(name):
    raw = name.encode("idna") if not name.isascii() else name.encode("ascii")
    if not raw or len(raw) > 0xFFFF - 5:
        raise ProtocolError(f"bad SNI host name {name[:60]!r}")
    entry = b"\x00" + struct.pack("!H", len(raw)) + raw
    return struct.pack("!H", len(entry)) + entry


# --- GOST's hidden target name ---------------------------------------------------------------

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data):
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def encode_target(name):
    """GOST's encoding of the real host name: base64url(crc32(name) ‖ base64url(name)), unpadded."""
    raw = name.encode()
    return _b64(struct.pack("!I", zlib.crc32(raw)) + _b64(raw)).decode("ascii")


def decode_target(s):
    """Inverse of ``encode_target`` → the name, or None when ``s`` is not one (bad checksum)."""
    try:
        b = _unb64(s.encode("ascii") if isinstance(s, str) else bytes(s))
        if len(b) < 4:
            return None
        v = _unb64(b[4:])
        if zlib.crc32(v) != struct.unpack("!I", b[:4])[0]:
            return None
        return v.decode()
    except (binascii.Error, ValueError, UnicodeError):
        return None


def rewrite_server_name(buf, host, carry=True):
    """The first flight in ``buf`` with its SNI set to ``host`` (bytes after the hello kept).
    With ``carry``, the old name travels in extension 0xFFFE for the sni handler to restore;
    a hello without SNI is left alone then, as GOST does (there is nothing to hide)."""
    hello, used = parse_client_hello(buf)
    old = hello.server_name
    if carry:
        if old is None:
            return bytes(buf)
        hello.extensions.append([EXT_GOST_TARGET, encode_target(old).encode("ascii")])
    hello.set_server_name(host)
    return hello.encode_records() + bytes(buf[used:])


def restore_server_name(buf):
    """Undo a GOST connector's rewrite → ``(first flight, real name or None)``. Without a valid
    0xFFFE extension the bytes come back unchanged and the name is None."""
    hello, used = parse_client_hello(buf)
    i = hello._find(EXT_GOST_TARGET)
    if i < 0:
        return bytes(buf), None
    name = decode_target(hello.extensions[i][1])
    if name is None:
        return bytes(buf), None
    hello.pop_extension(EXT_GOST_TARGET)
    hello.set_server_name(name)
    return hello.encode_records() + bytes(buf[used:]), name


__all__ = ["ClientHello", "parse_client_hello", "server_name", "rewrite_server_name",
           "restore_server_name", "encode_target", "decode_target", "NeedData", "ProtocolError"]
