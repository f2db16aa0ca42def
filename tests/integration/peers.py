"""More shared helpers for the proxy/chain/forward/router integration tests: a curl runner, a
cached-body origin, echo servers on chosen ports, blocks of consecutive free ports, peer
programs run as processes (``PeerProcess``: microsocks, ss-local/ss-server, dnsmasq), threaded
loopback servers (``ServerThread``, ``UDPServer``, a tiny DNS server), raw-socket readers, an
HTTP CONNECT tunnel, fd counting and log polling. Every wait has a deadline; every process is
stopped by PID."""
import hashlib
import http.client
import json
import os
import random
import re
import socket
import struct
import subprocess
import threading
import time

from .helpers import Echo, Origin, _Origin, _ThreadingHTTP, pattern_bytes

MICROSOCKS = "/usr/bin/microsocks"


def body_of(n):
    """The body Origin serves for ``GET /bytes/<n>``."""
    return pattern_bytes(n)


_BODIES = {}
_BODIES_LOCK = threading.Lock()


def cached_body(n):
    with _BODIES_LOCK:
        if n not in _BODIES:
            b = body_of(n)
            _BODIES[n] = (b, hashlib.sha256(b).hexdigest())
        return _BODIES[n]


class _FastOrigin(_Origin):
    """Same answers as helpers' origin, but /bytes/N bodies are built once per size."""

    def do_GET(self):
        if not self.path.startswith("/bytes/"):
            return super().do_GET()
        body, digest = cached_body(int(self.path.split("/")[2]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Sha256", digest)
        self.end_headers()
        self.wfile.write(body)


class FastOrigin(Origin):
    """helpers.Origin with cached /bytes/N bodies (a 16 MiB body costs ~1 s of CPU to build)."""

    def __init__(self):
        super().__init__()
        self.server.server_close()
        origin = self

        class Server(_ThreadingHTTP):
            def process_request(self, request, client_address):
                origin.connections += 1
                super().process_request(request, client_address)

        self.server = Server(("127.0.0.1", 0), _FastOrigin)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def curl(*args, timeout=10):
    """``curl -sS -m timeout *args`` → CompletedProcess with bytes stdout, text stderr."""
    p = subprocess.run(["curl", "-sS", "-m", str(timeout), *[str(a) for a in args]],
                       capture_output=True, timeout=timeout + 10)
    p.stderr = p.stderr.decode(errors="replace")
    return p


def curl_code(*args, timeout=10):
    """→ (exit code, HTTP status as int or 0, body bytes) of one URL fetched by curl."""
    p = curl("-w", "\n%{http_code}", *args, timeout=timeout)
    body, _, code = p.stdout.rpartition(b"\n")
    try:
        status = int(code or b"0")
    except ValueError:
        status = 0
    return p.returncode, status, body


def _bind(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bind_block(n, attempts=200):
    """→ ``n`` sockets bound to consecutive ports of 127.0.0.1 (not yet listening).

    The block is looked for below the ephemeral range: there, outgoing connections (which
    take even ephemeral ports on Linux) and their TIME_WAIT leftovers never sit."""
    rnd = random.Random()
    hi = max(_ephemeral_low() - n - 1, 11000)
    for _ in range(attempts):
        base = rnd.randrange(10000, hi)
        socks = []
        for p in range(base, base + n):
            s = _bind(p)
            if s is None:
                break
            socks.append(s)
        if len(socks) == n:
            return socks
        for s in socks:
            s.close()
    raise RuntimeError(f"no block of {n} consecutive free ports found in {attempts} attempts")


def free_port_block(n):
    """→ first port of ``n`` consecutive ports that were free a moment ago (for a process to
    bind): the trial sockets are closed before returning."""
    socks = bind_block(n)
    base = socks[0].getsockname()[1]
    for s in socks:
        s.close()
    return base


class EchoAt(Echo):
    """helpers.Echo on an already bound socket (to place echo servers on chosen ports)."""

    def __init__(self, sock, tag=b""):
        self.tag = tag
        self.count = 0
        self.sock = sock
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)


def kill_echo(echo):
    """Stop an Echo so that its port refuses at once: ``shutdown`` wakes the thread blocked in
    ``accept`` (a bare ``close`` leaves that accept pending, and it would take one more
    connection)."""
    echo._stop = True
    try:
        echo.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    echo.sock.close()
    echo.thread.join(timeout=2)


class PeerProcess:
    """A peer program (``argv``) as a subprocess: started on ``__enter__`` and waited for until
    ``ready()`` (by default: ``port`` accepts TCP connections), stopped by PID on ``__exit__``.
    With ``stderr=subprocess.PIPE`` an early exit reports what the program wrote."""

    name = "peer"

    def __init__(self, argv, port=None, stderr=subprocess.DEVNULL, timeout=10.0):
        self.argv = [str(a) for a in argv]
        self.port = port
        self.stderr = stderr
        self.timeout = timeout
        self.proc = None

    def ready(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _wait_ready(self):
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was ready: {err}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} was not ready within {self.timeout}s")
            time.sleep(0.05)

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()


class Microsocks(PeerProcess):
    """``microsocks -i 127.0.0.1 -p PORT [-u user -P pass]`` stopped by PID."""

    name = "microsocks"

    def __init__(self, port, user=None, password=None):
        args = [MICROSOCKS, "-i", "127.0.0.1", "-p", str(port)]
        if user is not None:
            args += ["-u", user, "-P", password]
        super().__init__(args, port=port)


class ServerThread:
    """A loopback server on ``self.sock`` whose ``_serve`` runs in a daemon thread until
    ``self._stop`` is set; a context manager. Subclasses bind ``self.sock`` then call
    ``_init_thread()``."""

    def _init_thread(self):
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


class TCPServerThread(ServerThread):
    """A TCP server on 127.0.0.1 that hands each accepted connection to ``handle_conn(conn)``
    in a thread of its own. Subclasses set their state, then call ``super().__init__()``."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self._init_thread()

    def handle_conn(self, conn):
        raise NotImplementedError

    def _serve(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.handle_conn, args=(c,), daemon=True).start()


class UDPServer(ServerThread):
    """Datagrams on 127.0.0.1:port, each answered with ``answer(data, peer)`` (None: no answer)."""

    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self._init_thread()

    def answer(self, data, peer):
        raise NotImplementedError

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            out = self.answer(data, peer)
            if out is None:
                continue
            try:
                self.sock.sendto(out, peer)
            except OSError:
                pass


class DNSServer(UDPServer):
    """A UDP DNS server on 127.0.0.1 answering A queries from ``records`` ({name: ip});
    other names get NXDOMAIN. ``.queries`` lists the (name, type) pairs asked."""

    def __init__(self, records):
        self.records = {k.rstrip(".").lower(): v for k, v in records.items()}
        self.queries = []
        super().__init__()

    def answer(self, data, peer):
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return None
        r = dns.message.make_response(q)
        for question in q.question:
            name = question.name.to_text().rstrip(".").lower()
            self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
            ip = self.records.get(name)
            if ip is None:
                r.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", ip))
        return r.to_wire()


def wait_log(gost, pattern, count=1, timeout=5.0):
    """Poll ``gost``'s log until ``pattern`` (regex) matches at least ``count`` times.
    → the list of matches (possibly shorter than ``count`` on timeout)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        found = rx.findall(gost.log_text())
        if len(found) >= count or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def log_records(gost, **fields):
    """``gost``'s JSON log records whose fields start with the given values."""
    out = []
    for line in gost.log_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and all(str(rec.get(k, "")).startswith(v) for k, v in fields.items()):
            out.append(rec)
    return out


def relay_lines(gost, dst):
    """Number of ``<->`` (relaying) log lines of ``gost`` whose dst is ``dst``."""
    return len(re.findall(r'"msg": "[^"]* <-> ' + re.escape(dst) + '"', gost.log_text()))


def recv_all(sock, deadline):
    """Read until EOF or ``deadline`` (monotonic). → (data, eof)."""
    out = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), False
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return bytes(out), False
        if not d:
            return bytes(out), True
        out += d


def recv_exact(sock, n):
    """Read exactly ``n`` bytes (EOFError if the peer closes first)."""
    buf = bytearray()
    while len(buf) < n:
        d = sock.recv(min(65536, n - len(buf)))
        if not d:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += d
    return bytes(buf)


def recv_head(sock, limit=65536):
    """An HTTP head, read a byte at a time so nothing after it is consumed (ends with the
    blank line; shorter if the peer closes first)."""
    head = b""
    while not head.endswith(b"\r\n\r\n") and len(head) < limit:
        d = sock.recv(1)
        if not d:
            break
        head += d
    return head


def socks5_greet(port, timeout=10):
    """A TCP connection to a SOCKS5 server on 127.0.0.1:port past the no-auth greeting."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    assert recv_exact(s, 2) == b"\x05\x00"
    return s


def socks5_open(port, dst_port):
    """A SOCKS5 CONNECT tunnel through 127.0.0.1:port to 127.0.0.1:dst_port."""
    s = socks5_greet(port)
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", dst_port))
    rep = recv_exact(s, 10)
    assert rep[:2] == b"\x05\x00", rep
    return s


def http_connect_open(port, dst_port):
    """An HTTP CONNECT tunnel through 127.0.0.1:port to 127.0.0.1:dst_port."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"CONNECT 127.0.0.1:{dst_port} HTTP/1.1\r\nHost: 127.0.0.1:{dst_port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(1024)
        if not d:
            raise EOFError("closed during CONNECT")
        head += d
        assert len(head) < 8192
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head
    return s


def connect_tunnel(front, target_port, i):
    """One HTTP CONNECT tunnel through ``front`` to an echo server on ``target_port``: 64 KiB
    (ending with ``i``) out and back → whether the same bytes came back."""
    payload = os.urandom(4) * 16384 + i.to_bytes(4, "big")
    with socket.create_connection(("127.0.0.1", front), timeout=20) as s:
        s.sendall(f"CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\nHost: 127.0.0.1:{target_port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = s.recv(4096)
            assert d, "proxy closed before answering CONNECT"
            head += d
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"200", head
        s.sendall(payload)
        got = bytearray(rest)
        while len(got) < len(payload):
            d = s.recv(65536)
            assert d, "tunnel closed early"
            got += d
        return bytes(got) == payload


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_settle(pid, target, timeout=10.0):
    """Poll until ``pid`` holds at most ``target`` fds; → the last count seen."""
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > target and time.monotonic() < deadline:
        time.sleep(0.1)
        n = fd_count(pid)
    return n


def fd_baseline(pid, timeout=5.0):
    """``pid``'s fd count once it stops moving (bounded)."""
    last = fd_count(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        n = fd_count(pid)
        if n == last:
            return n
        last = n
    return last


class Api:
    """A tiny client for gostg's Web API: one HTTP/1.1 connection per request."""

    def __init__(self, port):
        self.port = port
        #: the last response's headers (lower-case names)
        self.headers = {}

    def request(self, method, path, body=None, timeout=15, headers=None):
        """→ (status, parsed JSON or None, raw body); ``headers``: extra request headers."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            sent = {"Content-Type": "application/json"} if data is not None else {}
            sent.update(headers or {})
            c.request(method, path, body=data, headers=sent)
            r = c.getresponse()
            raw = r.read()
            self.headers = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        try:
            js = json.loads(raw)
        except ValueError:
            js = None
        return r.status, js, raw

    def ok(self, method, path, body=None):
        status, js, raw = self.request(method, path, body)
        assert status == 200, f"{method} {path} → {status} {raw[:500]!r}"
        return js

    def post(self, kind, body):
        return self.ok("POST", f"/config/{kind}", body)

    def put(self, kind, name, body):
        return self.ok("PUT", f"/config/{kind}/{name}", body)

    def delete(self, kind, name):
        return self.ok("DELETE", f"/config/{kind}/{name}")

    def config(self):
        return self.ok("GET", "/config?format=json")

    def service(self, name):
        return self.ok("GET", f"/config/services/{name}")["data"]

    def services(self):
        return {s["name"]: s for s in self.config().get("services") or []}

    def reload(self):
        return self.request("POST", "/config/reload")


class FirstBytes:
    """A TCP server on 127.0.0.1 that keeps the first bytes of each connection, then closes it:
    stands in for a chain node to see what a connector or dialer puts on the wire."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]

    def take(self, complete):
        """The first bytes of the next connection, read until ``complete(bytes)``."""
        c, _ = self.sock.accept()
        with c:
            c.settimeout(5)
            data = b""
            while not complete(data):
                d = c.recv(65536)
                if not d:
                    break
                data += d
            return data

    def expect(self, complete):
        """``take`` in a thread (start it before the client connects) → ``result(timeout)``."""
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("data", self.take(complete)), daemon=True)
        t.start()

        def result(timeout=10):
            t.join(timeout)
            return out.get("data")
        return result

    def close(self):
        self.sock.close()



def via_http(port, url, user=None):
    """curl ``url`` through the HTTP proxy on ``port`` → (rc, status, body)."""
    cred = f"{user}@" if user else ""
    return curl_code("-x", f"http://{cred}127.0.0.1:{port}", url, timeout=8)


def via_socks5(port, url, user=None):
    """curl ``url`` through the SOCKS5 proxy on ``port`` (names resolved by the proxy)."""
    cred = f"{user}@" if user else ""
    return curl_code("-x", f"socks5h://{cred}127.0.0.1:{port}", url, timeout=8)


def served(result, path):
    """Did curl get the Origin's answer for ``path``?"""
    rc, status, body = result
    return rc == 0 and status == 200 and body.startswith(f"hello from origin {path} ".encode())


def refused_lines(g, what, count=1):
    """The connection-time error lines naming a missing object (fail closed)."""
    return wait_log(g, r'"msg": "' + re.escape(what) + r' not found: connection refused"', count=count)
