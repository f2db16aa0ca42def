"""Traffic sniffing on proxy handlers (GOST docs tutorials/sniffing.md): after the proxy
handshake the tunnelled stream's HTTP Host or TLS SNI is read without being consumed, logged,
and judged by the service bypass; a client that sends nothing in ``sniffing.timeout`` falls
back to plain relaying. Clients: curl through http, socks5, socks4 and relay front ends."""
import socket
import time

import pytest

from .helpers import Echo, Gost, free_port
from .peers import curl_code, wait_log
from .test_reverse_proxy import TagOrigin
from .test_sni import TLSOrigin


@pytest.fixture
def origin():
    with TagOrigin("o") as o:
        yield o


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory):
    with TLSOrigin(tmp_path_factory.mktemp("t"), free_port()) as t:
        yield t


def test_docs_http_proxy_with_sniffing(origin):
    """The page's YAML (recorders and WebSocket frame sampling only observe: warned about,
    not built) and its curl: ``curl -p -x localhost:8080 http://www.example.com``."""
    p = free_port()
    yaml = f"""
services:
  - name: service-0
    addr: 127.0.0.1:{p}
    recorders:
      - name: recorder-0
        record: recorder.service.handler
        metadata:
          http.body: true
          http.maxBodySize: 65536
    handler:
      type: http
      metadata:
        sniffing: true
        sniffing.timeout: 3s
        sniffing.websocket: true
        sniffing.websocket.sampleRate: 10
    listener:
      type: tcp
recorders:
  - name: recorder-0
    http:
      url: http://localhost:8000
      timeout: 1s
"""
    with Gost("-C", "-", stdin=yaml, ports=[p]) as g:
        rc, status, body = curl_code("-p", "-x", f"127.0.0.1:{p}", f"http://127.0.0.1:{origin.port}/page")
        assert status == 200 and b'"path": "/page"' in body
        assert wait_log(g, rf'"host": "127\.0\.0\.1:{origin.port}", "proto": "http"')
        assert "not built" in g.log_text() and "recorder" in g.log_text()


def test_bypass_judges_the_sniffed_http_host(origin):
    """The CONNECT names an allowed address, the tunnelled request another host: that host is
    what the bypass sees (403, nothing reaches the origin)."""
    p = free_port()
    with Gost("-L", f"http://127.0.0.1:{p}?sniffing=true&bypass=*.blocked.test", ports=[p]) as g:
        rc, status, _ = curl_code("-p", "-x", f"127.0.0.1:{p}", "-H", "Host: www.blocked.test",
                                  f"http://127.0.0.1:{origin.port}/")
        assert status == 403 and origin.hits == 0
        assert wait_log(g, r"bypass: www\.blocked\.test:80: 403")
        rc, status, _ = curl_code("-p", "-x", f"127.0.0.1:{p}", f"http://127.0.0.1:{origin.port}/")
        assert status == 200 and origin.hits == 1


@pytest.mark.parametrize("scheme", ["socks5", "socks4", "auto"])
def test_bypass_judges_the_sniffed_tls_server_name(tls_origin, scheme):
    """curl resolves the name itself (socks5://, socks4://), so the proxy sees only an IP:
    the SNI is what the bypass judges; the TLS client is closed, with a log line."""
    p = free_port()
    listen = f"{scheme}://127.0.0.1:{p}" if scheme != "auto" else f"127.0.0.1:{p}"
    proxy = "socks5" if scheme == "auto" else scheme
    with Gost("-L", f"{listen}?sniffing=true&bypass=secret.test", ports=[p]) as g:
        url = f"https://secret.test:{tls_origin.port}/"
        rc, status, _ = curl_code("-k", "-x", f"{proxy}://127.0.0.1:{p}",
                                  "--resolve", f"secret.test:{tls_origin.port}:127.0.0.1", url)
        assert status == 0 and rc != 0
        assert wait_log(g, r"bypass: sniffed tls host secret\.test:443")
        rc, status, body = curl_code("-k", "-x", f"{proxy}://127.0.0.1:{p}",
                                     "--resolve", f"open.test:{tls_origin.port}:127.0.0.1",
                                     f"https://open.test:{tls_origin.port}/")
        assert status == 200 and body == b"tls origin sni=open.test\n"


def test_relay_server_sniffs_what_it_relays(origin):
    """tutorials/protocols/relay.md server with sniffing: the relay handler peeks at what a
    gostg client sends through it."""
    rp, hp = free_port(), free_port()
    with Gost("-L", f"relay://127.0.0.1:{rp}?sniffing=true&bypass=bad.test", ports=[rp]) as srv, \
            Gost("-L", f"http://127.0.0.1:{hp}", "-F", f"relay://127.0.0.1:{rp}", ports=[hp]):
        rc, status, _ = curl_code("-p", "-x", f"127.0.0.1:{hp}", "-H", "Host: bad.test",
                                  f"http://127.0.0.1:{origin.port}/")
        assert status == 403 and origin.hits == 0
        assert wait_log(srv, r"bypass: bad\.test:80: 403")
        rc, status, _ = curl_code("-x", f"127.0.0.1:{hp}", f"http://127.0.0.1:{origin.port}/ok")
        assert status == 200


def test_server_first_protocol_falls_back_after_the_timeout():
    """A server that speaks first (greeting) through a sniffing SOCKS5 proxy: nothing comes
    from the client, so after sniffing.timeout the stream is relayed as it is."""
    p = free_port()
    with Echo(tag=b"220 hello\r\n") as e, \
            Gost("-L", f"socks5://127.0.0.1:{p}?sniffing=true&sniffing.timeout=1s", ports=[p]) as g:
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + e.port.to_bytes(2, "big"))
            assert s.recv(10)[:2] == b"\x05\x00"
            t0 = time.monotonic()
            assert s.recv(64) == b"220 hello\r\n"
            assert time.monotonic() - t0 < 8
            s.sendall(b"ping")
            assert s.recv(64) == b"ping"
        assert wait_log(g, "sniffing: no whole first message within 1s")


def test_each_request_of_a_kept_alive_tunnel_is_judged(origin):
    """An allowed Host first, then a refused one on the same CONNECT tunnel: the second gets
    403 and never reaches the origin (GOST's sniffer judges every request too)."""
    p = free_port()
    with Gost("-L", f"http://127.0.0.1:{p}?sniffing=true&bypass=blocked.test", ports=[p]) as g:
        with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
            s.sendall(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.sendall(b"GET /one HTTP/1.1\r\nHost: fine.test\r\n\r\n")
            first = b""
            while not first.endswith(b"}}"):      # the whole JSON answer (headers come last)
                d = s.recv(65536)
                assert d, first
                first += d
            assert b'"path": "/one"' in first
            s.sendall(b"GET /two HTTP/1.1\r\nHost: blocked.test\r\n\r\n")
            second = s.recv(65536)
            assert second.startswith(b"HTTP/1.1 403")
        assert origin.hits == 1
        assert wait_log(g, r"bypass: blocked\.test:80: 403")
