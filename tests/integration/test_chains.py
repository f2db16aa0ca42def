"""Proxy chains (-F): several hops in one process, chains of gostg processes, third-party hops
(microsocks), authenticated hops, socks4 hops, and hop node selection (round robin, fifo,
failed-node skipping with retries, backup nodes)."""
import hashlib
import os
import tempfile
import time

import pytest

from .helpers import Gost, free_port
from .peers import FastOrigin, Microsocks, cached_body, curl, curl_code, relay_lines, wait_log

BIG = 16 << 20


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


def _get(front_args, url, timeout=10):
    rc, status, body = curl_code(*front_args, url, timeout=timeout)
    return rc, status, body


def _ok(origin, body, path, host=None):
    host = host or f"127.0.0.1:{origin.port}"
    return body == f"hello from origin {path} host={host}\n".encode()


# --- multi-hop ---------------------------------------------------------------------------

def test_two_hops_in_one_process(origin):
    """-F twice = two hops: A → socks5 B1 → http B2 → origin; each hop's log shows its leg."""
    pa, pb1, pb2 = free_port(), free_port(), free_port()
    with Gost("-D", "-L", f"socks5://127.0.0.1:{pb1}", ports=[pb1]) as b1, \
            Gost("-D", "-L", f"http://127.0.0.1:{pb2}", ports=[pb2]) as b2, \
            Gost("-L", f"http://127.0.0.1:{pa}",
                 "-F", f"socks5://127.0.0.1:{pb1}", "-F", f"http://127.0.0.1:{pb2}", ports=[pa]):
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/two-hops")
        assert (rc, status) == (0, 200), body
        assert _ok(origin, body, "/two-hops")
        # B1 was asked (by A's socks5 connector) for B2; B2 (http CONNECT) for the origin
        assert wait_log(b1, r"<-> 127\.0\.0\.1:" + str(pb2))
        assert wait_log(b2, r"<-> 127\.0\.0\.1:" + str(origin.port))
        assert relay_lines(b1, f"127.0.0.1:{origin.port}") == 0


@pytest.fixture(scope="module", params=["socks5", "http"])
def chain3(request):
    """Three processes: A (http) → B (``mid``) → C (socks5) → target."""
    mid = request.param
    pa, pb, pc = free_port(), free_port(), free_port()
    with Gost("-D", "-L", f"socks5://127.0.0.1:{pc}", ports=[pc]) as c, \
            Gost("-D", "-L", f"{mid}://127.0.0.1:{pb}", "-F", f"socks5://127.0.0.1:{pc}", ports=[pb]) as b, \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"{mid}://127.0.0.1:{pb}", ports=[pa]) as a:
        a.pa, b.pb, c.pc = pa, pb, pc
        yield a, b, c


def test_three_process_chain_get(chain3, origin):
    a, b, c = chain3
    rc, status, body = _get(["-x", f"http://127.0.0.1:{a.pa}"], f"{origin.url}/chain3")
    assert (rc, status) == (0, 200), body
    assert _ok(origin, body, "/chain3")
    # C, the last hop, made the connection to the origin; B routed it through C
    assert wait_log(c, r"<-> 127\.0\.0\.1:" + str(origin.port))
    assert wait_log(b, r"route\(retry=0\) [^\"]*@127\.0\.0\.1:%d > 127\.0\.0\.1:%d" % (c.pc, origin.port))


def test_three_process_chain_connect_and_keepalive(chain3):
    a, b, c = chain3
    with FastOrigin() as o:
        p = curl("-p", "-x", f"http://127.0.0.1:{a.pa}", f"{o.url}/c1", f"{o.url}/c2")
        assert p.returncode == 0, p.stderr
        assert p.stdout == (f"hello from origin /c1 host=127.0.0.1:{o.port}\n"
                            f"hello from origin /c2 host=127.0.0.1:{o.port}\n").encode()
        assert o.connections == 1


def test_three_process_chain_16mib(chain3, origin):
    a, _, _ = chain3
    body, digest = cached_body(BIG)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "b")
        p = curl("-x", f"http://127.0.0.1:{a.pa}", "-o", out, f"{origin.url}/bytes/{BIG}", timeout=40)
        assert p.returncode == 0, p.stderr
        with open(out, "rb") as f:
            got = f.read()
    assert len(got) == BIG and hashlib.sha256(got).hexdigest() == digest


def test_three_process_chain_dead_last_hop_gives_503(origin):
    pa, pb, dead = free_port(), free_port(), free_port()
    with Gost("-L", f"socks5://127.0.0.1:{pb}", "-F", f"socks5://127.0.0.1:{dead}", ports=[pb]), \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"socks5://127.0.0.1:{pb}", ports=[pa]):
        rc, status, _ = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/dead")
        assert status == 503


# --- third-party and authenticated hops --------------------------------------------------

def test_microsocks_hop(origin):
    pm, pa, ps = free_port(), free_port(), free_port()
    with Microsocks(pm), \
            Gost("-L", f"http://127.0.0.1:{pa}", "-L", f"socks5://127.0.0.1:{ps}",
                 "-F", f"socks5://127.0.0.1:{pm}", ports=[pa, ps]):
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/ms")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/ms"), body
        rc, status, body = _get(["--socks5-hostname", f"127.0.0.1:{ps}"], f"http://localhost:{origin.port}/ms-h")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/ms-h", f"localhost:{origin.port}"), body


def test_microsocks_hop_with_auth(origin):
    pm, pa, pbad = free_port(), free_port(), free_port()
    with Microsocks(pm, "user", "pass"), \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"socks5://user:pass@127.0.0.1:{pm}", ports=[pa]), \
            Gost("-L", f"http://127.0.0.1:{pbad}", "-F", f"socks5://user:wrong@127.0.0.1:{pm}", ports=[pbad]):
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/ms-auth")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/ms-auth"), body
        p = curl("-p", "-x", f"http://127.0.0.1:{pa}", f"{origin.url}/ms-auth-connect")
        assert p.returncode == 0 and _ok(origin, p.stdout, "/ms-auth-connect"), p.stderr
        rc, status, _ = _get(["-x", f"http://127.0.0.1:{pbad}"], f"{origin.url}/ms-bad")
        assert status == 503


def test_http_connector_with_auth(origin):
    ps, pa, pb = free_port(), free_port(), free_port()
    with Gost("-D", "-L", f"http://user:pass@127.0.0.1:{ps}", ports=[ps]) as server, \
            Gost("-L", f"socks5://127.0.0.1:{pa}", "-L", f"http://127.0.0.1:{pb}",
                 "-F", f"http://user:pass@127.0.0.1:{ps}", ports=[pa, pb]):
        rc, status, body = _get(["--socks5", f"127.0.0.1:{pa}"], f"{origin.url}/http-auth-hop")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/http-auth-hop"), body
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pb}"], f"{origin.url}/http-auth-hop2")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/http-auth-hop2"), body
        assert "authentication failed" not in server.log_text()


def test_http_connector_with_wrong_auth(origin):
    ps, pa = free_port(), free_port()
    with Gost("-L", f"http://user:pass@127.0.0.1:{ps}", ports=[ps]) as server, \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"http://user:bad@127.0.0.1:{ps}", ports=[pa]):
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/x")
        assert status == 503
        assert wait_log(server, "authentication failed")


@pytest.mark.parametrize("auth", ["", "user:pass@"])
def test_socks5_pipeline_hop(origin, auth):
    """?pipeline=true against a gostg server: greeting and request in one write still reach the
    target, with and without auth; wrong credentials still get 503."""
    ps, pa, pbad = free_port(), free_port(), free_port()
    with Gost("-L", f"socks5://{auth}127.0.0.1:{ps}", ports=[ps]), \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"socks5://{auth}127.0.0.1:{ps}?pipeline=true", ports=[pa]), \
            Gost("-L", f"http://127.0.0.1:{pbad}", "-F", f"socks5://user:bad@127.0.0.1:{ps}?pipeline=true",
                 ports=[pbad]):
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/pipe")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/pipe"), body
        p = curl("-p", "-x", f"http://127.0.0.1:{pa}", f"{origin.url}/pipe-connect")
        assert p.returncode == 0 and _ok(origin, p.stdout, "/pipe-connect"), p.stderr
        if auth:
            rc, status, _ = _get(["-x", f"http://127.0.0.1:{pbad}"], f"{origin.url}/pipe-bad")
            assert status == 503


def test_socks4_connector(origin):
    ps, pa = free_port(), free_port()
    with Gost("-D", "-L", f"socks4://127.0.0.1:{ps}", ports=[ps]) as server, \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"socks4://127.0.0.1:{ps}", ports=[pa]):
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/s4")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/s4"), body
        # a hostname goes as SOCKS4a and is resolved by the hop
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"http://localhost:{origin.port}/s4a")
        assert (rc, status) == (0, 200) and _ok(origin, body, "/s4a", f"localhost:{origin.port}"), body
        assert wait_log(server, r"<-> localhost:" + str(origin.port))


# --- hop node selection -------------------------------------------------------------------

@pytest.fixture(scope="module")
def xy():
    """Two independent gostg socks5 servers (debug log) to be nodes of one hop."""
    px, py = free_port(), free_port()
    with Gost("-D", "-L", f"socks5://127.0.0.1:{px}", ports=[px]) as x, \
            Gost("-D", "-L", f"socks5://127.0.0.1:{py}", ports=[py]) as y:
        x.port, y.port = px, py
        yield x, y


def _counts(x, y, origin):
    dst = f"127.0.0.1:{origin.port}"
    return relay_lines(x, dst), relay_lines(y, dst)


def _settle(x, y, origin, total, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cx, cy = _counts(x, y, origin)
        if cx + cy >= total:
            break
        time.sleep(0.05)
    return _counts(x, y, origin)


def _requests(pa, origin, n, tag):
    results = []
    for i in range(n):
        rc, status, body = _get(["-x", f"http://127.0.0.1:{pa}"], f"{origin.url}/{tag}{i}")
        results.append(status == 200 and _ok(origin, body, f"/{tag}{i}"))
    return results


def test_round_robin_over_two_nodes(xy, origin):
    x, y = xy
    pa = free_port()
    x0, y0 = _counts(x, y, origin)
    with Gost("-L", f"http://127.0.0.1:{pa}",
              "-F", f"socks5://127.0.0.1:{x.port},127.0.0.1:{y.port}?strategy=round", ports=[pa]):
        assert _requests(pa, origin, 6, "rr") == [True] * 6
    cx, cy = _settle(x, y, origin, x0 + y0 + 6)
    assert (cx - x0, cy - y0) == (3, 3)


def test_default_strategy_is_round_robin(xy, origin):
    x, y = xy
    pa = free_port()
    x0, y0 = _counts(x, y, origin)
    with Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"socks5://127.0.0.1:{x.port},127.0.0.1:{y.port}", ports=[pa]):
        assert _requests(pa, origin, 4, "dflt") == [True] * 4
    cx, cy = _settle(x, y, origin, x0 + y0 + 4)
    assert (cx - x0, cy - y0) == (2, 2)


def test_fifo_uses_first_node(xy, origin):
    x, y = xy
    pa = free_port()
    x0, y0 = _counts(x, y, origin)
    with Gost("-L", f"http://127.0.0.1:{pa}",
              "-F", f"socks5://127.0.0.1:{x.port},127.0.0.1:{y.port}?strategy=fifo", ports=[pa]):
        assert _requests(pa, origin, 4, "fifo") == [True] * 4
    cx, cy = _settle(x, y, origin, x0 + y0 + 4)
    assert (cx - x0, cy - y0) == (4, 0)


@pytest.mark.parametrize("strategy", ["fifo", "round"])
def test_dead_node_is_skipped_after_failing(xy, origin, strategy):
    """maxFails=1: once the dead node failed it is left out; only the first request may fail."""
    _, y = xy
    pa, dead = free_port(), free_port()
    y0 = relay_lines(y, f"127.0.0.1:{origin.port}")
    with Gost("-L", f"http://127.0.0.1:{pa}",
              "-F", f"socks5://127.0.0.1:{dead},127.0.0.1:{y.port}?strategy={strategy}&maxFails=1", ports=[pa]):
        results = _requests(pa, origin, 5, f"dead-{strategy}")
    assert results[1:] == [True] * 4, results
    ok = sum(results)
    deadline = time.monotonic() + 5
    while relay_lines(y, f"127.0.0.1:{origin.port}") - y0 < ok and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay_lines(y, f"127.0.0.1:{origin.port}") - y0 == ok


@pytest.mark.parametrize("strategy", ["fifo", "round"])
def test_retries_rescue_the_first_request(xy, origin, strategy):
    _, y = xy
    pa, dead = free_port(), free_port()
    with Gost("-L", f"http://127.0.0.1:{pa}?retries=1",
              "-F", f"socks5://127.0.0.1:{dead},127.0.0.1:{y.port}?strategy={strategy}&maxFails=1", ports=[pa]):
        assert _requests(pa, origin, 4, f"retry-{strategy}") == [True] * 4


def test_backup_node_only_when_primary_dead(origin):
    pp, pbk, pa = free_port(), free_port(), free_port()
    cfg = f"""
services:
- name: front
  addr: 127.0.0.1:{pa}
  handler:
    type: http
    chain: chain-backup
    retries: 1
  listener:
    type: tcp
chains:
- name: chain-backup
  hops:
  - name: hop-0
    selector:
      strategy: round
      maxFails: 1
      failTimeout: 30s
    nodes:
    - name: standby
      addr: 127.0.0.1:{pbk}
      connector:
        type: socks5
      metadata:
        backup: true
    - name: primary
      addr: 127.0.0.1:{pp}
      connector:
        type: socks5
"""
    dst = f"127.0.0.1:{origin.port}"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(cfg)
    try:
        with Gost("-D", "-L", f"socks5://127.0.0.1:{pp}", ports=[pp]) as primary, \
                Gost("-D", "-L", f"socks5://127.0.0.1:{pbk}", ports=[pbk]) as backup, \
                Gost("-C", f.name, ports=[pa]):
            assert _requests(pa, origin, 4, "primary") == [True] * 4
            assert len(wait_log(primary, r"<-> " + dst, 4)) == 4
            assert relay_lines(backup, dst) == 0
            primary.stop()
            assert _requests(pa, origin, 3, "backup") == [True] * 3
            assert len(wait_log(backup, r"<-> " + dst, 3)) == 3
    finally:
        os.unlink(f.name)
