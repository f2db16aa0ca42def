"""PROXY protocol (tutorials/proxy-protocol.md): haproxy's ``send-proxy``/``send-proxy-v2`` in
front of gostg, the client address from the header deciding admission and per-IP limits and
showing in the logs; curl's ``--haproxy-protocol`` for the docs' own example; gostg sending the
header (forward handler, chain node) to haproxy's ``accept-proxy`` and to gostg itself.

Distinct clients are distinct loopback source addresses (curl ``--interface``, sockets bound to
127.0.0.x): behind haproxy every connection reaches gostg from 127.0.0.1, so only the header
can tell them apart."""
import re
import shutil
import socket
import subprocess
import time

import pytest

from .helpers import Echo, Gost, Origin, free_port, wait_port
from .peers import PeerProcess, curl_code, fd_baseline, fd_settle, log_records, wait_log

HAPROXY = shutil.which("haproxy")
need_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt install haproxy)")


class HAProxy(PeerProcess):
    """``haproxy -f cfg -db`` (foreground) stopped by PID; ``fronts`` = config lines after
    ``defaults`` (frontends/backends). Ready when the first port in ``ports`` accepts."""

    name = "haproxy"

    def __init__(self, tmp_path, sections, port):
        cfg = tmp_path / f"haproxy-{port}.cfg"
        cfg.write_text("global\n  maxconn 200\n"
                       "defaults\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
                       + sections)
        super().__init__([HAPROXY, "-f", cfg, "-db"], port=port, stderr=subprocess.PIPE)


def _via(front, url, source, *extra):
    return curl_code("--interface", source, "-x", f"http://127.0.0.1:{front}", *extra, url, timeout=8)


def test_docs_example_curl_haproxy_protocol():
    """``gost -L tcp://:8000/:8080 -L tcp://:8080/example.com:80?proxyProtocol=1`` (the origin
    on loopback instead of example.com): without a header the client is the peer, with curl's
    ``--haproxy-protocol`` it is the address curl announces."""
    p8000, p8080 = free_port(), free_port()
    with Origin() as origin, Gost("-L", f"tcp://127.0.0.1:{p8000}/127.0.0.1:{p8080}",
                                  "-L", f"tcp://127.0.0.1:{p8080}/127.0.0.1:{origin.port}?proxyProtocol=1",
                                  ports=[p8000, p8080]) as g:
        rc, status, body = curl_code("-H", "Host: example.com", f"http://127.0.0.1:{p8000}/plain")
        assert (rc, status) == (0, 200) and b"host=example.com" in body
        rc, status, _ = curl_code("--haproxy-protocol", "--interface", "127.0.0.3", "-H", "Host: example.com",
                                  f"http://127.0.0.1:{p8000}/pp")
        assert (rc, status) == (0, 200)
        wait_log(g, r'"client": "127\.0\.0\.3:\d+"')
        svc1 = log_records(g, service="service-1", msg="127.0.0.3:")
        assert svc1, g.log_text()
        # GOST's fields: client = the header's address, remote = the socket's peer (service-0)
        assert all(r["client"].startswith("127.0.0.3:") and r["remote"].startswith("127.0.0.1:") for r in svc1)
        plain = log_records(g, service="service-1", client="127.0.0.1:")
        assert plain and all(r["client"] == r["remote"] for r in plain)


def _tunnel(front, source, target_port):
    """An HTTP CONNECT tunnel from ``source`` through ``front`` → the socket, or None if refused."""
    s = socket.socket()
    s.settimeout(8)
    s.bind((source, 0))
    s.connect(("127.0.0.1", front))
    s.sendall(f"CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\nHost: 127.0.0.1:{target_port}\r\n\r\n".encode())
    head = b""
    try:
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    except OSError:
        head = b""
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        return None
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"
    return s


@need_haproxy
def test_haproxy_send_proxy_v1_v2_admission_limiter_logs(tmp_path):
    gp, f1, f2 = free_port(), free_port(), free_port()
    cfg = tmp_path / "gostg.yaml"
    cfg.write_text(f"""
services:
- name: behind-haproxy
  addr: 127.0.0.1:{gp}
  admission: deny-4
  climiter: one-per-ip
  handler: {{type: http}}
  listener: {{type: tcp}}
  metadata: {{proxyProtocol: 1}}
admissions:
- name: deny-4
  matchers: [127.0.0.4]
climiters:
- name: one-per-ip
  limits: ["$$ 1"]
""")
    sections = (f"frontend v1\n  mode tcp\n  bind 127.0.0.1:{f1}\n  default_backend g1\n"
                f"backend g1\n  mode tcp\n  server gostg 127.0.0.1:{gp} send-proxy\n"
                f"frontend v2\n  mode tcp\n  bind 127.0.0.1:{f2}\n  default_backend g2\n"
                f"backend g2\n  mode tcp\n  server gostg 127.0.0.1:{gp} send-proxy-v2\n")
    with Origin() as origin, Echo() as echo, Gost("-C", cfg, ports=[gp]) as g, HAProxy(tmp_path, sections, f1):
        wait_port(f2)
        # GOST believes any header: with admission and limits deciding by it, gostg says so
        assert wait_log(g, r"proxyProtocol without proxyProtocol\.trusted: .*admission, climiter")
        for front in (f1, f2):   # send-proxy, then send-proxy-v2
            rc, status, body = _via(front, f"{origin.url}/v{front}", "127.0.0.2")
            assert (rc, status) == (0, 200) and body.startswith(f"hello from origin /v{front}".encode())
            rc, status, _ = _via(front, f"{origin.url}/denied", "127.0.0.4")
            assert status != 200   # admission decided on 127.0.0.4 from the header
        served = log_records(g, msg="127.0.0.2:")
        assert served and all(r["client"].startswith("127.0.0.2:") and r["remote"].startswith("127.0.0.1:")
                              for r in served)
        assert not log_records(g, client="127.0.0.4"), "a denied client reached the handler"
        # the connection limit counts per client IP from the header, not per haproxy
        held = _tunnel(f2, "127.0.0.2", echo.port)
        assert held is not None
        try:
            assert _tunnel(f1, "127.0.0.2", echo.port) is None
            limited = wait_log(g, r'"client": "127\.0\.0\.2:\d+", "climiter": "one-per-ip".*connection limit reached')
            assert limited, g.log_text()
            other = _tunnel(f1, "127.0.0.3", echo.port)
            assert other is not None
            other.close()
        finally:
            held.close()


def _closed(s, timeout=8.0):
    """Did the server close ``s`` (EOF or reset) within ``timeout``? (The socket is closed.)"""
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def test_garbage_truncated_slow_silent_untrusted(tmp_path):
    """Bad headers are refused with a log line and no leak; a silent peer is served once the
    header time is up (GOST: the header is optional); ``proxyProtocol.trusted`` refuses a
    header from anyone else."""
    gp, fp, tp = free_port(), free_port(), free_port()
    with Echo(tag=b"server speaks first\n") as echo, Origin() as origin:
        cfg = tmp_path / "gostg.yaml"
        cfg.write_text(f"""
services:
- name: strict
  addr: 127.0.0.1:{gp}
  handler: {{type: http}}
  listener: {{type: tcp}}
  metadata: {{proxyProtocol: 2, proxyProtocol.timeout: 1s}}
- name: fwd
  addr: 127.0.0.1:{fp}
  handler: {{type: tcp}}
  listener: {{type: tcp}}
  forwarder: {{nodes: [{{name: echo, addr: 127.0.0.1:{echo.port}}}]}}
  metadata: {{proxyProtocol: 1, proxyProtocol.timeout: 1s}}
- name: trusting
  addr: 127.0.0.1:{tp}
  handler: {{type: http}}
  listener: {{type: tcp, metadata: {{proxyProtocol: 1}}}}   # where the docs page puts it
  metadata: {{proxyProtocol.trusted: [127.0.0.9/32]}}
""")
        with Gost("-C", cfg, ports=[gp, fp, tp]) as g:
            base = fd_baseline(g.proc.pid)
            bad = [b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",               # port out of range
                   b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 "
                   b"1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9",                # no CRLF in 107 bytes
                   b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12)]   # v2 signature, version 3
            for data in bad:
                s = socket.create_connection(("127.0.0.1", gp))
                s.sendall(data)
                assert _closed(s), data
            s = socket.create_connection(("127.0.0.1", gp))   # truncated: the peer gives up
            s.sendall(b"PROXY TCP4 10.0.0.1")
            s.shutdown(socket.SHUT_WR)
            assert _closed(s)
            t0 = time.monotonic()
            s = socket.create_connection(("127.0.0.1", gp))   # slow: starts, then stalls
            s.sendall(b"\r\n\r\n\x00\r\nQU")
            assert _closed(s) and time.monotonic() - t0 < 6
            for what in ("port out of range", "no CRLF within 107 bytes", "unsupported version 3",
                         "peer closed mid-header", "incomplete after 1s"):
                pattern = r'"remote": "127\.0\.0\.1:\d+".*"msg": "proxy protocol: [^"]*' + re.escape(what)
                assert wait_log(g, pattern), what
            # a silent peer of a server-speaks-first service gets the greeting after 1 s
            s = socket.create_connection(("127.0.0.1", fp), timeout=8)
            assert s.recv(100) == b"server speaks first\n"
            s.close()
            # a header from an untrusted peer is refused; the same peer without one is served
            rc, status, _ = curl_code("--haproxy-protocol", "-x", f"http://127.0.0.1:{tp}", origin.url)
            assert status != 200
            assert wait_log(g, r'untrusted peer 127\.0\.0\.1')
            rc, status, _ = curl_code("-x", f"http://127.0.0.1:{tp}", origin.url)
            assert (rc, status) == (0, 200)
            assert fd_settle(g.proc.pid, base) <= base


@need_haproxy
def test_sending_header_forward_handler(tmp_path):
    """``gost -L tcp://:8080/:8000?handler.proxyProtocol=1`` (v1 and v2) with haproxy's
    ``accept-proxy`` on :8000 answering the client address it read from the header."""
    h1, h2, a1, a2, a3, f3 = (free_port() for _ in range(6))
    sections = "".join(f"frontend acc{p}\n  mode http\n  bind 127.0.0.1:{p} accept-proxy\n"
                       f"  http-request return status 200 content-type text/plain lf-string \"src=%[src] "
                       f"dst=%[dst]:%[dst_port]\"\n" for p in (h1, h2))
    # a3 reads a header (from haproxy's front f3) and sends one on: the client and the address
    # it reached (f3) travel through gostg, as in GOST
    sections += (f"frontend f3\n  mode tcp\n  bind 127.0.0.1:{f3}\n  default_backend a3\n"
                 f"backend a3\n  mode tcp\n  server gostg 127.0.0.1:{a3} send-proxy-v2\n")
    with HAProxy(tmp_path, sections, h1), \
            Gost("-L", f"tcp://127.0.0.1:{a1}/127.0.0.1:{h1}?handler.proxyProtocol=1",
                 "-L", f"tcp://127.0.0.1:{a2}/127.0.0.1:{h2}?handler.proxyProtocol=2",
                 "-L", f"tcp://127.0.0.1:{a3}/127.0.0.1:{h1}?proxyProtocol=1&handler.proxyProtocol=1",
                 ports=[a1, a2, a3]):
        for port in (a1, a2):
            rc, status, body = curl_code("--interface", "127.0.0.3", f"http://127.0.0.1:{port}/")
            assert (rc, status, body) == (0, 200, f"src=127.0.0.3 dst=127.0.0.1:{port}".encode())
        wait_port(f3)
        rc, status, body = curl_code("--interface", "127.0.0.4", f"http://127.0.0.1:{f3}/")
        assert (rc, status, body) == (0, 200, f"src=127.0.0.4 dst=127.0.0.1:{f3}".encode())


def test_sending_header_from_chain_nodes_through_transports(tmp_path):
    """``gost -L :8080 -F http://:8000?proxyProtocol=1`` and the same over tls, mtls (one
    session) and ws nodes: the header goes first on the node's socket, before TLS or the
    WebSocket upgrade, and the gostg reading it sees the client curl connected from."""
    kinds = ("tcp", "tls", "mtls", "ws")
    server = {k: free_port() for k in kinds}
    front = {k: free_port() for k in kinds}
    cfg = tmp_path / "client.yaml"
    cfg.write_text("services:\n" + "".join(
        f"- name: via-{k}\n  addr: 127.0.0.1:{front[k]}\n  handler: {{type: http, chain: c-{k}}}\n"
        f"  listener: {{type: tcp}}\n" for k in kinds) + "chains:\n" + "".join(
        f"- name: c-{k}\n  hops:\n  - name: h-{k}\n    metadata: {{proxyProtocol: {1 + i % 2}}}\n"
        f"    nodes: [{{name: n-{k}, addr: '127.0.0.1:{server[k]}', connector: {{type: http}}, "
        f"dialer: {{type: {k}}}}}]\n" for i, k in enumerate(kinds)))
    listen = [a for k in kinds for a in ("-L", f"http+{k}://127.0.0.1:{server[k]}?proxyProtocol=1")]
    with Origin() as origin, Gost(*listen, ports=list(server.values())) as srv, \
            Gost("-C", cfg, ports=list(front.values())):
        for i, k in enumerate(kinds):
            rc, status, body = curl_code("--interface", "127.0.0.3", "-x", f"http://127.0.0.1:{front[k]}",
                                         f"{origin.url}/{k}")
            assert (rc, status) == (0, 200) and body.startswith(f"hello from origin /{k} ".encode()), k
            assert wait_log(srv, rf'"service": "service-{i}", "listener": "{k}".*"client": "127\.0\.0\.3:\d+"'
                                 rf'.*"msg": "127\.0\.0\.3:\d+ <-> 127\.0\.0\.1:{origin.port}"'), k
