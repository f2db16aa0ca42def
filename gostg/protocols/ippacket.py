"""The few IP header fields a TUN tunnel routes by: version, source and destination.

Rules (GOST reads them with golang.org/x/net's ipv4/ipv6 ``ParseHeader`` after waterutil's
version check):
1. The version is the high nibble of the first byte; 4 and 6 are IP, anything else is not an
   IP packet (GOST: "unknown packet, discarded").
2. IPv4: at least 20 bytes, IHL (low nibble, in 32-bit words) at least 5 and within the
   packet; src at offset 12, dst at 16. Total length and checksum are not checked (the kernel
   wrote the packet, or the peer did and the kernel checks it when we write it).
3. IPv6: at least the 40-byte fixed header; src at offset 8, dst at 24.
Addresses come back as text in ``ipaddress``'s form (the form routers and their routes use;
``::ffff:0:0`` style for IPv4-mapped IPv6, where inet_ntop would write ``::ffff:0.0.0.0``).
"""
import socket
from ipaddress import IPv6Address as _V6

from ..errors import ProtocolError

IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40

_ntop = socket.inet_ntop
_AF4 = socket.AF_INET


def version(pkt):
    """4, 6, or another number for what is not an IP packet (0 for an empty one)."""
    return pkt[0] >> 4 if pkt else 0


def check(pkt):
    """→ the version (4 or 6) of a well-formed IPv4/IPv6 header; ProtocolError otherwise (a
    peer's packet is checked by this before it is written to a device, with no text made)."""
    v = pkt[0] >> 4 if pkt else 0
    n = len(pkt)
    if v == 4:
        if n < IPV4_HEADER_LEN:
            raise ProtocolError(f"ipv4: header too short ({n} bytes)")
        hlen = (pkt[0] & 0x0F) << 2
        if hlen < IPV4_HEADER_LEN or hlen > n:
            raise ProtocolError(f"ipv4: bad header length {hlen} in a {n}-byte packet")
        return 4
    if v == 6:
        if n < IPV6_HEADER_LEN:
            raise ProtocolError(f"ipv6: header too short ({n} bytes)")
        return 6
    raise ProtocolError(f"unknown packet, discarded({n})")


def addresses(pkt):
    """→ ``(version, src, dst)`` of an IPv4 or IPv6 packet; ProtocolError otherwise."""
    if check(pkt) == 4:
        return 4, _ntop(_AF4, bytes(pkt[12:16])), _ntop(_AF4, bytes(pkt[16:20]))
    return 6, str(_V6(bytes(pkt[8:24]))), str(_V6(bytes(pkt[24:40])))
