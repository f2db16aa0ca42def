"""Resolvers, hosts and authers with GOST's semantics, against a running ``bin/gostg``:
a real dnsmasq on 127.0.0.1 answering over UDP and TCP, a local DoT/DoH server, hosts and
auth files edited while gostg runs, skipauth, auther groups, hop/node-level hosts and
resolvers, client ``auth.file``, and Web API changes seen by the next connection. Every
request is made by curl through the proxy."""
import socket
import ssl
import threading
import time

import pytest
import yaml

from .helpers import Gost, HTTPServerThread, Origin, free_port
from .peers import Api, TCPServerThread, curl_code, recv_exact
from .udppeers import Dnsmasq, needs_dnsmasq

pytestmark = pytest.mark.timeout(60)

#: dnsmasq's answer for ``example.test`` and the names under it: where the origin listens
LOCAL = ("/example.test/127.0.0.1",)


# --- peers ----------------------------------------------------------------------------------

class TLSDNS(TCPServerThread):
    """A DNS-over-TLS or DNS-over-HTTPS server on 127.0.0.1 (threads, Python ssl, dnspython)
    answering A for ``records``; ``.queries`` lists what it was asked, ``.sni`` the server
    names the clients sent, ``.hosts`` the DoH Host headers."""

    def __init__(self, tmp_path, records, mode="dot"):
        from gostg.transport.tlsconf import _generate
        cert, key = str(tmp_path / f"{mode}-cert.pem"), str(tmp_path / f"{mode}-key.pem")
        _generate(cert, key)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)
        self.records, self.mode = records, mode
        self.queries, self.sni, self.hosts = [], [], []
        super().__init__()

    def _answer(self, data):
        import dns.message
        import dns.rcode
        import dns.rrset
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        for question in q.question:
            name = question.name.to_text().rstrip(".")
            self.queries.append(name)
            ip = self.records.get(name)
            if ip is None:
                r.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == 1:
                r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", ip))
        return r.to_wire()

    def handle_conn(self, raw):
        raw.settimeout(5)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as c:
                if self.mode == "dot":
                    n = int.from_bytes(recv_exact(c, 2), "big")
                    out = self._answer(recv_exact(c, n))
                    c.sendall(len(out).to_bytes(2, "big") + out)
                    return
                head = b""
                while b"\r\n\r\n" not in head:
                    head += recv_exact(c, 1)
                lines = head.decode("latin-1").split("\r\n")
                hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                self.hosts.append(hdrs.get("host"))
                body = recv_exact(c, int(hdrs.get("content-length", 0)))
                ok = lines[0].startswith("POST /dns-query ") and hdrs.get("content-type") == "application/dns-message"
                out = self._answer(body) if ok else b""
                # chunked on purpose: the client must not depend on Content-Length
                c.sendall(b"HTTP/1.1 %s\r\nContent-Type: application/dns-message\r\nTransfer-Encoding: chunked\r\n"
                          b"Connection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (b"200 OK" if ok else b"400 Bad", len(out), out))
        except (OSError, EOFError, ValueError):
            pass


class WhoAmI(HTTPServerThread):
    """An HTTP origin bound to ``ip:port`` answering ``served-by <ip>``: shows where a name went."""

    def __init__(self, ip, port):
        import http.server

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = f"served-by {ip}\n".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer((ip, port), H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def origin():
    with Origin() as o:
        yield o


def run(tmp_path, cfg, ports, api=False):
    """``bin/gostg -C cfg.yaml`` (plus ``-api``) waiting for ``ports``."""
    path = tmp_path / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = ["-C", str(path)]
    if api:
        ap = free_port()
        args += ["-api", f"127.0.0.1:{ap}"]
        ports = list(ports) + [ap]
        g = Gost(*args, ports=ports)
        g.api = Api(ap)
        return g
    return Gost(*args, ports=ports)


def http_svc(name, port, **extra):
    handler = extra.pop("handler", {"type": "http"})
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": handler, "listener": {"type": "tcp"}, **extra}


def get(port, url, user=None, timeout=8):
    cred = f"{user}@" if user else ""
    return curl_code("-x", f"http://{cred}127.0.0.1:{port}", url, timeout=timeout)


def until(fn, want, timeout=8.0):
    """Poll ``fn()`` until it returns ``want`` (bounded) → the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.1)


def served(result, path):
    rc, status, body = result
    return rc == 0 and status == 200 and f"hello from origin {path}".encode() in body


# --- resolver: dnsmasq over UDP and TCP --------------------------------------------------------

@needs_dnsmasq
@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_service_resolver_answers_from_dnsmasq(tmp_path, origin, proto):
    with Dnsmasq(LOCAL) as dm:
        p = free_port()
        cfg = {"services": [http_svc("s", p, resolver="r")],
               "resolvers": [{"name": "r", "nameservers": [{"addr": f"{proto}://127.0.0.1:{dm.port}"}]}]}
        with run(tmp_path, cfg, [p]) as g:
            assert served(get(p, f"http://example.test:{origin.port}/a"), "/a"), g.log_text()[-2000:]
            assert served(get(p, f"http://www.example.test:{origin.port}/b"), "/b")
            # a name dnsmasq does not know: refused (503), the service keeps running
            assert get(p, f"http://unknown.test:{origin.port}/c")[1] == 503
            assert served(get(p, f"http://example.test:{origin.port}/d"), "/d")
            assert "domain unknown.test does not exist" in g.log_text()


@needs_dnsmasq
def test_nameservers_tried_in_order(tmp_path, origin):
    """A dead nameserver (nothing listening) first, dnsmasq second: the second answers."""
    with Dnsmasq(LOCAL) as dm:
        p, dead = free_port(), free_port()
        cfg = {"services": [http_svc("s", p, resolver="r")],
               "resolvers": [{"name": "r", "nameservers": [
                   {"addr": f"tcp://127.0.0.1:{dead}", "timeout": "1s"},
                   {"addr": f"udp://127.0.0.1:{dm.port}", "only": "ipv4"}]}]}
        with run(tmp_path, cfg, [p]) as g:
            assert served(get(p, f"http://example.test:{origin.port}/x"), "/x"), g.log_text()[-2000:]


@needs_dnsmasq
def test_silent_nameserver_gives_up_after_its_timeout(tmp_path, origin):
    """A nameserver that swallows queries (a bound UDP socket) with ``timeout: 1s``, then
    dnsmasq: the answer comes after about one second, not after the 5 s default."""
    with Dnsmasq(LOCAL) as dm, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        p = free_port()
        cfg = {"services": [http_svc("s", p, resolver="r")],
               "resolvers": [{"name": "r", "nameservers": [
                   {"addr": f"udp://127.0.0.1:{silent.getsockname()[1]}", "timeout": "1s"},
                   {"addr": f"udp://127.0.0.1:{dm.port}"}]}]}
        with run(tmp_path, cfg, [p]) as g:
            t0 = time.monotonic()
            assert served(get(p, f"http://example.test:{origin.port}/t"), "/t"), g.log_text()[-2000:]
            took = time.monotonic() - t0
        silent.settimeout(0.5)
        assert silent.recv(512)      # the silent one was asked first
        assert 0.9 <= took < 4.0, took

@needs_dnsmasq
def test_nameserver_through_a_chain(tmp_path, origin):
    """``chain`` on a nameserver: the query goes through an upstream HTTP proxy (over TCP,
    as our chains carry streams), and the upstream is seen dialing dnsmasq."""
    with Dnsmasq(LOCAL) as dm:
        up, p = free_port(), free_port()
        cfg = {"services": [http_svc("upstream", up), http_svc("s", p, resolver="r")],
               "chains": [{"name": "dns-chain", "hops": [{"name": "h0", "nodes": [
                   {"name": "n0", "addr": f"127.0.0.1:{up}", "connector": {"type": "http"}}]}]}],
               "resolvers": [{"name": "r", "nameservers": [
                   {"addr": f"udp://127.0.0.1:{dm.port}", "chain": "dns-chain"}]}]}
        with run(tmp_path, cfg, [up, p]) as g:
            assert served(get(p, f"http://example.test:{origin.port}/via-chain"), "/via-chain"), g.log_text()[-2000:]
            assert f"127.0.0.1:{dm.port}" in g.log_text()


# --- resolver: DoT and DoH ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["dot", "doh"])
def test_dot_and_doh_nameservers(tmp_path, origin, mode):
    with TLSDNS(tmp_path, {"secure.test": "127.0.0.1"}, mode) as srv:
        p = free_port()
        addr = f"tls://127.0.0.1:{srv.port}" if mode == "dot" else f"https://127.0.0.1:{srv.port}/dns-query"
        cfg = {"services": [http_svc("s", p, resolver="r")],
               "resolvers": [{"name": "r", "nameservers": [{"addr": addr, "hostname": "dns.example"}]}]}
        with run(tmp_path, cfg, [p]) as g:
            assert served(get(p, f"http://secure.test:{origin.port}/t"), "/t"), g.log_text()[-2000:]
            assert "secure.test" in srv.queries
            assert "dns.example" in srv.sni                  # hostname is the TLS server name
            if mode == "doh":
                assert "dns.example" in srv.hosts            # … and the DoH Host
            assert get(p, f"http://nothere.test:{origin.port}/t")[1] == 503


# --- hosts ----------------------------------------------------------------------------------------

def test_hosts_file_edited_while_running(tmp_path):
    port = free_port()
    with WhoAmI("127.0.0.1", port), WhoAmI("127.0.0.2", port):
        hosts = tmp_path / "hosts"
        hosts.write_text("# test hosts\n127.0.0.1 site.test www.site.test\n")
        p = free_port()
        cfg = {"services": [http_svc("s", p, hosts="h")],
               "hosts": [{"name": "h", "reload": "200ms", "file": {"path": str(hosts)},
                          "mappings": [{"ip": "127.0.0.2", "hostname": "inline.test"}]}]}
        with run(tmp_path, cfg, [p]) as g:
            where = lambda name: get(p, f"http://{name}:{port}/")[2].strip()  # noqa: E731
            assert where("site.test") == b"served-by 127.0.0.1", g.log_text()[-2000:]
            assert where("www.site.test") == b"served-by 127.0.0.1"
            assert where("inline.test") == b"served-by 127.0.0.2"
            hosts.write_text("127.0.0.2 site.test  # moved\n")
            assert until(lambda: where("site.test"), b"served-by 127.0.0.2") == b"served-by 127.0.0.2"
            assert where("inline.test") == b"served-by 127.0.0.2"
            # the alias is gone from the file: the name is now kept and fails to resolve
            assert get(p, f"http://www.site.test:{port}/")[1] == 503


# --- authers ----------------------------------------------------------------------------------------

def test_authers_file_edited_while_running(tmp_path, origin):
    f = tmp_path / "auth"
    f.write_text("# users\nalice a1\n")
    p = free_port()
    cfg = {"services": [http_svc("s", p, handler={"type": "http", "auther": "au"})],
           "authers": [{"name": "au", "reload": "200ms", "file": {"path": str(f)},
                        "auths": [{"username": "inline", "password": "i1"}]}]}
    with run(tmp_path, cfg, [p]) as g:
        assert served(get(p, origin.url + "/1", "alice:a1"), "/1"), g.log_text()[-2000:]
        assert served(get(p, origin.url + "/2", "inline:i1"), "/2")
        assert get(p, origin.url + "/3", "bob:b1")[1] == 407
        assert get(p, origin.url + "/3")[1] == 407
        f.write_text("bob b1\n")
        assert until(lambda: get(p, origin.url + "/4", "bob:b1")[1], 200) == 200       # new user accepted
        assert get(p, origin.url + "/5", "alice:a1")[1] == 407                          # removed user refused
        assert served(get(p, origin.url + "/6", "inline:i1"), "/6")


def test_auther_group_and_skipauth(tmp_path, origin):
    p_group, p_skip, p_noskip = free_port(), free_port(), free_port()
    cfg = {"services": [
        http_svc("group", p_group, handler={"type": "http", "authers": ["a0", "a1"]}),
        http_svc("skip", p_skip, handler={"type": "http", "auth": {"username": "u", "password": "p"},
                                          "metadata": {"skipauth": ["127.0.0.0/8"]}}),
        http_svc("noskip", p_noskip, handler={"type": "http", "auth": {"username": "u", "password": "p"},
                                              "metadata": {"skipauth": "10.0.0.0/8,192.168.1.1"}})],
        "authers": [{"name": "a0", "auths": [{"username": "user1", "password": "pass1"}]},
                    {"name": "a1", "auths": [{"username": "user2", "password": "pass2"}]}]}
    with run(tmp_path, cfg, [p_group, p_skip, p_noskip]) as g:
        assert served(get(p_group, origin.url + "/g1", "user1:pass1"), "/g1"), g.log_text()[-2000:]
        assert served(get(p_group, origin.url + "/g2", "user2:pass2"), "/g2")
        assert get(p_group, origin.url + "/g3", "user1:pass2")[1] == 407
        # 127.0.0.1 is in the skip network: no credentials needed
        assert served(get(p_skip, origin.url + "/s1"), "/s1")
        assert served(get(p_skip, origin.url + "/s2", "x:y"), "/s2")
        # … but not in the other service's networks
        assert get(p_noskip, origin.url + "/n1")[1] == 407
        assert served(get(p_noskip, origin.url + "/n2", "u:p"), "/n2")


def test_listener_auth_is_reported_not_silently_ignored(tmp_path, origin):
    """GOST reads listener auth only in ssh listeners: gostg says so in its log at startup,
    and the service runs as configured (the handler has no auth)."""
    p = free_port()
    svc = http_svc("s", p)
    svc["listener"] = {"type": "tcp", "auth": {"username": "u", "password": "p"}}
    with run(tmp_path, {"services": [svc]}, [p]) as g:
        assert served(get(p, origin.url + "/open"), "/open")
        assert "services[0].listener: listener auth is not used by listener type tcp" in g.log_text()

def test_client_auth_file_on_a_chain_node(tmp_path, origin):
    creds = tmp_path / "creds"
    creds.write_text("# first user line wins\nchainuser chainpass\nother x\n")
    up, front = free_port(), free_port()
    cfg = {"services": [
        http_svc("upstream", up, handler={"type": "http", "auth": {"username": "chainuser", "password": "chainpass"}}),
        http_svc("front", front, handler={"type": "http", "chain": "c"})],
        "chains": [{"name": "c", "hops": [{"name": "h0", "nodes": [
            {"name": "n0", "addr": f"127.0.0.1:{up}",
             "connector": {"type": "http", "auth": {"file": str(creds)}}, "dialer": {"type": "tcp"}}]}]}]}
    with run(tmp_path, cfg, [up, front]) as g:
        assert served(get(front, origin.url + "/c"), "/c"), g.log_text()[-2000:]


# --- hop and node levels --------------------------------------------------------------------------

@needs_dnsmasq
def test_hop_hosts_and_node_resolver_resolve_node_addresses(tmp_path, origin):
    """Node addresses by name: one through the hop's hosts, one through its own resolver."""
    with Dnsmasq(records=("/proxy.example.test/127.0.0.1",)) as dm:
        up, front1, front2 = free_port(), free_port(), free_port()
        cfg = {"services": [http_svc("upstream", up),
                            http_svc("front1", front1, handler={"type": "http", "chain": "c1"}),
                            http_svc("front2", front2, handler={"type": "http", "chain": "c2"})],
               "hosts": [{"name": "hh", "mappings": [{"ip": "127.0.0.1", "hostname": "upstream.hop.test"}]}],
               "resolvers": [{"name": "nr", "nameservers": [{"addr": f"udp://127.0.0.1:{dm.port}"}]}],
               "chains": [
                   {"name": "c1", "hops": [{"name": "h1", "hosts": "hh", "nodes": [
                       {"name": "n1", "addr": f"upstream.hop.test:{up}", "connector": {"type": "http"}}]}]},
                   {"name": "c2", "hops": [{"name": "h2", "nodes": [
                       {"name": "n2", "addr": f"proxy.example.test:{up}", "resolver": "nr",
                        "connector": {"type": "http"}}]}]}]}
        with run(tmp_path, cfg, [up, front1, front2]) as g:
            assert served(get(front1, origin.url + "/hop"), "/hop"), g.log_text()[-2000:]
            assert served(get(front2, origin.url + "/node"), "/node"), g.log_text()[-2000:]


# --- Web API --------------------------------------------------------------------------------------

@needs_dnsmasq
def test_api_changes_take_effect_on_next_connection(tmp_path, origin):
    """Resolver, hosts and auther replaced through the API while the service keeps running."""
    with Dnsmasq(LOCAL) as dm:
        p = free_port()
        dead = free_port()
        cfg = {"services": [http_svc("s", p, resolver="r", hosts="h",
                                     handler={"type": "http", "auther": "au"})],
               "resolvers": [{"name": "r", "nameservers": [{"addr": f"tcp://127.0.0.1:{dead}", "timeout": "1s"}]}],
               "hosts": [{"name": "h", "mappings": [{"ip": "127.0.0.1", "hostname": "mapped.test"}]}],
               "authers": [{"name": "au", "auths": [{"username": "alice", "password": "a1"}]}]}
        with run(tmp_path, cfg, [p], api=True) as g:
            api = g.api
            assert get(p, f"http://example.test:{origin.port}/1", "alice:a1")[1] == 503
            api.put("resolvers", "r", {"nameservers": [{"addr": f"udp://127.0.0.1:{dm.port}", "ttl": "-1s"}]})
            assert served(get(p, f"http://example.test:{origin.port}/2", "alice:a1"), "/2"), g.log_text()[-2000:]

            assert served(get(p, f"http://mapped.test:{origin.port}/3", "alice:a1"), "/3")
            api.put("hosts", "h", {"mappings": [{"ip": "127.0.0.1", "hostname": "remapped.test"}]})
            assert get(p, f"http://mapped.test:{origin.port}/4", "alice:a1")[1] == 503
            assert served(get(p, f"http://remapped.test:{origin.port}/5", "alice:a1"), "/5")

            users = tmp_path / "users"
            users.write_text("carol c1\n")
            api.put("authers", "au", {"file": {"path": str(users)}, "reload": "1s"})
            assert get(p, f"http://remapped.test:{origin.port}/6", "alice:a1")[1] == 407
            assert served(get(p, f"http://remapped.test:{origin.port}/7", "carol:c1"), "/7")
            # a bad change is refused and leaves the running object alone
            status, js, _ = api.request("PUT", "/config/resolvers/r", {"nameservers": [{"addr": "quic://1.1.1.1"}]})
            assert status >= 400 and js["code"] == 40003
            assert served(get(p, f"http://example.test:{origin.port}/8", "carol:c1"), "/8")
            assert g.proc.poll() is None
