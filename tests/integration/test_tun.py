"""GOST's routing tunnel (tutorials/routing-tunnel.md) between TUN devices in network
namespaces the test makes (all deleted at teardown; nothing touches the host's routes):

    R: the router server (router handler)          10.77.1.1 ── veth ── 10.77.1.2  A
                                                    10.77.2.1 ── veth ── 10.77.2.2  B
    A: gostg client, tun device 192.168.123.1/24, host-1  (ip netns exec A gostg …, as the docs)
    B: gostg client, tun device 192.168.123.2/24, host-2: run from here with the service's
       netns (the device is made in B) and its chain node's netns (the dial leaves from B), so
       its Web API is on this namespace's loopback.

A TCP echo from A's 192.168.123.1 to B's 192.168.123.2 crosses both devices and the router.
"""
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest

from gostg.core import netns

from .helpers import Gost, free_port, run_gostg, veth, wait_for
from .peers import Api, log_records, wait_log

DEADLINE = 15.0
RID = "e87f56dd-fd57-4921-9ab8-a0847662daae"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=15)


def tun_ready():
    return os.path.exists("/dev/net/tun") and os.geteuid() == 0 and subprocess.run(
        ["which", "ip"], capture_output=True).returncode == 0


class Net:
    def __init__(self):
        tag = secrets.token_hex(3)
        self.r, self.a, self.b = (f"gostg-t-{tag}-{x}" for x in "rab")

    def up(self):
        for n in (self.r, self.a, self.b):
            ip("netns", "add", n)
            ip("-n", n, "link", "set", "lo", "up")
        for here, there, peer, net in (("va", "va0", self.a, "10.77.1"), ("vb", "vb0", self.b, "10.77.2")):
            veth(self.r, here, peer, there, [f"{net}.1/24"], f"{net}.2/24")

    def down(self):
        for n in (self.r, self.a, self.b):
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=15)


@pytest.fixture(scope="module")
def net():
    if not tun_ready():
        if os.environ.get("CI"):
            pytest.fail("TUN tests need root, /dev/net/tun and iproute2 (CI is set)")
        pytest.skip("TUN tests need root, /dev/net/tun and iproute2")
    n = Net()
    try:
        n.up()
        yield n
    finally:
        n.down()


class Echo:
    """A TCP echo server on ``host:port`` inside namespace ``ns`` (its socket made there)."""

    def __init__(self, ns, host, port):
        with netns.inside(ns):
            self.s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((host, port))
        self.s.listen(8)
        self.s.settimeout(0.2)
        self.stop = False
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        while not self.stop:
            try:
                c, _ = self.s.accept()
            except OSError:
                continue
            with c:
                c.settimeout(3)
                try:
                    c.sendall(c.recv(1000)[::-1])
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.t.join(2)
        self.s.close()


def echo_from(ns, host, port, data=b"through the routing tunnel", timeout=DEADLINE):
    """Connect from namespace ``ns`` until the echo answers (→ its answer) or the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with netns.inside(ns):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            s.settimeout(1.0)
            s.connect((host, port))
            s.sendall(data)
            return s.recv(1000)
        except OSError as exc:
            last = exc
            time.sleep(0.2)
        finally:
            s.close()
    raise AssertionError(f"no echo from {host}:{port} in {ns}: {last}")


def tun_fds(pid):
    """How many of process ``pid``'s descriptors are open on /dev/net/tun."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/net/tun"
        except OSError:
            pass
    return n


def link_state(ns, name):
    r = ip("-n", ns, "-o", "addr", "show", "dev", name, check=False)
    return r.stdout if r.returncode == 0 else None


SERVER = """
services:
- name: router-svc
  addr: ":{port}"
  handler:
    type: router
    metadata: {{router: router-0}}
  listener: {{type: tcp}}
routers:
- name: {rid}
  routes:
  - {{dst: 192.168.123.1, gateway: host-1}}
  - {{dst: 192.168.123.2, gateway: host-2}}
  - {{dst: 192.168.123.9, gateway: host-9}}
  - {{dst: "fd00:123::1", gateway: host-1}}
  - {{dst: "fd00:123::/64", gateway: host-2}}
- name: router-0
  routes:
  - {{dst: 192.168.123.0/24, gateway: host-0}}
"""


def client_b(port, ns):
    return {"name": "tun-b", "metadata": {"netns": ns},
            "handler": {"type": "tun", "chain": "chain-b"},
            "listener": {"type": "tun", "metadata": {"name": "gtunb", "net": "192.168.123.2/24,fd00:123::2/64"}},
            "forwarder": {"nodes": [{"name": "host", "addr": "host-2"}]}}


def test_routing_tunnel_between_namespaces(net, tmp_path):
    port, api_port = free_port(), free_port()
    cfg = tmp_path / "router.yaml"
    cfg.write_text(SERVER.format(port=port, rid=RID))
    server = Gost("-C", cfg, prefix=("ip", "netns", "exec", net.r))
    a = Gost("-L", "tun:///host-1?net=192.168.123.1/24,fd00:123::1/64&name=gtuna"
                   "&route=192.168.200.0/24&routes=10.99.0.0/16 192.168.123.254",
             "-F", f"router://10.77.1.1:{port}?router.id={RID}", prefix=("ip", "netns", "exec", net.a))
    b = Gost("-api", f"127.0.0.1:{api_port}", ports=[api_port])
    echo = Echo(net.b, "::", 7777)   # (the device is not there yet: any address, both families)
    with server, a, b:
        api = Api(api_port)
        api.post("chains", {"name": "chain-b", "hops": [{"name": "hop-0", "nodes": [{
            "name": "node-0", "addr": f"10.77.2.1:{port}", "metadata": {"netns": net.b},
            "connector": {"type": "router", "metadata": {"router.id": RID}}, "dialer": {"type": "tcp"}}]}]})
        api.post("services", client_b(port, net.b))
        try:
            # the devices, made and configured by gostg in their namespaces
            assert wait_for(lambda: link_state(net.a, "gtuna"), DEADLINE), a.log_text()[-2000:]
            assert "192.168.123.1/24" in link_state(net.a, "gtuna")
            assert wait_for(lambda: link_state(net.b, "gtunb"), DEADLINE), b.log_text()[-2000:]
            assert "192.168.123.2/24" in link_state(net.b, "gtunb")
            # (MTU and routes come after the addresses: wait for the last route)
            routes = lambda: ip("-n", net.a, "route").stdout   # noqa: E731
            assert wait_for(lambda: "10.99.0.0/16 via 192.168.123.254 dev gtuna" in routes(), DEADLINE)
            assert "192.168.200.0/24 dev gtuna" in routes()
            assert "mtu 1420" in ip("-n", net.a, "link", "show", "gtuna").stdout

            assert echo_from(net.a, "192.168.123.2", 7777) == b"lennut gnituor eht hguorht"
            assert echo_from(net.a, "fd00:123::2", 7777, b"over ipv6") == b"6vpi revo"

            # a route to a gateway nobody is connected as, and no route at all: dropped, logged
            for dst in ("192.168.123.9", "192.168.123.50"):
                with pytest.raises(AssertionError):
                    echo_from(net.a, dst, 7, timeout=1.2)
            assert wait_log(server, r"host host-9 is not connected, packet to 192\.168\.123\.9 discarded")
            # 192.168.123.50: no route in the client's namespace, so the default router-0's
            # route (gateway host-0, not connected) is taken, as GOST does
            assert wait_log(server, r"host host-0 is not connected, packet to 192\.168\.123\.50 discarded")

            # the service deleted through the Web API: its device goes, no descriptor is left
            pid = b.proc.pid
            assert tun_fds(pid) == 1
            api.ok("DELETE", "/config/services/tun-b")
            assert wait_for(lambda: link_state(net.b, "gtunb") is None, DEADLINE), "device left behind"
            assert wait_for(lambda: tun_fds(pid) == 0, DEADLINE)
            # … and created again under the same device name: the tunnel works again
            api.post("services", client_b(port, net.b))
            assert wait_for(lambda: link_state(net.b, "gtunb"), DEADLINE)
            assert echo_from(net.a, "192.168.123.2", 7777) == b"lennut gnituor eht hguorht"
            # replaced through the API (PUT, a new MTU): the successor takes the device name over
            changed = client_b(port, net.b)
            changed["listener"]["metadata"]["mtu"] = 1400
            api.put("services", "tun-b", changed)
            assert wait_for(lambda: "mtu 1400" in ip("-n", net.b, "link", "show", "gtunb", check=False).stdout,
                            DEADLINE), b.log_text()[-2000:]
            assert echo_from(net.a, "192.168.123.2", 7777) == b"lennut gnituor eht hguorht"
            assert tun_fds(pid) == 1
        finally:
            echo.close()
        for g in (a, b, server):
            g.stop()
        assert link_state(net.a, "gtuna") is None   # the process ended: so did its device
        assert "Traceback" not in server.log_text() + a.log_text() + b.log_text()


ASSOC = bytes.fromhex("0103001c04000200020200070100000000000002000a0306") + b"host-1" + b"\0\0"


def test_router_port_garbage_and_slow_clients():
    port = free_port()
    with Gost("-L", f"router://127.0.0.1:{port}?readTimeout=1s", ports=[port]) as g:
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes.fromhex("0103 0010 0200 01"), b"\x01"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(junk)
                if len(junk) < 8:
                    s.shutdown(socket.SHUT_WR)
                assert s.recv(100) == b""        # closed, nothing answered
        assert wait_log(g, r"protocol error: relay: bad version 0x47")
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:   # a slow client
            s.sendall(b"\x01\x03")
            assert s.recv(100) == b""
        assert 0.8 < time.monotonic() - t0 < 4
        assert wait_log(g, r"handshake timeout")
        # the service lives on: an association is answered OK with a 20-byte connector id
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(ASSOC)
            resp = s.recv(100)
            assert resp[:4] == bytes.fromhex("01000017") and resp[4:7] == bytes.fromhex("030014")
            assert uuid.UUID(bytes=resp[7:23]).version == 4
        g.stop()
        assert "Traceback" not in g.log_text()


def _assoc(host):
    dom = host.encode()
    feats = (bytes.fromhex("0400020002 02000701 00000000 0000") + bytes.fromhex("02") + struct.pack("!H", 4 + len(dom))
             + b"\x03" + bytes((len(dom),)) + dom + b"\0\0")
    return b"\x01\x03" + struct.pack("!H", len(feats)) + feats


def _ipv4(src, dst):
    return bytes.fromhex("45000014 00000000 40000000") + socket.inet_aton(src) + socket.inet_aton(dst)


def test_router_server_under_workers_serves_in_one_process(tmp_path):
    """-workers 2: the router's clients must meet in one process, so worker 0 alone serves it
    (a shared port would spread host-1 and host-2 over two pools that cannot see each other)."""
    port = free_port()
    cfg = tmp_path / "router.yaml"
    cfg.write_text(SERVER.format(port=port, rid=RID).replace(f'":{port}"', f'"127.0.0.1:{port}"'))
    with Gost("-workers", "2", "-C", cfg, ports=[port]) as g:
        for i in range(6):   # fresh client pairs: with a shared port some would split
            h1, h2 = (socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2))
            with h1, h2:
                for s, host in ((h1, "host-1"), (h2, "host-0")):   # 192.168.123.0/24 → host-0
                    s.sendall(_assoc(host))
                    assert s.recv(4)[:2] == b"\x01\x00"
                    s.recv(23)
                pkt = _ipv4("192.168.123.1", "192.168.123.77")
                h1.sendall(struct.pack("!H", len(pkt)) + pkt)
                assert h2.recv(2 + len(pkt)) == struct.pack("!H", len(pkt)) + pkt, i
        assert {e.get("worker") for e in log_records(g, msg="listening on")} == {0}, g.log_text()[-3000:]
        g.stop()
        assert "Traceback" not in g.log_text()


def test_tun_config_errors(net):
    ns = ("ip", "netns", "exec", net.a)   # should one start after all, its device is not ours
    r = run_gostg("-L", "tun:///host-1?net=192.168.123.300/24", "-F", "router://127.0.0.1:1", prefix=ns)
    assert r.returncode != 0 and "bad address '192.168.123.300/24'" in r.stderr
    r = run_gostg("-L", "tun:///host-1?net=10.1.1.1/24&dns=1.1.1.1:53", "-F", "router://127.0.0.1:1", prefix=ns)
    assert r.returncode != 0 and "bad DNS server address '1.1.1.1:53'" in r.stderr
    r = run_gostg("-L", "tun:///host-1?net=10.1.1.1/24", "-F", "router://127.0.0.1:1?router.id=nope", prefix=ns)
    assert r.returncode != 0 and "invalid router ID 'nope'" in r.stderr
    r = run_gostg("-L", "tun:///host-1?net=10.1.1.1/24&route=10.2.0.0/33", "-F", "router://127.0.0.1:1", prefix=ns)
    assert r.returncode != 0 and "bad network '10.2.0.0/33'" in r.stderr


UDP_SERVER = """
services:
- name: tun-server
  addr: ":{port}"
  handler: {{type: tun, auther: clients}}
  listener: {{type: tun, metadata: {{net: 192.168.124.1/24, name: gtuns}}}}
authers:
- name: clients
  auths:
  - {{username: 192.168.124.2, password: s3cret-a}}
  - {{username: 192.168.124.3, password: s3cret-b}}
  - {{username: 192.168.124.4, password: s3cret-c}}
"""


def test_tun_over_udp_server_and_clients(net, tmp_path):
    """tutorials/tuntap.md: a TUN server in R (192.168.124.1) and clients over UDP (A .2, B .3,
    each authenticated by its keepalive's passphrase); A reaches the server's own address and,
    through the server, client B. C (.4, in B's namespace) has a wrong passphrase: refused."""
    port = free_port()
    cfg = tmp_path / "tun-server.yaml"
    cfg.write_text(UDP_SERVER.format(port=port))
    server = Gost("-C", cfg, "-D", prefix=("ip", "netns", "exec", net.r))
    a = Gost("-L", f"tun://:0/10.77.1.1:{port}?net=192.168.124.2/24&name=gtuna&keepalive=true&ttl=1s"
                   "&passphrase=s3cret-a", prefix=("ip", "netns", "exec", net.a))
    b = Gost("-L", f"tun://:0/10.77.2.1:{port}?net=192.168.124.3/24&name=gtunb&token=s3cret-b",
             prefix=("ip", "netns", "exec", net.b))
    c = Gost("-L", f"tun://:0/10.77.2.1:{port}?net=192.168.124.4/32&name=gtunc&token=wrong",
             prefix=("ip", "netns", "exec", net.b))
    echo_r, echo_b = Echo(net.r, "0.0.0.0", 7778), Echo(net.b, "0.0.0.0", 7778)
    with server, a, b, c:
        try:
            assert echo_from(net.a, "192.168.124.1", 7778, b"to the server") == b"revres eht ot"
            assert echo_from(net.a, "192.168.124.3", 7778, b"to client b") == b"b tneilc ot"
            assert echo_from(net.b, "192.168.124.1", 7778, b"from b") == b"b morf"
            assert wait_log(server, r"keepalive from [0-9.:]+ => 192\.168\.124\.2\"", count=2)  # A repeats
            assert wait_log(server, r"keepalive from [0-9.:]+ => 192\.168\.124\.4, auth FAILED")
            assert not re.search(r"new route: 192\.168\.124\.4", server.log_text())
            # garbage to the server's UDP port: logged, dropped; the tunnel goes on
            with netns.inside(net.r):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with u:
                for junk in (b"\x00garbage", b"GOST" + bytes(17), b"\x45" + bytes(5)):
                    u.sendto(junk, ("127.0.0.1", port))
            assert wait_log(server, r"unknown packet, discarded\(8\)"), server.log_text()[-3000:]
            assert wait_log(server, r"ipv4: header too short \(6 bytes\)")
            assert echo_from(net.a, "192.168.124.3", 7778, b"still") == b"llits"
            # the server hangs: A (keepalive, ttl 1s) notices within 3 ttl and dials again; once
            # the server is back, so is the tunnel
            server.signal(signal.SIGSTOP)
            try:
                assert wait_log(a, r"no keepalive answer in 3s", timeout=8), a.log_text()[-1500:]
            finally:
                server.signal(signal.SIGCONT)
            assert echo_from(net.a, "192.168.124.1", 7778, b"back") == b"kcab"
        finally:
            echo_r.close()
            echo_b.close()
        for g in (a, b, c, server):
            g.stop()
        assert "Traceback" not in server.log_text() + a.log_text() + b.log_text() + c.log_text()


def test_device_name_taken(net):
    """Two services want one device name: the second says why and retries (with back-off),
    never a traceback; the first keeps its device."""
    with Gost("-L", "tun:///h1?net=10.5.5.1/24&name=gdup", "-L", "tun:///h2?net=10.5.6.1/24&name=gdup",
              "-F", "router://127.0.0.1:1", prefix=("ip", "netns", "exec", net.a)) as g:
        assert wait_log(g, r"create device gdup: Device or resource busy \(a device of that name is open "
                           r"elsewhere\); retrying in 1s", timeout=DEADLINE), g.log_text()[-2000:]
        assert wait_log(g, r"retrying in 2s", timeout=DEADLINE)
        assert wait_for(lambda: link_state(net.a, "gdup"), DEADLINE)
        g.stop()
        assert "Traceback" not in g.log_text()


@pytest.mark.parametrize("auth", ["", "aes-128-gcm:s3cret@"], ids=["plain", "shadowsocks"])
def test_tap_over_udp(net, auth):
    """tutorials/tuntap.md (TAP): a virtual switch in R (192.168.125.1) and clients A (.2), B (.3):
    ARP and IP cross it, A reaches the server's device and, switched by the server, client B.
    With handler auth every datagram is a Shadowsocks AEAD packet."""
    port = free_port()
    server = Gost("-L", f"tap://{auth}:{port}?net=192.168.125.1/24&name=gtaps", "-D",
                  prefix=("ip", "netns", "exec", net.r))
    a = Gost("-L", f"tap://{auth}:0/10.77.1.1:{port}?net=192.168.125.2/24&name=gtapa", prefix=("ip", "netns", "exec", net.a))
    b = Gost("-L", f"tap://{auth}:0/10.77.2.1:{port}?net=192.168.125.3/24&name=gtapb", prefix=("ip", "netns", "exec", net.b))
    echo_r, echo_b = Echo(net.r, "0.0.0.0", 7779), Echo(net.b, "0.0.0.0", 7779)
    with server, b, a:
        try:
            assert wait_for(lambda: link_state(net.b, "gtapb"), DEADLINE)
            # B speaks first (its ARP probe teaches the switch its MAC)
            assert echo_from(net.b, "192.168.125.1", 7779, b"b here") == b"ereh b"
            assert echo_from(net.a, "192.168.125.1", 7779, b"to the switch") == b"hctiws eht ot"
            assert echo_from(net.a, "192.168.125.3", 7779, b"to b") == b"b ot"
            assert "link/ether" in ip("-n", net.a, "link", "show", "gtapa").stdout
            with netns.inside(net.r):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with u:
                u.sendto(b"short", ("127.0.0.1", port))
                u.sendto(bytes(64), ("127.0.0.1", port))
            if auth:
                assert wait_log(server, r"tap: shadowsocks: UDP packet of 5 bytes is too short from 127\.0\.0\.1")
                assert wait_log(server, r"tap: shadowsocks: UDP packet failed authentication from 127\.0\.0\.1")
            else:
                assert wait_log(server, r"tap: ethernet: frame too short \(5 bytes\) from 127\.0\.0\.1")
            assert echo_from(net.a, "192.168.125.3", 7779, b"still") == b"llits"
        finally:
            echo_r.close()
            echo_b.close()
        for g in (a, b, server):
            g.stop()
        assert "Traceback" not in server.log_text() + a.log_text() + b.log_text()
    if auth:
        r = run_gostg("-L", "tap://rc4-md5:x@:0/10.77.1.1:1?net=10.1.1.1/24", prefix=("ip", "netns", "exec", net.a))
        assert r.returncode != 0 and "unsupported shadowsocks cipher 'rc4-md5'" in r.stderr


def test_dns_needs_resolvectl(net):
    """``dns`` runs resolvectl after the routes; where it is missing (this box) the device fails
    with a line saying what to install, is removed, and is tried again later (GOST fails it too)."""
    if subprocess.run(["which", "resolvectl"], capture_output=True).returncode == 0:
        pytest.skip("resolvectl is installed: this checks the message when it is not")
    with Gost("-L", "tun:///h1?net=10.5.7.1/24&name=gdns&dns=192.168.1.1,192.168.100.1", "-F", "router://127.0.0.1:1",
              prefix=("ip", "netns", "exec", net.a)) as g:
        assert wait_log(g, r"resolvectl: command not found \(the tun listener needs systemd-resolved's "
                           r"resolvectl for dns\); retrying in 1s", timeout=DEADLINE), g.log_text()[-2000:]
        assert link_state(net.a, "gdns") is None   # not left half-made
        g.stop()
        assert "Traceback" not in g.log_text()
