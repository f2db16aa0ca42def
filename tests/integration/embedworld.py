"""The world of the issue-15 embedding tests (test_embed_routing.py, test_embed_libs.py): a
2-hop chain of two real ``bin/gostg`` processes (A: socks5 on [::1] when the box has IPv6; B:
relay, the only one that knows the name ``origin.test``, through its hosts mapping), a DNS stub
that records the app's questions, and ``run_app`` which runs a gevent-patched application
subprocess (PRELUDE) and reads back its ``key=json`` lines."""
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
    def gethostbyaddr(self, addr):
        # no PTR records here (smtplib's EHLO asks, through socket.getfqdn)
        raise socket.herror(1, "Unknown host")
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
        # the same, for protocols where the server speaks first (SMTP, FTP, SSH): GOST's relay
        # connector sends its CONNECT with the client's first bytes unless nodelay is set
        {{"name": "egress-nodelay", "hops": [
            {{"name": "n1", "nodes": [{{"name": "a", "addr": "{a_addr}", "connector": {{"type": "socks5"}}}}]}},
            {{"name": "n2", "nodes": [{{"name": "b", "addr": "127.0.0.1:{pb}",
                                       "connector": {{"type": "relay", "metadata": {{"nodelay": True}}}}}}]}}]}},
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
