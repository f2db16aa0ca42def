"""Listener × handler pairs over gostg client chains, byte-exact both ways (sha256 of 16 MiB
down and up through a CONNECT tunnel), including the issue's mixed chain
``-F socks5+tls://a -F relay+ws://b``; and a multiplexing node after the first hop keeps ONE
session for every route through it (GOST restarts the route at such a node)."""
import hashlib
import os

import pytest

from .helpers import Gost, free_port, started
from .peers import FastOrigin, body_of, curl, wait_log

N = 16 * 1024 * 1024
QUIET = ("-C", '{"log":{"level":"error"}}')


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


def both_ways(front, origin, tmp_path):
    """16 MiB down and 16 MiB up through a CONNECT tunnel via the front proxy, sha256-checked."""
    p = curl("-p", "-x", f"http://127.0.0.1:{front}", f"{origin.url}/bytes/{N}", timeout=90)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout) == N
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(body_of(N)).digest()
    up = tmp_path / "up.bin"
    data = os.urandom(N)
    up.write_bytes(data)
    p = curl("-p", "-x", f"http://127.0.0.1:{front}", "--data-binary", f"@{up}", f"{origin.url}/upload", timeout=90)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == hashlib.sha256(data).hexdigest().encode()


PAIRS = ["socks5+wss", "relay+ws", "relay+mws", "relay+mtls", "socks5+mwss", "http+tls", "relay+tls",
         "socks5+h2c", "ss+tls", "https", "socks5+ws", "http+mws", "socks5+mtls", "relay+mtcp", "http+mtcp"]


@pytest.mark.parametrize("pair", PAIRS)
def test_listener_handler_pair_byte_exact(pair, origin, tmp_path):
    s, front = free_port(), free_port()
    auth = "aes-256-gcm:pw@" if pair.startswith("ss") else ""
    env = {"HOME": str(tmp_path)}
    server, client = started(
        Gost("-L", f"{pair}://{auth}127.0.0.1:{s}", *QUIET, ports=[s], env=env, cwd=tmp_path),
        Gost("-L", f"http://127.0.0.1:{front}", "-F", f"{pair}://{auth}127.0.0.1:{s}", *QUIET,
             ports=[front], env=env, cwd=tmp_path))
    with server, client:
        both_ways(front, origin, tmp_path)


def test_mixed_chain_tls_then_ws(origin, tmp_path):
    a, b, front = free_port(), free_port(), free_port()
    env = {"HOME": str(tmp_path)}
    first, second, client = started(
        Gost("-L", f"socks5+tls://127.0.0.1:{a}", *QUIET, ports=[a], env=env, cwd=tmp_path),
        Gost("-L", f"relay+ws://127.0.0.1:{b}", *QUIET, ports=[b], env=env, cwd=tmp_path),
        Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5+tls://127.0.0.1:{a}",
             "-F", f"relay+ws://127.0.0.1:{b}", *QUIET, ports=[front], env=env, cwd=tmp_path))
    with first, second, client:
        both_ways(front, origin, tmp_path)


@pytest.mark.parametrize("transport", ["mtls", "mws", "mtcp?mux.type=yamux"])
def test_mux_node_after_the_first_hop_keeps_one_session(transport, origin, tmp_path):
    a, b, front = free_port(), free_port(), free_port()
    env = {"HOME": str(tmp_path)}
    hop, sep, query = transport.partition("?")
    query = sep + query
    first, server, client = started(
        Gost("-L", f"socks5://127.0.0.1:{a}", *QUIET, ports=[a], env=env, cwd=tmp_path),
        Gost("-L", f"socks5+{hop}://127.0.0.1:{b}{query}", "-D", ports=[b], env=env, cwd=tmp_path),
        Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5://127.0.0.1:{a}",
             "-F", f"socks5+{hop}://127.0.0.1:{b}{query}", *QUIET, ports=[front], env=env, cwd=tmp_path))
    with first, server, client:
        for i in range(5):
            p = curl("-x", f"http://127.0.0.1:{front}", f"{origin.url}/r{i}")
            assert p.returncode == 0 and f"/r{i}".encode() in p.stdout, p.stderr
        streams = wait_log(server, r'"msg": "mux: stream \d+ [^"]* <> ', count=5, timeout=10)
        assert len(streams) == 5
        # (on mtcp, the readiness probe of the port was an empty session of its own)
        assert server.log_text().count('"msg": "mux: session started"') == 1 + (hop == "mtcp")
