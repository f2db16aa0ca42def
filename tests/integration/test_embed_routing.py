"""Issue 15, musts 1 and 2: a gevent-patched application routes its *own* connections through
a 2-hop chain of two real ``bin/gostg`` processes (A: socks5 on [::1] when the box has IPv6;
B: relay, the only one that knows the name ``origin.test``, through its hosts mapping).

The application runs as a subprocess that calls ``monkey.patch_all()`` first (this test
process stays unpatched). Its resolver (gevent's hub resolver, replaced by one that sends DNS
queries with dnspython: gevent's own dnspython resolver cannot be given a port) asks a DNS
stub here, which
answers every name with 127.0.0.1 and records the questions: the stub hearing ``control.test``
(looked up before patching) proves the wiring; it must never hear ``origin.test``."""
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading

import dns.message
import dns.rrset
import pytest
import yaml

from .helpers import ROOT, Gost, Origin, free_port

HAS_V6 = socket.has_ipv6
try:
    with socket.socket(socket.AF_INET6) as _s:
        _s.bind(("::1", 0))
except OSError:
    HAS_V6 = False


class DNSStub:
    """A UDP DNS server on 127.0.0.1 answering A queries with 127.0.0.1 (AAAA: no answer);
    ``names`` are the questions it got, lower case, without the final dot."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.names = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                q = dns.message.from_wire(data)
            except Exception:   # noqa: BLE001 - garbage: ignore, as a resolver would
                continue
            r = dns.message.make_response(q)
            for question in q.question:
                self.names.append(question.name.to_text().rstrip(".").lower())
                if question.rdtype == dns.rdatatype.A:
                    r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.1"))
            self.sock.sendto(r.to_wire(), peer)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def _tls_origin(tmp_path):
    """An HTTPS origin on 127.0.0.1 with a self-signed certificate for ``origin.test``
    (its own CA) → (server, port, cafile)."""
    import http.server

    from .helpers import _Origin, _ThreadingHTTP
    key, cert = tmp_path / "origin.key", tmp_path / "origin.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=origin.test", "-addext", "subjectAltName=DNS:origin.test", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server = _ThreadingHTTP(("127.0.0.1", 0), _Origin)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    assert isinstance(server, http.server.HTTPServer)
    return server, server.server_address[1], str(cert)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embed-routing")
    pa, pb = free_port(), free_port()
    a_host = "::1" if HAS_V6 else "127.0.0.1"
    a_addr = f"[::1]:{pa}" if HAS_V6 else f"127.0.0.1:{pa}"
    b_cfg = tmp / "b.yaml"
    b_cfg.write_text(yaml.safe_dump({
        "services": [{"name": "relay", "addr": f"127.0.0.1:{pb}", "handler": {"type": "relay"},
                      "listener": {"type": "tcp"}, "hosts": "names"}],
        "hosts": [{"name": "names", "mappings": [{"ip": "127.0.0.1", "hostname": "origin.test"}]}]}))
    tls_server, tls_port, cafile = _tls_origin(tmp)
    with Origin() as origin, DNSStub() as stub, \
            Gost("-L", f"socks5://{a_addr}", ports=()) as a, Gost("-C", b_cfg, ports=(pb,)) as b:
        from .helpers import wait_port
        wait_port(pa, host=a_host)
        yield dict(tmp=tmp, origin=origin, stub=stub, a=a, b=b, a_addr=a_addr, pb=pb,
                   tls_port=tls_port, cafile=cafile)
    tls_server.shutdown()
    tls_server.server_close()


PRELUDE = """\
from gevent import monkey; monkey.patch_all()
import errno, http.client, ipaddress, json, socket, ssl, sys, urllib.request
import dns.message, dns.query
import gevent

class StubResolver:
    # the app's resolver (gevent's hub resolver): asks the test's DNS stub
    def _ask(self, host):
        host = host.decode() if isinstance(host, bytes) else host
        r = dns.query.udp(dns.message.make_query(host, "A"), "127.0.0.1", port={dns_port}, timeout=5)
        ips = [rr.address for rrset in r.answer for rr in rrset]
        if not ips:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return host, ips
    def getaddrinfo(self, host, port, family=0, socktype=0, proto=0, flags=0):
        try:
            ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
        except (ValueError, AttributeError):
            pass
        else:
            return socket._socket.getaddrinfo(host, port, family, socktype, proto, flags)
        if family == socket.AF_INET6:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socktype or socket.SOCK_STREAM, proto or 6, "", (ip, int(port or 0)))
                for ip in self._ask(host)[1]]
    def gethostbyname(self, host):
        return self._ask(host)[1][0]
    def gethostbyname_ex(self, host):
        name, ips = self._ask(host)
        return name, [], ips
    def close(self):
        pass

gevent.get_hub().resolver = StubResolver()
socket.getaddrinfo("control.test", 80)                   # before patching: the stub hears it
import gostg
CFG = {{
    "chains": [
        {{"name": "egress", "hops": [
            {{"name": "h1", "nodes": [{{"name": "a", "addr": "{a_addr}", "connector": {{"type": "socks5"}}}}]}},
            {{"name": "h2", "nodes": [{{"name": "b", "addr": "127.0.0.1:{pb}", "connector": {{"type": "relay"}}}}]}}]}},
        {{"name": "one", "hops": [
            {{"name": "p1", "nodes": [{{"name": "a1", "addr": "{a_addr}", "connector": {{"type": "socks5"}}}}]}}]}}],
    "bypasses": [{{"name": "internal", "matchers": ["direct.test"]}}],
    "hosts": [{{"name": "local", "mappings": [{{"ip": "127.0.0.1", "hostname": "origin.test"}}]}}],
}}
g = gostg.Gost(CFG)
def out(key, value):
    print(key + "=" + json.dumps(value), flush=True)
def body(resp):
    return resp.read().decode().strip()
"""


def run_app(world, body, timeout=60):
    script = world["tmp"] / "app.py"
    script.write_text(PRELUDE.format(dns_port=world["stub"].port, a_addr=world["a_addr"], pb=world["pb"])
                      + textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=ROOT)
    try:
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                           env=env, cwd=str(world["tmp"]))
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the app hung; it printed:\n{exc.stdout}\n{exc.stderr}") from None
    assert r.returncode == 0, r.stdout + r.stderr
    res = {}
    for line in r.stdout.splitlines():
        if "=" in line and not line.startswith("{"):
            k, v = line.split("=", 1)
            res[k] = json.loads(v)
    return res


def b_targets(world, node="b"):
    """The ``dst`` of every connection gostg B (the chain's last node) opened, from its log."""
    dsts = []
    for line in world[node].log_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("dst") and " <-> " in rec.get("msg", ""):   # one line per connection opened
            dsts.append(rec["dst"])
    return dsts


def a_targets(world):
    """The same for gostg A (the first hop)."""
    return b_targets(world, "a")


def test_dial_returns_sockets_routed_by_the_chain(world):
    """Must 1: ``g.dial`` / ``g.create_connection`` through the 2-hop chain, used with
    makefile, http.client and SSLContext.wrap_socket; a 1-hop socks5 route gives the tunnel's
    own socket; an unknown chain is an error, never a direct connection."""
    port, tls_port = world["origin"].port, world["tls_port"]
    res = run_app(world, f"""
        s = g.dial(("origin.test", {port}), chain="egress")
        s.sendall(b"GET /dial HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("makefile", s.makefile("rb").read().decode().splitlines()[-1])
        s.close()

        s = g.create_connection("origin.test:{port}", timeout=5, chain="egress")
        out("timeout", s.gettimeout())
        c = http.client.HTTPConnection("origin.test", {port})
        c.sock = s
        c.request("GET", "/http-client")
        out("http_client", body(c.getresponse()))

        ctx = ssl.create_default_context(cafile={world["cafile"]!r})
        with ctx.wrap_socket(g.dial(("origin.test", {tls_port}), chain="egress", timeout=5),
                             server_hostname="origin.test") as t:
            out("tls_peer_cert_cn", dict(x[0] for x in t.getpeercert()["subject"])["commonName"])
            t.sendall(b"GET /tls HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
            out("tls", t.makefile("rb").read().decode().splitlines()[-1])

        s = g.dial(("127.0.0.1", {port}), chain="one")
        out("one_hop_is_the_tunnel", [type(s).__name__, "%s" % s.getpeername()[0]])
        s.close()

        try:
            g.dial(("origin.test", {port}), chain="nope")
        except gostg.GostgError as exc:
            out("unknown_chain", str(exc))
        try:
            g.create_connection(("origin.test", {port}), source_address=("127.0.0.2", 0), chain="egress")
        except ValueError as exc:
            out("source_address", str(exc))
        try:
            g.dial(("127.0.0.1", {free_port()}), chain="one", timeout=10)   # A is refused there
        except gostg.RouteError as exc:
            out("route_error", [isinstance(exc, OSError), exc.errno, str(exc)])
    """)
    assert res["makefile"] == "hello from origin /dial host=origin.test"
    assert res["timeout"] == 5
    assert res["http_client"] == f"hello from origin /http-client host=origin.test:{port}"
    assert res["tls"] == "hello from origin /tls host=origin.test"
    assert res["tls_peer_cert_cn"] == "origin.test"
    # a 1-hop socks5 route over TCP: the socket is the tunnel itself, connected to node A
    assert res["one_hop_is_the_tunnel"] == ["socket", "::1" if HAS_V6 else "127.0.0.1"]
    assert res["unknown_chain"] == "chain 'nope' not found"
    assert "interface" in res["source_address"]
    ok, code, text = res["route_error"]
    assert ok and code == 111 and "via chain 'one'" in text and "socks5 CONNECT" in text, text
    # the chain's last node got the name, and resolved it itself
    dsts = b_targets(world)
    assert f"origin.test:{port}" in dsts and f"origin.test:{tls_port}" in dsts
    assert world["stub"].names.count("control.test") >= 1
    assert "origin.test" not in world["stub"].names


def test_patched_app_routes_every_connect_without_dns_leaks(world):
    """Must 2: urllib.request, http.client, requests (urllib3 2.x resolves before it
    connects) and raw IPv4/IPv6 sockets go through the chain with the name; the app's
    resolver hears nothing for routed names; bypass goes direct (and resolves locally);
    loopback is never routed; restore_socket puts back the exact functions."""
    port = world["origin"].port
    a_before = a_targets(world).count(f"127.0.0.1:{port}")
    res = run_app(world, f"""
        import requests
        ORIG = {{n: getattr(socket, n) for n in ("create_connection", "getaddrinfo", "gethostbyname",
                                                 "gethostbyname_ex")}}
        ORIG["connect"], ORIG["connect_ex"] = socket.socket.connect, socket.socket.connect_ex
        try:
            gostg.patch_socket(g, chain="nope")
        except gostg.GostgError as exc:
            out("unknown_chain", str(exc))
        out("still_unpatched", socket.socket.connect is ORIG["connect"])

        gostg.patch_socket(g, chain="egress", bypass="internal")
        url = "http://origin.test:{port}"
        out("urllib", body(urllib.request.urlopen(url + "/urllib", timeout=10)))
        c = http.client.HTTPConnection("origin.test", {port}, timeout=10)
        c.request("GET", "/http-client")
        out("http_client", body(c.getresponse()))
        session = requests.Session()
        session.trust_env = False
        out("requests", session.get(url + "/requests", timeout=10).text.strip())
        out("requests_again", session.get(url + "/keepalive", timeout=10).text.strip())
        # HTTPS: urllib3 checks the certificate against the name, not the fake address
        out("requests_https", session.get("https://origin.test:{world['tls_port']}/https", timeout=10,
                                          verify={world['cafile']!r}).text.strip())

        out("gai4", socket.getaddrinfo("origin.test", {port}, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
        ai6 = socket.getaddrinfo("origin.test", {port}, socket.AF_INET6, socket.SOCK_STREAM)[0]
        out("gai6", ai6[4][0])
        out("gethostbyname", socket.gethostbyname("origin.test"))
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.settimeout(10)
        s6.connect(ai6[4])
        s6.sendall(b"GET /v6 HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("v6", s6.makefile("rb").read().decode().splitlines()[-1])
        s4 = socket.socket()
        out("connect_ex", s4.connect_ex(("origin.test", {port})))
        s4.sendall(b"GET /connect-ex HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("connect_ex_body", s4.makefile("rb").read().decode().splitlines()[-1])

        tls_ctx = ssl.create_default_context(cafile={world["cafile"]!r})
        with tls_ctx.wrap_socket(socket.socket(), server_hostname="origin.test") as t:   # wrapped, then connected
            t.settimeout(10)
            t.connect(("origin.test", {world["tls_port"]}))
            t.sendall(b"GET /ssl-socket HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
            out("ssl_socket", t.makefile("rb").read().decode().splitlines()[-1])

        import os
        def fds():
            return len(os.listdir("/proc/self/fd"))
        before = fds()
        def get(i):
            with requests.get(url + "/many/%d" % i, timeout=20) as r:
                return r.text.strip() == "hello from origin /many/%d host=origin.test:{port}" % i
        jobs = [gevent.spawn(get, i) for i in range(30)]
        gevent.joinall(jobs, timeout=60)
        out("concurrent", sum(bool(j.value) for j in jobs))
        gevent.sleep(0.2)      # relay greenlets see the EOF and close their ends
        out("fds_back", fds() - before)

        out("literal_not_faked", socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET)[0][4][0])
        out("loopback", body(urllib.request.urlopen("http://127.0.0.1:{port}/loopback", timeout=10)))
        out("bypass", body(urllib.request.urlopen("http://direct.test:{port}/bypass", timeout=10)))
        try:
            socket.create_connection(("198.18.7.7", 80), timeout=5)
        except OSError as exc:
            out("unlent_fake", exc.errno)

        gostg.restore_socket()
        out("restored", [getattr(socket, n) is ORIG[n] for n in ORIG if n not in ("connect", "connect_ex")]
            + [socket.socket.connect is ORIG["connect"], socket.socket.connect_ex is ORIG["connect_ex"],
               "connect" not in vars(socket.socket)])

        with gostg.routed(g, chain="egress"):
            out("routed_block", session.get("http://origin.test:{port}/routed", timeout=10).text.strip())
            with gostg.routed(g, chain="one", hosts="local"):     # nested: A alone, name mapped here
                out("nested", requests.get("http://origin.test:{port}/nested", timeout=10).text.strip())
            out("outer_again", requests.get("http://origin.test:{port}/outer-again", timeout=10).text.strip())
        out("routed_restored", socket.socket.connect is ORIG["connect"] and socket.getaddrinfo is ORIG["getaddrinfo"])
    """)
    assert res["unknown_chain"] == "chain 'nope' not found" and res["still_unpatched"] is True
    for key, path in (("urllib", "/urllib"), ("http_client", "/http-client"), ("requests", "/requests"),
                      ("requests_again", "/keepalive"), ("routed_block", "/routed"), ("requests_https", "/https"),
                      ("nested", "/nested"), ("outer_again", "/outer-again")):
        assert res[key].startswith(f"hello from origin {path} host=origin.test"), (key, res[key])
    assert res["gai4"].startswith("198.18.") and res["gethostbyname"] == res["gai4"]
    assert res["gai6"].startswith("2001:2::")
    assert res["v6"] == "hello from origin /v6 host=origin.test"
    assert res["connect_ex"] == 0 and res["connect_ex_body"] == "hello from origin /connect-ex host=origin.test"
    assert res["ssl_socket"] == "hello from origin /ssl-socket host=origin.test"
    assert res["concurrent"] == 30
    assert res["fds_back"] <= 0, res["fds_back"]     # no socket left behind by 30 routed requests
    assert res["literal_not_faked"] == "127.0.0.1"
    assert res["loopback"] == f"hello from origin /loopback host=127.0.0.1:{port}"
    assert res["bypass"] == f"hello from origin /bypass host=direct.test:{port}"
    assert res["unlent_fake"] == 113            # EHOSTUNREACH: never dialled
    assert all(res["restored"]), res["restored"]
    assert res["routed_restored"] is True

    dsts = b_targets(world)
    assert dsts.count(f"origin.test:{port}") >= 37, dsts
    assert f"origin.test:{world['tls_port']}" in dsts
    # the nested block's request went through A alone, to the address its hosts mapped
    assert a_targets(world).count(f"127.0.0.1:{port}") == a_before + 1      # every routed request, by name
    assert not any(d.startswith(("198.18.", "[2001:2:", "127.0.0.1:%d" % port, "direct.test")) for d in dsts), dsts
    names = world["stub"].names
    assert "control.test" in names          # the app's resolver does ask the stub …
    assert "direct.test" in names           # … and a bypassed name is resolved as without gostg
    assert "origin.test" not in names       # … but a routed name never reaches it


def _has_thread_mode():
    import inspect

    from gostg.runtime import Gost as _G
    return "thread" in inspect.signature(_G.__init__).parameters


@pytest.mark.skipif(not _has_thread_mode(), reason="thread mode (issue 15 must 3) is not in this tree")
def test_patch_socket_in_an_unpatched_threaded_app(world, tmp_path):
    """Must 2 in thread mode: a plain threaded app (never patched) routes urllib, http.client
    from 8 threads and a raw socket through the 2-hop chain; what reaches the C resolver is
    recorded in-process (no DNS stub can be given to the system resolver): never origin.test."""
    port = world["origin"].port
    script = tmp_path / "threaded_app.py"
    script.write_text(textwrap.dedent(f"""
        import _socket, http.client, json, socket, threading, urllib.request
        asked = []
        real_gai = _socket.getaddrinfo
        def recording_gai(host, *a, **kw):
            asked.append(host.decode() if isinstance(host, bytes) else host)
            return real_gai(host, *a, **kw)
        _socket.getaddrinfo = recording_gai       # what the stdlib resolver is asked
        import gostg
        def out(key, value):
            print(key + "=" + json.dumps(value), flush=True)
        g = gostg.Gost({{"chains": [{{"name": "egress", "hops": [
            {{"name": "h1", "nodes": [{{"name": "a", "addr": "{world['a_addr']}", "connector": {{"type": "socks5"}}}}]}},
            {{"name": "h2", "nodes": [{{"name": "b", "addr": "127.0.0.1:{world['pb']}", "connector": {{"type": "relay"}}}}]}}]}}]}},
            thread=True)
        g.start()
        orig = socket.socket.connect, socket.create_connection, socket.getaddrinfo
        gostg.patch_socket(g, chain="egress")
        out("urllib", urllib.request.urlopen("http://origin.test:{port}/threaded", timeout=10).read().decode().strip())
        got = []
        def worker(i):
            c = http.client.HTTPConnection("origin.test", {port}, timeout=10)
            c.request("GET", "/t%d" % i)
            got.append(c.getresponse().read().decode().strip() == "hello from origin /t%d host=origin.test:{port}" % i)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join(30) for t in threads]
        out("threads", sum(got))
        s = socket.socket()
        s.settimeout(10)
        s.connect(("origin.test", {port}))
        s.sendall(b"GET /raw HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("raw", [type(s).__module__, s.gettimeout(), s.makefile("rb").read().decode().splitlines()[-1]])
        gostg.restore_socket()
        out("restored", (socket.socket.connect, socket.create_connection, socket.getaddrinfo) == orig)
        g.stop()
        out("asked", asked)
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90,
                       env=dict(os.environ, PYTHONPATH=ROOT), cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    res = {k: json.loads(v) for k, v in (ln.split("=", 1) for ln in r.stdout.splitlines()
                                         if "=" in ln and not ln.startswith("{"))}
    assert res["urllib"] == f"hello from origin /threaded host=origin.test:{port}"
    assert res["threads"] == 8
    assert res["raw"] == ["socket", 10.0, "hello from origin /raw host=origin.test"]
    assert res["restored"] is True
    assert "origin.test" not in res["asked"], res["asked"]
    assert f"origin.test:{port}" in b_targets(world)
