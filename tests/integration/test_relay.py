"""GOST's relay protocol end to end: gostg's relay connector (in front services' chains) talking
to gostg's relay handler, driven by curl and PySocks. Plain HTTP and CONNECT with 16 MiB bodies,
auth, nodelay, forward mode and garbage on the wire."""
import hashlib
import os
import re
import socket
import tempfile
import time

import pytest
import socks

from .helpers import Echo, Gost, free_port
from .peers import FastOrigin, cached_body, curl, curl_code

BIG = 16 << 20


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def echo():
    with Echo() as e:
        yield e


@pytest.fixture(scope="module")
def gost(echo):
    """Relay servers in one process group, each front service in its own (its own chain)."""
    p = {k: free_port() for k in ("relay", "relay_auth", "relay_fwd", "http", "http_nodelay",
                                  "http_auth", "http_badpw", "http_badpw_nodelay", "socks5")}
    args = ["-L", f"relay://127.0.0.1:{p['relay']}",
            "-L", f"relay://u:p@127.0.0.1:{p['relay_auth']}",
            "-L", f"relay://127.0.0.1:{p['relay_fwd']}/127.0.0.1:{echo.port}",
            "--", "-L", f"http://127.0.0.1:{p['http']}", "-F", f"relay://127.0.0.1:{p['relay']}",
            "--", "-L", f"http://127.0.0.1:{p['http_nodelay']}",
            "-F", f"relay://127.0.0.1:{p['relay']}?nodelay=true",
            "--", "-L", f"http://127.0.0.1:{p['http_auth']}", "-F", f"relay://u:p@127.0.0.1:{p['relay_auth']}",
            "--", "-L", f"http://127.0.0.1:{p['http_badpw']}", "-F", f"relay://u:bad@127.0.0.1:{p['relay_auth']}",
            "--", "-L", f"http://127.0.0.1:{p['http_badpw_nodelay']}",
            "-F", f"relay://u:bad@127.0.0.1:{p['relay_auth']}?nodelay=true",
            "--", "-L", f"socks5://127.0.0.1:{p['socks5']}", "-F", f"relay://127.0.0.1:{p['relay_fwd']}"]
    with Gost(*args, ports=list(p.values())) as g:
        g.p = p
        yield g


def _big(front_port, origin, connect):
    body, digest = cached_body(BIG)
    with tempfile.TemporaryDirectory() as d:
        out, hdr = os.path.join(d, "body"), os.path.join(d, "headers")
        args = ["-p"] if connect else []
        p = curl(*args, "-x", f"http://127.0.0.1:{front_port}", "-D", hdr, "-o", out,
                 f"{origin.url}/bytes/{BIG}", timeout=30)
        assert p.returncode == 0, p.stderr
        with open(out, "rb") as f:
            got = f.read()
        with open(hdr, errors="replace") as f:
            headers = f.read()
    assert len(got) == BIG
    m = re.search(r"(?im)^x-sha256:\s*([0-9a-f]+)", headers)
    assert m and m.group(1) == digest
    assert hashlib.sha256(got).hexdigest() == digest


@pytest.mark.parametrize("front", ["http", "http_nodelay", "http_auth"])
@pytest.mark.parametrize("connect", [False, True], ids=["plain", "connect"])
def test_small_get_through_relay(gost, origin, front, connect):
    args = ["-p"] if connect else []
    rc, status, body = curl_code(*args, "-x", f"http://127.0.0.1:{gost.p[front]}", f"{origin.url}/hello")
    assert (rc, status) == (0, 200), body
    assert b"/hello" in body


@pytest.mark.parametrize("connect", [False, True], ids=["plain", "connect"])
def test_16mib_byte_exact(gost, origin, connect):
    _big(gost.p["http"], origin, connect)


def test_16mib_nodelay_connect(gost, origin):
    _big(gost.p["http_nodelay"], origin, True)


def test_wrong_password_nodelay_is_503(gost, origin):
    rc, status, _ = curl_code("-x", f"http://127.0.0.1:{gost.p['http_badpw_nodelay']}", f"{origin.url}/hello")
    assert status == 503
    # a refused CONNECT tunnel: curl reports the proxy's status as %{http_connect}
    p = curl("-p", "-x", f"http://127.0.0.1:{gost.p['http_badpw_nodelay']}", "-w", "%{http_connect}",
             "-o", os.devnull, f"{origin.url}/hello")
    assert p.returncode != 0 and p.stdout.strip().endswith(b"503")


def test_wrong_password_lazy_fails(gost, origin):
    """Default nodelay=false (as GOST): the refusal is only seen on the first read, after the
    front service has committed to the client, so curl fails instead of getting a 503."""
    rc, status, _ = curl_code("-x", f"http://127.0.0.1:{gost.p['http_badpw']}", f"{origin.url}/hello")
    assert status != 200 and (rc != 0 or status >= 500)


def _raw_request(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        data = b""
        while True:
            try:
                d = s.recv(4096)
            except OSError:
                break
            if not d:
                break
            data += d
        return data


def test_handler_status_codes(gost):
    from gostg.protocols import relay as rp
    # wrong password straight to the relay port: Unauthorized (2) and close
    req = rp.encode_request(rp.Request(1, (rp.UserAuth("u", "bad"), rp.Addr("127.0.0.1", 9))))
    assert _raw_request(gost.p["relay_auth"], req) == rp.encode_response(rp.Response(rp.STATUS_UNAUTHORIZED))
    # BIND without bind=true: Forbidden (3) and close, as GOST
    req = rp.encode_request(rp.Request(rp.CMD_BIND, (rp.Addr("127.0.0.1", 0),)))
    assert _raw_request(gost.p["relay"], req) == rp.encode_response(rp.Response(rp.STATUS_FORBIDDEN))
    # CONNECT without an address: BadRequest
    assert _raw_request(gost.p["relay"], rp.encode_request(rp.Request(1))) == H_BAD
    # unreachable target: NetworkUnreachable (7)
    dead = free_port()
    req = rp.encode_request(rp.Request(1, (rp.Addr("127.0.0.1", dead),)))
    assert _raw_request(gost.p["relay"], req) == rp.encode_response(rp.Response(rp.STATUS_NETWORK_UNREACHABLE))


H_BAD = bytes.fromhex("01 01 0000")


def test_forward_mode_ignores_requested_address(gost, echo):
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", gost.p["socks5"])
    s.settimeout(5)
    try:
        s.connect(("192.0.2.1", 4444))  # anywhere: the relay node forwards to the echo server
        s.sendall(b"ping through relay forward")
        got = b""
        while len(got) < 26:
            d = s.recv(4096)
            if not d:
                break
            got += d
        assert got == b"ping through relay forward"
    finally:
        s.close()


def test_garbage_closes_and_service_still_serves(gost, origin):
    for junk in (b"\x05\x01\x00", b"GET / HTTP/1.1\r\n\r\n", os.urandom(64), b"\x01\x01\x00\x03\x09\x00\x00"):
        deadline = time.monotonic() + 5
        with socket.create_connection(("127.0.0.1", gost.p["relay"]), timeout=5) as s:
            s.sendall(junk)
            data = s.recv(4096)
            assert data == b""  # closed without a reply
        assert time.monotonic() < deadline
    rc, status, _ = curl_code("-x", f"http://127.0.0.1:{gost.p['http']}", f"{origin.url}/hello")
    assert (rc, status) == (0, 200)


def test_forwarder_target_down_answers_host_unreachable():
    """``relay://:P/host:port`` whose fixed target refuses: HostUnreachable (6), as GOST."""
    from gostg.protocols import relay as rp
    p, dead = free_port(), free_port()
    with Gost("-L", f"relay://127.0.0.1:{p}/127.0.0.1:{dead}", ports=[p]):
        req = rp.encode_request(rp.Request(1, (rp.Addr("192.0.2.1", 80),)))
        assert _raw_request(p, req) == rp.encode_response(rp.Response(rp.STATUS_HOST_UNREACHABLE))
