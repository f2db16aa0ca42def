"""Reverse proxy by sniffing (GOST docs tutorials/reverse-proxy.md, concepts/forwarder.md):
forwarder nodes chosen by the sniffed HTTP Host/path or TLS SNI through ``matcher.rule`` and
``filter``, fallback nodes, nodes without addr, node ``http`` (host, header, auth) and ``tls``
settings, the service bypass on the sniffed host; curl is the client, loopback origins the
backends (the docs' names resolved to 127.0.0.1 with ``--resolve``)."""
import http.server
import json
import socket
import threading
import time

import pytest

from .helpers import Echo, Gost, HTTPServerThread, free_port
from .helpers import _ThreadingHTTP
from .peers import curl_code, fd_baseline, fd_settle, recv_all, wait_log
from .test_sni import TLSOrigin


class TagOrigin(HTTPServerThread):
    """HTTP/1.1 keep-alive origin answering JSON: its tag, the path, Host and every header."""

    def __init__(self, tag):
        outer = self
        self.tag = tag
        self.hits = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits += 1
                body = json.dumps({"tag": outer.tag, "path": self.path,
                                   "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _ThreadingHTTP(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def get(host, port, path="/", *extra, scheme="http"):
    """curl --resolve host:port:127.0.0.1 scheme://host:port/path → (status, JSON or raw body)."""
    rc, status, body = curl_code("-k", "--resolve", f"{host}:{port}:127.0.0.1", *extra,
                                 f"{scheme}://{host}:{port}{path}")
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


@pytest.fixture
def origins():
    with TagOrigin("a") as a, TagOrigin("b") as b, TagOrigin("c") as c:
        yield a, b, c


@pytest.fixture(scope="module")
def tls_origins(tmp_path_factory):
    """Two HTTPS origins (self-signed), each noting the SNI names it was asked for."""
    a = TLSOrigin(tmp_path_factory.mktemp("a"), free_port())
    b = TLSOrigin(tmp_path_factory.mktemp("b"), free_port())
    with a, b:
        yield a, b


def sniffing_service(port, nodes, handler="tcp", extra=""):
    return f"""
services:
- name: rp
  addr: 127.0.0.1:{port}
  handler:
    type: {handler}
    metadata:
      sniffing: true
      sniffing.timeout: 1s
  listener:
    type: tcp
  forwarder:
    nodes:
{nodes}
{extra}"""


def x_test_or_fallback(a, c):
    """Nodes: Host(`x.test`) to origin ``a``, everything else to the fallback ``c``."""
    return f"""
    - name: by-host
      addr: 127.0.0.1:{a.port}
      matcher: {{rule: "Host(`x.test`)"}}
    - name: fallback
      addr: 127.0.0.1:{c.port}
"""


def test_docs_local_port_forwarding(origins, tls_origins):
    """The page's first YAML: an https service routing by SNI (``Host(`www.google.com`)``,
    ``Host(`*.github.com`)``) and an http one by Host and path, origins standing in."""
    a, b, _ = origins
    ta, tb = tls_origins
    hp, sp = free_port(), free_port()
    yaml = f"""
services:
- name: https
  addr: 127.0.0.1:{sp}
  handler: {{type: tcp, metadata: {{sniffing: true}}}}
  listener: {{type: tcp}}
  forwarder:
    nodes:
    - name: google
      addr: 127.0.0.1:{ta.port}
      matcher:
        rule: Host(`www.google.com`)
    - name: github
      addr: 127.0.0.1:{tb.port}
      matcher:
        rule: Host(`*.github.com`)
- name: http
  addr: 127.0.0.1:{hp}
  handler: {{type: tcp, metadata: {{sniffing: true}}}}
  listener: {{type: tcp}}
  forwarder:
    nodes:
    - name: example-com
      addr: 127.0.0.1:{a.port}
      matcher:
        rule: Host(`example.com`)
    - name: example-org
      addr: 127.0.0.1:{b.port}
      matcher:
        rule: Host(`example.org`) && PathPrefix(`/`)
"""
    with Gost("-C", "-", stdin=yaml, ports=[hp, sp]) as g:
        assert get("www.google.com", sp, scheme="https") == (200, b"tls origin sni=www.google.com\n")
        assert get("api.github.com", sp, scheme="https") == (200, b"tls origin sni=api.github.com\n")
        assert ta.seen[-1:] == ["www.google.com"] and tb.seen[-1:] == ["api.github.com"]
        # no node matches: closed, with the reason in the log
        rc, status, _ = curl_code("-k", "--resolve", f"other.test:{sp}:127.0.0.1", f"https://other.test:{sp}/")
        assert status == 0
        assert wait_log(g, r"no node matches tls host other\.test")

        status, js = get("example.com", hp, "/x")
        assert (status, js["tag"], js["headers"]["host"]) == (200, "a", f"example.com:{hp}")
        status, js = get("example.org", hp, "/y")
        assert (status, js["tag"]) == (200, "b")
        assert get("example.net", hp)[0] == 503
        assert wait_log(g, r'"host": "example\.org:\d+"')


def test_filters_protocol_host_path_and_fallback(origins):
    """Conditional filtering: ``filter.host`` (wildcard), ``filter.protocol``, ``filter.path``,
    the older node-level ``host``; a node with none is the fallback."""
    a, b, c = origins
    p = free_port()
    nodes = f"""
    - name: api
      addr: 127.0.0.1:{a.port}
      filter: {{host: "*.example.org", path: /api}}
    - name: legacy
      addr: 127.0.0.1:{b.port}
      host: example.com
      protocol: http
    - name: fallback
      addr: 127.0.0.1:{c.port}
"""
    with Gost("-C", "-", stdin=sniffing_service(p, nodes), ports=[p]):
        assert get("x.example.org", p, "/api/v1")[1]["tag"] == "a"
        assert get("example.org", p, "/api")[1]["tag"] == "a"          # the apex too, as the docs say
        assert get("x.example.org", p, "/web")[1]["tag"] == "c"        # path filter fails: fallback
        assert get("example.com", p)[1]["tag"] == "b"
        assert get("badexample.org", p, "/api")[1]["tag"] == "c"       # not a subdomain


def test_rule_priority_and_keepalive_routing_per_host(origins):
    """Longest rule wins by default; ``matcher.priority`` overrides; each request of one
    kept-alive connection is routed by its own Host."""
    a, b, _ = origins
    p = free_port()
    nodes = f"""
    - name: specific
      addr: 127.0.0.1:{a.port}
      matcher: {{rule: "Host(`www.example.com`)", priority: 100}}
    - name: wildcard
      addr: 127.0.0.1:{b.port}
      matcher: {{rule: "Host(`*.example.com`) || Host(`other.test`)", priority: 50}}
"""
    with Gost("-C", "-", stdin=sniffing_service(p, nodes), ports=[p]):
        assert get("www.example.com", p)[1]["tag"] == "a"
        assert get("img.example.com", p)[1]["tag"] == "b"
        with socket.create_connection(("127.0.0.1", p), timeout=5) as s:
            tags = []
            for host in ("www.example.com", "other.test", "www.example.com"):
                s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    head += s.recv(65536)
                hdr, _, body = head.partition(b"\r\n\r\n")
                n = int(hdr.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < n:
                    body += s.recv(65536)
                tags.append(json.loads(body)["tag"])
        assert tags == ["a", "b", "a"]


def test_node_http_settings_and_auth(origins):
    """Node ``http``: Host rewrite, request headers set and removed, Basic auth asked of the
    client (401 without it) before anything reaches the node."""
    a, _, _ = origins
    p = free_port()
    nodes = f"""
    - name: app
      addr: 127.0.0.1:{a.port}
      http:
        host: backend.internal
        header: {{X-Forwarded-By: gostg, User-Agent: ""}}
        auth: {{username: admin, password: s3cret}}
"""
    with Gost("-C", "-", stdin=sniffing_service(p, nodes), ports=[p]) as g:
        status, _ = get("site.test", p)
        assert status == 401 and a.hits == 0
        assert wait_log(g, "401 unauthorized")
        assert get("site.test", p, "/", "-u", "admin:wrong")[0] == 401
        status, js = get("site.test", p, "/ok", "-u", "admin:s3cret")
        assert status == 200
        assert js["headers"]["host"] == "backend.internal"
        assert js["headers"]["x-forwarded-by"] == "gostg"
        assert "user-agent" not in js["headers"]


def test_node_tls_originates_tls(tls_origins):
    """Node ``tls``: plain HTTP in, TLS to the node with ``serverName``; ``secure: true``
    refuses the self-signed certificate (503 and a log line)."""
    ta, _ = tls_origins
    p, q = free_port(), free_port()
    ok = f"""
    - name: https-backend
      addr: 127.0.0.1:{ta.port}
      tls: {{serverName: backend.test}}
"""
    strict = f"""
    - name: strict
      addr: 127.0.0.1:{ta.port}
      tls: {{serverName: backend.test, secure: true}}
"""
    with Gost("-C", "-", stdin=sniffing_service(p, ok), ports=[p]), \
            Gost("-C", "-", stdin=sniffing_service(q, strict).replace("name: rp", "name: rp2"), ports=[q]) as g2:
        assert get("front.test", p) == (200, b"tls origin sni=backend.test\n")
        assert get("front.test", q)[0] == 503
        assert wait_log(g2, r"TLS to 127\.0\.0\.1:\d+: .*(CERTIFICATE_VERIFY_FAILED|certificate verify failed)")


def test_node_without_addr_goes_to_the_sniffed_host(origins):
    a, _, _ = origins
    p = free_port()
    nodes = """
    - name: any
      matcher: {rule: "Host(`127.0.0.1`)"}
"""
    with Gost("-C", "-", stdin=sniffing_service(p, nodes), ports=[p]):
        rc, status, body = curl_code("-H", f"Host: 127.0.0.1:{a.port}", f"http://127.0.0.1:{p}/direct")
        assert status == 200 and json.loads(body)["path"] == "/direct"


def test_bypass_on_the_sniffed_host(origins):
    """The service bypass judges the sniffed host: HTTP gets 403, TLS is closed; both logged."""
    a, _, _ = origins
    p = free_port()
    nodes = f"""
    - name: all
      addr: 127.0.0.1:{a.port}
"""
    extra = """
  bypass: bp
bypasses:
- name: bp
  matchers: ["*.blocked.test"]
"""
    with Gost("-C", "-", stdin=sniffing_service(p, nodes, extra=extra), ports=[p]) as g:
        assert get("www.blocked.test", p)[0] == 403
        assert get("fine.test", p)[0] == 200
        rc, status, _ = curl_code("-k", "--resolve", f"www.blocked.test:{p}:127.0.0.1",
                                  f"https://www.blocked.test:{p}/")
        assert status == 0 and rc != 0
        assert len(wait_log(g, r"bypass: (?:sniffed \w+ host )?www\.blocked\.test:\d+", count=2)) == 2
        assert a.hits == 1


def test_slow_garbage_and_truncated_sniffing_clients(origins):
    """A client that sends half a request head and stalls is forwarded unsniffed after
    ``sniffing.timeout`` (a log line says so); garbage goes to the fallback node as it is; a
    client closing mid-hello is forwarded nothing; none of them leaks a socket."""
    a, b, c = origins
    p = free_port()
    with Gost("-C", "-", stdin=sniffing_service(p, x_test_or_fallback(a, c)), ports=[p]) as g:
        base = fd_baseline(g.proc.pid)
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHo")
            assert wait_log(g, r"sniffing: no whole first message within 1s; forwarding unsniffed", timeout=8)
            s.sendall(b"st: x.test\r\n\r\n")     # the rest reaches the fallback node, unsniffed
            data = b""
            while b'"tag"' not in data:            # head and body may come apart
                d = s.recv(65536)
                assert d, data
                data += d
            assert b'"tag": "c"' in data
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.sendall(b"\x00\xffgarbage\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            data, eof = recv_all(s, time.monotonic() + 10)
            assert eof and b"400" in data.split(b"\r\n", 1)[0]   # the fallback origin's own answer
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")             # a TLS hello cut short
        assert wait_log(g, "client closed before a whole first message")
        assert get("x.test", p)[1]["tag"] == "a"                 # still serving
        assert fd_settle(g.proc.pid, base) <= base


def test_docs_remote_port_forwarding(origins):
    """The page's rtcp YAML: the services listen on the relay server (``bind=true``, reached
    over wss as in the docs) and sniff what arrives; srv-2.local matches no host: fallback."""
    a, b, c = origins
    rp, hp = free_port(), free_port()
    yaml = f"""
services:
- name: http
  addr: 127.0.0.1:{hp}
  handler:
    type: rtcp
    metadata:
      sniffing: true
  listener:
    type: rtcp
    chain: chain-0
  forwarder:
    nodes:
    - name: local-0
      addr: 127.0.0.1:{a.port}
      matcher:
        rule: Host(`srv-0.local`)
    - name: local-1
      addr: 127.0.0.1:{b.port}
      filter:
        host: srv-1.local
    - name: fallback
      addr: 127.0.0.1:{c.port}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 127.0.0.1:{rp}
      connector:
        type: relay
      dialer:
        type: wss
"""
    with Gost("-L", f"relay+wss://127.0.0.1:{rp}?bind=true", ports=[rp]), \
            Gost("-C", "-", stdin=yaml) as g:
        deadline = time.monotonic() + 10
        while True:     # the remote port opens once the BIND is through
            try:
                socket.create_connection(("127.0.0.1", hp), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, g.log_text()[-2000:]
                time.sleep(0.1)
        assert get("srv-0.local", hp)[1]["tag"] == "a"
        assert get("srv-1.local", hp)[1]["tag"] == "b"
        assert get("srv-2.local", hp)[1]["tag"] == "c"


def test_request_without_host_goes_to_the_fallback(origins):
    """An HTTP/1.0 request without Host matches no host rule: the node without one takes it
    (GOST does the same); without any forwarder node it would be a 400."""
    a, _, c = origins
    p = free_port()
    with Gost("-C", "-", stdin=sniffing_service(p, x_test_or_fallback(a, c)), ports=[p]):
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.sendall(b"GET /nohost HTTP/1.0\r\n\r\n")
            data, eof = recv_all(s, time.monotonic() + 10)
        assert eof and b'"tag": "c"' in data and b'"path": "/nohost"' in data
    q = free_port()
    with Gost("-L", f"tcp://127.0.0.1:{q}?sniffing=true", ports=[q]) as g:
        with socket.create_connection(("127.0.0.1", q), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data, eof = recv_all(s, time.monotonic() + 10)
        assert data.startswith(b"HTTP/1.1 400")
        assert wait_log(g, "request without a usable Host and no forwarder")
        # a Host does not make it an open proxy: no forwarder and no chain is still a refusal
        rc, status, _ = curl_code("--resolve", f"anywhere.test:{q}:127.0.0.1", f"http://anywhere.test:{q}/")
        assert status == 503
        assert wait_log(g, r'"dst": "anywhere\.test:\d+".*no target configured and no chain')


def test_docs_protocol_filtering_http_tls_ssh_on_one_port(origins, tls_origins):
    """The page's "Protocol Filtering" YAML: one port, HTTP to one node, TLS to another, SSH
    (an echo stands in for sshd: it returns the client's banner) to a third."""
    a, _, _ = origins
    ta, _ = tls_origins
    p = free_port()
    with Echo() as ssh:
        nodes = f"""
    - name: http-server
      addr: 127.0.0.1:{a.port}
      filter: {{host: example.com, protocol: http}}
    - name: https-server
      addr: 127.0.0.1:{ta.port}
      filter: {{host: example.com, protocol: tls}}
    - name: ssh-server
      addr: 127.0.0.1:{ssh.port}
      filter: {{protocol: ssh}}
"""
        with Gost("-C", "-", stdin=sniffing_service(p, nodes), ports=[p]):
            assert get("example.com", p)[1]["tag"] == "a"
            assert get("example.com", p, scheme="https") == (200, b"tls origin sni=example.com\n")
            with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
                s.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                assert s.recv(64) == b"SSH-2.0-OpenSSH_9.6\r\n"


def test_docs_http_request_settings(origins):
    """The page's "HTTP Request Settings": requestHeader (numbers too), responseHeader and
    rewriteURL with the docs' two rules (Go's ``$1``)."""
    a, _, _ = origins
    p = free_port()
    nodes = f"""
    - name: example-com
      addr: 127.0.0.1:{a.port}
      matcher:
        rule: Host(`example.com`)
      http:
        requestHeader:
          User-Agent: gost/3.0.0
          foo: bar
          bar: 123
        responseHeader:
          foo: bar
          bar: 123
        rewriteURL:
        - match: /api/login
          replacement: /user/login
        - match: /api/(.*)
          replacement: /$1
"""
    with Gost("-C", "-", stdin=sniffing_service(p, nodes), ports=[p]):
        for path, want in (("/api/login", "/user/login"), ("/api/logout?x=1", "/logout?x=1"),
                           ("/static/a", "/static/a")):
            rc, status, out = curl_code("-i", "--resolve", f"example.com:{p}:127.0.0.1",
                                        f"http://example.com:{p}{path}")
            head, _, body = out.partition(b"\r\n\r\n")
            js = json.loads(body)
            assert (status, js["path"]) == (200, want)
            assert js["headers"]["user-agent"] == "gost/3.0.0" and js["headers"]["bar"] == "123"
            assert b"\r\nfoo: bar" in head.lower() and b"\r\nbar: 123" in head.lower()
