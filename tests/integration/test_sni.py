"""SNI proxy (`-L sni://…`) and the sni connector (`-F sni://…?host=…`), seen from curl and raw
sockets: HTTP by Host, TLS by server name (port 443), the connector's disguise undone by the
handler, and garbage closing cleanly while the service keeps serving."""
import socket
import ssl
import subprocess
import threading
import time

import pytest

from .helpers import Gost, free_port
from .peers import FastOrigin, FirstBytes, curl_code, recv_all, wait_log


class TLSOrigin:
    """A tiny HTTPS/1.0 server on 127.0.0.1:``port`` (self-signed for CN=localhost) that
    answers every request with the SNI it saw."""

    def __init__(self, tmp_path, port):
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=30)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.seen = []
        self.ctx.sni_callback = lambda obj, name, ctx: self.seen.append(name)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.port = port
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            c.settimeout(5)
            with self.ctx.wrap_socket(c, server_side=True) as t:
                data = b""
                while b"\r\n\r\n" not in data:
                    d = t.recv(4096)
                    if not d:
                        return
                    data += d
                body = f"tls origin sni={self.seen[-1] if self.seen else None}\n".encode()
                t.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % len(body) + body)
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() so the port is released
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=2)


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def tls443(tmp_path_factory):
    """The TLS origin on 127.0.0.1:443 (the sni handler's default port): root only."""
    try:
        srv = TLSOrigin(tmp_path_factory.mktemp("tls"), 443)
    except PermissionError:
        pytest.skip("binding port 443 needs root")
    except OSError as exc:
        pytest.skip(f"port 443 unavailable: {exc}")
    with srv:
        yield srv


def test_http_by_host_header(origin):
    p = free_port()
    with Gost("-D", "-L", f"sni://127.0.0.1:{p}", ports=[p]) as g:
        rc, status, body = curl_code("-H", f"Host: 127.0.0.1:{origin.port}", f"http://127.0.0.1:{p}/x")
        assert (rc, status) == (0, 200), body
        assert body.startswith(b"hello from origin /x") and f"host=127.0.0.1:{origin.port}".encode() in body
        assert wait_log(g, rf"sni: http host 127.0.0.1:{origin.port}")


def test_tls_sni_parsed_and_dialed_on_443():
    """curl sends SNI "localhost": the handler dials localhost:443 (logged at -D)."""
    p = free_port()
    with Gost("-D", "-L", f"sni://127.0.0.1:{p}?readTimeout=5s", ports=[p]) as g:
        curl_code("-k", "--connect-to", f"localhost:8443:127.0.0.1:{p}", "https://localhost:8443/", timeout=5)
        assert wait_log(g, r"sni: tls host localhost -> localhost:443")


def test_tls_round_trip(tls443):
    p = free_port()
    with Gost("-L", f"sni://127.0.0.1:{p}", ports=[p]):
        rc, status, body = curl_code("-k", "--connect-to", f"localhost:443:127.0.0.1:{p}",
                                     "--resolve", "localhost:443:127.0.0.1", "https://localhost/")
        assert (rc, status) == (0, 200), body
        assert body == b"tls origin sni=localhost\n"


def test_connector_disguises_http(origin):
    """-F sni://…?host=cdn.test: the wire shows Host cdn.test, the sni node restores the real one."""
    ps, pa = free_port(), free_port()
    with Gost("-D", "-L", f"sni://127.0.0.1:{ps}", ports=[ps]) as s, \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"sni://127.0.0.1:{ps}?host=cdn.test", ports=[pa]):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{pa}", f"http://127.0.0.1:{origin.port}/y")
        assert (rc, status) == (0, 200), body
        assert f"host=127.0.0.1:{origin.port}".encode() in body
        assert wait_log(s, rf"sni: http host 127.0.0.1:{origin.port}")


def test_connector_disguises_tls(tls443):
    """CONNECT through -F sni://…?host=cdn.test: the TLS origin still sees SNI localhost and the
    handshake completes (the handler gives the server the client's hello back unchanged)."""
    ps, pa = free_port(), free_port()
    with Gost("-D", "-L", f"sni://127.0.0.1:{ps}", ports=[ps]) as s, \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"sni://127.0.0.1:{ps}?host=cdn.test", ports=[pa]):
        rc, status, body = curl_code("-k", "-x", f"http://127.0.0.1:{pa}",
                                     "--resolve", "localhost:443:127.0.0.1", "https://localhost/")
        assert (rc, status) == (0, 200), body
        assert body == b"tls origin sni=localhost\n"
        assert wait_log(s, r"sni: tls host localhost -> localhost:443")


def test_garbage_closes_and_service_still_serves(origin):
    p = free_port()
    with Gost("-L", f"sni://127.0.0.1:{p}", ports=[p]) as g:
        for junk in (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",   # TLS, but not a ClientHello
                     b"\x00\x01\x02garbage\r\n\r\n",                  # neither TLS nor HTTP
                     b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"):       # HTTP without Host
            with socket.create_connection(("127.0.0.1", p), timeout=5) as c:
                c.sendall(junk)
                data, eof = recv_all(c, time.monotonic() + 5)
            assert eof and data == b"", junk
        assert wait_log(g, "protocol error", count=3)
        rc, status, body = curl_code("-H", f"Host: 127.0.0.1:{origin.port}", f"http://127.0.0.1:{p}/")
        assert (rc, status) == (0, 200)


def _tls_hello_complete(data):
    from gostg.errors import NeedData, ProtocolError
    from gostg.protocols import tls_hello
    try:
        tls_hello.parse_client_hello(data)
        return True
    except NeedData:
        return False
    except ProtocolError:
        return True


def test_connector_host_rewrite_on_the_wire():
    """What leaves `-F sni://node?host=cdn.test` for the node: HTTP with `Host: cdn.test` and the
    real host in GOST's Gost-Target; TLS with SNI cdn.test and the real name in extension 0xFFFE."""
    from gostg.protocols import tls_hello
    node = FirstBytes()
    pa = free_port()
    try:
        with Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"sni://127.0.0.1:{node.port}?host=cdn.test",
                  ports=[pa]):
            result = node.expect(lambda d: b"\r\n\r\n" in d)
            curl_code("-x", f"http://127.0.0.1:{pa}", "http://real.test:8080/path", timeout=5)
            head = result()
            assert head.startswith(b"GET /path HTTP/1.1\r\n"), head
            assert b"\r\nHost: cdn.test\r\n" in head and b"real.test" not in head, head
            target = head.split(b"\r\nGost-Target: ", 1)[1].split(b"\r\n", 1)[0].decode()
            assert tls_hello.decode_target(target) == "real.test:8080"

            result = node.expect(_tls_hello_complete)
            curl_code("-k", "-x", f"http://127.0.0.1:{pa}", "https://secret.test/", timeout=5)
            hello = result()
            assert tls_hello.server_name(hello) == "cdn.test"
            assert b"secret.test" not in hello
            assert tls_hello.restore_server_name(hello)[1] == "secret.test"
    finally:
        node.close()
