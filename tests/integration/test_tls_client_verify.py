"""The TLS dialer verifying its server (``secure``, ``caFile``, ``serverName``), seen by curl
through a front http proxy whose chain is one ``socks5+tls`` node: a server the client cannot
verify is a failed dial (503 from the front), one it can verify carries the request.

The server's certificate is self-signed for ``localhost`` (made with openssl)."""
import subprocess

import pytest

from .helpers import Gost, free_port
from .peers import FastOrigin, curl_code

QUIET = ("-C", '{"log":{"level":"warn"}}')


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A socks5+tls gostg with a self-signed certificate for localhost → (port, cert path)."""
    d = tmp_path_factory.mktemp("selfsigned")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", "self.key", "-out", "self.pem", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], cwd=d, check=True, capture_output=True, timeout=30)
    p = free_port()
    with Gost("-L", f"socks5+tls://127.0.0.1:{p}?certFile={d / 'self.pem'}&keyFile={d / 'self.key'}", *QUIET,
              ports=[p]):
        yield p, d / "self.pem"


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory):
    """A certificate that did not sign the server's."""
    d = tmp_path_factory.mktemp("otherca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", "o.key", "-out", "o.pem", "-subj", "/CN=localhost"], cwd=d, check=True,
                   capture_output=True, timeout=30)
    return d / "o.pem"


def test_cafile_without_secure_checks_the_chain_not_the_name(origin, server, other_ca, tmp_path):
    """GOST: a caFile alone verifies the certificate chain only (no hostname check)."""
    port, ca = server
    rc, status, body = through(origin, f"socks5+tls://127.0.0.1:{port}?caFile={ca}", "/chain-only", tmp_path)
    assert (rc, status) == (0, 200) and b"/chain-only" in body, (rc, status, body[:200])
    rc, status, body = through(origin, f"socks5+tls://127.0.0.1:{port}?caFile={other_ca}", "/wrong-ca", tmp_path)
    assert status == 503, (rc, status, body[:200])


def through(origin, node, path, tmp_path):
    """curl → front http proxy → ``-F node`` → origin; → (curl exit code, HTTP status, body)."""
    front = free_port()
    # HOME/cwd in tmp: a client with secure=true and no caFile must not find any trust by accident
    with Gost("-L", f"http://127.0.0.1:{front}", "-F", node, *QUIET, ports=[front], env={"HOME": str(tmp_path)},
              cwd=tmp_path):
        return curl_code("-x", f"http://127.0.0.1:{front}", origin.url + path, timeout=15)


@pytest.mark.parametrize("query,host", [
    ("secure=true", "127.0.0.1"),                                   # self-signed, no CA to trust it
    ("secure=true&caFile={ca}&serverName=wrong.test", "127.0.0.1"),  # trusted cert, wrong name
    ("secure=true&caFile={ca}", "127.0.0.1"),                       # serverName defaults to the IP
], ids=["no-ca", "wrong-servername", "ip-not-in-cert"])
def test_unverifiable_server_is_a_failed_dial(origin, server, tmp_path, query, host):
    port, ca = server
    rc, status, body = through(origin, f"socks5+tls://{host}:{port}?{query.format(ca=ca)}", "/refused", tmp_path)
    assert status == 503, f"a server the client cannot verify was used (rc {rc}, status {status}, {body[:200]!r})"


@pytest.mark.parametrize("query,host", [
    ("secure=true&caFile={ca}&serverName=localhost", "127.0.0.1"),
    ("secure=true&caFile={ca}", "localhost"),                       # serverName from the node's host
    ("", "127.0.0.1"),                                              # GOST's default: no verification
], ids=["right-servername", "servername-from-host", "insecure-default"])
def test_verifiable_server_carries_the_request(origin, server, tmp_path, query, host):
    port, ca = server
    node = f"socks5+tls://{host}:{port}" + (f"?{query.format(ca=ca)}" if query else "")
    rc, status, body = through(origin, node, "/verified", tmp_path)
    assert (rc, status) == (0, 200) and b"/verified" in body, (rc, status, body[:200])
