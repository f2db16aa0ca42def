"""Shadowsocks UDP (ssu) against shadowsocks-libev, per cipher: ss-local (UDP relay on) as the
client of gostg's ssu server, driven by PySocks; gostg's ssu connector as the client of
ss-server; gostg on both ends; and bad datagrams that must not hurt the service."""
import os
import shutil
import socket

import pytest
import socks

from .helpers import Gost, free_port, wait_port
from .test_ss import CIPHERS, PW, LibevPeer
from .udppeers import UDPEcho, free_udp_port, udp_ask, wait_udp_service

pytestmark = pytest.mark.skipif(not shutil.which("ss-local") or not shutil.which("ss-server"),
                                reason="shadowsocks-libev (ss-local, ss-server) not installed")


@pytest.fixture(scope="module")
def echo():
    with UDPEcho(b"E:") as e:
        yield e


def _pysocks_ask(socks_port, target, payload):
    s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.set_proxy(socks.SOCKS5, "127.0.0.1", socks_port)
        s.settimeout(5)
        s.sendto(payload, target)
        return s.recvfrom(65535)[0]
    finally:
        s.close()


@pytest.mark.parametrize("method", CIPHERS)
def test_ss_local_udp_through_gostg_ssu(echo, method):
    port = free_port()
    with Gost("-L", f"ss://{method}:{PW}@127.0.0.1:{port}", "-L", f"ssu://{method}:{PW}@127.0.0.1:{port}",
              ports=[port]):
        lp = free_port()
        with LibevPeer("ss-local", "-s", "127.0.0.1", "-p", port, "-b", "127.0.0.1", "-l", lp,
                       "-k", PW, "-m", method, "-u", port=lp):
            assert _pysocks_ask(lp, ("127.0.0.1", echo.port), b"one") == b"E:one"
            big = os.urandom(1400)   # ss-local's UDP relay buffer is MTU-sized
            assert _pysocks_ask(lp, ("127.0.0.1", echo.port), big) == b"E:" + big
            assert _pysocks_ask(lp, ("localhost", echo.port), b"by name") == b"E:by name"


@pytest.mark.parametrize("method", CIPHERS)
def test_gostg_ssu_connector_to_ss_server(echo, method):
    sp = free_port()
    with LibevPeer("ss-server", "-s", "127.0.0.1", "-p", sp, "-k", PW, "-m", method, "-u", port=sp):
        p = free_udp_port()
        with Gost("-L", f"udp://127.0.0.1:{p}/{echo.addr}?keepAlive=true",
                  "-F", f"ssu://{method}:{PW}@127.0.0.1:{sp}") as g:
            wait_udp_service(g)
            assert udp_ask(p, b"to libev") == b"E:to libev"


def test_wrong_password_gets_no_answer(echo):
    sp = free_port()
    with LibevPeer("ss-server", "-s", "127.0.0.1", "-p", sp, "-k", PW, "-m", CIPHERS[0], "-u", port=sp):
        p = free_udp_port()
        with Gost("-L", f"udp://127.0.0.1:{p}/{echo.addr}",
                  "-F", f"ssu://{CIPHERS[0]}:wrong@127.0.0.1:{sp}") as g:
            wait_udp_service(g)
            assert udp_ask(p, b"nope", timeout=1.5) is None


def test_gostg_to_gostg_and_garbage_datagrams(echo):
    m = "aes-256-gcm"
    sp = free_udp_port()
    with Gost("-L", f"ssu://{m}:{PW}@127.0.0.1:{sp}") as srv:
        wait_udp_service(srv)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:   # garbage: dropped
            for n in (0, 1, 16, 40, 2000):
                junk.sendto(os.urandom(n), ("127.0.0.1", sp))
            junk.settimeout(0.5)
            with pytest.raises(socket.timeout):
                junk.recvfrom(100)
        p = free_udp_port()
        with Gost("-L", f"udp://127.0.0.1:{p}/{echo.addr}", "-F", f"ssu://{m}:{PW}@127.0.0.1:{sp}") as g:
            wait_udp_service(g)
            assert udp_ask(p, b"g2g") == b"E:g2g"
            big = os.urandom(60000)
            assert udp_ask(p, big) == b"E:" + big
        assert srv.proc.poll() is None


def test_replayed_datagram_reaches_the_target_once():
    """A captured ssu datagram sent again (same salt) is dropped: the target sees it once."""
    from gostg.protocols import shadowsocks as ss
    m = "chacha20-ietf-poly1305"
    cipher = ss.Cipher.new(m, PW)
    sp = free_udp_port()
    with UDPEcho(b"R:") as target, Gost("-L", f"ssu://{m}:{PW}@127.0.0.1:{sp}") as srv:
        wait_udp_service(srv)
        packet = ss.pack_udp(cipher, "127.0.0.1", target.port, b"pay once")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(3)
            c.sendto(packet, ("127.0.0.1", sp))
            answer = c.recv(65535)
            assert ss.unpack_udp(cipher, answer)[2] == b"R:pay once"
            c.sendto(packet, ("127.0.0.1", sp))                        # the replay
            c.sendto(answer, ("127.0.0.1", sp))                        # a reflected answer
            fresh = ss.pack_udp(cipher, "127.0.0.1", target.port, b"new salt")
            c.sendto(fresh, ("127.0.0.1", sp))
            assert ss.unpack_udp(cipher, c.recv(65535))[2] == b"R:new salt"
            c.settimeout(0.5)
            with pytest.raises(socket.timeout):
                c.recv(65535)
        assert target.count == 2, target.count
        assert srv.proc.poll() is None
