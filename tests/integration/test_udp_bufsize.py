"""The udp listener's ``readBufferSize``: a datagram bigger than the buffer is cut to it on the
way in (GOST reads into a buffer of that size and the kernel drops the rest), while a buffer
that fits passes the datagram whole. Real bin/gostg forwarder and a UDP echo on 127.0.0.1."""
import os

from .helpers import Gost
from .udppeers import UDPEcho, free_udp_port, udp_ask, wait_udp_service


class SizedEcho(UDPEcho):
    """A UDP echo that also keeps every datagram it received."""

    def __init__(self, tag=b""):
        self.got = []
        super().__init__(tag)

    def answer(self, data, peer):
        self.got.append(data)
        return super().answer(data, peer)


def forward(echo, query):
    p = free_udp_port()
    return Gost("-L", f"udp://127.0.0.1:{p}/{echo.addr}{query}"), p


def test_read_buffer_1024_truncates_a_2000_byte_datagram():
    payload = os.urandom(2000)
    with SizedEcho(b"R:") as echo:
        g, p = forward(echo, "?readBufferSize=1024")
        with g:
            wait_udp_service(g)
            answer = udp_ask(p, payload, timeout=5)
    assert [len(d) for d in echo.got] == [1024], "the echo must see the datagram cut to readBufferSize"
    assert echo.got[0] == payload[:1024]
    assert answer is not None and answer.startswith(b"R:" + payload[:1000]), answer and answer[:40]


def test_read_buffer_large_enough_passes_the_datagram_whole():
    payload = os.urandom(2000)
    with SizedEcho(b"R:") as echo:
        g, p = forward(echo, "?readBufferSize=4096")
        with g:
            wait_udp_service(g)
            answer = udp_ask(p, payload, timeout=5)
    assert echo.got == [payload]
    assert answer == b"R:" + payload
