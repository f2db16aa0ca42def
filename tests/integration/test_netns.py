"""GOST's tutorials/multi-homed.md and tutorials/netns.md, in network namespaces the test makes.

Topology (every name gets a random tag; all deleted at teardown, so nothing touches the host's
own network): ``H`` plays the docs' default namespace (gostg runs there, ``ip netns exec``),
``ns1`` and ``ns2`` are the docs' namespaces, wired as the docs wire them:

    ns1 veth1 10.0.0.1  ── veth0 10.0.0.11             H
    ns2 veth3 10.0.1.1  ── veth2 10.0.1.11, 10.0.1.12  H   (second address: multi-homed)
    ns2 veth5 10.0.2.1  ── veth4 10.0.2.11             H   (second link: multi-homed)

A "who" origin answers every GET with the source address it saw, so what gostg chose is what
curl prints. rp_filter is off in the namespaces: the multi-homed answers come back on another
link than the one the kernel's main table would pick.
"""
import os
import secrets
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
import socks

from gostg.core import netns

from .helpers import Gost, free_port, run_gostg, veth
from .peers import curl, wait_log


DEADLINE = 15.0


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)


def in_ns(ns, *argv, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)


class Net:
    def __init__(self):
        tag = secrets.token_hex(3)
        self.h, self.ns1, self.ns2 = (f"gostg-t-{tag}-{x}" for x in ("h", "1", "2"))
        self.all = (self.h, self.ns1, self.ns2)

    def up(self):
        for n in self.all:
            ip("netns", "add", n)
            in_ns(n, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
            ip("-n", n, "link", "set", "lo", "up")
        for here, there, peer, addrs, peer_addr in (
                ("veth0", "veth1", self.ns1, ["10.0.0.11/24"], "10.0.0.1/24"),
                ("veth2", "veth3", self.ns2, ["10.0.1.11/24", "10.0.1.12/24"], "10.0.1.1/24"),
                ("veth4", "veth5", self.ns2, ["10.0.2.11/24"], "10.0.2.1/24")):
            veth(self.h, here, peer, there, addrs, peer_addr)

    def down(self):
        for n in self.all:
            subprocess.run(["ip", "netns", "del", n], capture_output=True, timeout=15)

    def gost(self, *args, ns=None):
        return Gost(*args, prefix=("ip", "netns", "exec", ns or self.h))

    def curl(self, ns, url, *args):
        """→ (exit code, body) of curl run inside ``ns``."""
        r = in_ns(ns, "curl", "-s", "--max-time", "10", *args, url)
        return r.returncode, r.stdout


@pytest.fixture(scope="module")
def net():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    n = Net()
    try:
        n.up()
        yield n
    finally:
        n.down()


class _Who(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Who:
    """The "who" origin, listening on ``host:port`` inside namespace ``ns``: its socket is
    made there (gostg's own netns.inside), the thread serving it runs here."""

    def __init__(self, ns, host, port):
        with netns.inside(ns):
            self.srv = _Server((host, port), _Who, bind_and_activate=False)
        self.srv.server_bind()
        self.srv.server_activate()

    def __enter__(self):
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()


def wait_in(ns, host, port, g):
    """Until ``host:port`` accepts inside ``ns`` (or gostg exits: its log is the failure)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert g.proc.poll() is None, g.log_text()[-2000:]
        with netns.inside(ns):
            s = socket.socket()
        try:
            s.settimeout(0.5)
            s.connect((host, port))
            return
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    raise TimeoutError(f"{host}:{port} in {ns} not listening:\n{g.log_text()[-2000:]}")


# --- tutorials/multi-homed.md ---------------------------------------------------------------

def test_interface_source_address_on_loopback():
    """No namespace needed: 127.0.0.0/8 is ours, so ``interface=127.0.0.2`` is a second source
    address; the origin (and curl) see it."""
    port, op = free_port(), free_port()
    with Who("", "127.0.0.1", op), Gost("-L", f"http://127.0.0.1:{port}?interface=127.0.0.2", ports=[port]):
        assert curl("-x", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{op}/").stdout == b"127.0.0.2"


def test_multi_homed_interface_on_service(net):
    """``gost -L :8080?interface=eth0`` (a name), the IP form, the IP list and strict mode: one
    gostg, one service each (ports 8080…)."""
    cases = [("", "10.0.1.11"), ("?interface=veth4", "10.0.2.11"), ("?interface=10.0.1.12", "10.0.1.12"),
             ("?interface=10.9.9.9,fd00::1,10.0.1.12", "10.0.1.12"),
             ("?interface=10.9.9.9!,10.0.1.12", None)]   # strict: the list stops at the first entry
    args = [a for i, (query, _) in enumerate(cases) for a in ("-L", f":{8080 + i}{query}")]
    with Who(net.ns2, "10.0.1.1", 8000), net.gost(*args) as g:
        wait_in(net.h, "127.0.0.1", 8080 + len(cases) - 1, g)
        for i, (query, seen) in enumerate(cases):
            code, body = net.curl(net.h, "http://10.0.1.1:8000/", "-x", f"http://127.0.0.1:{8080 + i}")
            if seen is None:   # nothing leaves from another address: the client gets an error
                assert body != "10.0.1.12" and "10.0.1" not in body, body
            else:
                assert (code, body) == (0, seen), (query, g.log_text()[-1500:])
        assert wait_log(g, r"interface 10\.9\.9\.9: Cannot assign requested address"), g.log_text()[-1500:]


def test_multi_homed_forwarding_chain(net, tmp_path):
    """The docs' chain forms. CLI ``gost -L :8080 -F :8000?interface=192.168.0.1``: the hop's
    interface. YAML: hop-level ``interface`` and a node-level one; the node's wins, a node
    without one takes its hop's. The node is a gostg http proxy in ns2, whose log shows the
    source address it saw."""
    cfg = tmp_path / "gost.yaml"
    cfg.write_text("""
services:
- {name: service-0, addr: ":8081", handler: {type: auto, chain: chain-0}, listener: {type: tcp}}
- {name: service-1, addr: ":8082", handler: {type: auto, chain: chain-1}, listener: {type: tcp}}
chains:
- name: chain-0
  hops:
  - name: hop-0
    interface: 10.0.1.12
    nodes:
    - {name: node-0, addr: "10.0.1.1:8000", interface: veth4, connector: {type: http}, dialer: {type: tcp}}
- name: chain-1
  hops:
  - name: hop-1
    interface: 10.0.1.12
    nodes:
    - {name: node-1, addr: "10.0.1.1:8000", connector: {type: http}, dialer: {type: tcp}}
""")
    with Who(net.ns2, "127.0.0.1", 9000), net.gost("-L", "http://10.0.1.1:8000", ns=net.ns2) as proxy, \
            net.gost("-L", ":8080", "-F", "http://10.0.1.1:8000?interface=10.0.2.11") as cli, \
            net.gost("-C", cfg) as yml:
        wait_in(net.ns2, "10.0.1.1", 8000, proxy)
        wait_in(net.h, "127.0.0.1", 8080, cli)
        wait_in(net.h, "127.0.0.1", 8082, yml)
        for port, seen in ((8080, "10.0.2.11"), (8081, "10.0.2.11"), (8082, "10.0.1.12")):
            assert net.curl(net.h, "http://127.0.0.1:9000/", "-x", f"http://127.0.0.1:{port}") == (0, "127.0.0.1")
            # the proxy's log line for this connection names the source address gostg chose
            assert wait_log(proxy, r'"remote": "' + seen.replace(".", r"\.") + ':', count=1), proxy.log_text()[-1500:]
        assert len(wait_log(proxy, r'"remote": "10\.0\.2\.11:\d+", "local"[^}]*"msg": "[^"]*<->', count=2)) == 2


def test_multi_homed_direct_connection_mode(net, tmp_path):
    """The docs' "Direct Connection Mode": virtual nodes, one per interface, balance the
    service's direct connections over both links (round robin: each one once)."""
    cfg = tmp_path / "gost.yaml"
    cfg.write_text("""
services:
- {name: service-0, addr: ":8080", handler: {type: auto, chain: chain-0}, listener: {type: tcp}}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - {name: node-0, addr: ":0", interface: veth2, connector: {type: virtual}, dialer: {type: virtual}}
    - {name: node-1, addr: ":0", interface: veth4, connector: {type: virtual}, dialer: {type: virtual}}
""")
    with Who(net.ns2, "10.0.1.1", 8000), net.gost("-C", cfg) as g:
        wait_in(net.h, "127.0.0.1", 8080, g)
        seen = {net.curl(net.h, "http://10.0.1.1:8000/", "-x", "http://127.0.0.1:8080")[1] for _ in range(2)}
        assert seen == {"10.0.1.11", "10.0.2.11"}, g.log_text()[-1500:]


def test_so_mark_routes_by_fwmark(net):
    """``so_mark`` (service and -F hop): an ``ip rule fwmark`` sends marked sockets out of
    veth4, so the origin sees veth4's address; unmarked traffic keeps the main table."""
    ip("-n", net.h, "rule", "add", "fwmark", "100", "table", "100")
    ip("-n", net.h, "route", "add", "10.0.1.0/24", "dev", "veth4", "table", "100")
    try:
        with Who(net.ns2, "10.0.1.1", 8000), net.gost("-L", ":8080", "-L", ":8081?so_mark=100") as g, \
                net.gost("-L", "http://10.0.1.1:8001", ns=net.ns2) as proxy, \
                net.gost("-L", ":8082", "-F", "http://10.0.1.1:8001?so_mark=100") as chained:
            wait_in(net.h, "127.0.0.1", 8081, g)
            for port, seen in ((8080, "10.0.1.11"), (8081, "10.0.2.11")):
                assert net.curl(net.h, "http://10.0.1.1:8000/", "-x", f"http://127.0.0.1:{port}") == (0, seen), \
                    g.log_text()[-1500:]
            wait_in(net.ns2, "10.0.1.1", 8001, proxy)
            wait_in(net.h, "127.0.0.1", 8082, chained)
            assert net.curl(net.h, "http://10.0.1.1:8000/", "-x", "http://127.0.0.1:8082") == (0, "10.0.1.1")
            assert wait_log(proxy, r'"remote": "10\.0\.2\.11:'), proxy.log_text()[-1500:]
    finally:
        ip("-n", net.h, "rule", "del", "fwmark", "100", "table", "100")


# --- tutorials/netns.md ---------------------------------------------------------------------

def test_netns_listen(net):
    """``gost -L tcp://10.0.0.1:8000/:8000?netns=ns1``: port 8000 of ns1 reaches port 8000 of
    the default namespace; the listening socket is in ns1 (``ss`` there shows it)."""
    with Who(net.h, "0.0.0.0", 8000), net.gost("-L", f"tcp://10.0.0.1:8000/:8000?netns={net.ns1}") as g:
        wait_in(net.ns1, "10.0.0.1", 8000, g)
        assert net.curl(net.ns1, "http://10.0.0.1:8000/") == (0, "127.0.0.1"), g.log_text()[-1500:]
        assert "10.0.0.1:8000" in in_ns(net.ns1, "ss", "-ltn").stdout


def test_netns_out(net):
    """``netns=ns1&netns.out=/run/netns/ns2``: ns1's port 8000 mapped to 10.0.1.1:8000 dialed
    from inside ns2 (the origin sees ns2's own address, not H's 10.0.1.11)."""
    with Who(net.ns2, "10.0.1.1", 8000), \
            net.gost("-L", f"tcp://10.0.0.1:8000/10.0.1.1:8000?netns={net.ns1}&netns.out=/run/netns/{net.ns2}") as g:
        wait_in(net.ns1, "10.0.0.1", 8000, g)
        assert net.curl(net.ns1, "http://10.0.0.1:8000/") == (0, "10.0.1.1")


def test_netns_chain(net):
    """``gost -L tcp://10.0.0.1:8000/10.0.1.11:8000?netns=ns1 -F http://10.0.1.1:8080?netns=ns2``
    with the proxy in ns2: the hop's socket is made in ns2 (the proxy sees a client of its own
    namespace), and the origin in the default namespace is reached through it."""
    with Who(net.h, "10.0.1.11", 8000), net.gost("-L", "http://10.0.1.1:8080", ns=net.ns2) as proxy, \
            net.gost("-L", f"tcp://10.0.0.1:8000/10.0.1.11:8000?netns={net.ns1}",
                     "-F", f"http://10.0.1.1:8080?netns={net.ns2}") as g:
        wait_in(net.ns2, "10.0.1.1", 8080, proxy)
        wait_in(net.ns1, "10.0.0.1", 8000, g)
        assert net.curl(net.ns1, "http://10.0.0.1:8000/") == (0, "10.0.1.1")
        assert wait_log(proxy, r'"remote": "10\.0\.1\.1:'), proxy.log_text()[-1500:]


def test_netns_socks5_udp_relay_socket_in_listening_namespace(net):
    """``socks5://10.0.0.1:1080?udp=true&netns=ns1``: the UDP relay socket a client in ns1 is
    told to use is made in ns1 too (GOST's handler netns); PySocks associates from ns1."""
    with netns.inside(net.h):
        echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("10.0.1.11", 7000))
    echo.settimeout(DEADLINE)

    def serve():
        try:
            data, peer = echo.recvfrom(2048)
            echo.sendto(b"E:" + data, peer)
        except OSError:
            pass
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with net.gost("-L", f"socks5://10.0.0.1:1080?udp=true&netns={net.ns1}") as g:
            wait_in(net.ns1, "10.0.0.1", 1080, g)
            # the test thread, not a greenlet: it may stay in ns1 across blocking calls
            with netns.inside(net.ns1):
                s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
                s.set_proxy(socks.SOCKS5, "10.0.0.1", 1080)
                s.settimeout(5)
                try:
                    s.sendto(b"hi", ("10.0.1.11", 7000))
                    assert s.recvfrom(2048) == (b"E:hi", ("10.0.1.11", 7000)), g.log_text()[-1500:]
                finally:
                    s.close()
    finally:
        echo.close()
        t.join(timeout=5)


def test_inside_keeps_other_greenlets_in_the_home_namespace(net):
    """netns.inside rule 3: even a greenlet switch inside the window (which rule 1 forbids)
    cannot run another greenlet in the target namespace, and ours resumes inside it."""
    import gevent

    def here():
        return os.stat("/proc/thread-self/ns/net").st_ino

    home, target = here(), os.stat(netns.path_of(net.ns1)).st_ino
    seen = []
    g = gevent.spawn(lambda: seen.append(here()))
    with netns.inside(net.ns1):
        assert here() == target
        gevent.sleep(0)
        assert here() == target
    g.join(timeout=5)
    assert seen == [home] and here() == home


# --- fail closed ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, text", [
    (["-L", "tcp://:8000/10.0.1.1:8000?netns=gostg-t-none"],
     "services[0].metadata.netns: network namespace 'gostg-t-none' not found"),
    (["-L", ":8080", "-F", "http://10.0.1.1:8000?interface=10.9.9.9"],
     "chains[0].hops[0].nodes[0].metadata.interface: interface '10.9.9.9': not an address of this host"),
])
def test_bad_settings_stop_startup(net, args, text):
    """(netns.out and a service's interface: the same checks, in tests/unit/test_sockopts.py)"""
    r = run_gostg(*args, prefix=("ip", "netns", "exec", net.h))
    assert r.returncode == 1 and text in r.stderr, r.stderr[-1500:]


def test_so_mark_without_capability_stops_startup(net):
    """No CAP_NET_ADMIN / CAP_NET_RAW: SO_MARK is refused, and gostg says so instead of sending
    unmarked (GOST only logs a warning per connection)."""
    drop = "-net_admin,-net_raw"
    r = run_gostg("-L", "http://127.0.0.1:0?so_mark=100", prefix=("setpriv", f"--inh-caps={drop}",
                                                                   f"--bounding-set={drop}"))
    assert r.returncode == 1, r.stderr[-1500:]
    assert "services[0].metadata.so_mark: so_mark 100: Operation not permitted (needs root" in r.stderr
