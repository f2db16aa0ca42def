"""UDP end to end: ``udp://`` port forwarding (sessions, keepAlive, ttl, big datagrams, many
clients, a real DNS server), SOCKS5 UDP ASSOCIATE driven by PySocks, UDP through chains of
gostg nodes (UDP-TUN, standard associate, HTTP, relay, two hops), bypass, and garbage fed to
a UDP relay port and a UDP-TUN stream. Everything is real processes on 127.0.0.1."""
import json
import os
import random
import socket
import struct
import time

import pytest
import socks

from .helpers import Gost, free_port
from .peers import fd_baseline, fd_count, fd_settle, recv_exact, socks5_greet, wait_log
from .udppeers import (Dnsmasq, UDPEcho, dns_a, dns_query, free_udp_port, needs_dnsmasq, udp_ask, udp_exchange_many,
                       wait_udp_service)


def forwarder(target, query="", *extra):
    """``-L udp://127.0.0.1:P/target?query`` → (Gost, P); the caller enters the Gost."""
    p = free_udp_port()
    return Gost("-L", f"udp://127.0.0.1:{p}/{target}{query}", *extra), p


def pysocks_udp(proxy_port, timeout=3.0):
    s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port)
    s.settimeout(timeout)
    return s


def udp_relays(gost, timeout=3.0):
    """How many UDP relays ``gost`` logged (``"network": "udp"`` and ``<->``): proves a chain
    node really carried the datagrams rather than being skipped."""
    deadline = time.monotonic() + timeout
    while True:
        n = 0
        for line in gost.log_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("network") == "udp" and " <-> " in rec.get("msg", ""):
                n += 1
        if n or time.monotonic() >= deadline:
            return n
        time.sleep(0.05)


# --- udp:// port forwarding -------------------------------------------------------------------

def test_forward_one_exchange_per_session_by_default():
    """GOST's default: a session ends after its first answer, so the next datagram from the
    same client socket is a new session with a new upstream socket."""
    with UDPEcho(b"E:") as e:
        g, p = forwarder(e.addr)
        with g, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            wait_udp_service(g)
            assert udp_ask(p, b"one", sock=c) == b"E:one"
            assert udp_ask(p, b"two", sock=c) == b"E:two"
            assert udp_ask(p, b"three", sock=c) == b"E:three"
        assert e.count == 3
        assert len(set(e.peers)) == 3, f"expected a new upstream port per exchange: {e.peers}"


@pytest.fixture(scope="module")
def keepalive_fwd():
    with UDPEcho(b"K:") as e:
        g, p = forwarder(e.addr, "?keepAlive=true")
        with g:
            wait_udp_service(g)
            yield e, p, g


def test_forward_keepalive_keeps_one_session(keepalive_fwd):
    e, p, _ = keepalive_fwd
    before = len(e.peers)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        for i in range(5):
            assert udp_ask(p, b"k%d" % i, sock=c) == b"K:k%d" % i
    assert len(e.peers) == before + 1, f"keepAlive session used {len(e.peers) - before} upstream ports"


def test_forward_60000_byte_datagram_both_ways(keepalive_fwd):
    e, p, _ = keepalive_fwd
    big = bytes(random.Random(7).getrandbits(8) for _ in range(60000))
    assert udp_ask(p, big, timeout=5) == b"K:" + big


def test_forward_20_concurrent_clients_get_their_own_answers(keepalive_fwd):
    e, p, _ = keepalive_fwd
    before = len(e.peers)
    payloads = [b"client-%02d-" % i + os.urandom(8).hex().encode() for i in range(20)]
    answers = udp_exchange_many(p, payloads, timeout=5)
    assert answers == [b"K:" + x for x in payloads]
    assert len(e.peers) == before + 20


def test_keepalive_session_survives_long_idle_with_long_ttl():
    """keepAlive with ttl=60s: 11 s of silence (more than two of the default 5 s ttl, after which
    a session is swept), then traffic again on the same session."""
    with UDPEcho(b"L:") as e:
        g, p = forwarder(e.addr, "?keepAlive=true&ttl=60s")
        with g, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            wait_udp_service(g)
            assert udp_ask(p, b"before", sock=c) == b"L:before"
            time.sleep(11)
            assert udp_ask(p, b"after", sock=c) == b"L:after"
        assert e.count == 2
        assert len(e.peers) == 1, f"upstream port changed after 11 s idle: {e.peers}"


def test_keepalive_session_expires_after_short_ttl():
    """ttl=1s: an idle session is swept after one to two ttl; the client then gets a new one."""
    with UDPEcho(b"S:") as e:
        g, p = forwarder(e.addr, "?keepAlive=true&ttl=1s")
        with g, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            wait_udp_service(g)
            assert udp_ask(p, b"a", sock=c) == b"S:a"
            time.sleep(0.3)
            assert udp_ask(p, b"b", sock=c) == b"S:b"
            assert len(e.peers) == 1, "within ttl the session must be kept"
            time.sleep(3)
            assert udp_ask(p, b"c", sock=c) == b"S:c"
        assert len(e.peers) == 2, f"session not expired after 3 s with ttl=1s: {e.peers}"


# --- a real DNS server ------------------------------------------------------------------------

@needs_dnsmasq
def test_dns_query_through_udp_forwarding():
    with Dnsmasq() as d:
        g, p = forwarder(f"127.0.0.1:{d.port}")
        with g:
            wait_udp_service(g)
            assert dns_a(dns_query(p, "example.test")) == ["10.9.8.7"]
            assert dns_a(dns_query(p, "www.example.test")) == ["10.9.8.7"]


@needs_dnsmasq
def test_dns_query_through_udp_forwarding_over_a_socks5_chain():
    with Dnsmasq() as d:
        sp = free_port()
        with Gost("-L", f"socks5://127.0.0.1:{sp}?udp=true", ports=[sp]) as srv:
            g, p = forwarder(f"127.0.0.1:{d.port}", "", "-F", f"socks5://127.0.0.1:{sp}")
            with g:
                wait_udp_service(g)
                assert dns_a(dns_query(p, "example.test", timeout=3)) == ["10.9.8.7"]
            assert udp_relays(srv) == 1


# --- SOCKS5 UDP ASSOCIATE (PySocks) -----------------------------------------------------------

@pytest.fixture(scope="module")
def socks_udp():
    sp = free_port()
    with UDPEcho(b"P:") as e, Gost("-L", f"socks5://127.0.0.1:{sp}?udp=true", ports=[sp]) as g:
        yield e, sp, g


def test_pysocks_udp_associate_ip_and_domain_targets(socks_udp):
    e, sp, _ = socks_udp
    s = pysocks_udp(sp)
    try:
        s.sendto(b"by-ip", ("127.0.0.1", e.port))
        data, src = s.recvfrom(65535)
        assert (data, src) == (b"P:by-ip", ("127.0.0.1", e.port))
        s.sendto(b"by-name", ("localhost", e.port))
        data, src = s.recvfrom(65535)
        assert data == b"P:by-name" and src[1] == e.port
    finally:
        s.close()


def test_pysocks_udp_associate_big_datagram(socks_udp):
    e, sp, _ = socks_udp
    big = os.urandom(30000)
    s = pysocks_udp(sp)
    try:
        s.sendto(big, ("127.0.0.1", e.port))
        assert s.recvfrom(65535)[0] == b"P:" + big
    finally:
        s.close()


def test_pysocks_udp_associate_refused_without_udp_true():
    sp = free_port()
    with UDPEcho() as e, Gost("-L", f"socks5://127.0.0.1:{sp}", ports=[sp]) as g:
        s = pysocks_udp(sp, timeout=2)
        try:
            with pytest.raises(socks.ProxyError):
                s.sendto(b"nope", ("127.0.0.1", e.port))
        finally:
            s.close()
        assert e.count == 0
        assert wait_log(g, "UDP relay is disabled")


# --- UDP through chains of gostg nodes --------------------------------------------------------

CHAINS = {
    # name: (servers [(scheme, listen query)], the client's -F query suffix for each server)
    "socks5-udptun": ([("socks5", "?udp=true")], [""]),
    "socks5-associate": ([("socks5", "?udp=true")], ["?relay=udp"]),
    "http": ([("http", "?udp=true")], [""]),
    "relay": ([("relay", "")], [""]),
    "relay-then-socks5": ([("relay", ""), ("socks5", "?udp=true")], ["", ""]),
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_udp_forward_through_chain(name):
    servers, fsuffix = CHAINS[name]
    ports = [free_port() for _ in servers]
    procs = [Gost("-L", f"{scheme}://127.0.0.1:{port}{q}", ports=[port]) for (scheme, q), port in zip(servers, ports)]
    chain = []
    for (scheme, _), port, suffix in zip(servers, ports, fsuffix):
        chain += ["-F", f"{scheme}://127.0.0.1:{port}{suffix}"]
    with UDPEcho(b"C:") as e:
        try:
            for pr in procs:
                pr.start()
            g, p = forwarder(e.addr, "?keepAlive=true", *chain)
            with g, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                wait_udp_service(g)
                assert udp_ask(p, b"hello", sock=c) == b"C:hello", g.log_text()[-2000:]
                big = os.urandom(30000)
                assert udp_ask(p, big, sock=c, timeout=5) == b"C:" + big
                two = udp_exchange_many(p, [b"x1", b"x2"])
                assert two == [b"C:x1", b"C:x2"]
            # the last node relayed UDP to the echo: the chain was really used
            assert udp_relays(procs[-1]) >= 1, procs[-1].log_text()[-2000:]
            assert e.count == 4
        finally:
            for pr in procs:
                pr.__exit__(None, None, None)


def test_pysocks_through_socks5_chain_to_socks5_udp():
    """PySocks → gostg A (socks5, udp=true, -F socks5://B) → gostg B (socks5, udp=true) → echo:
    A's association is carried to B over UDP-TUN."""
    a, b = free_port(), free_port()
    with UDPEcho(b"2:") as e, \
            Gost("-L", f"socks5://127.0.0.1:{b}?udp=true", ports=[b]) as gb, \
            Gost("-L", f"socks5://127.0.0.1:{a}?udp=true", "-F", f"socks5://127.0.0.1:{b}", ports=[a]):
        s = pysocks_udp(a)
        try:
            s.sendto(b"via-b", ("127.0.0.1", e.port))
            assert s.recvfrom(65535) == (b"2:via-b", ("127.0.0.1", e.port))
            s.sendto(b"via-b-name", ("localhost", e.port))
            assert s.recvfrom(65535)[0] == b"2:via-b-name"
        finally:
            s.close()
        assert udp_relays(gb) == 1 and e.count == 2


# --- bypass -----------------------------------------------------------------------------------

def test_socks5_udp_bypass_drops_only_the_bypassed_target():
    sp = free_port()
    with UDPEcho(b"no:") as blocked, UDPEcho(b"ok:") as allowed, \
            Gost("-L", f"socks5://127.0.0.1:{sp}?udp=true&bypass=127.0.0.1:{blocked.port}", ports=[sp]):
        s = pysocks_udp(sp, timeout=1.0)
        try:
            s.sendto(b"x", ("127.0.0.1", blocked.port))
            with pytest.raises(socket.timeout):
                s.recvfrom(65535)
            s.settimeout(3)
            s.sendto(b"y", ("127.0.0.1", allowed.port))
            assert s.recvfrom(65535)[0] == b"ok:y"
            s.settimeout(1.0)
            s.sendto(b"z", ("127.0.0.1", blocked.port))
            with pytest.raises(socket.timeout):
                s.recvfrom(65535)
        finally:
            s.close()
        assert blocked.count == 0 and allowed.count == 1


# --- garbage ----------------------------------------------------------------------------------

def _socks5_request(port, cmd):
    """Raw SOCKS5: greeting + ``cmd`` for 0.0.0.0:0 → (control socket, bound port)."""
    c = socks5_greet(port, timeout=3)
    c.sendall(b"\x05" + bytes([cmd]) + b"\x00\x01\x00\x00\x00\x00\x00\x00")
    head = recv_exact(c, 4)
    assert head[:2] == b"\x05\x00", head
    alen = {1: 4, 4: 16}.get(head[3]) or recv_exact(c, 1)[0]
    recv_exact(c, alen)
    (bport,) = struct.unpack("!H", recv_exact(c, 2))
    return c, bport


def _socks5_dgram(port, payload):
    return b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port) + payload


def _tun_frame(port, payload):
    return struct.pack("!HB", len(payload), 0xFF) + b"\x01" + socket.inet_aton("127.0.0.1") + \
        struct.pack("!H", port) + payload


def test_garbage_into_udp_relay_and_udp_tun_keeps_serving_and_frees_fds():
    rnd = random.Random(1234)
    sp = free_port()
    with UDPEcho(b"G:") as e, Gost("-L", f"socks5://127.0.0.1:{sp}?udp=true",
                                   "-C", '{"log": {"level": "error"}}', ports=[sp]) as g:
        pid = g.proc.pid
        # warm up both paths so lazily created, process-lifetime fds are counted in the baseline
        for cmd in (3, 0xF3):
            c, _ = _socks5_request(sp, cmd)
            c.close()
        start = fd_baseline(pid)

        # 1. standard association: garbage datagrams are dropped, the association lives on
        for round_ in range(10):
            c, relay_port = _socks5_request(sp, 3)
            with c, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(3)
                for _ in range(20):
                    u.sendto(rnd.randbytes(rnd.randint(0, 600)), ("127.0.0.1", relay_port))
                u.sendto(b"\x00\x00\x07" + _socks5_dgram(e.port, b"frag")[3:], ("127.0.0.1", relay_port))
                u.sendto(b"\x00\x00\x00\x09garbage", ("127.0.0.1", relay_port))
                # well-formed, but nowhere to go: dropped without ending the association
                for bad in (b"\x00\x00\x00\x03\x0cnone.invalid\x00\x35q", _socks5_dgram(0, b"port 0"),
                            b"\x00\x00\x00\x01\xff\xff\xff\xff\x00\x35broadcast"):
                    u.sendto(bad, ("127.0.0.1", relay_port))
                u.sendto(_socks5_dgram(e.port, b"r%d" % round_), ("127.0.0.1", relay_port))
                data = u.recvfrom(65535)[0]
                assert data == _socks5_dgram(e.port, b"G:r%d" % round_)

        # 2. UDP-TUN stream: a good frame is answered; garbage ends that stream only
        for round_ in range(10):
            c, _ = _socks5_request(sp, 0xF3)
            with c:
                c.sendall(_tun_frame(e.port, b"t%d" % round_))
                want = _tun_frame(e.port, b"G:t%d" % round_)
                assert recv_exact(c, len(want)) == want
                c.sendall(b"\x00\x05\xff\x09" + rnd.randbytes(rnd.randint(1, 300)))
                c.settimeout(3)
                try:
                    while c.recv(4096):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
        for _ in range(10):   # random bytes right after the handshake; client leaves
            c, _ = _socks5_request(sp, 0xF3)
            with c:
                c.sendall(rnd.randbytes(rnd.randint(1, 2000)))
                time.sleep(0.02)

        assert g.proc.poll() is None
        # still serving
        s = pysocks_udp(sp)
        try:
            s.sendto(b"alive", ("127.0.0.1", e.port))
            assert s.recvfrom(65535)[0] == b"G:alive"
        finally:
            s.close()
        end = fd_settle(pid, start + 1)
        assert end <= start + 1, f"fds {start} -> {end} after garbage rounds"
        assert fd_count(pid) <= start + 1
