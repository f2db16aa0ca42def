"""IP header fields a TUN tunnel routes by (gostg.protocols.ippacket): vectors, garbage."""
import ipaddress
import re
import struct

import pytest
from hypothesis import given, settings, strategies as st

from gostg.errors import ProtocolError
from gostg.protocols import ippacket

PROPS = settings(max_examples=300, deadline=None)


def ipv4(src, dst, payload=b"", ihl=5, proto=6):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                      ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return hdr + bytes((ihl - 5) * 4) + payload


def ipv6(src, dst, payload=b""):
    return (struct.pack("!IHBB", 0x60000000, len(payload), 58, 64) + ipaddress.IPv6Address(src).packed
            + ipaddress.IPv6Address(dst).packed + payload)


def test_ipv4_vector():
    # an ICMP echo request 192.168.123.1 → 192.168.123.2 as the kernel writes it to a TUN device
    pkt = bytes.fromhex("4500 0054 1c46 4000 4001 a60c c0a8 7b01 c0a8 7b02") + bytes(64)
    assert ippacket.addresses(pkt) == (4, "192.168.123.1", "192.168.123.2")
    assert ippacket.version(pkt) == 4


def test_ipv4_options_and_ipv6():
    assert ippacket.addresses(ipv4("10.0.0.1", "10.0.0.2", ihl=6)) == (4, "10.0.0.1", "10.0.0.2")
    assert ippacket.addresses(ipv6("fd00::1", "ff02::2")) == (6, "fd00::1", "ff02::2")
    assert ippacket.addresses(memoryview(ipv6("::1", "::2"))) == (6, "::1", "::2")


@pytest.mark.parametrize("pkt, why", [
    (b"", "unknown packet"), (b"\x00" * 40, "unknown packet"), (b"\x50" + bytes(40), "unknown packet"),
    (ipv4("1.1.1.1", "2.2.2.2")[:19], "too short"), (b"\x44" + bytes(30), "bad header length"),
    (b"\x4f" + bytes(30), "bad header length"), (ipv6("::1", "::2")[:39], "too short"),
])
def test_garbage(pkt, why):
    with pytest.raises(ProtocolError, match=why):
        ippacket.addresses(pkt)


@PROPS
@given(st.binary(max_size=80))
def test_garbage_only_raises_protocol_error(data):
    try:
        v, src, dst = ippacket.addresses(data)
    except ProtocolError:
        return
    assert v in (4, 6) and ipaddress.ip_address(src).version == v and ipaddress.ip_address(dst).version == v


@PROPS
@given(st.ip_addresses(v=4), st.ip_addresses(v=4), st.binary(max_size=40), st.integers(5, 8))
def test_ipv4_round_trip(src, dst, payload, ihl):
    assert ippacket.addresses(ipv4(str(src), str(dst), payload, ihl)) == (4, str(src), str(dst))


@PROPS
@given(st.ip_addresses(v=6), st.ip_addresses(v=6), st.binary(max_size=40))
def test_ipv6_round_trip(src, dst, payload):
    assert ippacket.addresses(ipv6(str(src), str(dst), payload)) == (6, str(src), str(dst))


@PROPS
@given(st.binary(max_size=80))
def test_check_agrees_with_addresses(data):
    """check (the tun client's test before a device write) accepts exactly what addresses reads."""
    try:
        v = ippacket.addresses(data)[0]
    except ProtocolError as exc:
        with pytest.raises(ProtocolError, match=re.escape(str(exc))):
            ippacket.check(data)
        return
    assert ippacket.check(data) == v
