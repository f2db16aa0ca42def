"""TLS listener and dialer: https proxies with curl, GOST's certificate rules, TLS over TLS in a
chain, client certificates (caFile), and garbage on a TLS port."""
import hashlib
import os
import socket
import subprocess

import pytest

from .helpers import Gost, free_port
from .peers import FastOrigin, body_of, curl, curl_code

QUIET = ("-C", '{"log":{"level":"warn"}}')


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost and a client certificate, made with openssl."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    for name, cn in (("server", "localhost"), ("client", "client")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-copy_extensions", "copy", cwd=d)
    return d


def home_env(tmp_path):
    return {"HOME": str(tmp_path)}


def test_https_proxy_with_generated_certificate(origin, tmp_path):
    """No certificate configured and none in cwd: a self-signed one is made under ~/.gost/ and
    kept; curl talks to the proxy over TLS (plain forwarding and CONNECT)."""
    p = free_port()
    with Gost("-L", f"https://127.0.0.1:{p}", *QUIET, ports=[p], env=home_env(tmp_path), cwd=tmp_path):
        rc, status, body = curl_code("--proxy", f"https://127.0.0.1:{p}", "--proxy-insecure", origin.url + "/plain")
        assert (rc, status) == (0, 200) and b"/plain" in body
        rc, status, body = curl_code("-p", "--proxy", f"https://127.0.0.1:{p}", "--proxy-insecure", origin.url + "/tunnel")
        assert (rc, status) == (0, 200) and b"/tunnel" in body
        cert = tmp_path / ".gost" / "gostg-cert.pem"
        assert cert.is_file()
        # the proxy's certificate is the persisted one: trusting it verifies the proxy
        rc, status, _ = curl_code("--proxy", f"https://localhost:{p}", "--proxy-cacert", str(cert), origin.url + "/")
        assert (rc, status) == (0, 200)
        # without --proxy-insecure or the CA, curl refuses the self-signed proxy
        assert curl("--proxy", f"https://127.0.0.1:{p}", origin.url + "/").returncode != 0
    first = cert.read_bytes()
    p2 = free_port()
    with Gost("-L", f"https://127.0.0.1:{p2}", *QUIET, ports=[p2], env=home_env(tmp_path), cwd=tmp_path):
        assert curl_code("--proxy", f"https://localhost:{p2}", "--proxy-cacert", str(cert), origin.url + "/")[:2] == (0, 200)
    assert cert.read_bytes() == first, "the generated certificate must be kept, not regenerated"


def test_cert_pem_in_cwd_is_used(origin, pki, tmp_path):
    for src, dst in (("server.pem", "cert.pem"), ("server.key", "key.pem")):
        (tmp_path / dst).write_bytes((pki / src).read_bytes())
    p = free_port()
    with Gost("-L", f"https://127.0.0.1:{p}", *QUIET, ports=[p], env=home_env(tmp_path), cwd=tmp_path):
        rc, status, _ = curl_code("--proxy", f"https://localhost:{p}", "--proxy-cacert", str(pki / "ca.pem"),
                                  origin.url + "/")
        assert (rc, status) == (0, 200)
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{p}"], input=b"", capture_output=True,
                             timeout=20).stdout.decode(errors="replace")
        assert "CN = localhost" in out or "CN=localhost" in out
    assert not (tmp_path / ".gost").exists()


def test_tls_over_tls_chain_is_byte_exact(origin, tmp_path):
    """hop 0 dials TLS; hop 1's TLS handshake runs inside hop 0's tunnel (TLS in TLS)."""
    a, b, front = free_port(), free_port(), free_port()
    env = home_env(tmp_path)
    with Gost("-L", f"https://127.0.0.1:{a}", *QUIET, ports=[a], env=env, cwd=tmp_path), \
            Gost("-L", f"socks5+tls://127.0.0.1:{b}", *QUIET, ports=[b], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"tls://127.0.0.1:{a}", "-F", f"socks5+tls://127.0.0.1:{b}",
                 *QUIET, ports=[front], env=env, cwd=tmp_path):
        n = 16 << 20
        p = curl("-x", f"http://127.0.0.1:{front}", f"{origin.url}/bytes/{n}", timeout=60)
        assert p.returncode == 0, p.stderr
        assert len(p.stdout) == n
        assert hashlib.sha256(p.stdout).hexdigest() == hashlib.sha256(body_of(n)).hexdigest()


def test_client_certificates_required_with_cafile(origin, pki, tmp_path):
    """A server caFile requires client certificates (GOST's mTLS-by-config)."""
    s, front_ok, front_bad = free_port(), free_port(), free_port()
    srv = f"https://127.0.0.1:{s}?certFile={pki / 'server.pem'}&keyFile={pki / 'server.key'}&caFile={pki / 'ca.pem'}"
    good = f"tls://localhost:{s}?certFile={pki / 'client.pem'}&keyFile={pki / 'client.key'}&caFile={pki / 'ca.pem'}&secure=true"
    with Gost("-L", srv, *QUIET, ports=[s]), \
            Gost("-L", f"http://127.0.0.1:{front_ok}", "-F", good, *QUIET, ports=[front_ok]), \
            Gost("-L", f"http://127.0.0.1:{front_bad}", "-F", f"tls://127.0.0.1:{s}", *QUIET, ports=[front_bad]):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front_ok}", origin.url + "/mtls")
        assert (rc, status) == (0, 200) and b"/mtls" in body
        rc, status, _ = curl_code("-x", f"http://127.0.0.1:{front_bad}", origin.url + "/nocert")
        assert status == 503, "a client without a certificate must not get through"


def test_garbage_on_tls_port_is_closed_and_service_lives(origin, tmp_path):
    p = free_port()
    with Gost("-L", f"https://127.0.0.1:{p}", "-C", '{"log":{"level":"warn"}}', ports=[p], env=home_env(tmp_path),
              cwd=tmp_path) as g:
        for junk in (b"GET / HTTP/1.1\r\n\r\n", os.urandom(512), b"\x16\x03\x01\x00"):
            with socket.create_connection(("127.0.0.1", p), timeout=15) as c:
                c.sendall(junk)
                c.shutdown(socket.SHUT_WR)
                c.settimeout(15)
                try:
                    while c.recv(4096):  # an alert, then EOF …
                        pass
                except ConnectionResetError:  # … or a reset: closed either way, not hung
                    pass
        rc, status, _ = curl_code("--proxy", f"https://127.0.0.1:{p}", "--proxy-insecure", origin.url + "/")
        assert (rc, status) == (0, 200)
        assert "TLS handshake" in g.log_text()


def test_relay_over_tls_connect_tunnel(origin, tmp_path):
    """Regression: the lazy relay conn over TLS passed recv_into(buf, 0) to an SSLSocket, which
    reads nothing there (a plain socket reads the whole buffer), so CONNECT tunnels got EOF."""
    back, front = free_port(), free_port()
    env = home_env(tmp_path)
    with Gost("-L", f"relay+tls://127.0.0.1:{back}", *QUIET, ports=[back], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"relay+tls://127.0.0.1:{back}", *QUIET, ports=[front],
                 env=env, cwd=tmp_path):
        for flag in ((), ("-p",)):
            n = 4 << 20
            p = curl(*flag, "-x", f"http://127.0.0.1:{front}", f"{origin.url}/bytes/{n}", timeout=60)
            assert p.returncode == 0, p.stderr
            assert hashlib.sha256(p.stdout).hexdigest() == hashlib.sha256(body_of(n)).hexdigest()
