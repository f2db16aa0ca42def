#!/usr/bin/env python3
"""gostg relay benchmark: gostg vs pproxy vs microsocks, side by side on loopback.

Run:  .venv/bin/python bench/bench.py [--size 1GiB] [--duration 5] [--tunnels 2000]

One run starts every proxy at once (each in its own process, RLIMIT_NOFILE raised), plus two
helper server processes of its own (a blocking-socket sink/source and a gevent echo server),
then measures, per proxy:

0. SOCKS5 throughput on just-started ("fresh") proxies, upload and download, 1 stream
1. RSS per idle tunnel   (before conn/s and warm throughput, so those do not pre-grow the heap)
2. SOCKS5 connections/s  (50 concurrent clients: connect + handshake + CONNECT + 64 B echo + close)
3. SOCKS5 and HTTP CONNECT throughput ("warm"), upload and download, 1 stream, + proxy CPU s/GiB

and prints a markdown table (also written to bench/out/results.md). See bench/README.md.

Sub-commands starting with "_" are the helper processes; they are started by the main run.
Everything talks to 127.0.0.1 only; every loop is bounded by a size, a count or a deadline.
"""
import argparse
import json
import os
import platform
import resource
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PY = VENV_PY if os.path.exists(VENV_PY) else sys.executable
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
GiB = 1 << 30
CHUNK = 1 << 20           # client / sink user-space buffer
HDR = struct.Struct("!4sQ4x")  # op (b"UPLD" | b"DNLD"), size: 16 bytes
IO_TIMEOUT = 30.0         # per socket operation; bounds every blocking call
LOG_DIR = [os.path.join(OUT, "logs")]  # per run: bench/out/logs/<--out stem>/
#: the "gostg-before" column: another checkout (e.g. a git worktree of an older commit), same python
BEFORE_ROOT = os.environ.get("GOSTG_BEFORE", "/tmp/gostg-before")


# --------------------------------------------------------------------------- helpers

#: --pin: CPU set for the proxies, and for everything else (None: no pinning)
PIN = {"proxy": None, "other": None}


def _pin(role):
    cpus = PIN[role]
    if cpus:
        os.sched_setaffinity(0, cpus)


def proxy_preexec():
    raise_nofile()
    _pin("proxy")


def other_preexec():
    raise_nofile()
    _pin("other")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def parse_size(s):
    s = s.strip()
    units = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30,
             "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    for u in sorted(units, key=len, reverse=True):
        if s.upper().endswith(u):
            return int(float(s[: -len(u)]) * units[u])
    return int(s)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def terminate(proc):
    """SIGTERM a Popen by its PID, SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15 of stat(5)


def cpu_split(pid):
    """(utime, stime) seconds of the whole process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def code_fingerprint():
    """sha256 over gostg/**/*.py + bin/gostg, and the newest mtime: which code was measured."""
    import hashlib
    h = hashlib.sha256()
    newest = 0.0
    files = [os.path.join(ROOT, "bin", "gostg")]
    for d, _, fs in os.walk(os.path.join(ROOT, "gostg")):
        files += [os.path.join(d, f) for f in fs if f.endswith(".py")]
    for path in sorted(files):
        with open(path, "rb") as f:
            h.update(os.path.relpath(path, ROOT).encode() + b"\0" + f.read())
        newest = max(newest, os.path.getmtime(path))
    return h.hexdigest()[:12], time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(newest))


def machine_busy():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)


def minflt(pid):
    """Minor page faults of the whole process (stat(5) field 10)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise ConnectionError(f"EOF after {len(buf)}/{n} bytes")
        buf += d
    return bytes(buf)


def socks5_connect(s, port):
    s.sendall(b"\x05\x01\x00")
    if recv_exact(s, 2) != b"\x05\x00":
        raise ConnectionError("socks5: method refused")
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(HOST) + struct.pack("!H", port))
    head = recv_exact(s, 4)
    if head[1] != 0:
        raise ConnectionError(f"socks5: reply {head[1]}")
    atyp = head[3]
    recv_exact(s, 6 if atyp == 1 else 18 if atyp == 4 else recv_exact(s, 1)[0] + 2)


def http_connect(s, port):
    s.sendall(f"CONNECT {HOST}:{port} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > 16384:
            raise ConnectionError("http: reply too long")
        d = s.recv(1)  # byte-wise: never swallow tunnel bytes (none are sent yet anyway)
        if not d:
            raise ConnectionError("http: EOF in reply")
        buf += d
    if buf.split(b" ", 2)[1] != b"200":
        raise ConnectionError(f"http: {buf[:40]!r}")


def open_tunnel(proto, proxy_port, target_port, timeout=IO_TIMEOUT):
    """→ blocking socket connected to 127.0.0.1:target_port (through the proxy unless direct)."""
    s = socket.create_connection((HOST, proxy_port if proto != "direct" else target_port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if proto == "socks5":
            socks5_connect(s, target_port)
        elif proto == "http":
            http_connect(s, target_port)
    except BaseException:
        s.close()
        raise
    return s


# --------------------------------------------------------------------------- helper processes

def serve_sinksrc(port):
    """Blocking sockets, one native thread per connection, 1 MiB recv_into / sendall buffers.
    Header op UPLD: read exactly size bytes, answer b"OK". DNLD: send size bytes."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(128)
    zeros = bytearray(CHUNK)

    def handle(c):
        with c:
            c.settimeout(IO_TIMEOUT)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                op, size = HDR.unpack(recv_exact(c, HDR.size))
                if op == b"UPLD":
                    buf = bytearray(CHUNK)
                    got = 0
                    while got < size:
                        n = c.recv_into(buf, min(CHUNK, size - got))
                        if not n:
                            return
                        got += n
                    c.sendall(b"OK")
                elif op == b"DNLD":
                    mv = memoryview(zeros)
                    left = size
                    while left > 0:
                        n = min(CHUNK, left)
                        c.sendall(mv[:n])
                        left -= n
                # wait for the client to close first (bounded by IO_TIMEOUT)
                c.recv(1)
            except OSError:
                pass

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def serve_echo(port):
    """gevent echo server (not monkey-patched; gevent.socket used directly)."""
    from gevent.server import StreamServer
    from gevent import socket as gsocket

    def handle(c, _addr):
        c.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    srv = StreamServer((HOST, port), handle, backlog=4096)
    srv.serve_forever()


def connrate_driver(proxy_port, echo_port, nconc, start_at, duration, proto):
    """gevent client: nconc greenlets loop connect → SOCKS5 → CONNECT → 64 B echo → close.
    Counts the loops that complete inside [start_at, start_at + duration]. Prints JSON."""
    import gevent
    from gevent import socket as gs

    payload = os.urandom(64)
    target = b"\x05\x01\x00\x01" + socket.inet_aton(HOST) + struct.pack("!H", echo_port)
    end = start_at + duration
    res = {"ok": 0, "err": 0, "errors": {}}

    def rx(s, n):
        buf = b""
        while len(buf) < n:
            d = s.recv(n - len(buf))
            if not d:
                raise ConnectionError("EOF")
            buf += d
        return buf

    def one():
        s = gs.socket(gs.AF_INET, gs.SOCK_STREAM)
        try:
            s.settimeout(10)
            s.setsockopt(gs.IPPROTO_TCP, gs.TCP_NODELAY, 1)
            if proto == "direct":
                s.connect((HOST, echo_port))
            else:
                s.connect((HOST, proxy_port))
                s.sendall(b"\x05\x01\x00")
                if rx(s, 2) != b"\x05\x00":
                    raise ConnectionError("method")
                s.sendall(target)
                h = rx(s, 4)
                if h[1] != 0:
                    raise ConnectionError(f"rep {h[1]}")
                rx(s, 6 if h[3] == 1 else 18 if h[3] == 4 else rx(s, 1)[0] + 2)
            s.sendall(payload)
            if rx(s, 64) != payload:
                raise ConnectionError("echo mismatch")
        finally:
            s.close()

    def worker():
        while True:
            now = time.time()
            if now >= end:
                return
            try:
                one()
            except (OSError, ConnectionError) as exc:
                if start_at <= time.time() <= end:
                    res["err"] += 1
                    k = type(exc).__name__ + ":" + str(exc)[:40]
                    res["errors"][k] = res["errors"].get(k, 0) + 1
                gevent.sleep(0.01)
                continue
            if now >= start_at and time.time() <= end:
                res["ok"] += 1

    gevent.sleep(max(0.0, start_at - time.time()))
    gevent.joinall([gevent.spawn(worker) for _ in range(nconc)], timeout=duration + 20)
    print(json.dumps(res), flush=True)


# --------------------------------------------------------------------------- proxies

PPROXY_SHIM = r"""
import asyncio, sys
mode = sys.argv.pop(1)
if mode == "uvloop":
    import uvloop
    def _install():  # pproxy calls uvloop.install() then asyncio.get_event_loop(): give it a loop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.set_event_loop(uvloop.new_event_loop())
    uvloop.install = _install
else:
    sys.modules["uvloop"] = None  # pproxy's `__import__('uvloop')` then raises ModuleNotFoundError
from pproxy.server import main
_orig = asyncio.get_event_loop
def _report():
    loop = _orig()
    print("bench-shim: event loop =", type(loop).__module__ + "." + type(loop).__qualname__, flush=True)
    return loop
asyncio.get_event_loop = _report
sys.argv[0] = "pproxy"
main()
"""


class Proxy:
    def __init__(self, name, kind, cmd_fn, has_http=True, env=None):
        self.name, self.kind, self.cmd_fn, self.has_http = name, kind, cmd_fn, has_http
        self.env = env
        self.socks_port = free_port()
        self.http_port = free_port() if has_http else None
        self.proc = None
        self.log_path = os.path.join(LOG_DIR[0], f"{name}.log")

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        cmd = self.cmd_fn(self)
        self.cmd = cmd
        self.logf = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=proxy_preexec, cwd=ROOT)
        for p in (self.socks_port, self.http_port):
            if p and not wait_port(p, self.proc):
                raise RuntimeError(f"{self.name} did not start listening on {p}; see {self.log_path}")

    def log_text(self, limit=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read(limit).decode("utf-8", "replace")
        except OSError:
            return ""


def gostg_cmd(level, root=ROOT, metrics=False, to_file=False):
    """``to_file``: the info lines go to a rotated log file (``log.output``), not to stderr;
    ``metrics``: Prometheus metrics on."""
    def f(p):
        cmd = [PY, os.path.join(root, "bin", "gostg"), "-L", f"socks5://{HOST}:{p.socks_port}",
               "-L", f"http://{HOST}:{p.http_port}"]
        log = {"level": level} if level else {}
        if to_file:
            log.update(output=os.path.join(LOG_DIR[0], f"{p.name}.out.log"), rotation={"maxSize": 100})
        if log:
            cmd += ["-C", json.dumps({"log": log})]
        if metrics:   # Prometheus metrics on (a Unix socket: no port to find; nobody scrapes)
            cmd += ["-metrics", f"unix://{tempfile.gettempdir()}/gostg-bench-{os.getpid()}-{p.socks_port}.sock"]
        return cmd
    return f


def pproxy_cmd(mode):
    def f(p):
        return [PY, "-c", PPROXY_SHIM, mode, "-l", f"socks5://{HOST}:{p.socks_port}",
                "-l", f"http://{HOST}:{p.http_port}"]
    return f


def pproxy_plain_cmd(p):
    return [os.path.join(ROOT, ".venv", "bin", "pproxy"), "-l", f"socks5://{HOST}:{p.socks_port}",
            "-l", f"http://{HOST}:{p.http_port}"]


def microsocks_cmd(p):
    return ["/usr/bin/microsocks", "-i", HOST, "-p", str(p.socks_port)]


V2RAY = "/usr/bin/v2ray"


def v2ray_cmd(p):
    """v2ray 4.x (``v2ray -config FILE``): a socks and an http inbound, a freedom outbound.
    Its access log (one line per connection) goes to a file, like gostg-info's info lines;
    errors at ``warning``, as gostg's default prints its warnings."""
    cfg = {"log": {"loglevel": "warning", "access": os.path.join(LOG_DIR[0], f"{p.name}-access.log")},
           "inbounds": [{"listen": HOST, "port": p.socks_port, "protocol": "socks",
                         "settings": {"auth": "noauth", "udp": False}},
                        {"listen": HOST, "port": p.http_port, "protocol": "http", "settings": {}}],
           "outbounds": [{"protocol": "freedom", "settings": {}}]}
    path = os.path.join(LOG_DIR[0], f"{p.name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return [V2RAY, "-config", path]


def check_pproxy_loop():
    """What happens when pproxy is started the ordinary way, with uvloop installed."""
    info = {}
    r = subprocess.run([PY, "-c", "import uvloop; print(uvloop.__version__)"], capture_output=True, text=True,
                       timeout=30)
    info["uvloop_importable"] = r.returncode == 0
    info["uvloop_version"] = r.stdout.strip() if r.returncode == 0 else None
    p = Proxy("pproxy-plain-check", "check", pproxy_plain_cmd)
    p.logf = open(p.log_path, "wb")
    proc = subprocess.Popen(pproxy_plain_cmd(p), stdout=p.logf, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        ok = wait_port(p.socks_port, proc, timeout=8)
    finally:
        terminate(proc)
        p.logf.close()
    text = p.log_text()
    info["plain_pproxy_runs"] = ok
    info["plain_pproxy_said_using_uvloop"] = "Using uvloop" in text
    last = [ln for ln in text.strip().splitlines() if ln.strip()]
    info["plain_pproxy_last_line"] = last[-1][:160] if last else ""
    return info


# --------------------------------------------------------------------------- measurements

def measure_throughput(proxy, proto, direction, size, sink_port, other_pids=()):
    """One stream through the proxy. → (MB/s, proxy CPU s/GiB or None).
    other_pids: more processes whose CPU s/GiB over the same window goes to .last_other (a list)."""
    s = open_tunnel(proto, proxy.socks_port if proto != "http" else proxy.http_port, sink_port)
    try:
        buf = bytearray(CHUNK)
        mv = memoryview(buf)
        pid = proxy.pid if proxy.proc else None
        o0 = [cpu_seconds(x) for x in other_pids]
        u0, c0 = cpu_split(pid) if pid else (0.0, 0.0)
        c0 += u0
        f0 = minflt(pid) if pid else 0
        b0, tot0 = machine_busy()
        t0 = time.perf_counter()
        if direction == "up":
            s.sendall(HDR.pack(b"UPLD", size))
            left = size
            while left > 0:
                n = min(CHUNK, left)
                s.sendall(mv[:n])
                left -= n
            if recv_exact(s, 2) != b"OK":
                raise ConnectionError("sink did not acknowledge")
        else:
            s.sendall(HDR.pack(b"DNLD", size))
            got = 0
            while got < size:
                n = s.recv_into(buf, min(CHUNK, size - got))
                if not n:
                    raise ConnectionError(f"EOF after {got}/{size}")
                got += n
        dt = time.perf_counter() - t0
        u1, c1 = cpu_split(pid) if pid else (0.0, 0.0)
        o1 = [cpu_seconds(x) for x in other_pids]
        c1 += u1
        f1 = minflt(pid) if pid else 0
        b1, tot1 = machine_busy()
    finally:
        s.close()
    measure_throughput.last_other = [(b - a) / (size / GiB) for a, b in zip(o0, o1)]
    measure_throughput.last_faults = (f1 - f0) / (size / GiB) if pid else None
    measure_throughput.last_busy = (b1 - b0) / max(1, tot1 - tot0)  # share of all CPUs busy
    measure_throughput.last_user = (u1 - u0) / (size / GiB) if pid else None
    return size / dt / 1e6, ((c1 - c0) / (size / GiB) if pid else None)


def measure_connrate(proxy, echo_port, duration, procs, conc):
    """→ (conn/s, errors, proxy CPU µs per connection)."""
    proto = "direct" if proxy.proc is None else "socks5"
    start_at = time.time() + 1.5  # let the drivers import gevent and spawn first
    per = [conc // procs + (1 if i < conc % procs else 0) for i in range(procs)]
    drivers = []
    try:
        for n in per:
            drivers.append(subprocess.Popen(
                [PY, os.path.abspath(__file__), "_connrate", str(proxy.socks_port or 0), str(echo_port), str(n),
                 repr(start_at), str(duration), proto], stdout=subprocess.PIPE, preexec_fn=other_preexec))
        time.sleep(max(0.0, start_at - time.time()))
        u0, s0 = cpu_split(proxy.pid) if proxy.proc else (0.0, 0.0)
        time.sleep(duration)
        u1, s1 = cpu_split(proxy.pid) if proxy.proc else (0.0, 0.0)
        c0, c1 = u0 + s0, u1 + s1
        ok = err = 0
        errors = {}
        for d in drivers:
            out, _ = d.communicate(timeout=duration + 30)
            r = json.loads(out.decode().strip().splitlines()[-1])
            ok += r["ok"]
            err += r["err"]
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
    finally:
        for d in drivers:
            if d.poll() is None:
                d.kill()
                d.wait(5)
    rate = ok / duration
    cpu_us = (c1 - c0) / ok * 1e6 if (proxy.proc and ok) else None
    measure_connrate.last_user_us = (u1 - u0) / ok * 1e6 if (proxy.proc and ok) else None
    return rate, err, errors, cpu_us


def interleaved_connrate(cols, echo_port, duration, repeat, procs, conc, each=None):
    """One unmeasured 1 s warm-up per proxy, then ``repeat`` rounds that take each proxy of
    ``cols`` in turn (so drift on the box falls on every column alike) →
    ({name: [conn/s]}, {name: [CPU µs/conn]}, {name: errors}). ``each(proxy, round, run)`` wraps
    every measurement (``run()`` → bench.py's measure_connrate result) and returns that result,
    for a caller that counts something around it."""
    for p in cols:
        measure_connrate(p, echo_port, 1.0, procs, conc)
    rates = {p.name: [] for p in cols}
    cpus = {p.name: [] for p in cols}
    errs = {p.name: 0 for p in cols}
    for rnd in range(repeat):
        for p in cols:
            def run(p=p):
                return measure_connrate(p, echo_port, duration, procs, conc)
            rate, err, _, cpu_us = each(p, rnd, run) if each is not None else run()
            rates[p.name].append(rate)
            errs[p.name] += err
            if cpu_us is not None:
                cpus[p.name].append(cpu_us)
    return rates, cpus, errs


def measure_rss(proxy, echo_port, ntunnels, warmup=50):
    """→ (RSS before KiB, RSS with tunnels KiB, per-tunnel KiB)."""
    msg = b"x" * 32
    for _ in range(warmup):  # first-use allocations (imports, pools) are not per-tunnel cost
        s = open_tunnel("socks5", proxy.socks_port, echo_port, timeout=10)
        with s:
            s.sendall(msg)
            recv_exact(s, len(msg))
    time.sleep(1.0)
    before = rss_kib(proxy.pid)
    socks = []
    try:
        for _ in range(ntunnels):
            s = open_tunnel("socks5", proxy.socks_port, echo_port, timeout=10)
            socks.append(s)
            s.sendall(msg)
            if recv_exact(s, len(msg)) != msg:
                raise ConnectionError("echo mismatch")
        time.sleep(1.5)  # idle
        samples = []
        for _ in range(3):
            time.sleep(0.2)
            samples.append(rss_kib(proxy.pid))
        with_t = max(samples)
    finally:
        for s in socks:
            s.close()
    time.sleep(1.0)
    after = rss_kib(proxy.pid)
    return before, with_t, (with_t - before) / ntunnels, after


# --------------------------------------------------------------------------- transport chain

#: chain-hop transports for --tests transport: (label, scheme of the hop -F / back -L, with
#: an optional ?query that both ends get)
TRANSPORTS = [("tcp", "socks5"), ("tls", "socks5+tls"), ("ws", "socks5+ws"), ("wss", "socks5+wss"),
              ("relay", "relay"), ("relay+tls", "relay+tls"),
              ("mtcp", "socks5+mtcp"), ("mtcp-v1", "socks5+mtcp?mux.version=1"),
              ("mtcp-yamux", "socks5+mtcp?mux.type=yamux"),
              ("mtcp-1mib", "socks5+mtcp?mux.maxStreamBuffer=1048576"),
              ("mtls", "socks5+mtls"), ("mtls-v2", "socks5+mtls?mux.version=2"),
              ("mtls-yamux", "socks5+mtls?mux.type=yamux"), ("mws", "socks5+mws"), ("mwss", "socks5+mwss"),
              ("http2", "http2"), ("h2", "socks5+h2"), ("h2c", "socks5+h2c")]


def transport_chain(label, scheme, home):
    """(front, back) Proxy objects, not started: client → front socks5 → scheme hop → back → sink."""
    level = json.dumps({"log": {"level": "error"}})
    gostg = os.path.join(ROOT, "bin", "gostg")
    tag = label.replace("+", "-")
    scheme, _, query = scheme.partition("?")
    query = f"?{query}" if query else ""
    back = Proxy(f"transport-{tag}-back", "gostg",
                 lambda p: [PY, gostg, "-L", f"{scheme}://{HOST}:{p.socks_port}{query}", "-C", level],
                 has_http=False, env={"HOME": home})
    front = Proxy(f"transport-{tag}-front", "gostg",
                  lambda p: [PY, gostg, "-L", f"socks5://{HOST}:{p.socks_port}",
                             "-F", f"{scheme}://{HOST}:{back.socks_port}{query}", "-C", level],
                  has_http=False, env={"HOME": home})
    return front, back


def run_transport(args, sink_port, started):
    """Two-process gostg chain per hop transport; interleaved rounds; → (rows, sizes).
    Processes are appended to `started` as soon as they exist so the caller's finally stops them."""
    import tempfile
    home = tempfile.mkdtemp(prefix="gostg-bench-home-")
    started.append(("home", home))
    chains = []
    for label, scheme in TRANSPORTS:
        front, back = transport_chain(label, scheme, home)
        for p in (back, front):  # back first: it generates the self-signed certificate under $HOME/.gost
            started.append(p)
            p.start()
        chains.append((label, scheme, front, back))
        hop, _, query = scheme.partition("?")
        print(f"transport {label:9s} front pid={front.pid} :{front.socks_port} -F {hop}://{HOST}:"
              f"{back.socks_port}{'?' if query else ''}{query}  back pid={back.pid}", flush=True)
    sizes = {label: (args.transport_ws_size if "ws" in label else args.size) for label, *_ in chains}
    failed = {}  # label → first error; a failing hop is reported as such, the other rows still run
    for label, scheme, front, back in chains:  # unmeasured warm-up: handshakes, first-use allocations
        for d in ("up", "down"):
            try:
                measure_throughput(front, "socks5", d, min(8 << 20, sizes[label]), sink_port)
            except (OSError, ConnectionError) as exc:
                failed.setdefault(label, f"{d}: {type(exc).__name__}: {exc}")
                print(f"transport {label:9s} warm-up {d} FAILED: {exc!r}", flush=True)
    runs = {(label, d): ([], [], []) for label, *_ in chains for d in ("up", "down")}
    for rnd in range(args.repeat):
        for label, scheme, front, back in chains:
            for d in ("up", "down"):
                if label in failed:
                    continue
                try:
                    m, cf = measure_throughput(front, "socks5", d, sizes[label], sink_port,
                                               other_pids=(back.pid,))
                except (OSError, ConnectionError) as exc:
                    failed.setdefault(label, f"{d}: {type(exc).__name__}: {exc}")
                    print(f"transport {label:9s} {d} FAILED: {exc!r}", flush=True)
                    continue
                cb = measure_throughput.last_other[0]
                mbs, cfs, cbs = runs[(label, d)]
                mbs.append(m)
                cfs.append(cf)
                cbs.append(cb)
                print(f"transport {label:9s} round {rnd + 1} {d:4s} {m:8.1f} MB/s  front CPU {cf:.2f} s/GiB  "
                      f"back CPU {cb:.2f} s/GiB  ({sizes[label] / (1 << 20):g} MiB)", flush=True)
    for label, scheme, front, back in chains:
        for p in (front, back):
            if p.proc.poll() is not None:
                failed.setdefault(label, f"{p.name} exited (rc={p.proc.returncode}); see {p.log_path}")
    res = {}
    for (label, d), (mbs, cfs, cbs) in runs.items():
        res[(label, d)] = ((statistics.median(mbs), statistics.median(cfs), statistics.median(cbs))
                           if mbs and label not in failed else (None, None, None))
    res["failed"] = failed
    return res, sizes


def transport_report(res, sizes, args):
    def pair(a, b, nd):
        return f"{fmt(a, nd)} / {fmt(b, nd)}"

    def rel(label, i):
        return [ratio(res[(label, d)][i], res[("tcp", d)][i]) for d in ("up", "down")]

    lines = ["| hop transport (`-F`) | MiB per run | MB/s up / down | front CPU s/GiB up / down | "
             "back CPU s/GiB up / down | MB/s ÷ tcp up / down | front CPU ÷ tcp up / down | "
             "back CPU ÷ tcp up / down |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, scheme in TRANSPORTS:
        if label in res["failed"]:
            lines.append(f"| `{scheme}` | {sizes[label] / (1 << 20):g} | FAILED: {res['failed'][label][:80]} |"
                         " – | – | – | – | – |")
            continue
        u, dn = res[(label, "up")], res[(label, "down")]
        cells = [f"`{scheme}`", f"{sizes[label] / (1 << 20):g}", pair(u[0], dn[0], 0), pair(u[1], dn[1], 2),
                 pair(u[2], dn[2], 2)]
        for i in (0, 1, 2):
            a, b = rel(label, i)
            cells.append(f"{fmt(a, 2)}× / {fmt(b, 2)}×")
        lines.append("| " + " | ".join(cells) + " |")
    notes = (f"Chain: client → gostg front `-L socks5://{HOST}:F -F <hop>://{HOST}:B` → gostg back "
             f"`-L <hop>://{HOST}:B` → sink, both gostg at log level error, HOME = a temp dir (self-signed "
             f"certificate generated there). One stream per run, median of {args.repeat} interleaved rounds. "
             f"CPU = utime+stime of each gostg process over the transfer, per GiB moved. "
             f"÷ tcp: the row divided by the plain `socks5` (tcp) hop; for MB/s higher is better, for CPU "
             f"lower is better.")
    if any(sizes[label] != args.size for label, _ in TRANSPORTS):
        notes += (f" The ws/wss rows move {args.transport_ws_size / (1 << 20):g} MiB per run "
                  f"(--transport-ws-size), the others {args.size / (1 << 20):g} MiB.")
    for label, err in res["failed"].items():
        notes += f" `{dict(TRANSPORTS)[label]}` failed: {err}."
    return "\n".join(lines), notes


# --------------------------------------------------------------------------- shadowsocks

#: --tests ss: ciphers measured, and the shared password
SS_CIPHERS = ["aes-128-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"]
SS_PASSWORD = "bench-password"
SS_SERVERS = ("gostg", "ss-server")


def ss_pair(server, method):
    """(front, back) Proxy objects, not started: client → ss-local (SOCKS5) → back ss server → sink."""
    level = json.dumps({"log": {"level": "error"}})
    gostg = os.path.join(ROOT, "bin", "gostg")
    if server == "gostg":
        cmd = lambda p: [PY, gostg, "-L", f"ss://{method}:{SS_PASSWORD}@{HOST}:{p.socks_port}", "-C", level]  # noqa: E731
    else:
        cmd = lambda p: ["ss-server", "-s", HOST, "-p", str(p.socks_port), "-k", SS_PASSWORD, "-m", method]  # noqa: E731
    back = Proxy(f"ss-{server}-{method}-back", server, cmd, has_http=False)
    front = Proxy(f"ss-{server}-{method}-front", "ss-local",
                  lambda p: ["ss-local", "-s", HOST, "-p", str(back.socks_port), "-b", HOST, "-l", str(p.socks_port),
                             "-k", SS_PASSWORD, "-m", method], has_http=False)
    return front, back


def run_ss(args, sink_port, started):
    """ss-local in front of gostg's ss server and of shadowsocks-libev's ss-server, per cipher;
    interleaved rounds; → {(server, method, dir): (MB/s, server CPU s/GiB)} plus "failed"."""
    pairs = []
    for method in SS_CIPHERS:
        for server in SS_SERVERS:
            front, back = ss_pair(server, method)
            for p in (back, front):
                started.append(p)
                p.start()
            pairs.append((server, method, front, back))
            print(f"ss {server:9s} {method:22s} ss-local pid={front.pid} :{front.socks_port} → back pid={back.pid} "
                  f":{back.socks_port}", flush=True)
    failed = {}
    runs = {(srv, m, d): ([], []) for srv, m, *_ in pairs for d in ("up", "down")}
    for srv, m, front, back in pairs:  # unmeasured warm-up
        for d in ("up", "down"):
            try:
                measure_throughput(front, "socks5", d, min(8 << 20, args.size), sink_port)
            except (OSError, ConnectionError) as exc:
                failed.setdefault((srv, m), f"{d}: {type(exc).__name__}: {exc}")
    for rnd in range(args.repeat):
        for srv, m, front, back in pairs:
            for d in ("up", "down"):
                if (srv, m) in failed:
                    continue
                try:
                    mbs, _ = measure_throughput(front, "socks5", d, args.size, sink_port, other_pids=(back.pid,))
                except (OSError, ConnectionError) as exc:
                    failed.setdefault((srv, m), f"{d}: {type(exc).__name__}: {exc}")
                    continue
                cpu = measure_throughput.last_other[0]
                runs[(srv, m, d)][0].append(mbs)
                runs[(srv, m, d)][1].append(cpu)
                print(f"ss {srv:9s} {m:22s} round {rnd + 1} {d:4s} {mbs:8.1f} MB/s  server CPU {cpu:.2f} s/GiB",
                      flush=True)
    res = {k: ((statistics.median(v[0]), statistics.median(v[1])) if v[0] and k[:2] not in failed else (None, None))
           for k, v in runs.items()}
    res["failed"] = failed
    return res


def ss_report(res, args):
    lines = ["| cipher | gostg MB/s up / down | ss-server MB/s up / down | gostg ÷ ss-server MB/s | "
             "gostg CPU s/GiB up / down | ss-server CPU s/GiB up / down | gostg ÷ ss-server CPU |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m in SS_CIPHERS:
        g = [res[("gostg", m, d)] for d in ("up", "down")]
        x = [res[("ss-server", m, d)] for d in ("up", "down")]
        cells = [f"`{m}`"]
        for i, nd in ((0, 0), (1, 2)):  # MB/s, then server CPU s/GiB
            cells += [f"{fmt(g[0][i], nd)} / {fmt(g[1][i], nd)}", f"{fmt(x[0][i], nd)} / {fmt(x[1][i], nd)}",
                      f"{fmt(ratio(g[0][i], x[0][i]), 2)}× / {fmt(ratio(g[1][i], x[1][i]), 2)}×"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = (f"Client → ss-local (shadowsocks-libev, SOCKS5 on {HOST}) → the ss server → sink; one stream per run, "
             f"{args.size / (1 << 20):g} MiB, median of {args.repeat} interleaved rounds. gostg runs "
             f"`-L ss://<cipher>:<pass>@{HOST}:P` at log level error; ss-server runs with the same cipher and "
             f"password. CPU = utime+stime of the server process per GiB moved (ss-local's CPU is not counted; "
             f"it is the same client for both). For MB/s higher is better, for CPU lower is better.")
    for (srv, m), err in res["failed"].items():
        notes += f" {srv} {m} failed: {err}."
    return "\n".join(lines), notes


#: --tests bypass: rules in the big bypass (mixed kinds; none matches the 127.0.0.1 echo target)
BYPASS_RULES = 100_000


def bypass_rules(n):
    """n GOST bypass rules: exact names, .suffixes, *.globs, IPs, CIDRs, IP ranges, name:port."""
    out = []
    for i in range(n):
        a, b, c = (i >> 16) & 255, (i >> 8) & 255, i & 255
        out.append((f"site{i}.example", f".zone{i}.net", f"*.wild{i}.org", f"11.{a}.{b}.{c}",
                    f"12.{a}.{b}.0/24", f"13.{a}.{b}.1-13.{a}.{b}.9", f"svc{i}.lan:{1 + i % 60000}")[i % 7])
    return out


def run_bypass(args, echo_port, started):
    """gostg socks5 without a bypass vs with a BYPASS_RULES-rule bypass (loaded from a file), same
    non-matching target; interleaved conn/s rounds. → {label: (conn/s, CPU µs/conn, RSS KiB, errors)}."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="gostg-bench-bypass-")
    started.append(("home", tmp))
    rules = os.path.join(tmp, "bypass.txt")
    with open(rules, "w") as f:
        f.write("\n".join(bypass_rules(BYPASS_RULES)) + "\n")
    gostg = os.path.join(ROOT, "bin", "gostg")

    def cfg_cmd(with_bypass):
        def f(p):
            svc = {"name": "s", "addr": f"{HOST}:{p.socks_port}", "handler": {"type": "socks5"},
                   "listener": {"type": "tcp"}}
            cfg = {"services": [svc], "log": {"level": "error"}}
            if with_bypass:
                svc["bypass"] = "big"
                cfg["bypasses"] = [{"name": "big", "file": {"path": rules}}]
            path = os.path.join(tmp, f"{p.name}.json")
            with open(path, "w") as out:
                json.dump(cfg, out)
            return [PY, gostg, "-C", path]
        return f

    cols = [Proxy("bypass-none", "gostg", cfg_cmd(False), has_http=False),
            Proxy(f"bypass-{BYPASS_RULES // 1000}k", "gostg", cfg_cmd(True), has_http=False)]
    for p in cols:
        started.append(p)
        t0 = time.monotonic()
        p.start()
        print(f"bypass {p.name:12s} pid={p.pid} :{p.socks_port} up in {time.monotonic() - t0:.2f}s", flush=True)
    for p in cols:  # unmeasured warm-up
        measure_connrate(p, echo_port, 1.0, args.procs, args.conc)
    rates = {p.name: [] for p in cols}
    cpus = {p.name: [] for p in cols}
    errs = {p.name: 0 for p in cols}
    for rnd in range(args.conn_repeat):
        for p in cols:
            rate, err, _, cpu_us = measure_connrate(p, echo_port, args.duration, args.procs, args.conc)
            rates[p.name].append(rate)
            if cpu_us is not None:
                cpus[p.name].append(cpu_us)
            errs[p.name] += err
            print(f"bypass {p.name:12s} round {rnd + 1}: {rate:8.0f} conn/s  errors={err}  proxy CPU "
                  f"{fmt(cpu_us)} µs/conn", flush=True)
            time.sleep(0.5)
    out = {}
    for p in cols:
        if p.proc.poll() is not None:
            raise RuntimeError(f"{p.name} exited early (rc={p.proc.returncode}); see {p.log_path}")
        out[p.name] = (statistics.median(rates[p.name]), statistics.median(cpus[p.name]) if cpus[p.name] else None,
                       rss_kib(p.pid), errs[p.name], min(cpus[p.name]) if cpus[p.name] else None)
    return out


def bypass_report(res, args):
    (n0, r0), (n1, r1) = list(res.items())
    lines = ["| gostg socks5 | conn/s | CPU µs/conn | lowest CPU µs/conn | RSS KiB | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, (rate, cpu, rss, err, cpu_min) in res.items():
        lines.append(f"| {name} | {fmt(rate)} | {fmt(cpu)} | {fmt(cpu_min)} | {fmt(rss)} | {err} |")
    slower = (1 - r1[0] / r0[0]) * 100 if r0[0] else None
    cpu = ratio(r1[1], r0[1])
    # noise on a shared machine only adds CPU: the least disturbed round of each side is the
    # steadiest estimate of what a connection costs
    cpu_low = ratio(r1[4], r0[4])
    lines.append("")
    lines.append(f"With the {BYPASS_RULES:,}-rule bypass: conn/s {fmt(slower, 1)}% lower (target < 5%), "
                 f"CPU per connection {fmt(cpu, 2)}× the no-bypass run (lowest round each side: "
                 f"{fmt(cpu_low, 2)}×). Rules: exact names, .suffixes, "
                 f"*.globs, IPs, /24 CIDRs, IP ranges and name:port in equal shares, loaded from a file; the "
                 f"target (127.0.0.1:echo) matches none, so every connection pays a full lookup. "
                 f"{args.conc} clients in {args.procs} processes, median of {args.conn_repeat} interleaved "
                 f"rounds of {args.duration:g}s (connect + SOCKS5 CONNECT + 64 B echo + close).")
    return "\n".join(lines)


# --------------------------------------------------------------------------- report

def fmt(v, nd=0):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return f"{v:,.{nd}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def build_report(env, proxies, res, args):
    names = [p.name for p in proxies]
    rows = []  # (label, key, decimals, better)
    for proto in ("socks5", "http"):
        for d in ("up", "down"):
            rows.append((f"{proto.upper()} {d}load MB/s (warm)", ("tput", proto, d, "warm"), 0, "higher"))
            rows.append((f"{proto.upper()} {d}load proxy CPU s/GiB (warm)", ("cpu", proto, d, "warm"), 2, "lower"))
    for d in ("up", "down"):
        rows.append((f"SOCKS5 {d}load: proxy user-space CPU s/GiB (warm)", ("usr", "socks5", d, "warm"), 2, "lower"))
    for d in ("up", "down"):
        rows.append((f"SOCKS5 {d}load: all CPUs busy % (warm)", ("busy", "socks5", d, "warm"), 0, "info"))
    for d in ("up", "down"):
        rows.append((f"fresh proxy: SOCKS5 {d}load MB/s", ("tput", "socks5", d, "fresh"), 0, "higher"))
        rows.append((f"fresh proxy: SOCKS5 {d}load CPU s/GiB", ("cpu", "socks5", d, "fresh"), 2, "lower"))
        rows.append((f"fresh proxy: SOCKS5 {d}load minor faults/GiB", ("flt", "socks5", d, "fresh"), 0, "lower"))
    rows.append(("SOCKS5 conn/s (50 clients)", ("conn",), 0, "higher"))
    rows.append(("proxy CPU µs per connection", ("conncpu",), 0, "lower"))
    rows.append(("… of which user-space µs", ("connusr",), 0, "lower"))
    rows.append(("RSS per idle tunnel KiB", ("rss",), 1, "lower"))
    rows.append(("RSS before tunnels MiB", ("rss0",), 1, "lower"))
    main = "gostg"
    peers = [n for n in names if n not in ("gostg", "direct")]
    lines = []
    peers = [p for p in peers if p in ("gostg-before", "gostg-metrics") or not p.startswith("gostg")]  # ratio columns
    hdr = ["metric"] + names + [f"gostg/{p}" for p in peers] + ["better"]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 2) + [":---:"]) + "|")
    for label, key, nd, better in rows:
        vals = [res.get(n, {}).get(key) for n in names]
        if all(v is None for v in vals):
            continue
        cells = [label] + [fmt(v, nd) for v in vals]
        g = res.get(main, {}).get(key)
        for p in peers:
            r = ratio(g, res.get(p, {}).get(key))
            cells.append(fmt(r, 2) + "×" if r is not None else "–")
        cells.append(better)
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)

    # targets from the issue: vs pproxy on uvloop
    pp = "pproxy-uvloop"
    tg = []

    def check(label, val, target, ok):
        tg.append(f"| {label} | {fmt(val, 1 if 'KiB' in label else 3)}{'×' if 'KiB' not in label else ''} | {target} | "
                  f"{'PASS' if ok else ('MISS' if val is not None else '–')} |")

    for state in ("warm", "fresh"):
        for proto in ("socks5", "http"):
            for d in ("up", "down"):
                k = ("tput", proto, d, state)
                r = ratio(res.get(main, {}).get(k), res.get(pp, {}).get(k))
                if r is not None:
                    check(f"{proto.upper()} {d}load throughput gostg/{pp} ({state})", r, "≥ 1.5×", r >= 1.5)
    r = ratio(res.get(main, {}).get(("conn",)), res.get(pp, {}).get(("conn",)))
    check(f"SOCKS5 conn/s gostg/{pp}", r, "≥ 1.0×", r is not None and r >= 1.0)
    v = res.get(main, {}).get(("rss",))
    check("gostg RSS per idle tunnel KiB", v, "≤ 16 KiB", v is not None and v <= 16)
    # issue 13: per-connection cost against v2ray, idle memory against pproxy on uvloop
    for key, label, target, ok in ((("conn",), "SOCKS5 conn/s", "≥ 0.8×", lambda r: r >= 0.8),
                                   (("conncpu",), "proxy CPU per connection", "≤ 1.3×", lambda r: r <= 1.3)):
        r = ratio(res.get(main, {}).get(key), res.get("v2ray", {}).get(key))
        if r is not None:
            check(f"{label} gostg/v2ray", r, target, ok(r))
        r = res.get(main, {}).get(("paired",) + key + ("v2ray",))
        if r is not None:
            check(f"{label} gostg/v2ray, median of per-round ratios", r, target, ok(r))
    r = ratio(v, res.get(pp, {}).get(("rss",)))
    if r is not None:
        check(f"RSS per idle tunnel gostg/{pp}", r, "≤ 1.0×", r <= 1.0)
    targets = "| target | value | goal | |\n|---|---:|---|:---:|\n" + "\n".join(tg)

    envl = [f"- gostg code measured: sha256(gostg/**/*.py, bin/gostg) = {env['code'][0]}, newest file "
            f"modified {env['code'][1]} UTC",
            f"- host: {env['nproc']} CPU ({env['cpu']}), Linux {env['kernel']}, Python {env['python']}, "
            f"gevent {env.get('gevent')}, uvloop {env['pproxy'].get('uvloop_version')}",
            f"- size per throughput run: {args.size / GiB:g} GiB ({args.size:,} B), repeats: {args.repeat} "
            f"(median shown); conn/s: {args.conc} clients in {args.procs} gevent processes, {args.duration:g} s × {args.conn_repeat} interleaved rounds (median); "
            f"idle tunnels: {args.tunnels}",
            "- client, proxy, sink/echo share the same CPUs: absolute numbers are pessimistic; "
            "compare columns, not against other machines"
            + (f"; --pin: proxies on CPU {sorted(PIN['proxy'])}, client/sink/echo on CPU {sorted(PIN['other'])}"
               if args.pin else " (no CPU pinning)"),
            f"- pproxy launched plainly (`.venv/bin/pproxy`): runs={env['pproxy']['plain_pproxy_runs']}, "
            f"printed 'Using uvloop'={env['pproxy']['plain_pproxy_said_using_uvloop']}, "
            f"last line: `{env['pproxy']['plain_pproxy_last_line']}`",
            ]
    for p in proxies:
        if p.kind == "pproxy":
            envl.append(f"- {p.name}: {env.get('loops', {}).get(p.name, '?')}")
    envl.append("- MB = 10^6 bytes; CPU = utime+stime of the proxy process from /proc/<pid>/stat")
    if env.get("conn_errors"):
        envl.append(f"- conn/s errors: {json.dumps(env['conn_errors'])}")
    return table, targets, "\n".join(envl)


# --------------------------------------------------------------------------- main

def run(args):
    LOG_DIR[0] = os.path.join(OUT, "logs", os.path.splitext(args.out)[0])
    os.makedirs(LOG_DIR[0], exist_ok=True)
    nofile = raise_nofile()
    if args.pin:
        n = os.cpu_count()
        PIN["proxy"], PIN["other"] = {n - 1}, set(range(n - 1)) or {0}
        _pin("other")
    if nofile[0] < 2 * args.tunnels + 100:
        print(f"warning: RLIMIT_NOFILE {nofile} may be too low for {args.tunnels} tunnels", file=sys.stderr)
    env = {"nproc": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    r = subprocess.run([PY, "-c", "import gevent; print(gevent.__version__)"], capture_output=True, text=True,
                       timeout=30)
    env["gevent"] = r.stdout.strip()
    env["code"] = code_fingerprint()
    only_transport = set(args.tests) <= {"transport", "bypass", "ss"}
    if only_transport:  # gostg-only modes: the side-by-side proxies are not started
        args.proxies, args.direct = [], False
    else:
        env["pproxy"] = check_pproxy_loop()
        print(f"pproxy loop check: {env['pproxy']}", flush=True)

    all_proxies = {
        "gostg": lambda: Proxy("gostg", "gostg", gostg_cmd("error")),
        "gostg-info": lambda: Proxy("gostg-info", "gostg", gostg_cmd(None)),
        "gostg-metrics": lambda: Proxy("gostg-metrics", "gostg", gostg_cmd("error", metrics=True)),
        "gostg-info-file": lambda: Proxy("gostg-info-file", "gostg", gostg_cmd(None, to_file=True)),
        "gostg-before": lambda: Proxy("gostg-before", "gostg", gostg_cmd("error", BEFORE_ROOT)),
        "gostg-before-info": lambda: Proxy("gostg-before-info", "gostg", gostg_cmd(None, BEFORE_ROOT)),
        "pproxy-uvloop": lambda: Proxy("pproxy-uvloop", "pproxy",
                                       pproxy_plain_cmd if env["pproxy"]["plain_pproxy_runs"]
                                       else pproxy_cmd("uvloop")),
        "pproxy-asyncio": lambda: Proxy("pproxy-asyncio", "pproxy", pproxy_cmd("asyncio")),
        "microsocks": lambda: Proxy("microsocks", "microsocks", microsocks_cmd, has_http=False),
        "v2ray": lambda: Proxy("v2ray", "v2ray", v2ray_cmd),
    }
    proxies = [all_proxies[n]() for n in args.proxies]
    direct = Proxy.__new__(Proxy)
    direct.name, direct.kind, direct.proc, direct.has_http = "direct", "direct", None, True
    direct.socks_port = direct.http_port = None
    columns = ([direct] if args.direct else []) + proxies

    helpers = []
    transport_procs = []  # --tests transport: chain Proxy objects (and its temp HOME), stopped in finally
    transport = None
    bypass = None
    ssres = None
    res = {p.name: {} for p in columns}
    conn_errors = {}
    sink_port, echo_port = free_port(), free_port()
    try:
        for sub, port in (("_sinksrc", sink_port), ("_echo", echo_port)):
            h = subprocess.Popen([PY, os.path.abspath(__file__), sub, str(port)], preexec_fn=other_preexec)
            helpers.append(h)
            if not wait_port(port, h):
                raise RuntimeError(f"helper {sub} did not start")
        for p in proxies:
            p.start()
            print(f"started {p.name} pid={p.pid} socks={p.socks_port} http={p.http_port}", flush=True)
        time.sleep(1.0)
        env["loops"] = {}
        for p in proxies:
            if p.kind == "pproxy":
                t = p.log_text()
                loop = [ln for ln in t.splitlines() if "event loop" in ln or "Using uvloop" in ln]
                env["loops"][p.name] = "; ".join(loop) or "no loop line printed (stock asyncio loop)"
                print(f"{p.name}: {env['loops'][p.name]}", flush=True)

        def test_rss():
            for p in proxies:
                b, w, per, after = measure_rss(p, echo_port, args.tunnels)
                res[p.name][("rss",)] = per
                res[p.name][("rss0",)] = b / 1024
                print(f"rss   {p.name:15s} before={b} KiB with={w} KiB after-close={after} KiB "
                      f"-> {per:.1f} KiB/tunnel", flush=True)
                time.sleep(1.0)

        def test_conn():
            # interleaved rounds, so a slow phase of the machine hits every column alike
            rates = {p.name: [] for p in columns}
            cpus = {p.name: [] for p in columns}
            users = {p.name: [] for p in columns}
            for p in columns:  # unmeasured warm-up round
                measure_connrate(p, echo_port, 1.0, args.procs, args.conc)
            for rnd in range(args.conn_repeat):
                for p in columns:
                    rate, err, errors, cpu_us = measure_connrate(p, echo_port, args.duration, args.procs,
                                                                 args.conc)
                    rates[p.name].append(rate)
                    if cpu_us is not None:
                        cpus[p.name].append(cpu_us)
                        users[p.name].append(measure_connrate.last_user_us)
                    if err:
                        conn_errors.setdefault(p.name, {})
                        for k, v in errors.items():
                            conn_errors[p.name][k] = conn_errors[p.name].get(k, 0) + v
                    print(f"conn  {p.name:15s} round {rnd + 1}: {rate:8.0f} conn/s  errors={err}  proxy CPU "
                          f"{fmt(cpu_us)} µs/conn (user {fmt(measure_connrate.last_user_us)})", flush=True)
                    time.sleep(1.0)
            for p in columns:
                res[p.name][("conn",)] = statistics.median(rates[p.name])
                res[p.name][("conncpu",)] = statistics.median(cpus[p.name]) if cpus[p.name] else None
                res[p.name][("connusr",)] = statistics.median(users[p.name]) if users[p.name] else None
            # the machine's load drifts between rounds (other work on a shared box): the ratio
            # of two columns taken round by round, then the median, compares like with like
            for key, per in ((("conn",), rates), (("conncpu",), cpus)):
                g = per.get("gostg", [])
                for p in columns:
                    q = per[p.name]
                    if p.name != "gostg" and len(q) == len(g) and g:
                        res["gostg"][("paired",) + key + (p.name,)] = statistics.median(
                            a / b for a, b in zip(g, q) if b)

        def test_tput(state="warm", protos=("socks5", "http")):
            # rounds interleave the proxies, so a slow phase of the machine hits every column alike
            cells = [(p, proto, d) for p in columns for proto in protos for d in ("up", "down")
                     if proto != "http" or p.has_http]
            runs = {(p.name, proto, d): ([], [], []) for p, proto, d in cells}
            busy = {(p.name, proto, d): [] for p, proto, d in cells}
            users = {(p.name, proto, d): [] for p, proto, d in cells}
            for rnd in range(args.repeat):
                for p, proto, d in cells:
                    m, c = measure_throughput(p, "direct" if p.proc is None else proto, d, args.size, sink_port)
                    mbs, cpus, faults = runs[(p.name, proto, d)]
                    busy[(p.name, proto, d)].append(measure_throughput.last_busy)
                    if c is not None:
                        users[(p.name, proto, d)].append(measure_throughput.last_user)
                    mbs.append(m)
                    if c is not None:
                        cpus.append(c)
                        faults.append(measure_throughput.last_faults)
            for p, proto, d in cells:
                mbs, cpus, faults = runs[(p.name, proto, d)]
                r = res[p.name]
                r[("tput", proto, d, state)] = statistics.median(mbs)
                r[("cpu", proto, d, state)] = statistics.median(cpus) if cpus else None
                r[("flt", proto, d, state)] = statistics.median(faults) if faults else None
                r[("busy", proto, d, state)] = 100 * statistics.median(busy[(p.name, proto, d)])
                u = users[(p.name, proto, d)]
                r[("usr", proto, d, state)] = statistics.median(u) if u else None
                print(f"tput  {p.name:15s} {state:5s} {proto:6s} {d:4s} {statistics.median(mbs):8.0f} MB/s "
                      f"(runs: {', '.join(f'{m:.0f}' for m in mbs)})  proxy CPU "
                      f"{fmt(r[('cpu', proto, d, state)], 2)} s/GiB (runs: {', '.join(f'{c:.2f}' for c in cpus)}; "
                      f"user {fmt(r[('usr', proto, d, state)], 2)}), "
                      f"{fmt(r[('flt', proto, d, state)])} minor faults/GiB, machine busy "
                      f"{r[('busy', proto, d, state)]:.0f}%", flush=True)

        def test_transport():
            nonlocal transport
            transport = run_transport(args, sink_port, transport_procs)

        def test_ss():
            nonlocal ssres
            ssres = run_ss(args, sink_port, transport_procs)

        def test_bypass():
            nonlocal bypass
            bypass = run_bypass(args, echo_port, transport_procs)

        tests = {"rss": test_rss, "conn": test_conn, "tput": test_tput,
                 "tputfresh": lambda: test_tput("fresh", ("socks5",)), "transport": test_transport,
                 "bypass": test_bypass, "ss": test_ss}
        for t in args.tests:
            tests[t]()
        for p in proxies:
            if p.proc.poll() is not None:
                raise RuntimeError(f"{p.name} exited early (rc={p.proc.returncode}); see {p.log_path}")
    finally:
        chain = [p for p in transport_procs if isinstance(p, Proxy)]
        for p in proxies + chain:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.terminate()
        for h in helpers:
            if h.poll() is None:
                h.terminate()
        for x in [p.proc for p in proxies + chain if p.proc is not None] + helpers:
            try:
                x.wait(5)
            except subprocess.TimeoutExpired:
                x.kill()
                x.wait(5)
        for p in proxies + chain:
            if getattr(p, "logf", None):
                p.logf.close()
        for kind, home in [x for x in transport_procs if isinstance(x, tuple)]:
            import shutil
            shutil.rmtree(home, ignore_errors=True)

    env["conn_errors"] = conn_errors
    if only_transport:
        text = (f"# gostg relay benchmark\n\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n"
                f"- gostg code measured: sha256(gostg/**/*.py, bin/gostg) = {env['code'][0]}, newest file "
                f"modified {env['code'][1]} UTC\n"
                f"- host: {env['nproc']} CPU ({env['cpu']}), Linux {env['kernel']}, Python {env['python']}, "
                f"gevent {env.get('gevent')}\n")
    else:
        table, targets, envtext = build_report(env, columns, res, args)
        text = (f"# gostg relay benchmark\n\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n{envtext}\n\n"
                f"## Results\n\n{table}\n\nRatios are gostg (log level error) / peer. For MB/s and conn/s "
                f"higher is better (ratio > 1 = gostg better); for CPU s/GiB, CPU µs/conn and RSS lower is "
                f"better (ratio < 1 = gostg better).\n\n## Targets (issue)\n\n{targets}\n")
    if transport is not None:
        ttable, tnotes = transport_report(*transport, args)
        text += f"\n## Transport chain (gostg → gostg)\n\n{ttable}\n\n{tnotes}\n"
    if ssres is not None:
        stable, snotes = ss_report(ssres, args)
        text += f"\n## Shadowsocks server: gostg vs ss-server (ss-local client)\n\n{stable}\n\n{snotes}\n"
    if bypass is not None:
        text += f"\n## Cost of a {BYPASS_RULES:,}-rule bypass\n\n{bypass_report(bypass, args)}\n"
    print("\n" + text)
    with open(os.path.join(OUT, args.out), "w") as f:
        f.write(text)
    print(f"written to {os.path.join(OUT, args.out)}")


def main():
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        cmd, rest = sys.argv[1], sys.argv[2:]
        raise_nofile()
        if cmd == "_sinksrc":
            return serve_sinksrc(int(rest[0]))
        if cmd == "_echo":
            return serve_echo(int(rest[0]))
        if cmd == "_connrate":
            return connrate_driver(int(rest[0]), int(rest[1]), int(rest[2]), float(rest[3]), float(rest[4]),
                                   rest[5])
        raise SystemExit(f"unknown helper {cmd}")

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=GiB, help="bytes per throughput run (1GiB, 256MiB …)")
    ap.add_argument("--repeat", type=int, default=3, help="throughput runs per cell (median reported)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per conn/s run")
    ap.add_argument("--conc", type=int, default=50, help="concurrent clients for conn/s")
    ap.add_argument("--procs", type=int, default=2, help="client driver processes for conn/s")
    ap.add_argument("--tunnels", type=int, default=2000, help="idle tunnels for the RSS test")
    ap.add_argument("--proxies", default="gostg,gostg-info,pproxy-uvloop,pproxy-asyncio,microsocks,v2ray",
                    type=lambda s: [x for x in s.split(",") if x],
                    help="comma list; also gostg-info-file (info lines to a rotated log file, not "
                         "stderr) and gostg-before: bin/gostg of the checkout in $GOSTG_BEFORE "
                         "(default /tmp/gostg-before), same flags and python as gostg")
    ap.add_argument("--conn-repeat", type=int, default=3, help="interleaved conn/s rounds (median reported)")
    ap.add_argument("--tests", default="tputfresh,rss,conn,tput", type=lambda s: s.split(","),
                    help="tests to run, in this order: tputfresh (SOCKS5 throughput on just-started proxies), "
                         "rss, conn, tput (throughput after rss+conn warmed the proxies), transport (opt-in: "
                         "two-process gostg chain over tcp/tls/ws/wss/relay/relay+tls hops), bypass (opt-in: "
                         "conn/s of gostg socks5 without vs with a 100k-rule bypass), ss (opt-in: gostg's ss "
                         "server vs shadowsocks-libev's ss-server, ss-local as the client, per cipher)")
    ap.add_argument("--transports", default=None,
                    help="comma list of transport labels for --tests transport (default: all; tcp is "
                         "always kept as the baseline)")
    ap.add_argument("--transport-ws-size", type=parse_size, default=None,
                    help="bytes per throughput run for the ws/wss rows of --tests transport (default: --size)")
    ap.add_argument("--no-direct", dest="direct", action="store_false",
                    help="skip the no-proxy baseline column")
    ap.add_argument("--pin", action="store_true",
                    help="pin the proxies to the last CPU and everything else to the others")
    ap.add_argument("--out", default="results.md", help="file name under bench/out/")
    args = ap.parse_args()
    if args.transport_ws_size is None:
        args.transport_ws_size = args.size
    if args.transports:
        keep = {"tcp", *args.transports.split(",")}
        TRANSPORTS[:] = [t for t in TRANSPORTS if t[0] in keep]

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    run(args)


if __name__ == "__main__":
    main()
