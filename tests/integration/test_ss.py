"""Shadowsocks (ss) against shadowsocks-libev: ss-local as the client of gostg's ss server,
ss-server as the upstream of gostg's ss connector, gostg on both ends (plain and over TLS), and
probes (wrong password, garbage, a replayed session, a truncated header) that must neither get an
answer nor hurt the service."""
import base64
import hashlib
import os
import shutil
import socket
import threading
import time

import pytest

from .helpers import Echo, Gost, free_port
from .peers import FastOrigin, PeerProcess, curl, curl_code, fd_count, fd_settle, wait_log

pytestmark = pytest.mark.skipif(not shutil.which("ss-local") or not shutil.which("ss-server"),
                                reason="shadowsocks-libev (ss-local, ss-server) not installed")

CIPHERS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]
PW = "s3cret-pass"
QUIET = ("-C", '{"log":{"level":"warn"}}')
READ_TIMEOUT = 2.0  # the ss service's readTimeout: how long a probe is kept waiting


class LibevPeer(PeerProcess):
    """ss-local or ss-server as a process, stopped by PID."""

    def __init__(self, prog, *args, port):
        super().__init__([prog, *args], port=port)
        self.name = prog


def ss_local(server_port, method, password=PW):
    port = free_port()
    return LibevPeer("ss-local", "-s", "127.0.0.1", "-p", server_port, "-b", "127.0.0.1", "-l", port,
                     "-k", password, "-m", method, port=port)


def ss_server(method, password=PW):
    port = free_port()
    return LibevPeer("ss-server", "-s", "127.0.0.1", "-p", port, "-k", password, "-m", method, port=port)


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def server():
    """One gostg with an ss service per cipher (readTimeout shortened for the probe tests)."""
    ports = {m: free_port() for m in CIPHERS}
    args = [a for m, p in ports.items()
            for a in ("-L", f"ss://{m}:{PW}@127.0.0.1:{p}?readTimeout={READ_TIMEOUT}s")]
    with Gost(*args, ports=list(ports.values())) as g:
        g.ss_ports = ports
        yield g


def socks_get(local_port, url, *extra, timeout=20):
    return curl_code("--socks5-hostname", f"127.0.0.1:{local_port}", *extra, url, timeout=timeout)


# -- ss-local → gostg ss server ------------------------------------------------------------------

@pytest.mark.parametrize("method", CIPHERS)
def test_ss_local_through_gostg_server(server, origin, method):
    with ss_local(server.ss_ports[method], method) as local:
        rc, status, body = socks_get(local.port, origin.url + "/hello")
    assert (rc, status) == (0, 200)
    assert body.startswith(b"hello from origin /hello")


def test_ss_local_bulk_both_directions(server, origin, tmp_path):
    """4 MiB down and 3 MiB up through ss-local → gostg: sha256 identical both ways."""
    n = 4 << 20
    up = os.urandom(3 << 20)
    f = tmp_path / "up.bin"
    f.write_bytes(up)
    with ss_local(server.ss_ports["chacha20-ietf-poly1305"], "chacha20-ietf-poly1305") as local:
        p = curl("--socks5-hostname", f"127.0.0.1:{local.port}", "-D", "-", f"{origin.url}/bytes/{n}", timeout=60)
        assert p.returncode == 0, p.stderr
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        want = [ln.split(b":", 1)[1].strip().decode() for ln in head.split(b"\r\n") if ln.lower().startswith(b"x-sha256")]
        assert len(body) == n and hashlib.sha256(body).hexdigest() == want[0]
        p = curl("--socks5-hostname", f"127.0.0.1:{local.port}", "--data-binary", f"@{f}", origin.url + "/up",
                 timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout.decode() == hashlib.sha256(up).hexdigest()


def test_sip002_base64_userinfo(origin):
    """``ss://BASE64(method:password)@host:port`` (SIP002) configures the same service."""
    port = free_port()
    userinfo = base64.urlsafe_b64encode(f"aes-128-gcm:{PW}".encode()).decode().rstrip("=")
    with Gost("-L", f"ss://{userinfo}@127.0.0.1:{port}", *QUIET, ports=[port]), \
            ss_local(port, "aes-128-gcm") as local:
        rc, status, _ = socks_get(local.port, origin.url + "/")
    assert (rc, status) == (0, 200)


# -- gostg ss connector → ss-server ----------------------------------------------------------------

@pytest.mark.parametrize("method", CIPHERS)
def test_gostg_connector_to_ss_server(origin, method):
    front = free_port()
    with ss_server(method) as upstream, \
            Gost("-L", f"socks5://127.0.0.1:{front}", "-F", f"ss://{method}:{PW}@127.0.0.1:{upstream.port}",
                 *QUIET, ports=[front]):
        rc, status, body = socks_get(front, origin.url + "/via-ss-server")
        assert (rc, status) == (0, 200)
        assert body.startswith(b"hello from origin /via-ss-server")
        if method == "aes-256-gcm":  # one cipher carries a bigger body both ways
            n = 2 << 20
            p = curl("--socks5-hostname", f"127.0.0.1:{front}", "-o", "/dev/null", "-w", "%{size_download}",
                     f"{origin.url}/bytes/{n}", timeout=60)
            assert p.returncode == 0 and p.stdout == str(n).encode(), p.stderr


def test_gostg_connector_wrong_password_fails_cleanly(origin):
    front = free_port()
    with ss_server("aes-128-gcm") as upstream, \
            Gost("-L", f"socks5://127.0.0.1:{front}", "-F", f"ss://aes-128-gcm:wrong@127.0.0.1:{upstream.port}",
                 *QUIET, ports=[front]):
        # ss-server neither answers nor closes a bad client at once (probe resistance): curl gives up
        rc, status, _ = socks_get(front, origin.url + "/", timeout=3)
        assert rc != 0 and status != 200
        # and the proxy still serves the next client (a fresh connect succeeds at SOCKS level)
        with socket.create_connection(("127.0.0.1", front), timeout=5) as s:
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"


# -- gostg ↔ gostg ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["ss", "ss+tls"])
def test_gostg_to_gostg(origin, scheme, tmp_path):
    back, front = free_port(), free_port()
    env = {"HOME": str(tmp_path)}
    method = "chacha20-ietf-poly1305"
    with Gost("-L", f"{scheme}://{method}:{PW}@127.0.0.1:{back}", *QUIET, ports=[back], env=env, cwd=tmp_path), \
            Gost("-L", f"socks5://127.0.0.1:{front}", "-F", f"{scheme}://{method}:{PW}@127.0.0.1:{back}",
                 *QUIET, ports=[front], env=env, cwd=tmp_path):
        rc, status, body = socks_get(front, origin.url + "/g2g")
        assert (rc, status) == (0, 200) and body.startswith(b"hello from origin /g2g")
        n = 3 << 20
        p = curl("--socks5-hostname", f"127.0.0.1:{front}", "-o", "/dev/null", "-w", "%{size_download}",
                 f"{origin.url}/bytes/{n}", timeout=60)
        assert p.returncode == 0 and p.stdout == str(n).encode(), p.stderr


# -- probes ----------------------------------------------------------------------------------------

def probe(port, data, hold=True):
    """Send ``data``; → (bytes the server sent back, seconds until it closed). With ``hold`` the
    client keeps its side open, so only the server's deadline ends the connection."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT + 8) as s:
        s.sendall(data)
        if not hold:
            s.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
    return got, time.monotonic() - t0


class Recorder:
    """A TCP hop that forwards one connection to ``target`` and records what the client sent."""

    def __init__(self, target):
        self.target = target
        self.lst = socket.create_server(("127.0.0.1", 0))
        self.port = self.lst.getsockname()[1]
        self.sent = b""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.lst.settimeout(10)
        try:
            c, _ = self.lst.accept()
        except OSError:
            return
        u = socket.create_connection(("127.0.0.1", self.target))

        def back():
            try:
                while (d := u.recv(65536)):
                    c.sendall(d)
            except OSError:
                pass
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=back, daemon=True)
        t.start()
        try:
            while (d := c.recv(65536)):
                self.sent += d
                u.sendall(d)
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t.join(10)
        c.close()
        u.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.lst.close()
        self.thread.join(10)


def test_replayed_session_is_refused(server, origin):
    method = "aes-256-gcm"
    port = server.ss_ports[method]
    with Recorder(port) as rec, ss_local(rec.port, method) as local:
        rc, status, _ = socks_get(local.port, origin.url + "/once")
        assert (rc, status) == (0, 200)
    rec.thread.join(10)
    assert len(rec.sent) > 32
    before = origin.connections
    for _ in range(2):
        got, took = probe(port, rec.sent)
        assert got == b""
        assert READ_TIMEOUT - 0.5 <= took <= READ_TIMEOUT + 5
    assert origin.connections == before, "a replayed request reached the origin"
    assert wait_log(server, r"replayed salt", count=2)
    with ss_local(port, method) as local:  # still serving real clients
        assert socks_get(local.port, origin.url + "/after")[:2] == (0, 200)


def test_wrong_password_client_gets_nothing(server, origin):
    method = "aes-128-gcm"
    with ss_local(server.ss_ports[method], method, password="not-it") as local:
        rc, status, _ = socks_get(local.port, origin.url + "/", timeout=READ_TIMEOUT + 5)
    assert status == 0 and rc != 0
    assert wait_log(server, r"authentication failed")


@pytest.mark.parametrize("what", ["garbage", "short", "salt-only"])
def test_probe_is_held_until_deadline_without_answer(server, what):
    port = server.ss_ports["chacha20-ietf-poly1305"]
    data = {"garbage": os.urandom(600), "short": os.urandom(20), "salt-only": os.urandom(32)}[what]
    got, took = probe(port, data)
    assert got == b""
    # the connection ends at the service's readTimeout, not at once (no oracle on bytes sent)
    assert READ_TIMEOUT - 0.5 <= took <= READ_TIMEOUT + 5


def test_probes_do_not_leak_and_service_keeps_serving(server, origin):
    pid = server.proc.pid
    port = server.ss_ports["aes-128-gcm"]
    start = fd_count(pid)
    threads = []
    for i in range(60):
        data = os.urandom(1 + (i * 37) % 400)
        threads.append(threading.Thread(target=probe, args=(port, data, False), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(READ_TIMEOUT + 15)
    end = fd_settle(pid, start + 2, timeout=READ_TIMEOUT + 8)
    assert end <= start + 2, f"fds {start} -> {end} after 60 probes"
    with ss_local(port, "aes-128-gcm") as local:
        assert socks_get(local.port, origin.url + "/")[:2] == (0, 200)
    assert server.proc.poll() is None


# -- modes ------------------------------------------------------------------------------------------

def socks5_open(port, dst_port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + dst_port.to_bytes(2, "big"))
    rep = b""
    while len(rep) < 10:
        d = s.recv(10 - len(rep))
        assert d, "proxy closed during CONNECT"
        rep += d
    assert rep[1] == 0
    return s


def test_no_auth_is_plain_as_in_gost(origin):
    """A handler without auth reads the target in the clear; the connector's ``none`` method
    sends it so (GOST's rule for both)."""
    back, front = free_port(), free_port()
    with Gost("-L", f"ss://127.0.0.1:{back}", *QUIET, ports=[back]), \
            Gost("-L", f"socks5://127.0.0.1:{front}", "-F", f"ss://none:x@127.0.0.1:{back}", *QUIET, ports=[front]):
        rc, status, body = socks_get(front, origin.url + "/plain")
    assert (rc, status) == (0, 200) and body.startswith(b"hello from origin /plain")


@pytest.mark.parametrize("nodelay", [True, False])
def test_nodelay_lets_the_server_speak_first(server, nodelay):
    """With nodelay the header goes out at connect, so a banner-first origin is reached before the
    client writes; without it (the shadowsocks default) the header waits for the first payload."""
    front = free_port()
    method = "aes-128-gcm"
    q = "?nodelay=true" if nodelay else ""
    with Echo(tag=b"220 banner\r\n") as echo, \
            Gost("-L", f"socks5://127.0.0.1:{front}", "-F",
                 f"ss://{method}:{PW}@127.0.0.1:{server.ss_ports[method]}{q}", *QUIET, ports=[front]):
        s = socks5_open(front, echo.port)
        with s:
            s.settimeout(1.0 if not nodelay else 5)
            try:
                first = s.recv(64)
            except socket.timeout:
                first = None
            if nodelay:
                assert first == b"220 banner\r\n"
            else:
                assert first is None
                s.settimeout(5)
                s.sendall(b"ping")
                got = b""
                while len(got) < len(b"220 banner\r\nping"):
                    got += s.recv(64)
                assert got == b"220 banner\r\nping"


def test_sip002_base64_userinfo_on_the_connector(origin):
    """``-F ss://BASE64(method:password)@host:port`` reaches ss-server as the plain form does."""
    method = "chacha20-ietf-poly1305"
    front = free_port()
    userinfo = base64.urlsafe_b64encode(f"{method}:{PW}".encode()).decode().rstrip("=")
    with ss_server(method) as upstream, \
            Gost("-L", f"socks5://127.0.0.1:{front}", "-F", f"ss://{userinfo}@127.0.0.1:{upstream.port}",
                 *QUIET, ports=[front]):
        rc, status, body = socks_get(front, origin.url + "/sip002")
    assert (rc, status) == (0, 200) and body.startswith(b"hello from origin /sip002")
