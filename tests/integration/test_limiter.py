"""Limiters end to end: real bin/gostg processes, curl downloads and uploads timed against their
limits, raw CONNECT tunnels held open against a connection limit, bursts of requests against a
rate limit, and limits changed while running (Web API, file reload)."""
import concurrent.futures as cf
import hashlib
import json
import os
import re
import socket
import time

import pytest
import yaml

from .helpers import Echo, Gost, free_port, run_gostg
from .peers import Api, FastOrigin, cached_body, curl, recv_all, wait_log

KiB, MiB = 1024, 1024 * 1024
#: the quality bar: a shaped transfer measures within ±20 % of its limit
TOLERANCE = 0.20


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


def timed_curl(*args, timeout=20):
    """curl → (exit code, stdout bytes, seconds from start to the last byte)."""
    p = curl("-w", "\n%{time_total} %{http_code}", *args, timeout=timeout)
    body, _, tail = p.stdout.rpartition(b"\n")
    total, code = tail.decode().split()
    assert p.returncode == 0 and code == "200", (p.returncode, code, p.stderr)
    return body, float(total)


def assert_rate(nbytes, seconds, limit):
    rate = nbytes / seconds
    assert abs(rate - limit) <= TOLERANCE * limit, f"{rate / KiB:.0f} KiB/s measured, limit {limit / KiB:.0f} KiB/s"


def config_gost(tmp_path, cfg, ports):
    path = tmp_path / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Gost("-C", path, ports=ports)


def svc(name, port, **keys):
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}, "listener": {"type": "tcp"},
            **keys}


def tunnel(port, target, timeout=5, source="127.0.0.1"):
    """A CONNECT tunnel from ``source`` through gostg's http proxy → the socket, or None if gostg
    closed it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    try:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            if not d:
                s.close()
                return None
            head += d
    except ConnectionResetError:
        s.close()
        return None
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def echo_ok(s):
    s.sendall(b"ping")
    data, _ = recv_all_n(s, 4)
    return data == b"ping"


def recv_all_n(s, n, timeout=5):
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        d = s.recv(n - len(out))
        if not d:
            return out, True
        out += d
    return out, False


# --- traffic --------------------------------------------------------------------------------------

def test_cli_out_limit_shapes_a_tunnelled_download(origin):
    """``limiter.out=1MB``: a 3 MiB download through a CONNECT tunnel runs at 1 MiB/s."""
    port = free_port()
    size = 3 * MiB
    with Gost("-L", f"http://127.0.0.1:{port}?limiter.out=1MB", ports=[port]):
        body, secs = timed_curl("-p", "-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
    assert body == cached_body(size)[0]
    assert_rate(size, secs, MiB)


def test_config_in_limit_shapes_an_upload(origin, tmp_path):
    """A ``limiters`` object with ``$ 1MB`` (in only): a 3 MiB POST takes ~3 s, the download
    of the answer is not slowed."""
    port = free_port()
    size = 3 * MiB
    data = tmp_path / "upload.bin"
    data.write_bytes(os.urandom(size))
    cfg = {"services": [svc("s", port, limiter="lim")], "limiters": [{"name": "lim", "limits": ["$ 1MB"]}]}
    with config_gost(tmp_path, cfg, [port]):
        body, secs = timed_curl("-x", f"http://127.0.0.1:{port}", "--data-binary", f"@{data}",
                                "-H", "Content-Type: application/octet-stream", f"{origin.url}/upload")
        assert body.decode() == hashlib.sha256(data.read_bytes()).hexdigest()
        assert_rate(size, secs, MiB)
        _, fast = timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
    assert fast < 1.0, f"download took {fast:.2f}s: the in limit slowed the out direction"


def test_per_connection_limit_is_per_connection(origin, tmp_path):
    """``$$ 0 512KB``: two downloads at once each get 512 KiB/s (not half of it each)."""
    port = free_port()
    size = MiB
    cfg = {"services": [svc("s", port, limiter="lim")], "limiters": [{"name": "lim", "limits": ["$$ 0 512KB"]}]}
    with config_gost(tmp_path, cfg, [port]):
        with cf.ThreadPoolExecutor(2) as ex:
            runs = list(ex.map(lambda _: timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}"),
                               range(2)))
    for body, secs in runs:
        assert body == cached_body(size)[0]
        assert_rate(size, secs, 512 * KiB)


def test_ip_scope_limits_only_matching_clients(origin, tmp_path):
    """An IP/CIDR line limits its clients only: 127.0.0.1 is shaped, others (none here) are not;
    a line for another network leaves 127.0.0.1 on the unshaped path."""
    port, port2 = free_port(), free_port()
    size = MiB
    cfg = {"services": [svc("a", port, limiter="mine"), svc("b", port2, limiter="other")],
           "limiters": [{"name": "mine", "limits": ["127.0.0.0/8 0 512KB"]},
                        {"name": "other", "limits": ["10.0.0.0/8 0 1KB"]}]}
    with config_gost(tmp_path, cfg, [port, port2]):
        _, secs = timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
        assert_rate(size, secs, 512 * KiB)
        _, fast = timed_curl("-x", f"http://127.0.0.1:{port2}", f"{origin.url}/bytes/{size}")
        assert fast < 0.5


# --- connections ----------------------------------------------------------------------------------

def test_conn_limit_refuses_the_third_tunnel_until_one_closes():
    port = free_port()
    with Echo() as echo, Gost("-L", f"http://127.0.0.1:{port}?climiter=2", ports=[port]) as g:
        # wait_port's probe connection must be gone before counting starts
        deadline = time.monotonic() + 5
        a = b = None
        while time.monotonic() < deadline:
            a = tunnel(port, f"127.0.0.1:{echo.port}")
            if a is not None:
                break
            time.sleep(0.05)
        b = tunnel(port, f"127.0.0.1:{echo.port}")
        assert a is not None and b is not None and echo_ok(a) and echo_ok(b)
        assert tunnel(port, f"127.0.0.1:{echo.port}") is None           # the third is closed at once
        assert wait_log(g, "connection limit reached")
        a.close()
        c = None
        deadline = time.monotonic() + 5
        while c is None and time.monotonic() < deadline:                # the slot frees when a's relay ends
            c = tunnel(port, f"127.0.0.1:{echo.port}")
            if c is None:
                time.sleep(0.05)
        assert c is not None and echo_ok(c) and echo_ok(b)
        for s in (b, c):
            s.close()


def test_conn_limit_per_ip_from_a_file(tmp_path):
    """``$$ 1`` from a limiter file: one tunnel per client IP (127.0.0.2 still gets its own)."""
    port = free_port()
    lf = tmp_path / "climits.txt"
    lf.write_text("# ip/cidr  limit\n$$ 1\n")
    cfg = {"services": [svc("s", port, climiter="c")], "climiters": [{"name": "c", "file": {"path": str(lf)}}]}
    with Echo() as echo, config_gost(tmp_path, cfg, [port]):
        deadline = time.monotonic() + 5
        a = None
        while a is None and time.monotonic() < deadline:
            a = tunnel(port, f"127.0.0.1:{echo.port}")
        assert a is not None and echo_ok(a)
        assert tunnel(port, f"127.0.0.1:{echo.port}") is None
        b = tunnel(port, f"127.0.0.1:{echo.port}", source="127.0.0.2")
        assert b is not None and echo_ok(b)
        assert tunnel(port, f"127.0.0.1:{echo.port}", source="127.0.0.2") is None
        a.close()
        b.close()


# --- request rate ---------------------------------------------------------------------------------

def http_get(port, url, timeout=5):
    """One plain proxy request on a fresh connection → status code, or 0 if gostg closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        try:
            data, _ = recv_all(s, time.monotonic() + timeout)
        except ConnectionResetError:
            return 0
    m = re.match(rb"HTTP/1\.1 (\d+)", data)
    return int(m.group(1)) if m else 0


def test_rate_limit_refuses_requests_beyond_the_rate(origin):
    """``rlimiter=2``: a burst of 8 requests gets 3 through (one second's worth plus one, as
    GOST), the rest are closed; a second later requests pass again."""
    port = free_port()
    with Gost("-L", f"http://127.0.0.1:{port}?rlimiter=2", ports=[port]) as g:
        time.sleep(1.6)             # wait_port's probe took a token: let the bucket refill
        codes = [http_get(port, origin.url + "/") for _ in range(8)]
        assert 3 <= codes.count(200) <= 4 and codes.count(0) >= 4, codes
        assert codes[:3] == [200, 200, 200]
        assert wait_log(g, "request rate limit reached")
        time.sleep(1.1)
        assert http_get(port, origin.url + "/") == 200


# --- live changes ---------------------------------------------------------------------------------

def test_web_api_put_of_a_limiter_applies_to_the_next_connection(origin, tmp_path):
    port, aport = free_port(), free_port()
    size = 512 * KiB
    cfg = {"services": [svc("s", port, limiter="lim")], "limiters": [{"name": "lim", "limits": ["$ 0 64MB"]}],
           "api": {"addr": f"127.0.0.1:{aport}"}}
    with config_gost(tmp_path, cfg, [port, aport]):
        api = Api(aport)
        _, fast = timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
        assert fast < 0.5
        assert api.put("limiters", "lim", {"name": "lim", "limits": ["$ 0 256KB"]}) == {"msg": "OK"}
        assert api.ok("GET", "/config/limiters/lim")["data"]["limits"] == ["$ 0 256KB"]
        body, secs = timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
        assert body == cached_body(size)[0]
        assert_rate(size, secs, 256 * KiB)
        status, js, _ = api.request("PUT", "/config/limiters/lim", {"name": "lim", "limits": ["$ fast"]})
        assert status >= 400 and "limiters[0].limits[0]" in json.dumps(js), js   # the old limit stays
        api.delete("limiters", "lim")                 # fail closed: a dangling name refuses
        p = curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}", timeout=8)
        assert p.returncode != 0 and not p.stdout


def test_limiter_file_edited_while_running_is_reloaded(origin, tmp_path):
    port = free_port()
    size = 512 * KiB
    lf = tmp_path / "limits.txt"
    lf.write_text("$ 0 64MB\n")
    cfg = {"services": [svc("s", port, limiter="lim")],
           "limiters": [{"name": "lim", "reload": "200ms", "file": {"path": str(lf)}}]}
    with config_gost(tmp_path, cfg, [port]) as g:
        _, fast = timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
        assert fast < 0.5
        lf.write_text("# slower now\n$ 0 256KB\n")
        time.sleep(0.3)
        body, secs = timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
        assert body == cached_body(size)[0]
        assert_rate(size, secs, 256 * KiB)
        lf.write_text("$ 0 nonsense\n")               # a broken edit keeps the last good limits
        time.sleep(0.3)
        _, secs = timed_curl("-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/{size}")
        assert_rate(size, secs, 256 * KiB)
        assert wait_log(g, "reload failed")


def test_bad_limiter_config_names_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"services": [svc("s", free_port(), limiter="l")],
                                    "limiters": [{"name": "l", "limits": ["$ 1MB", "$ 10 parsecs"]}]}))
    p = run_gostg("-C", path)
    assert p.returncode != 0 and "limiters[0].limits[1]: bad rate 'parsecs'" in p.stderr + p.stdout


def test_out_limit_over_a_tls_listener(origin):
    """A shaped conn may be TLS: ``https://`` proxy, CONNECT tunnel, 512 KiB at 256 KiB/s."""
    port = free_port()
    size = 512 * KiB
    with Gost("-L", f"https://127.0.0.1:{port}?limiter.out=256KB", ports=[port]):
        body, secs = timed_curl("--proxy-insecure", "-p", "-x", f"https://127.0.0.1:{port}",
                                f"{origin.url}/bytes/{size}")
    assert body == cached_body(size)[0]
    assert_rate(size, secs, 256 * KiB)
