"""One gostg process serving http, socks5 (with auth), socks4 and auto, driven by curl and
PySocks as a user would: every client flavour, keep-alive, bodies, big downloads, auth errors,
garbage on the wire and unreachable targets."""
import base64
import hashlib
import os
import random
import re
import socket
import tempfile
import threading
import time

import pytest
import socks

from .helpers import Echo, Gost, free_port
from .peers import FastOrigin, cached_body, curl, curl_code, recv_all

BIG = 16 << 20


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def gost():
    p = {k: free_port() for k in ("http", "socks5", "socks4", "auto", "httpauth")}
    with Gost("-L", f"http://127.0.0.1:{p['http']}",
              "-L", f"socks5://user:pass@127.0.0.1:{p['socks5']}",
              "-L", f"socks4://127.0.0.1:{p['socks4']}",
              "-L", f"127.0.0.1:{p['auto']}",
              "-L", f"http://user:pass@127.0.0.1:{p['httpauth']}",
              ports=list(p.values())) as g:
        g.p = p
        yield g


def _client_args(kind, p):
    """curl proxy options for each way a user reaches the proxy. → (args, use_hostname)."""
    table = {
        "http": (["-x", f"http://127.0.0.1:{p['http']}"], False),
        "http-connect": (["-p", "-x", f"http://127.0.0.1:{p['http']}"], False),
        "http-auth": (["-x", f"http://127.0.0.1:{p['httpauth']}", "--proxy-user", "user:pass"], False),
        "http-auth-connect": (["-p", "-x", f"http://127.0.0.1:{p['httpauth']}", "--proxy-user", "user:pass"], False),
        "socks5": (["--socks5", f"127.0.0.1:{p['socks5']}", "--proxy-user", "user:pass"], False),
        "socks5-hostname": (["--socks5-hostname", f"127.0.0.1:{p['socks5']}", "--proxy-user", "user:pass"], True),
        "socks5-url-user": (["-x", f"socks5h://user:pass@127.0.0.1:{p['socks5']}"], True),
        "socks4": (["--socks4", f"127.0.0.1:{p['socks4']}"], False),
        "socks4a": (["--socks4a", f"127.0.0.1:{p['socks4']}"], True),
        "auto-http": (["-x", f"http://127.0.0.1:{p['auto']}"], False),
        "auto-connect": (["-p", "-x", f"http://127.0.0.1:{p['auto']}"], False),
        "auto-socks4": (["--socks4", f"127.0.0.1:{p['auto']}"], False),
        "auto-socks4a": (["--socks4a", f"127.0.0.1:{p['auto']}"], True),
        "auto-socks5": (["--socks5", f"127.0.0.1:{p['auto']}"], False),
        "auto-socks5-hostname": (["--socks5-hostname", f"127.0.0.1:{p['auto']}"], True),
        "auto-socks5-user": (["--socks5", f"127.0.0.1:{p['auto']}", "--proxy-user", "any:thing"], False),
    }
    return table[kind]


CLIENTS = ["http", "http-connect", "http-auth", "http-auth-connect", "socks5", "socks5-hostname",
           "socks5-url-user", "socks4", "socks4a", "auto-http", "auto-connect", "auto-socks4",
           "auto-socks4a", "auto-socks5", "auto-socks5-hostname", "auto-socks5-user"]


def _cause(err):
    """PySocks wraps negotiation errors in GeneralProxyError("Socket error", inner)."""
    inner = getattr(err, "socket_err", None)
    return inner if isinstance(inner, socks.ProxyError) else err


def _url(origin, hostname, path="/x"):
    return f"http://{'localhost' if hostname else '127.0.0.1'}:{origin.port}{path}"


@pytest.mark.parametrize("kind", CLIENTS)
def test_curl_through_each_proxy(gost, origin, kind):
    args, hostname = _client_args(kind, gost.p)
    rc, status, body = curl_code(*args, _url(origin, hostname, f"/hello-{kind}"))
    assert rc == 0, body
    assert status == 200
    host = "localhost" if hostname else "127.0.0.1"
    assert body == f"hello from origin /hello-{kind} host={host}:{origin.port}\n".encode()


@pytest.mark.parametrize("kind", ["http", "http-connect", "http-auth", "socks5", "socks5-hostname", "socks4",
                                  "socks4a", "auto-http", "auto-connect", "auto-socks4", "auto-socks5-hostname"])
def test_16mib_download_is_byte_exact(gost, origin, kind):
    args, hostname = _client_args(kind, gost.p)
    body, digest = cached_body(BIG)
    with tempfile.TemporaryDirectory() as d:
        hdr = os.path.join(d, "h")
        out = os.path.join(d, "b")
        p = curl(*args, "-D", hdr, "-o", out, _url(origin, hostname, f"/bytes/{BIG}"), timeout=30)
        assert p.returncode == 0, p.stderr
        with open(hdr, "rb") as f:
            headers = f.read().decode("latin-1")
        with open(out, "rb") as f:
            got = f.read()
    assert len(got) == BIG
    m = re.search(r"(?im)^x-sha256:\s*([0-9a-f]+)", headers)
    assert m and m.group(1) == digest
    assert hashlib.sha256(got).hexdigest() == digest


@pytest.mark.parametrize("port_key", ["http", "auto"])
def test_http_keepalive_reuses_client_and_origin_connection(gost, port_key):
    with FastOrigin() as o:
        p = curl("-v", "-x", f"http://127.0.0.1:{gost.p[port_key]}", f"{o.url}/one", f"{o.url}/two")
        assert p.returncode == 0, p.stderr
        assert p.stdout == (f"hello from origin /one host=127.0.0.1:{o.port}\n"
                            f"hello from origin /two host=127.0.0.1:{o.port}\n").encode()
        assert re.search(r"Re-using existing connection", p.stderr), p.stderr
        assert o.connections == 1


def test_http_keepalive_across_two_origins(gost):
    """One client connection, requests to two different origins: both answered in order."""
    with FastOrigin() as o1, FastOrigin() as o2:
        p = curl("-v", "-x", f"http://127.0.0.1:{gost.p['http']}", f"{o1.url}/a", f"{o2.url}/b", f"{o1.url}/c")
        assert p.returncode == 0, p.stderr
        assert p.stdout == (f"hello from origin /a host=127.0.0.1:{o1.port}\n"
                            f"hello from origin /b host=127.0.0.1:{o2.port}\n"
                            f"hello from origin /c host=127.0.0.1:{o1.port}\n").encode()
        assert p.stderr.count("Re-using existing connection") == 2, p.stderr


@pytest.mark.parametrize("version,extra", [("HTTP/1.1", "Connection: close\r\n"), ("HTTP/1.0", "")])
def test_http_close_after_response_when_client_asks(gost, origin, version, extra):
    """An HTTP/1.1 ``Connection: close`` request, or an HTTP/1.0 one without keep-alive, gets its
    response and then the connection closes."""
    with socket.create_connection(("127.0.0.1", gost.p["http"]), timeout=5) as s:
        s.sendall(f"GET {origin.url}/close {version}\r\nHost: h\r\n{extra}\r\n".encode())
        data, eof = recv_all(s, time.monotonic() + 5)
    assert eof, data
    assert data.startswith(version.encode() + b" 200")
    assert data.endswith(b"hello from origin /close host=h\n")


def test_concurrent_socks5_clients(gost, origin):
    """Many clients at once through one service, each byte-exact."""
    n, size = 24, 256 << 10
    _, digest = cached_body(size)
    results = [None] * n

    def one(i):
        s = socks.socksocket()
        s.settimeout(10)
        s.set_proxy(socks.SOCKS5, "127.0.0.1", gost.p["socks5"], username="user", password="pass")
        try:
            s.connect(("127.0.0.1", origin.port))
            s.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: c{i}\r\nConnection: close\r\n\r\n".encode())
            data, eof = recv_all(s, time.monotonic() + 15)
            head, _, body = data.partition(b"\r\n\r\n")
            results[i] = eof and hashlib.sha256(body).hexdigest() == digest
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = repr(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert results == [True] * n


def test_post_1mib_body(gost, origin):
    data = random.Random(7).randbytes(1 << 20)
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(data)
        f.flush()
        for port_key in ("http", "auto"):
            p = curl("-x", f"http://127.0.0.1:{gost.p[port_key]}", "--data-binary", f"@{f.name}",
                     "-H", "Content-Type: application/octet-stream", f"{origin.url}/post", timeout=20)
            assert p.returncode == 0, p.stderr
            assert p.stdout.decode() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["http", "http-connect", "socks5", "auto-socks4"])
def test_post_3mib_with_expect_100_continue(gost, origin, kind):
    """curl sends ``Expect: 100-continue`` for big bodies; the interim 100 must get through."""
    args, hostname = _client_args(kind, gost.p)
    data = random.Random(3).randbytes(3 << 20)
    with tempfile.NamedTemporaryFile(suffix=".bin") as f:
        f.write(data)
        f.flush()
        p = curl("-v", *args, "-H", "Expect: 100-continue", "--data-binary", f"@{f.name}",
                 _url(origin, hostname, "/post3"), timeout=20)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == hashlib.sha256(data).hexdigest()
    assert "100 Continue" in p.stderr


def test_head_request(gost, origin):
    # Two HEADs on one connection: a HEAD response has no body even with Content-Length,
    # so the proxy must not wait for one.
    p = curl("-v", "-I", "-x", f"http://127.0.0.1:{gost.p['http']}", f"{origin.url}/a", f"{origin.url}/b", timeout=8)
    assert p.returncode == 0, p.stderr
    heads = p.stdout.decode("latin-1")
    assert heads.count("HTTP/1.1 200") == 2 or heads.count("HTTP/1.0 200") == 2, heads
    assert re.search(r"(?im)^content-length:\s*5", heads)


# --- bytes sent ahead of the proxy's answer ----------------------------------------------

def test_connect_with_data_in_same_packet(gost):
    """A client that sends its first payload together with the CONNECT head (no wait for 200)."""
    with Echo() as e:
        with socket.create_connection(("127.0.0.1", gost.p["http"]), timeout=5) as s:
            s.sendall(f"CONNECT 127.0.0.1:{e.port} HTTP/1.1\r\nHost: 127.0.0.1:{e.port}\r\n\r\n".encode()
                      + b"early bytes")
            s.shutdown(socket.SHUT_WR)
            data, eof = recv_all(s, time.monotonic() + 5)
    assert eof
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:80]
    assert rest == b"early bytes"


@pytest.mark.parametrize("port_key", ["socks5", "auto"])
def test_socks5_whole_handshake_and_data_in_one_packet(gost, port_key):
    """Greeting, auth, request and payload in one write (optimistic SOCKS5 clients do this)."""
    with Echo() as e:
        greeting = b"\x05\x01\x02" if port_key == "socks5" else b"\x05\x01\x00"
        auth = b"\x01\x04user\x04pass" if port_key == "socks5" else b""
        req = b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + e.port.to_bytes(2, "big")
        with socket.create_connection(("127.0.0.1", gost.p[port_key]), timeout=5) as s:
            s.sendall(greeting + auth + req + b"optimistic")
            s.shutdown(socket.SHUT_WR)
            data, eof = recv_all(s, time.monotonic() + 5)
    assert eof
    expect_head = (b"\x05\x02\x01\x00" if port_key == "socks5" else b"\x05\x00")
    assert data.startswith(expect_head + b"\x05\x00\x00"), data
    reply_len = 10  # IPv4 bound address
    assert data[len(expect_head) + reply_len:] == b"optimistic"


def test_socks4_request_and_data_in_one_packet(gost):
    with Echo() as e:
        req = b"\x04\x01" + e.port.to_bytes(2, "big") + socket.inet_aton("127.0.0.1") + b"\x00"
        with socket.create_connection(("127.0.0.1", gost.p["socks4"]), timeout=5) as s:
            s.sendall(req + b"eager")
            s.shutdown(socket.SHUT_WR)
            data, eof = recv_all(s, time.monotonic() + 5)
    assert eof
    assert data[:2] == b"\x00\x5a" and data[8:] == b"eager", data


def test_proxy_credentials_not_forwarded_to_origin(gost):
    """Proxy-Authorization / Proxy-Connection are for the proxy only."""
    seen = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve():
        try:
            c, _ = srv.accept()
        except OSError:
            return
        with c:
            c.settimeout(5)
            buf = b""
            while b"\r\n\r\n" not in buf and len(buf) < 65536:
                d = c.recv(4096)
                if not d:
                    break
                buf += d
            seen.append(buf)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{gost.p['httpauth']}", "--proxy-user", "user:pass",
                                     "-H", "Proxy-Connection: keep-alive", f"http://127.0.0.1:{port}/h")
        t.join(timeout=5)
    finally:
        try:
            srv.shutdown(socket.SHUT_RDWR)  # wakes the accept if curl never came
        except OSError:
            pass
        srv.close()
    assert (rc, status, body) == (0, 200, b"ok")
    head = seen[0].decode("latin-1").lower()
    assert head.startswith("get /h http/1.1\r\n"), head
    assert "proxy-authorization" not in head and "proxy-connection" not in head


# --- authentication errors ----------------------------------------------------------------

@pytest.mark.parametrize("creds", [None, "user:wrong", "nobody:pass"])
def test_http_wrong_credentials_get_407(gost, origin, creds):
    args = ["-v", "-x", f"http://127.0.0.1:{gost.p['httpauth']}"] + (["--proxy-user", creds] if creds else [])
    rc, status, body = curl_code(*args, f"{origin.url}/secret")
    assert status == 407
    p = curl("-i", *args[1:], f"{origin.url}/secret")
    head = p.stdout.decode("latin-1")
    assert re.search(r'(?im)^proxy-authenticate:\s*basic\b', head), head
    assert "hello from origin" not in head


def test_407_realm_is_the_same_on_every_request(origin):
    """``authBasicRealm`` names the realm of every 407, also the one that answers a later request
    on a kept-alive connection."""
    p = free_port()
    tok = base64.b64encode(b"user:pass").decode()
    with Gost("-L", f"http://user:pass@127.0.0.1:{p}?authBasicRealm=myrealm", ports=[p]):
        with socket.create_connection(("127.0.0.1", p), timeout=5) as s:
            s.sendall(f"GET {origin.url}/r1 HTTP/1.1\r\nHost: r\r\n\r\n".encode())
            data, eof = recv_all(s, time.monotonic() + 5)
        assert eof and data.startswith(b"HTTP/1.1 407")
        assert b'Proxy-Authenticate: Basic realm="myrealm"' in data, data
        with socket.create_connection(("127.0.0.1", p), timeout=5) as s:
            s.sendall(f"GET {origin.url}/r2 HTTP/1.1\r\nHost: r\r\nProxy-Authorization: Basic {tok}\r\n\r\n"
                      .encode())
            first = b""
            deadline = time.monotonic() + 5
            while not first.endswith(b"hello from origin /r2 host=r\n") and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                first += chunk
            assert first.startswith(b"HTTP/1.1 200"), first
            s.sendall(f"GET {origin.url}/r3 HTTP/1.1\r\nHost: r\r\n\r\n".encode())  # no credentials
            data, eof = recv_all(s, time.monotonic() + 5)
        assert eof and data.startswith(b"HTTP/1.1 407"), data
        assert b'Proxy-Authenticate: Basic realm="myrealm"' in data, data


def test_http_connect_wrong_credentials(gost, origin):
    p = curl("-p", "-x", f"http://127.0.0.1:{gost.p['httpauth']}", "--proxy-user", "user:wrong", f"{origin.url}/")
    assert p.returncode != 0
    assert "407" in p.stderr


@pytest.mark.parametrize("creds", ["user:wrong", "nobody:pass"])
def test_socks5_wrong_credentials_curl(gost, origin, creds):
    p = curl("--socks5", f"127.0.0.1:{gost.p['socks5']}", "--proxy-user", creds, f"{origin.url}/")
    assert p.returncode == 97, (p.returncode, p.stderr)
    assert p.stdout == b""


def test_socks5_without_credentials_is_refused(gost, origin):
    p = curl("--socks5", f"127.0.0.1:{gost.p['socks5']}", f"{origin.url}/")
    assert p.returncode == 97, (p.returncode, p.stderr)


def test_socks5_wrong_credentials_pysocks(gost, origin):
    s = socks.socksocket()
    s.settimeout(5)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", gost.p["socks5"], username="user", password="nope")
    with pytest.raises(socks.ProxyError) as ei:
        s.connect(("127.0.0.1", origin.port))
    s.close()
    assert isinstance(_cause(ei.value), socks.SOCKS5AuthError), repr(ei.value)


def test_socks5_pysocks_good_credentials(gost, origin):
    s = socks.socksocket()
    s.settimeout(5)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", gost.p["socks5"], rdns=True, username="user", password="pass")
    try:
        s.connect(("localhost", origin.port))
        s.sendall(b"GET /py HTTP/1.1\r\nHost: py\r\nConnection: close\r\n\r\n")
        data, eof = recv_all(s, time.monotonic() + 5)
    finally:
        s.close()
    assert eof
    assert data.startswith(b"HTTP/1.") and data.endswith(b"hello from origin /py host=py\n")


# --- unreachable targets -------------------------------------------------------------------

def test_socks5_unreachable_target_reply_4(gost):
    dead = free_port()
    s = socks.socksocket()
    s.settimeout(10)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", gost.p["socks5"], username="user", password="pass")
    with pytest.raises(socks.ProxyError) as ei:
        s.connect(("127.0.0.1", dead))
    s.close()
    err = _cause(ei.value)
    assert isinstance(err, socks.SOCKS5Error), repr(ei.value)
    assert str(err).startswith("0x04") and "unreachable" in str(err).lower()


@pytest.mark.parametrize("port_key", ["http", "auto"])
def test_http_unreachable_target_503(gost, port_key):
    dead = free_port()
    rc, status, _ = curl_code("-x", f"http://127.0.0.1:{gost.p[port_key]}", f"http://127.0.0.1:{dead}/")
    assert status == 503


def test_http_connect_unreachable_target_503(gost):
    dead = free_port()
    p = curl("-p", "-x", f"http://127.0.0.1:{gost.p['http']}", f"http://127.0.0.1:{dead}/")
    assert p.returncode != 0
    assert "503" in p.stderr


def test_socks4_unreachable_target_rejected(gost):
    dead = free_port()
    s = socks.socksocket()
    s.settimeout(10)
    s.set_proxy(socks.SOCKS4, "127.0.0.1", gost.p["socks4"])
    with pytest.raises(socks.ProxyError) as ei:
        s.connect(("127.0.0.1", dead))
    s.close()
    err = _cause(ei.value)
    assert isinstance(err, socks.SOCKS4Error), repr(ei.value)
    assert str(err).lower().startswith("0x5b")


# --- garbage on the wire -------------------------------------------------------------------

READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def strict():
    """The same four services with a 1 s handshake deadline (``readTimeout``)."""
    p = {k: free_port() for k in ("http", "socks5", "socks4", "auto")}
    q = f"?readTimeout={READ_TIMEOUT:g}s"
    with Gost("-L", f"http://127.0.0.1:{p['http']}{q}",
              "-L", f"socks5://user:pass@127.0.0.1:{p['socks5']}{q}",
              "-L", f"socks4://127.0.0.1:{p['socks4']}{q}",
              "-L", f"127.0.0.1:{p['auto']}{q}",
              ports=list(p.values())) as g:
        g.p = p
        yield g


def _garbage():
    r = random.Random(1234)
    cases = {
        "random-0": b"\x00" + r.randbytes(300),
        "random-ff": b"\xff" + r.randbytes(500),
        "random-printable": bytes(r.choice(b"abc ;:/\x7f\x01") for _ in range(200)),
        "truncated-socks5-1": b"\x05",
        "truncated-socks5-2": b"\x05\x01",
        "truncated-socks5-req": b"\x05\x01\x00\x05\x01\x00\x03",
        "truncated-socks4": b"\x04\x01\x00",
        "socks5-bad-nmethods": b"\x05\x00",
        "socks4-no-nul": b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"u" * 300,
        "http-half-head": b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\n",
        "http-bad-line": b"\x16\x03\x01 nonsense\r\n\r\n",
        "socks5-garbage-after-greeting": b"\x05\x01\x00" + r.randbytes(64),
    }
    return cases


def _is_refusal(data, port_key):
    """What a proxy may say before closing on bad input: nothing, an HTTP 400, or a SOCKS
    method choice / error reply. Never a success."""
    if data == b"":
        return True
    if data.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")):
        return port_key in ("http", "auto")
    if port_key == "http":
        return False
    if data[:1] == b"\x05" and port_key in ("socks5", "auto"):
        if data[:2] not in (b"\x05\x00", b"\x05\x02", b"\x05\xff"):
            return False
        rest = data[2:]
        # optional auth status (failure) and/or an error reply, never REP=0
        if rest[:2] == b"\x01\x01":
            rest = rest[2:]
        return rest == b"" or (rest[:1] == b"\x05" and rest[1:2] != b"\x00")
    if data[:1] == b"\x00" and port_key in ("socks4", "auto"):
        return len(data) == 8 and data[1] != 0x5A
    return False


@pytest.mark.parametrize("port_key", ["http", "socks5", "socks4", "auto"])
def test_garbage_gets_clean_close(strict, origin, port_key):
    port = strict.p[port_key]
    cases = _garbage()
    conns = {}
    for name, data in cases.items():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        conns[name] = s
    deadline = time.monotonic() + READ_TIMEOUT + 4
    try:
        for name, s in conns.items():
            try:
                data, eof = recv_all(s, deadline)
            except ConnectionResetError:
                pytest.fail(f"{port_key}/{name}: connection reset instead of a clean close")
            assert eof, f"{port_key}/{name}: still open after the handshake timeout (got {data[:40]!r})"
            assert _is_refusal(data, port_key), (port_key, name, data[:60])
    finally:
        for s in conns.values():
            s.close()
    # and the service still serves
    args = {"http": ["-x", f"http://127.0.0.1:{port}"],
            "socks5": ["--socks5", f"127.0.0.1:{port}", "--proxy-user", "user:pass"],
            "socks4": ["--socks4", f"127.0.0.1:{port}"],
            "auto": ["--socks5-hostname", f"127.0.0.1:{port}"]}[port_key]
    rc, status, body = curl_code(*args, f"{origin.url}/after")
    assert (rc, status) == (0, 200), body
    assert body.startswith(b"hello from origin /after")


def test_slowloris_handshake_closed_after_timeout(strict):
    """A client that sends a valid but unfinished handshake is cut at readTimeout, not held."""
    s = socket.create_connection(("127.0.0.1", strict.p["socks5"]), timeout=5)
    try:
        t0 = time.monotonic()
        s.sendall(b"\x05\x01")
        data, eof = recv_all(s, t0 + READ_TIMEOUT + 4)
        took = time.monotonic() - t0
    finally:
        s.close()
    assert eof and data == b""
    assert READ_TIMEOUT * 0.8 <= took < READ_TIMEOUT + 3
