"""mtcp (tutorials/protocols/mtcp.md), smux v2 and yamux, driven by real clients: curl through
gostg fronts, and the reference Go implementations (xtaci/smux, hashicorp/yamux, built from
Debian's packages into ``muxpeer``) as the far end of gostg and as its client.

Covered: the page's CLI (``-L mtcp://`` with the auto handler, ``socks5+mtcp``, ``relay+mtcp``,
``mtcp://:P/:8080 -L http://:8080`` port forwarding) and its YAML (every ``mux.*`` key); wire
interop both ways for smux v1, v2 and yamux; a tunnel nobody reads does not stall the session
nor make gostg buffer it; a dead session is remade; bypass and admission on an mtcp service."""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import Gost, free_port
from .peers import PeerProcess, TCPServerThread, body_of, connect_tunnel, curl, curl_code, via_socks5, wait_log
from .test_mux import echo, origin  # noqa: F401  (module fixtures: the FastOrigin and the Echo)

QUIET = ("-C", '{"log":{"level":"warn"}}')
HERE = os.path.dirname(os.path.abspath(__file__))
GO_SRC = os.path.join(HERE, "muxpeer", "main.go")
#: Debian's golang-github-xtaci-smux-dev and golang-github-hashicorp-yamux-dev live here
GOPATH = "/usr/share/gocode"

go_peer = pytest.mark.skipif(
    not shutil.which("go") or not os.path.isdir(os.path.join(GOPATH, "src/github.com/xtaci/smux")),
    reason="golang-go + golang-github-xtaci-smux-dev + golang-github-hashicorp-yamux-dev not installed "
           "(scripts/install TEST_PACKAGES)")


@pytest.fixture(scope="module")
def muxpeer(tmp_path_factory):
    """The Go reference peer, built once (GOPATH mode: no network, no module proxy)."""
    out = tmp_path_factory.mktemp("muxpeer")
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOCACHE=str(out / "cache"), GOFLAGS="")
    subprocess.run(["go", "build", "-o", str(out / "muxpeer"), GO_SRC], env=env, check=True, timeout=300,
                   capture_output=True)
    return str(out / "muxpeer")


def mux_args(kind):
    """muxpeer flags and gostg's query for one of "smux1", "smux2", "yamux"."""
    if kind == "yamux":
        return ["-type", "yamux"], "mux.type=yamux"
    return ["-type", "smux", "-version", kind[-1]], f"mux.version={kind[-1]}"


def exact(port, origin, n=16 << 20, scheme="socks5h"):
    p = curl("-x", f"{scheme}://127.0.0.1:{port}", f"{origin.url}/bytes/{n}", timeout=60)
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(body_of(n)).digest()


def echo_roundtrips(port, echo_port=None, n=50, size=100000):
    """``n`` concurrent connections to ``port`` (a plain forward to an echo server, or an HTTP
    proxy when ``echo_port`` is given), ``size`` random bytes each way → all equal."""
    def one(i):
        if echo_port is not None:
            return connect_tunnel(port, echo_port, i)
        data = os.urandom(size)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
            t = threading.Thread(target=c.sendall, args=(data,))
            t.start()
            got = bytearray()
            while len(got) < size:
                d = c.recv(1 << 20)
                if not d:
                    break
                got += d
            t.join()
            return bytes(got) == data
    with ThreadPoolExecutor(n) as ex:
        assert list(ex.map(one, range(n))) == [True] * n


# --- the docs page ------------------------------------------------------------------------

def test_docs_cli_mtcp_auto_handler_socks5_and_http_clients(origin, echo, tmp_path):
    """``gost -L mtcp://:8000`` (auto handler: HTTP and SOCKS5) with gostg clients speaking
    ``-F mtcp://`` (HTTP over mtcp) and ``-F socks5+mtcp://``: many tunnels over one session."""
    s, h, k = free_port(), free_port(), free_port()
    with Gost("-L", f"mtcp://127.0.0.1:{s}", "-D", ports=[s], cwd=tmp_path) as server, \
            Gost("-L", f"http://127.0.0.1:{h}", "-F", f"mtcp://127.0.0.1:{s}", *QUIET, ports=[h], cwd=tmp_path), \
            Gost("-L", f"socks5://127.0.0.1:{k}", "-F", f"socks5+mtcp://127.0.0.1:{s}", *QUIET, ports=[k],
                 cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{h}", origin.url + "/via-http")
        assert (rc, status) == (0, 200) and b"/via-http" in body
        rc, status, body = via_socks5(k, origin.url + "/via-socks5")
        assert (rc, status) == (0, 200) and b"/via-socks5" in body
        exact(k, origin, 4 << 20)
        echo_roundtrips(h, echo.port, n=40)
        log = server.log_text()
        # the readiness probe, then one session per client
        assert wait_log(server, '"msg": "mux: session started"', count=3)
        assert log.count('"handler": "auto"') > 0
    assert server.proc.returncode == 0


def test_docs_yaml_every_mux_key_and_relay_over_mtcp(origin, tmp_path):
    """The page's YAML (auto handler, each ``mux.*`` key at its documented value) and
    ``gost -L relay+mtcp://:8443`` with a ``relay+mtcp`` client."""
    s, r, k, kr = free_port(), free_port(), free_port(), free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(f"""services:
- name: service-0
  addr: 127.0.0.1:{s}
  handler:
    type: auto
  listener:
    type: mtcp
    metadata:
      mux.version: 2
      mux.keepaliveDisabled: false
      mux.keepaliveInterval: 10s
      mux.keepaliveTimeout: 30s
      mux.maxFrameSize: 32768
      mux.maxReceiveBuffer: 4194304
      mux.maxStreamBuffer: 65536
""")
    with Gost("-C", str(cfg), ports=[s], cwd=tmp_path) as server, \
            Gost("-L", f"relay+mtcp://127.0.0.1:{r}", *QUIET, ports=[r], cwd=tmp_path), \
            Gost("-L", f"socks5://127.0.0.1:{k}", "-F", f"socks5+mtcp://127.0.0.1:{s}", *QUIET, ports=[k],
                 cwd=tmp_path), \
            Gost("-L", f"socks5://127.0.0.1:{kr}", "-F", f"relay+mtcp://127.0.0.1:{r}", *QUIET, ports=[kr],
                 cwd=tmp_path):
        exact(k, origin, 4 << 20)
        exact(kr, origin, 4 << 20)
        assert "not built" not in server.log_text()


@go_peer
def test_docs_port_forwarding_with_the_reference_client(muxpeer, origin, tmp_path):
    """``gost -L mtcp://:8443/:8080 -L http://:8080``: the mtcp service forwards each stream to
    the HTTP proxy; the clients are gostg (``-F forward+mtcp://``) and xtaci/smux v2 (GOST's
    mtcp default) opening one stream per connection of curl."""
    s, http, front, gfront = free_port(), free_port(), free_port(), free_port()
    with Gost("-L", f"mtcp://127.0.0.1:{s}/127.0.0.1:{http}", "-L", f"http://127.0.0.1:{http}", *QUIET,
              ports=[s, http], cwd=tmp_path), \
            PeerProcess([muxpeer, "-mode", "client", "-listen", f"127.0.0.1:{front}",
                         "-connect", f"127.0.0.1:{s}", "-type", "smux", "-version", "2"], port=front), \
            Gost("-L", f"tcp://127.0.0.1:{gfront}/127.0.0.1:{http}", "-F", f"forward+mtcp://127.0.0.1:{s}", *QUIET,
                 ports=[gfront], cwd=tmp_path):
        exact(gfront, origin, 1 << 20, scheme="http")      # gostg's own client: a raw stream
        exact(front, origin, 4 << 20, scheme="http")
        with ThreadPoolExecutor(20) as ex:
            codes = list(ex.map(lambda i: curl_code("-x", f"http://127.0.0.1:{front}", f"{origin.url}/f{i}",
                                                    timeout=20)[:2], range(20)))
        assert codes == [(0, 200)] * 20


# --- wire interop with the reference implementations ---------------------------------------

@go_peer
@pytest.mark.parametrize("kind", ["smux1", "smux2", "yamux"])
def test_interop_gostg_dials_the_reference_server(kind, muxpeer, echo, tmp_path):
    """gostg's mtcp dialer → Go mux server (smux v1/v2, yamux) → echo: 8 MiB each way on
    one stream, then 50 streams at once."""
    flags, query = mux_args(kind)
    g, a = free_port(), free_port()
    with PeerProcess([muxpeer, "-mode", "server", "-listen", f"127.0.0.1:{g}", "-target",
                      f"127.0.0.1:{echo.port}", *flags], port=g), \
            Gost("-L", f"tcp://127.0.0.1:{a}/127.0.0.1:{echo.port}", "-F", f"forward+mtcp://127.0.0.1:{g}?{query}",
                 *QUIET, ports=[a], cwd=tmp_path) as client:
        echo_roundtrips(a, n=1, size=8 << 20)
        echo_roundtrips(a, n=50)
        assert "error" not in client.log_text()


@go_peer
@pytest.mark.parametrize("kind", ["smux1", "smux2", "yamux"])
def test_interop_reference_client_dials_gostg(kind, muxpeer, echo, tmp_path):
    """Go mux client (smux v1/v2, yamux) → gostg ``tcp+mtcp`` forward service → echo."""
    flags, query = mux_args(kind)
    s, a = free_port(), free_port()
    with Gost("-L", f"tcp+mtcp://127.0.0.1:{s}/127.0.0.1:{echo.port}?{query}", *QUIET, ports=[s],
              cwd=tmp_path) as server, \
            PeerProcess([muxpeer, "-mode", "client", "-listen", f"127.0.0.1:{a}", "-connect", f"127.0.0.1:{s}",
                         *flags], port=a):
        echo_roundtrips(a, n=1, size=8 << 20)
        echo_roundtrips(a, n=50)
        assert "error" not in server.log_text()


# --- flow control, session loss, policy ------------------------------------------------------

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class Source(TCPServerThread):
    """A loopback server that sends ``n`` bytes (a repeated random MiB) to each client."""

    def __init__(self, n):
        self.n = n
        self.block = os.urandom(1 << 20)
        super().__init__()

    def handle_conn(self, c):
        with c:
            c.settimeout(60)
            try:
                for _ in range(self.n >> 20):
                    c.sendall(self.block)
            except OSError:
                pass

    def digest(self):
        h = hashlib.sha256()
        for _ in range(self.n >> 20):
            h.update(self.block)
        return h.digest()


@pytest.mark.parametrize("query", ["", "?mux.type=yamux"])
def test_a_tunnel_nobody_reads_stalls_neither_the_session_nor_memory(query, origin, tmp_path):
    """One tunnel is sent 64 MiB and its client does not read: the windows hold the source
    back (neither gostg buffers it), and another tunnel on the same session moves 8 MiB
    meanwhile; then the stalled one is read to the end, byte-exact."""
    s, k = free_port(), free_port()
    with Source(64 << 20) as src, \
            Gost("-L", f"socks5+mtcp://127.0.0.1:{s}{query}", *QUIET, ports=[s], cwd=tmp_path) as server, \
            Gost("-L", f"socks5://127.0.0.1:{k}", "-F", f"socks5+mtcp://127.0.0.1:{s}{query}", *QUIET, ports=[k],
                 cwd=tmp_path) as client:
        exact(k, origin, 1 << 20)                         # the session exists; warm
        base = rss_kib(server.proc.pid), rss_kib(client.proc.pid)
        stalled = socket.create_connection(("127.0.0.1", k), timeout=30)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        stalled.sendall(b"\x05\x01\x00")
        assert stalled.recv(2) == b"\x05\x00"
        stalled.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + src.port.to_bytes(2, "big"))
        assert stalled.recv(10)[:2] == b"\x05\x00"
        time.sleep(1.0)       # let the stalled download fill every buffer it may
        exact(k, origin, 8 << 20)    # the same session still carries a new tunnel
        grown = rss_kib(server.proc.pid) - base[0], rss_kib(client.proc.pid) - base[1]
        assert max(grown) < 24 << 10, f"RSS grew by {grown} KiB while a tunnel was not read"
        h = hashlib.sha256()
        got = 0
        while got < src.n:
            d = stalled.recv(1 << 20)
            assert d, f"tunnel ended after {got} bytes"
            h.update(d)
            got += len(d)
        stalled.close()
        assert h.digest() == src.digest()


def test_session_remade_after_the_server_dies(origin, tmp_path):
    s, k = free_port(), free_port()
    server_args = ("-L", f"socks5+mtcp://127.0.0.1:{s}?mux.type=yamux", *QUIET)
    with Gost("-L", f"socks5://127.0.0.1:{k}", "-F", f"socks5+mtcp://127.0.0.1:{s}?mux.type=yamux", *QUIET,
              ports=[k], cwd=tmp_path):
        with Gost(*server_args, ports=[s], cwd=tmp_path) as server:
            assert via_socks5(k, origin.url + "/one")[:2] == (0, 200)
            server.stop(sig=signal.SIGKILL)
        with Gost(*server_args, ports=[s], cwd=tmp_path):
            deadline = time.monotonic() + 10
            while True:   # the dialer notices the dead session on use and makes a new one
                rc, status, body = via_socks5(k, origin.url + "/two")
                if (rc, status) == (0, 200) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert (rc, status) == (0, 200) and b"/two" in body


def test_bypass_and_admission_apply_on_an_mtcp_service(origin, tmp_path):
    s, d, k, kd = free_port(), free_port(), free_port(), free_port()
    hosts = "ok.test:127.0.0.1,blocked.test:127.0.0.1"
    with Gost("-L", f"socks5+mtcp://127.0.0.1:{s}?bypass=blocked.test&hosts={hosts}",
              "-L", f"socks5+mtcp://127.0.0.1:{d}?admission=~127.0.0.2", "-D", ports=[s, d], cwd=tmp_path) as server, \
            Gost("-L", f"socks5://127.0.0.1:{k}", "-F", f"socks5+mtcp://127.0.0.1:{s}", *QUIET, ports=[k],
                 cwd=tmp_path), \
            Gost("-L", f"socks5://127.0.0.1:{kd}", "-F", f"socks5+mtcp://127.0.0.1:{d}", *QUIET, ports=[kd],
                 cwd=tmp_path):
        rc, status, body = via_socks5(k, f"http://ok.test:{origin.port}/ok")
        assert (rc, status) == (0, 200) and b"/ok" in body
        rc, status, _ = via_socks5(k, f"http://blocked.test:{origin.port}/no")
        assert rc != 0 and status == 0
        assert wait_log(server, r'"msg": "bypass"')
        # 127.0.0.1 is not admitted: the mux session itself is refused
        rc, status, _ = via_socks5(kd, f"http://ok.test:{origin.port}/no")
        assert rc != 0 and status == 0
        assert wait_log(server, r'"msg": "admission: denied"')
