"""Resource leaks seen from outside: gostg's open file descriptors (/proc/<pid>/fd) must come back
to where they started after many tunnels, abandoned handshakes and idle tunnels closed by clients."""
import json
import os
import socket
import struct
import threading
import time

import pytest

from .helpers import Echo, Gost, free_port
from .peers import fd_baseline, fd_count, fd_settle, http_connect_open, recv_exact, socks5_open

SLACK = 2


def one_tunnel(opener, port, dst_port, payload):
    s = opener(port, dst_port)
    try:
        s.sendall(payload)
        assert recv_exact(s, len(payload)) == payload
    finally:
        s.close()


def run_batches(fn, total, concurrency=50):
    errors = []
    done = 0
    while done < total:
        n = min(concurrency, total - done)

        def work(i, base=done):
            try:
                fn(base + i)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "a tunnel hung for 30s"
        done += n
    return errors


@pytest.fixture(scope="module")
def proxy():
    p_socks, p_http = free_port(), free_port()
    with Echo() as echo, Gost("-L", f"socks5://127.0.0.1:{p_socks}", "-L", f"http://127.0.0.1:{p_http}",
                              "-C", json.dumps({"log": {"level": "error"}}), ports=[p_socks, p_http]) as g:
        pid = g.proc.pid
        # warm up: first tunnels import and allocate what stays for the process lifetime
        for _ in range(5):
            one_tunnel(socks5_open, p_socks, echo.port, b"w" * 64)
            one_tunnel(http_connect_open, p_http, echo.port, b"w" * 64)
        time.sleep(0.3)
        yield {"pid": pid, "socks": p_socks, "http": p_http, "echo": echo, "gost": g}


def test_thousand_tunnels_no_fd_leak(proxy):
    pid, port, echo = proxy["pid"], proxy["socks"], proxy["echo"]
    start = fd_baseline(pid)
    before = echo.count
    payload = os.urandom(64)
    errors = run_batches(lambda i: one_tunnel(socks5_open, port, echo.port, payload), 1000)
    assert not errors, errors[:5]
    assert echo.count - before == 1000
    end = fd_settle(pid, start + SLACK)
    assert end <= start + SLACK, f"fds {start} -> {end} after 1000 tunnels"
    assert proxy["gost"].proc.poll() is None


def test_http_connect_tunnels_no_fd_leak(proxy):
    pid, port, echo = proxy["pid"], proxy["http"], proxy["echo"]
    start = fd_baseline(pid)
    payload = os.urandom(64)
    errors = run_batches(lambda i: one_tunnel(http_connect_open, port, echo.port, payload), 300)
    assert not errors, errors[:5]
    end = fd_settle(pid, start + SLACK)
    assert end <= start + SLACK, f"fds {start} -> {end} after 300 CONNECT tunnels"


def _abandon(port, kind):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        if kind == "half-greeting":
            s.sendall(b"\x05")
        elif kind == "greeting-only":
            s.sendall(b"\x05\x01\x00")
            recv_exact(s, 2)
        elif kind == "half-request":
            s.sendall(b"\x05\x01\x00")
            recv_exact(s, 2)
            s.sendall(b"\x05\x01\x00\x01\x7f\x00")
        elif kind == "half-http":
            s.sendall(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 12")
        elif kind == "rst":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()


@pytest.mark.parametrize("kind", ["connect-close", "half-greeting", "greeting-only", "half-request", "rst"])
def test_abandoned_socks5_handshakes_no_fd_leak(proxy, kind):
    pid = proxy["pid"]
    start = fd_baseline(pid)
    errors = run_batches(lambda i: _abandon(proxy["socks"], kind), 100)
    assert not errors, errors[:5]
    end = fd_settle(pid, start + SLACK)
    assert end <= start + SLACK, f"fds {start} -> {end} after 100 abandoned ({kind}) handshakes"


@pytest.mark.parametrize("kind", ["connect-close", "half-http"])
def test_abandoned_http_handshakes_no_fd_leak(proxy, kind):
    pid = proxy["pid"]
    start = fd_baseline(pid)
    errors = run_batches(lambda i: _abandon(proxy["http"], kind), 100)
    assert not errors, errors[:5]
    end = fd_settle(pid, start + SLACK)
    assert end <= start + SLACK, f"fds {start} -> {end} after 100 abandoned ({kind}) handshakes"


def test_idle_tunnels_closed_after_clients_close(proxy):
    pid, port, echo = proxy["pid"], proxy["socks"], proxy["echo"]
    start = fd_baseline(pid)
    socks = []
    try:
        for _ in range(200):
            socks.append(socks5_open(port, echo.port))
        # each idle tunnel holds the client side and the upstream side in gostg
        held = fd_count(pid)
        assert held >= start + 2 * 200 - SLACK, f"only {held - start} fds for 200 open tunnels"
        # they are all alive: the last one still echoes
        socks[-1].sendall(b"alive?")
        assert recv_exact(socks[-1], 6) == b"alive?"
    finally:
        for s in socks:
            s.close()
    end = fd_settle(pid, start + SLACK)
    assert end <= start + SLACK, f"fds {start} -> {end} after closing 200 idle tunnels"
