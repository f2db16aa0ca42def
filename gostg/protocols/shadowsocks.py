"""Shadowsocks AEAD (SIP004/SIP007): keys, the TCP chunk stream, the UDP packet and the target header.

Rules (TCP, one direction):
1. The sender's first bytes are a random salt (as long as the key). Subkey = HKDF-SHA1(key, salt,
   info "ss-subkey"); the master key is EVP_BytesToKey(MD5) of the password.
2. Then chunks: AEAD(2-byte big-endian payload length) ‖ AEAD(payload), each with its own 16-byte
   tag. The payload length is at most 0x3FFF (the two top bits must be zero).
3. The 12-byte nonce starts at zero and is incremented (little-endian) after every seal/open,
   so one chunk uses two nonces.
4. The client's first plaintext is the target in SOCKS5 address form (ATYP ADDR PORT), usually
   followed by payload in the same chunk.
UDP: each datagram is salt ‖ AEAD(target header ‖ payload) with an all-zero nonce.

Everything here is pure: bytes in, bytes out. A bad tag is ``ProtocolError`` (and sticks: a
decryptor that failed once refuses everything after), a short buffer yields nothing yet.
"""
import hashlib
import os
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ProtocolError
from . import socks5
from .reader import Reader

TAG_SIZE = 16
NONCE_SIZE = 12
MAX_PAYLOAD = 0x3FFF
SUBKEY_INFO = b"ss-subkey"


class Spec:
    __slots__ = ("name", "key_size", "aead")

    def __init__(self, name, key_size, aead):
        self.name = name
        self.key_size = key_size
        self.aead = aead  # subkey → object with encrypt/decrypt(nonce, data, aad)


SPECS = {
    "aes-128-gcm": Spec("aes-128-gcm", 16, AESGCM),
    "aes-192-gcm": Spec("aes-192-gcm", 24, AESGCM),
    "aes-256-gcm": Spec("aes-256-gcm", 32, AESGCM),
    "chacha20-ietf-poly1305": Spec("chacha20-ietf-poly1305", 32, ChaCha20Poly1305),
}

#: names GOST's shadowsocks library (go-shadowsocks2) also accepts, matched case-insensitively
ALIASES = {
    "aead_aes_128_gcm": "aes-128-gcm",
    "aead_aes_192_gcm": "aes-192-gcm",
    "aead_aes_256_gcm": "aes-256-gcm",
    "aead_chacha20_poly1305": "chacha20-ietf-poly1305",
}

#: "no encryption" names: GOST's connector accepts none/dummy, its handler "dummy"
PLAIN_NAMES = ("none", "dummy", "plain")


def cipher_names():
    return sorted(SPECS)


def evp_bytes_to_key(password, key_len):
    """OpenSSL's EVP_BytesToKey with MD5, one iteration, no salt: shadowsocks' password → key."""
    out, prev = b"", b""
    while len(out) < key_len:
        prev = hashlib.md5(prev + password).digest()
        out += prev
    return out[:key_len]


def hkdf_sha1(key, salt, info, length):
    return HKDF(algorithm=hashes.SHA1(), length=length, salt=salt, info=info).derive(key)


def subkey(key, salt):
    """The per-salt session key (SIP007)."""
    return hkdf_sha1(key, salt, SUBKEY_INFO, len(key))


class Cipher:
    """A method and its master key. ``Cipher.new(None-like name)`` is not allowed: callers check
    ``is_plain(name)`` first."""

    __slots__ = ("spec", "key")

    def __init__(self, spec, key):
        if len(key) != spec.key_size:
            raise ProtocolError(f"{spec.name}: key must be {spec.key_size} bytes, not {len(key)}")
        self.spec = spec
        self.key = key

    @classmethod
    def new(cls, method, password="", key=b""):
        """From a method name and a password (or a raw key, as GOST's ``key`` metadata)."""
        spec = lookup(method)
        if isinstance(password, str):
            password = password.encode("utf-8")
        if isinstance(key, str):
            key = key.encode("utf-8")
        return cls(spec, key or evp_bytes_to_key(password, spec.key_size))

    @property
    def name(self):
        return self.spec.name

    @property
    def salt_size(self):
        return self.spec.key_size

    def aead(self, salt):
        return self.spec.aead(subkey(self.key, salt))

    def new_salt(self):
        return os.urandom(self.salt_size)


def is_plain(method):
    return (method or "").lower() in PLAIN_NAMES


def lookup(method):
    m = (method or "").strip().lower()
    m = ALIASES.get(m, m)
    spec = SPECS.get(m)
    if spec is None:
        raise ProtocolError(f"unsupported shadowsocks cipher {method!r} (supported: {', '.join(cipher_names())})")
    return spec


class _Nonce:
    """The little-endian counter nonce: ``next()`` returns the current value and steps it."""

    __slots__ = ("n",)

    def __init__(self):
        self.n = 0

    def next(self):
        v = self.n.to_bytes(NONCE_SIZE, "little")
        self.n += 1
        return v


class Encryptor:
    """One direction of a TCP stream, sending side. The first output carries the salt."""

    __slots__ = ("cipher", "salt", "_aead", "_nonce", "_salt_sent")

    def __init__(self, cipher, salt=None):
        self.cipher = cipher
        self.salt = salt if salt is not None else cipher.new_salt()
        if len(self.salt) != cipher.salt_size:
            raise ProtocolError(f"salt must be {cipher.salt_size} bytes")
        self._aead = cipher.aead(self.salt)
        self._nonce = _Nonce()
        self._salt_sent = False

    def encrypt(self, data, chunk=MAX_PAYLOAD):
        """→ the wire bytes for ``data`` (split into chunks of at most ``chunk`` bytes)."""
        if not 0 < chunk <= MAX_PAYLOAD:
            raise ValueError(f"chunk size must be 1..{MAX_PAYLOAD}")
        out = []
        if not self._salt_sent:
            out.append(self.salt)
            self._salt_sent = True
        mv = memoryview(data)
        seal, nonce = self._aead.encrypt, self._nonce
        for i in range(0, len(mv), chunk):
            piece = mv[i:i + chunk]
            out.append(seal(nonce.next(), len(piece).to_bytes(2, "big"), None))
            out.append(seal(nonce.next(), bytes(piece), None))
        return b"".join(out)


class Decryptor:
    """One direction of a TCP stream, receiving side: ``feed(bytes)`` → the plaintext of every
    chunk now complete (``b""`` when more bytes are needed).

    ``replay`` (optional, a SaltFilter) refuses a salt seen before; a salt is remembered only once
    its first chunk authenticates, so garbage cannot fill the filter.
    """

    __slots__ = ("cipher", "replay", "salt", "_aead", "_nonce", "_buf", "_len", "_failed", "chunks")

    def __init__(self, cipher, replay=None):
        self.cipher = cipher
        self.replay = replay
        self.salt = None
        self._aead = None
        self._nonce = _Nonce()
        self._buf = bytearray()
        self._len = None       # decrypted length of the chunk being waited for
        self._failed = None
        self.chunks = 0        # chunks authenticated so far

    @property
    def buffered(self):
        """Bytes received but not yet decrypted (a peer closing with some left truncated the stream)."""
        return len(self._buf)

    def _fail(self, msg):
        self._failed = ProtocolError(msg)
        self._buf.clear()
        raise self._failed

    def _open(self, data):
        try:
            return self._aead.decrypt(self._nonce.next(), data, None)
        except InvalidTag:
            what = "first chunk (wrong password or cipher?)" if not self.chunks else f"chunk {self.chunks}"
            self._fail(f"shadowsocks: authentication failed on {what}")

    def feed(self, data):
        if self._failed is not None:
            raise self._failed
        buf = self._buf
        buf += data
        pos = 0
        out = []
        if self._aead is None:
            n = self.cipher.salt_size
            if len(buf) < n:
                return b""
            self.salt = bytes(buf[:n])
            pos = n
            if self.replay is not None and self.replay.seen(self.salt):
                self._fail("shadowsocks: replayed salt")
            self._aead = self.cipher.aead(self.salt)
        while True:
            if self._len is None:
                if len(buf) - pos < 2 + TAG_SIZE:
                    break
                raw = self._open(bytes(buf[pos:pos + 2 + TAG_SIZE]))
                pos += 2 + TAG_SIZE
                n = int.from_bytes(raw, "big")
                if n > MAX_PAYLOAD:
                    self._fail(f"shadowsocks: chunk length {n:#x} over {MAX_PAYLOAD:#x}")
                self._len = n
            need = self._len + TAG_SIZE
            if len(buf) - pos < need:
                break
            out.append(self._open(bytes(buf[pos:pos + need])))
            pos += need
            self._len = None
            if not self.chunks and self.replay is not None:
                self.replay.add(self.salt)
            self.chunks += 1
        del buf[:pos]
        return b"".join(out)


# -- the target header (SOCKS5 address form) --------------------------------------------------

def parse_target(buf):
    """→ ``(host, port, used)``; NeedData while the header is incomplete."""
    r = Reader(buf)
    host, port = socks5.read_addr(r)
    return host, port, r.pos


def encode_target(host, port):
    return socks5.encode_addr(host, port)


# -- UDP ---------------------------------------------------------------------------------------

def encrypt_packet(cipher, plaintext, salt=None):
    salt = salt if salt is not None else cipher.new_salt()
    return salt + cipher.aead(salt).encrypt(bytes(NONCE_SIZE), bytes(plaintext), None)


def decrypt_packet(cipher, packet):
    n = cipher.salt_size
    if len(packet) < n + TAG_SIZE:
        raise ProtocolError(f"shadowsocks: UDP packet of {len(packet)} bytes is too short")
    salt = bytes(packet[:n])
    try:
        return cipher.aead(salt).decrypt(bytes(NONCE_SIZE), bytes(packet[n:]), None)
    except InvalidTag:
        raise ProtocolError("shadowsocks: UDP packet failed authentication") from None


def pack_udp(cipher, host, port, payload, salt=None):
    """One ssu datagram: salt ‖ AEAD(target header ‖ payload)."""
    return encrypt_packet(cipher, encode_target(host, port) + bytes(payload), salt)


def unpack_udp(cipher, packet):
    """→ ``(host, port, payload)``; ProtocolError on any bad packet (a datagram cannot grow)."""
    plain = decrypt_packet(cipher, packet)
    r = Reader(plain, partial=False)
    host, port = socks5.read_addr(r)
    return host, port, r.rest()


# -- replay protection -------------------------------------------------------------------------

class SaltFilter:
    """Salts seen in the last ``2 * period`` seconds (at least ``period``), in two rotating sets:
    memory stays bounded by what arrives in two periods, and at most ``capacity`` per set
    (a full set rotates early, so a flood shortens the window rather than growing memory)."""

    __slots__ = ("period", "capacity", "clock", "_cur", "_old", "_since")

    def __init__(self, period=60.0, capacity=100_000, clock=time.monotonic):
        self.period = period
        self.capacity = capacity
        self.clock = clock
        self._cur, self._old = set(), set()
        self._since = clock()

    def _rotate(self):
        now = self.clock()
        if now - self._since >= self.period or len(self._cur) >= self.capacity:
            self._old, self._cur = self._cur, set()
            if now - self._since >= 2 * self.period:
                self._old = set()
            self._since = now

    def seen(self, salt):
        self._rotate()
        return salt in self._cur or salt in self._old

    def add(self, salt):
        self._rotate()
        self._cur.add(bytes(salt))

    def __len__(self):
        return len(self._cur) + len(self._old)
