"""mtcp/mtls/mws/mwss listeners and dialers (smux v1 over TLS / WebSocket and v2 over TCP, as
GOST; smux v2 and yamux on each by ``mux.version`` / ``mux.type``): gostg on both sides, curl through a front proxy, 16 MiB byte-exact, 100 concurrent tunnels over one mux
session, the session reused (one TCP connection, many streams) and re-made after it dies."""
import hashlib
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import Echo, Gost, free_port
from .peers import FastOrigin, body_of, connect_tunnel, curl, curl_code, wait_log

QUIET = ("-C", '{"log":{"level":"warn"}}')
N = 16 << 20
TUNNELS = 100


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def echo():
    with Echo() as e:
        yield e


def assert_bytes_exact(front, origin, extra=()):
    p = curl(*extra, "-x", f"http://127.0.0.1:{front}", f"{origin.url}/bytes/{N}", timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout) == N
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(body_of(N)).digest()


def concurrent_tunnels(front, echo):
    with ThreadPoolExecutor(TUNNELS) as ex:
        results = list(ex.map(lambda i: connect_tunnel(front, echo.port, i), range(TUNNELS)))
    assert results == [True] * TUNNELS


def concurrent_curls(front, origin, n=TUNNELS):
    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(lambda i: curl_code("-x", f"http://127.0.0.1:{front}", f"{origin.url}/c{i}",
                                                  timeout=20), range(n)))
    for i, (rc, status, body) in enumerate(results):
        assert (rc, status) == (0, 200) and f"/c{i} ".encode() in body


def sessions_and_streams(server):
    log = server.log_text()
    return log.count('"msg": "mux: session started"'), len(re.findall(r'"msg": "mux: stream \d+ [^"]* <> ', log))


def wait_streams(server, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while sessions_and_streams(server)[1] < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return sessions_and_streams(server)


@pytest.mark.parametrize("transport,query", [("mtls", ""), ("mws", ""), ("mtcp", ""),
                                             ("mtls", "?mux.version=2"), ("mws", "?mux.type=yamux"),
                                             ("mtcp", "?mux.type=yamux")])
def test_socks5_over_mux(transport, query, origin, echo, tmp_path):
    s, front = free_port(), free_port()
    env = {"HOME": str(tmp_path)}
    with Gost("-L", f"socks5+{transport}://127.0.0.1:{s}{query}", "-D", ports=[s], env=env, cwd=tmp_path) as server, \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5+{transport}://127.0.0.1:{s}{query}", *QUIET,
                 ports=[front], env=env, cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front}", origin.url + "/plain")
        assert (rc, status) == (0, 200) and b"/plain" in body
        rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{front}", origin.url + "/tunnel")
        assert (rc, status) == (0, 200) and b"/tunnel" in body
        assert_bytes_exact(front, origin)
        concurrent_tunnels(front, echo)
        concurrent_curls(front, origin, 30)
        sessions, streams = wait_streams(server, 3 + TUNNELS + 30)
        # every request was a stream of the one TCP connection the front made at first use
        # (on mtcp, the test's bare readiness probe of the port was an empty session too)
        assert (sessions, streams) == (1 + (transport == "mtcp"), 3 + TUNNELS + 30)
        assert server.log_text().count(" <> 127.0.0.1:%d\"" % s) == sessions + streams
    if transport == "mtls":   # mtls made its certificate as GOST does
        assert (tmp_path / ".gost" / "gostg-cert.pem").is_file()


def test_http_over_mwss_and_session_remade_after_server_dies(origin, tmp_path):
    s, front = free_port(), free_port()
    env = {"HOME": str(tmp_path)}
    server_args = ("-L", f"http+mwss://127.0.0.1:{s}?path=/mux", "-D")
    with Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http+mwss://127.0.0.1:{s}?path=/mux", *QUIET,
              ports=[front], env=env, cwd=tmp_path) as client:
        with Gost(*server_args, ports=[s], env=env, cwd=tmp_path) as server:
            rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{front}", origin.url + "/one")
            assert (rc, status) == (0, 200) and b"/one" in body
            assert_bytes_exact(front, origin, ("-p",))
            assert wait_streams(server, 2) == (1, 2)
            server.stop(sig=signal.SIGKILL)   # the session dies with its server
        with Gost(*server_args, ports=[s], env=env, cwd=tmp_path) as server:
            deadline = time.monotonic() + 10
            while True:   # the dialer notices the dead session and makes a new one
                rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{front}", origin.url + "/two")
                if (rc, status) == (0, 200) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert (rc, status) == (0, 200) and b"/two" in body
            assert wait_streams(server, 1)[0] == 1
            client.stop()     # the client's end closes the session: the server stops at once


def test_garbage_inside_the_websocket_is_a_protocol_error(tmp_path):
    s = free_port()
    with Gost("-L", f"socks5+mws://127.0.0.1:{s}", ports=[s], env={"HOME": str(tmp_path)}, cwd=tmp_path) as server:
        with socket.create_connection(("127.0.0.1", s), timeout=5) as c:
            c.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 101")
            # a binary message (masked with a zero key) carrying bytes that are no smux frame
            c.sendall(b"\x82\x88\x00\x00\x00\x00" + b"\x09\x00\x00\x00\x03\x00\x00\x00")
            c.settimeout(5)
            while c.recv(4096):
                pass
        assert wait_log(server, r"protocol error: smux: version 9")
