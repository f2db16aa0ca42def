"""Active node probes: a node's ``probe`` (GOST 3.3, tutorials/probe.md).

Rules:
1. While the runtime runs, each probed node of a live chain or hop has one greenlet: it probes
   at once, then every ``interval`` (30s); each probe is bounded by ``timeout`` (10s).
2. ``tcp``: the node alone, as hop 0 of a route of its own, is dialled and asked to connect to
   ``addr`` ("the address reached through the node's tunnel", as GOST's docs say; GOST's code
   only dials and handshakes the node). ``http`` then sends ``GET httpPath`` and wants
   ``expectedStatus``. ``cmd`` runs ``sh -c command`` on this host: exit status 0 is up.
3. Up resets the node's failure marker and records its latency (dial, handshakes and connect
   to ``addr``; a cmd's run time); down marks it, as a failed real connection would, and records
   an infinite latency. The selector's fail filter then skips the node before any client
   traffic reaches it; ``lowestlatency`` and ``maxLatency`` read the latency.
4. One log line per change of state (up, down), none per probe.
5. Probes stop with the runtime, and when their chain or hop is replaced or deleted: the
   greenlet is killed and what it had open (socket, child process) is closed.
"""
import time

import gevent

from ..errors import ConfigError, DialError, GostgError
from ..protocols.http import parse_response_head
from ..transport.buffered import Stream
from .chain import Route

TYPES = ("tcp", "http", "cmd")


class ProbeConfig:
    """A node's ``probe`` mapping, checked once at build (GOST's ParseProbeConfig, except
    that a probe missing its ``addr`` or ``command`` is a config error, not silently off)."""

    __slots__ = ("type", "addr", "interval", "timeout", "http_path", "http_host", "http_headers",
                 "expected_status", "command")

    #: GOST's defaults
    INTERVAL = 30.0
    TIMEOUT = 10.0

    def __init__(self, type="tcp", addr="", interval=INTERVAL, timeout=TIMEOUT, http_path="/", http_host="",
                 http_headers=None, expected_status=200, command=""):
        self.type, self.addr, self.interval, self.timeout = type, addr, interval, timeout
        self.http_path, self.http_host = http_path or "/", http_host or addr
        self.http_headers = dict(http_headers or {})
        self.expected_status, self.command = expected_status or 200, command

    @classmethod
    def parse(cls, o, path, duration):
        """``o``: the ``probe`` mapping (already shape-checked by validate); ``duration``
        parses a Go duration at a path."""
        kind = str(o.get("type") or "tcp").lower()
        if kind not in TYPES:
            raise ConfigError(f"{path}.type", f"unknown probe type {kind!r} (one of: {', '.join(TYPES)})")
        need = "command" if kind == "cmd" else "addr"
        if not str(o.get(need) or "").strip():
            raise ConfigError(f"{path}.{need}", f"is required for a {kind} probe")
        try:
            status = int(o.get("expectedStatus") or 200)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}.expectedStatus", "must be an integer") from None
        headers = o.get("httpHeaders") or {}
        if not isinstance(headers, dict):
            raise ConfigError(f"{path}.httpHeaders", "must be a mapping")
        return cls(kind, str(o.get("addr") or ""),
                   duration(o.get("interval"), f"{path}.interval") or cls.INTERVAL,
                   duration(o.get("timeout"), f"{path}.timeout") or cls.TIMEOUT,
                   str(o.get("httpPath") or "/"), str(o.get("httpHost") or ""),
                   {str(k): str(v) for k, v in headers.items()}, status, str(o.get("command") or ""))


class ProbeFailed(GostgError):
    """The node answered, but not as the probe wants (HTTP status, command exit status)."""


class Prober:
    """The probe loop of one node (rules 1–4)."""

    def __init__(self, node, registries, log):
        self.node = node
        self.cfg = node.probe
        self.registries = registries
        self.log = log.bind(kind="probe", node=node.name, addr=node.addr) if log is not None else None
        self.up = None            # unknown until the first probe
        self.greenlet = None

    def start(self):
        self.greenlet = gevent.spawn(self._loop)
        return self

    def _loop(self):
        while True:
            self.probe()
            gevent.sleep(self.cfg.interval)

    def probe(self):
        """One probe → True when the node is up; marks and records the node (rule 3)."""
        node, cfg = self.node, self.cfg
        t0 = time.monotonic()
        error = None
        try:
            with gevent.Timeout(cfg.timeout, DialError(f"probe timeout after {cfg.timeout:g}s")):
                latency = self._cmd() if cfg.type == "cmd" else self._dial(t0)
        except DialError as exc:
            if exc.node is None:      # the probe's own timeout; the route marks its failures
                node.marker.mark(exc)
            error = exc
        except Exception as exc:   # a wrong answer, a reset, anything: down, and the loop goes on
            node.marker.mark(exc)
            error = exc
        if error is None:
            node.marker.reset()
            node.latency = latency
        else:
            node.latency = float("inf")
        self._report(error)
        return error is None

    def _dial(self, t0):
        cfg = self.cfg
        conn = Route([self.node], self.registries).dial("tcp", cfg.addr, None, cfg.timeout)
        latency = time.monotonic() - t0
        try:
            if cfg.type == "http":
                self._http(conn)
        finally:
            conn.close()
        return latency

    def _http(self, conn):
        cfg = self.cfg
        head = f"GET {cfg.http_path} HTTP/1.1\r\nHost: {cfg.http_host}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in cfg.http_headers.items())
        conn.sendall((head + "Connection: close\r\n\r\n").encode("latin-1", "replace"))
        resp = Stream(conn, limit=16384).read(parse_response_head)
        if resp.status != cfg.expected_status:
            raise ProbeFailed(f"HTTP status {resp.status}, want {cfg.expected_status}")

    def _cmd(self):
        from gevent import subprocess   # only a cmd probe starts children

        t0 = time.monotonic()
        proc = subprocess.Popen(["sh", "-c", self.cfg.command], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rc = proc.wait()
        finally:
            if proc.poll() is None:   # timed out or killed: the child goes too (rule 5)
                proc.kill()
                proc.wait()
        if rc != 0:
            raise ProbeFailed(f"command exited with {rc}")
        return time.monotonic() - t0

    def _report(self, error):
        up = error is None
        if up == self.up or self.log is None:
            self.up = up
            return
        self.up = up
        if up:
            self.log.info(f"node {self.node.name} up", latency=round(self.node.latency, 4))
        else:
            self.log.warning(f"node {self.node.name} down: {error}")



def probed_nodes(registries):
    """Every node with a probe in the live chains and hops, each once."""
    hops = [h for _, h in registries.hops.items()]
    for _, chain in registries.chains.items():
        hops += [h for h in chain.hops if not isinstance(h, str)]
    seen = {}
    for hop in hops:
        for n in getattr(hop, "nodes", ()):
            if getattr(n, "probe", None) is not None:
                seen.setdefault(id(n), n)
    return list(seen.values())


class Probes:
    """The probes of one runtime: ``sync`` after every change of chains or hops starts the new
    nodes' and stops the gone ones'; ``stop`` ends them all (rule 5)."""

    #: how long ``stop`` waits for killed probes to close what they had open
    STOP_TIMEOUT = 1.0

    def __init__(self, registries, log):
        self.registries = registries
        self.log = log
        self.running = {}         # id(node) → Prober

    def sync(self):
        want = {id(n): n for n in probed_nodes(self.registries)}
        gone = [p for k, p in self.running.items() if k not in want]
        for k in [k for k in self.running if k not in want]:
            del self.running[k]
        for k, n in want.items():
            if k not in self.running:
                self.running[k] = Prober(n, self.registries, self.log).start()
        self._kill(gone)

    def stop(self):
        gone, self.running = list(self.running.values()), {}
        self._kill(gone)

    def _kill(self, probers):
        greenlets = [p.greenlet for p in probers if p.greenlet is not None]
        if greenlets:
            gevent.killall(greenlets, block=True, timeout=self.STOP_TIMEOUT)
