"""GOST's TUN-over-UDP keepalive (x/handler/tun client.go, server.go).

Rules:
1. Client → server: ``GOST`` | KEY(16: the passphrase, truncated or NUL-padded) | IP(16)…,
   one 16-byte address (IPv4 as ``::ffff:a.b.c.d``) per address of the client's device. The
   client sends it once when it connects and, with ``keepalive``, every ``ttl``.
2. Server → client: ``GOST`` | IP(16), the client's own UDP source address, exactly 20 bytes.
3. A server reads a datagram as a keepalive when it is longer than 20 bytes and starts with
   ``GOST``; the addresses count only when the rest is a whole number of 16-byte addresses
   (else the datagram is ignored). A client reads exactly 20 bytes starting ``GOST`` as the
   answer. IP packets never start with ``GOST`` (their first nibble is 4 or 6; ``G`` is 0x47,
   whose nibble 4 could begin an IPv4 header, which is why the length rules matter).
"""
import ipaddress
import socket

MAGIC = b"GOST"
HEADER_LEN = 20
KEY_LEN = 16

_V4_PREFIX = b"\0" * 10 + b"\xff\xff"
_pton, _AF4, _AF6 = socket.inet_pton, socket.AF_INET, socket.AF_INET6


def to16(ip):
    """An ``ipaddress`` address (or its text) → its 16-byte form (Go's ``IP.To16``);
    ValueError when it is not an address."""
    if isinstance(ip, str):
        # a TUN server keys each packet's destination this way: inet_pton is ~10x cheaper
        # than ipaddress; what it refuses (a %scope, garbage) is left to ipaddress
        try:
            return _V4_PREFIX + _pton(_AF4, ip)
        except OSError:
            pass
        try:
            return _pton(_AF6, ip)
        except OSError:
            pass
    ip = ipaddress.ip_address(ip)
    return (_V4_PREFIX + ip.packed) if ip.version == 4 else ip.packed


def from16(raw):
    """16 bytes → the address as text (IPv4-mapped ones as IPv4, as Go prints them)."""
    ip = ipaddress.IPv6Address(bytes(raw))
    return str(ip.ipv4_mapped or ip)


def encode(passphrase, ips):
    """Rule 1: the client's keepalive for its device addresses ``ips``."""
    key = passphrase.encode()[:KEY_LEN].ljust(KEY_LEN, b"\0")
    return MAGIC + key + b"".join(to16(ip) for ip in ips)


def parse(data):
    """Rule 3, server side → ``(key, [16-byte address…])`` for a keepalive (the list empty
    when the addresses are malformed), or None for what is not one."""
    if len(data) <= HEADER_LEN or data[:4] != MAGIC:
        return None
    rest = bytes(data[HEADER_LEN:])
    ips = [rest[i:i + 16] for i in range(0, len(rest), 16)] if len(rest) % 16 == 0 else []
    return bytes(data[4:HEADER_LEN]).rstrip(b"\0"), ips


def encode_reply(ip):
    """Rule 2: the server's answer naming the client's UDP source address ``ip``."""
    return MAGIC + to16(ip)


def is_reply(data):
    return len(data) == HEADER_LEN and data[:4] == MAGIC
