"""More of UDP as a GOST user meets it: a forwarder with several targets (one per session,
round robin), GOST's UDP over HTTP spoken by a raw client (``X-Gost-Protocol: udp`` then
UDP-TUN frames, as a GOST node sends them) and refused without ``udp=true``."""
import socket
import time

from gostg.errors import NeedData
from gostg.protocols import socks5

from .helpers import Gost, free_port
from .peers import recv_head, wait_log
from .udppeers import UDPEcho, free_udp_port, udp_ask, wait_udp_service


def test_forwarder_with_two_targets_gives_each_session_one():
    p = free_udp_port()
    with UDPEcho(b"A:") as a, UDPEcho(b"B:") as b, \
            Gost("-L", f"udp://127.0.0.1:{p}/{a.addr},{b.addr}?keepAlive=true&strategy=round") as g:
        wait_udp_service(g)
        seen = set()
        socks_ = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        try:
            for i, c in enumerate(socks_):
                first = udp_ask(p, b"s%d" % i, sock=c)
                assert first in (b"A:s%d" % i, b"B:s%d" % i), first
                tag = first[:2]
                seen.add(tag)
                for j in range(3):   # a session stays with its target
                    assert udp_ask(p, b"more%d" % j, sock=c) == tag + b"more%d" % j
        finally:
            for c in socks_:
                c.close()
        assert seen == {b"A:", b"B:"}
        assert a.count == 4 and b.count == 4


def _connect_udp(port, target):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nX-Gost-Protocol: udp\r\n\r\n".encode())
    return c, recv_head(c)


def _read_tun(c):
    buf = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            host, port, data, used = socks5.parse_udp_tun(buf)
            return host, port, data
        except NeedData:
            d = c.recv(65536)
            assert d, "closed before a whole UDP-TUN frame"
            buf += d
    raise AssertionError("no UDP-TUN frame within 5s")


def test_raw_udp_over_http_tunnel():
    hp = free_port()
    with UDPEcho(b"H:") as e, Gost("-L", f"http://127.0.0.1:{hp}?udp=true", ports=[hp]):
        c, head = _connect_udp(hp, "0.0.0.0:0")
        with c:
            assert head.startswith(b"HTTP/1.1 200"), head
            c.sendall(socks5.encode_udp_tun("127.0.0.1", e.port, b"over http"))
            host, port, data = _read_tun(c)
            assert (host, port, data) == ("127.0.0.1", e.port, b"H:over http")
            big = bytes(range(256)) * 200
            c.sendall(socks5.encode_udp_tun("127.0.0.1", e.port, big))
            assert _read_tun(c)[2] == b"H:" + big
        assert e.count == 2


def test_udp_over_http_refused_without_udp_true():
    hp = free_port()
    with UDPEcho() as e, Gost("-L", f"http://127.0.0.1:{hp}", ports=[hp]) as g:
        c, head = _connect_udp(hp, "0.0.0.0:0")
        with c:
            assert head.split(b" ")[1] == b"403", head
        assert e.count == 0
        assert wait_log(g, "UDP relay is disabled")
