"""ws/wss listener and dialer: gostg on both sides of a WebSocket tunnel (binary messages, as
GOST), custom paths, wss with the generated certificate, WS inside a TLS hop, and garbage."""
import hashlib
import os
import socket
import time

import pytest

from .helpers import Echo, Gost, free_port
from .peers import FastOrigin, FirstBytes, body_of, connect_tunnel, curl, curl_code, recv_exact, recv_head

QUIET = ("-C", '{"log":{"level":"warn"}}')
N = 16 << 20


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


def env_for(tmp_path):
    return {"HOME": str(tmp_path)}


def assert_bytes_exact(front, origin, extra=()):
    p = curl(*extra, "-x", f"http://127.0.0.1:{front}", f"{origin.url}/bytes/{N}", timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout) == N
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(body_of(N)).digest()


def test_socks5_over_ws(origin, tmp_path):
    s, front = free_port(), free_port()
    with Gost("-L", f"socks5+ws://127.0.0.1:{s}", *QUIET, ports=[s], cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5+ws://127.0.0.1:{s}", *QUIET, ports=[front],
                 cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front}", origin.url + "/plain")
        assert (rc, status) == (0, 200) and b"/plain" in body
        rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{front}", origin.url + "/tunnel")
        assert (rc, status) == (0, 200) and b"/tunnel" in body
        assert_bytes_exact(front, origin)
        assert_bytes_exact(front, origin, ("-p",))


def test_http_over_wss_with_generated_certificate(origin, tmp_path):
    s, front = free_port(), free_port()
    env = env_for(tmp_path)
    with Gost("-L", f"http+wss://127.0.0.1:{s}", *QUIET, ports=[s], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http+wss://127.0.0.1:{s}", *QUIET, ports=[front],
                 env=env, cwd=tmp_path):
        rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{front}", origin.url + "/wss")
        assert (rc, status) == (0, 200) and b"/wss" in body
        assert_bytes_exact(front, origin, ("-p",))
    assert (tmp_path / ".gost" / "gostg-cert.pem").is_file()


def test_custom_path_and_mismatch(origin, tmp_path):
    s, ok, bad = free_port(), free_port(), free_port()
    with Gost("-L", f"socks5+ws://127.0.0.1:{s}?path=/tunnel", *QUIET, ports=[s], cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{ok}", "-F", f"socks5+ws://127.0.0.1:{s}?path=/tunnel", *QUIET,
                 ports=[ok], cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{bad}", "-F", f"socks5+ws://127.0.0.1:{s}", *QUIET, ports=[bad],
                 cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{ok}", origin.url + "/custom")
        assert (rc, status) == (0, 200) and b"/custom" in body
        rc, status, _ = curl_code("-x", f"http://127.0.0.1:{bad}", origin.url + "/default-path")
        assert status == 503, "the default /ws path must not reach a /tunnel listener"
        # the listener answers a wrong path with 404, as GOST's HTTP mux
        with socket.create_connection(("127.0.0.1", s), timeout=10) as c:
            c.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 404")


def test_ws_hop_inside_tls_hop(origin, tmp_path):
    """hop 0 dials TLS; hop 1's WebSocket upgrade runs inside hop 0's socks5 tunnel."""
    a, b, front = free_port(), free_port(), free_port()
    env = env_for(tmp_path)
    with Gost("-L", f"socks5+tls://127.0.0.1:{a}", *QUIET, ports=[a], env=env, cwd=tmp_path), \
            Gost("-L", f"http+ws://127.0.0.1:{b}", *QUIET, ports=[b], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5+tls://127.0.0.1:{a}",
                 "-F", f"http+ws://127.0.0.1:{b}", *QUIET, ports=[front], env=env, cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front}", origin.url + "/chain")
        assert (rc, status) == (0, 200) and b"/chain" in body
        assert_bytes_exact(front, origin, ("-p",))


def test_garbage_on_ws_port_is_closed_and_service_lives(origin, tmp_path):
    s, front = free_port(), free_port()
    with Gost("-L", f"socks5+ws://127.0.0.1:{s}", *QUIET, ports=[s], cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5+ws://127.0.0.1:{s}", *QUIET, ports=[front],
                 cwd=tmp_path):
        for junk in (b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(512), b"\x05\x01\x00"):
            with socket.create_connection(("127.0.0.1", s), timeout=15) as c:
                c.sendall(junk)
                c.shutdown(socket.SHUT_WR)
                c.settimeout(15)
                try:
                    while c.recv(4096):  # maybe a 400, then EOF …
                        pass
                except ConnectionResetError:  # … or a reset: closed either way, not hung
                    pass
        rc, status, _ = curl_code("-x", f"http://127.0.0.1:{front}", origin.url + "/")
        assert (rc, status) == (0, 200)


def test_header_option_on_both_sides(tmp_path):
    """GOST's ``header`` metadata from a config file: the ws listener adds it to its 101 answer,
    the ws dialer to its upgrade request (seen on the wire with ``path``)."""
    import json
    s = free_port()
    server = {"services": [{"name": "ws-in", "addr": f"127.0.0.1:{s}", "handler": {"type": "socks5"},
                            "listener": {"type": "ws", "metadata": {"header": {"X-Served-By": "gostg"}}}}]}
    with Gost("-C", json.dumps(server), ports=[s], cwd=tmp_path):
        with socket.create_connection(("127.0.0.1", s), timeout=5) as c:
            c.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = recv_head(c)
        assert head.startswith(b"HTTP/1.1 101") and b"\r\nX-Served-By: gostg\r\n" in head, head

    node = FirstBytes()
    front = free_port()
    client = {"services": [{"name": "front", "addr": f"127.0.0.1:{front}", "handler": {"type": "http", "chain": "c"}}],
              "chains": [{"name": "c", "hops": [{"name": "h", "nodes": [{
                  "name": "n", "addr": f"127.0.0.1:{node.port}", "connector": {"type": "socks5"},
                  "dialer": {"type": "ws", "metadata": {"path": "/tun", "host": "cdn.test",
                                                        "header": {"X-Client": "a1"}}}}]}]}]}
    try:
        with Gost("-C", json.dumps(client), ports=[front], cwd=tmp_path):
            result = node.expect(lambda d: b"\r\n\r\n" in d)
            curl_code("-x", f"http://127.0.0.1:{front}", "http://127.0.0.1:9/", timeout=5)
            req = result()
        assert req.startswith(b"GET /tun HTTP/1.1\r\n"), req
        assert b"\r\nX-Client: a1\r\n" in req and b"\r\nhost: cdn.test\r\n" in req.lower(), req
    finally:
        node.close()


def test_keepalive_pings_leave_the_tunnel_bytes_alone(tmp_path):
    """``-F socks5+ws://…?keepalive=true&ttl=0.2s``: pings and pongs cross an idle tunnel
    (the pinging itself is shown in tests/unit/test_wsconn.py) without touching its bytes."""
    s, front = free_port(), free_port()
    with Echo() as echo, \
            Gost("-L", f"socks5+ws://127.0.0.1:{s}", *QUIET, ports=[s], cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5+ws://127.0.0.1:{s}?keepalive=true&ttl=0.2s",
                 *QUIET, ports=[front], cwd=tmp_path) as client:
        with socket.create_connection(("127.0.0.1", front), timeout=10) as c:
            c.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert recv_head(c).startswith(b"HTTP/1.1 200")
            time.sleep(1.2)                  # idle: about six pings and pongs cross the tunnel
            c.sendall(b"still here")
            assert recv_exact(c, 10) == b"still here"
        assert connect_tunnel(front, echo.port, 1)
        assert client.proc.poll() is None
