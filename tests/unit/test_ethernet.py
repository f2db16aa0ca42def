"""Ethernet header fields a TAP switch uses (gostg.protocols.ethernet)."""
import pytest
from hypothesis import given, settings, strategies as st

from gostg.errors import ProtocolError
from gostg.protocols import ethernet

ARP_REQUEST = bytes.fromhex("ffffffffffff 02000a000001 0806") + bytes(28)


def test_vectors():
    dst, src, et = ethernet.header(ARP_REQUEST)
    assert dst == ethernet.BROADCAST and ethernet.mac_text(src) == "02:00:0a:00:00:01" and et == 0x0806
    assert ethernet.ethertype_text(et) == "arp" and ethernet.ethertype_text(0x1234) == "unknown(0x1234)"
    assert ethernet.header(memoryview(ARP_REQUEST[:14]))[2] == 0x0806
    with pytest.raises(ProtocolError, match="too short"):
        ethernet.header(ARP_REQUEST[:13])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_garbage(data):
    try:
        dst, src, _ = ethernet.header(data)
    except ProtocolError:
        assert len(data) < 14
    else:
        assert dst + src == data[:12]
