"""Shared helpers for integration tests: free ports, port waits, gostg processes started as a
user would (bin/gostg), and small loopback servers (HTTP origin, echo). Every wait has a
deadline; every process is stopped by PID."""
import hashlib
import http.server
import os
import signal as _signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOSTG = os.path.join(ROOT, "bin", "gostg")


def need_grpc(module=False):
    """Skip the calling test (``module``: the whole module, called at its top) when grpcio is
    absent, except under CI (CI installs requirements-dev.txt: a skip there would hide the
    gRPC plugins' tests)."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        import pytest
        pytest.skip("grpcio not installed (pip install 'gostg[grpc]')", allow_module_level=module)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {host}:{port} did not open within {timeout}s")


def port_closed(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return False
    except OSError:
        return True


_PATTERN = bytes(range(251))


def pattern_bytes(n):
    """Byte i is ``i % 251`` (what GET /bytes/N serves), built by repetition: the generator
    ``bytes(i % 251 for i in range(n))`` takes ~1 s of CPU for 16 MiB."""
    return (_PATTERN * (n // 251 + 1))[:n]


def veth(ns, here, peer_ns, there, addrs, peer_addr):
    """A veth pair: ``here`` in namespace ``ns`` with ``addrs``, ``there`` in ``peer_ns`` with
    ``peer_addr``, both up (the namespaces exist; the test deletes them)."""
    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=15)

    ip("-n", ns, "link", "add", here, "type", "veth", "peer", "name", there, "netns", peer_ns)
    for a in addrs:
        ip("-n", ns, "addr", "add", a, "dev", here)
    ip("-n", ns, "link", "set", here, "up")
    ip("-n", peer_ns, "addr", "add", peer_addr, "dev", there)
    ip("-n", peer_ns, "link", "set", there, "up")


def wait_for(pred, timeout=8.0, step=0.05):
    """Poll ``pred()`` until it returns something truthy (→ that value) or ``timeout`` passes
    (→ its last value)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Gost:
    """``bin/gostg *args`` as a subprocess. Log goes to a temp file (``.log_text()``).
    Use as a context manager; ``ports`` are waited for on start. ``prefix`` runs it under
    another command (``ip netns exec NAME``)."""

    def __init__(self, *args, ports=(), env=None, stdin=None, cwd=None, prefix=()):
        self.prefix = [str(a) for a in prefix]
        self.args = [str(a) for a in args]
        self.ports = ports
        self.env = dict(os.environ, **(env or {}))
        self.stdin = stdin
        self.cwd = cwd
        self.proc = None
        self.logf = tempfile.NamedTemporaryFile(prefix="gostg-", suffix=".log", delete=False)

    def start(self):
        return self._spawn()._ready()

    def _spawn(self):
        self.proc = subprocess.Popen([*self.prefix, sys.executable, GOSTG, *self.args], stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE if self.stdin is not None else subprocess.DEVNULL,
                                     env=self.env, cwd=self.cwd)
        if self.stdin is not None:
            self.proc.stdin.write(self.stdin.encode())
            self.proc.stdin.close()
        return self

    def _ready(self):
        try:
            for p in self.ports:
                wait_port(p, proc=self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def log_text(self):
        with open(self.logf.name, errors="replace") as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10):
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=_signal.SIGTERM, timeout=10):
        if self.proc is None:
            return None
        return stop_process(self.proc, sig, timeout)

    def __enter__(self):
        # ``with Gost(...).start() as g`` (or a helper that started it) must not start a second
        # process: the first would outlive the test
        return self.start() if self.proc is None or self.proc.poll() is not None else self

    def __exit__(self, *exc):
        self.stop()
        try:
            os.unlink(self.logf.name)
        except OSError:
            pass


def started(*gosts):
    """Start several ``Gost``s at once (their Python start-ups overlap), then wait for each one's
    ports; → ``gosts``, to use in ``with`` (entering a started one does not start it again). For
    processes that do not need each other at start-up (a client chain dials on first use)."""
    try:
        for g in gosts:
            g._spawn()
        for g in gosts:
            g._ready()
    except BaseException:
        for g in gosts:
            g.stop()
        raise
    return gosts


def stop_process(proc, sig=_signal.SIGTERM, timeout=10):
    """Stop a Popen by its PID: ``sig``, ``timeout`` seconds, then SIGKILL. → its return code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def run_gostg(*args, timeout=20, stdin=None, env=None, cwd=None, prefix=()):
    """Run bin/gostg to completion (for -V, -O, config errors) → CompletedProcess (text).
    ``prefix`` runs it under another command (``ip netns exec NAME``, ``setpriv …``)."""
    return subprocess.run([*prefix, sys.executable, GOSTG, *[str(a) for a in args]], capture_output=True, text=True,
                          timeout=timeout, input=stdin, env=dict(os.environ, **(env or {})), cwd=cwd)


class _Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/bytes/"):
            n = int(self.path.split("/")[2])
            body = pattern_bytes(n)
        else:
            body = f"hello from origin {self.path} host={self.headers.get('Host')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Sha256", hashlib.sha256(body).hexdigest())
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(n)
        body = hashlib.sha256(data).hexdigest().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ThreadingHTTP(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HTTPServerThread:
    """``self.server`` (an http.server) run by ``self.thread`` in the background; a context
    manager. Subclasses set both in ``__init__``."""

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Origin(HTTPServerThread):
    """HTTP/1.1 keep-alive origin on 127.0.0.1: GET / echoes path+Host, GET /bytes/N sends N
    bytes (header X-Sha256), POST answers the sha256 of its body. ``.connections`` counts
    TCP connections accepted (to prove keep-alive)."""

    def __init__(self):
        self.connections = 0
        origin = self

        class Server(_ThreadingHTTP):
            def process_request(self, request, client_address):
                origin.connections += 1
                super().process_request(request, client_address)

        self.server = Server(("127.0.0.1", 0), _Origin)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


class Echo:
    """TCP echo server on 127.0.0.1 (thread per connection); ``.count`` = connections seen."""

    def __init__(self, tag=b""):
        self.tag = tag
        self.count = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        with c:
            if self.tag:
                c.sendall(self.tag)
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    try:
                        c.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                c.sendall(d)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.sock.close()
