"""The Ethernet header fields a TAP tunnel switches by (GOST: waterutil.MACDestination,
MACSource, MACEthertype, IsBroadcast).

Rules: a frame is at least the 14-byte header: destination MAC (6), source MAC (6),
EtherType (2); a shorter one is garbage. Broadcast is ff:ff:ff:ff:ff:ff only (GOST's
IsBroadcast: multicast is not broadcast).
"""
import struct

from ..errors import ProtocolError

HEADER_LEN = 14
BROADCAST = b"\xff" * 6
ETHERTYPES = {0x0800: "ip", 0x0806: "arp", 0x8035: "rarp", 0x86DD: "ip6"}


def header(frame):
    """→ ``(dst, src, ethertype)``: the MACs as 6 bytes each; ProtocolError when too short."""
    if len(frame) < HEADER_LEN:
        raise ProtocolError(f"ethernet: frame too short ({len(frame)} bytes)")
    return bytes(frame[0:6]), bytes(frame[6:12]), struct.unpack_from("!H", frame, 12)[0]


def mac_text(mac):
    return ":".join(f"{b:02x}" for b in mac)


def ethertype_text(t):
    return ETHERTYPES.get(t, f"unknown({t:#06x})")
