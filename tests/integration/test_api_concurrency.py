"""Many Web API writers at once against one live gostg while traffic flows through another of its
services: no 5xx, no dead service, the traffic never fails, and the final config holds exactly
the last acknowledged write per name, every service serving on its port (spec §4; runtime rules
1–3: changes serialized, built before swapped, same-address sockets handed over)."""
import http.client
import json
import random
import threading
import time

import pytest
import socks

from .helpers import Echo, Gost, Origin, free_port, port_closed
from .peers import curl_code, free_port_block

WRITERS = 20
ITERATIONS = 10
SHARED = ("shared-0", "shared-1", "shared-2")
HANDLERS = ("http", "socks5", "auto")


def api_call(port, method, path, body=None, timeout=20):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def svc(name, port, handler, **extra):
    o = {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": handler}, "listener": {"type": "tcp"}}
    o.update(extra)
    return o


class Writer:
    """State of one name: its two ports, whether it exists, its last acknowledged body."""

    def __init__(self, name, ports):
        self.name = name
        self.ports = ports
        self.lock = threading.Lock()
        self.created = False
        self.last = None


def write_once(api_port, w, writer_id, it, rng, problems):
    """POST (first time) or PUT ``w`` with a fresh body under ``w.lock``; record it on 200."""
    with w.lock:
        if w.last is None:
            port = w.ports[0]
        else:
            cur = int(w.last["addr"].rsplit(":", 1)[1])
            # half the writes keep the address (socket handover), half move the service
            port = cur if rng.random() < 0.5 else w.ports[1 - w.ports.index(cur)]
        body = svc(w.name, port, rng.choice(HANDLERS), metadata={"writer": writer_id, "iteration": it})
        method, path = ("PUT", f"/config/services/{w.name}") if w.created else ("POST", "/config/services")
        try:
            status, raw = api_call(api_port, method, path, body)
        except OSError as exc:
            problems.append(f"{method} {w.name}: {exc!r}")
            return
        if status == 200:
            w.created = True
            w.last = body
        else:
            problems.append(f"{method} {w.name} by {writer_id}/{it} → {status} {raw[:300]!r}")


class Traffic(threading.Thread):
    """Requests through the traffic service until told to stop (bounded in count and time)."""

    def __init__(self, fn, max_count=20000, max_time=90.0):
        super().__init__(daemon=True)
        self.fn, self.max_count, self.max_time = fn, max_count, max_time
        self.count = 0
        self.failures = []
        self.done = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_time
        while not self.done.is_set() and self.count < self.max_count and time.monotonic() < deadline:
            try:
                err = self.fn(self.count)
            except Exception as exc:  # any failure of the loop is a finding
                err = repr(exc)
            if err:
                self.failures.append(err)
            self.count += 1
            time.sleep(0.001)

    def stop(self):
        self.done.set()
        self.join(timeout=30)


@pytest.fixture()
def world():
    with Origin() as origin, Echo() as echo:
        yield origin, echo


def test_concurrent_writers_with_live_traffic(world):
    origin, echo = world
    names = [f"own-{i}" for i in range(WRITERS)] + list(SHARED)
    base = free_port_block(2 * len(names) + 2)
    writers = {n: Writer(n, [base + 2 * i, base + 2 * i + 1]) for i, n in enumerate(names)}
    p_http, p_tunnel = base + 2 * len(names), base + 2 * len(names) + 1
    api_port = free_port()
    g = Gost("-api", f"127.0.0.1:{api_port}", ports=[api_port])
    with g:
        for body in (svc("traffic", p_http, "http"), svc("tunnel", p_tunnel, "socks5")):
            status, raw = api_call(api_port, "POST", "/config/services", body)
            assert status == 200, raw

        def http_request(n):
            c = http.client.HTTPConnection("127.0.0.1", p_http, timeout=10)
            try:
                c.request("GET", f"{origin.url}/t{n}")
                r = c.getresponse()
                body = r.read()
            finally:
                c.close()
            want = f"hello from origin /t{n} ".encode()
            return None if r.status == 200 and body.startswith(want) else f"#{n}: {r.status} {body[:100]!r}"

        tun = socks.socksocket()
        tun.set_proxy(socks.SOCKS5, "127.0.0.1", p_tunnel)
        tun.settimeout(10)
        tun.connect(("127.0.0.1", echo.port))

        def echo_request(n):
            msg = f"ping-{n}-".encode() * 20
            tun.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = tun.recv(65536)
                if not d:
                    return f"#{n}: tunnel closed"
                got += d
            return None if got == msg else f"#{n}: echoed {got[:60]!r}"

        traffic = [Traffic(http_request), Traffic(echo_request)]
        problems = []

        def writer(i):
            rng = random.Random(i)
            own = writers[f"own-{i}"]
            shared = writers[SHARED[i % len(SHARED)]]
            for it in range(ITERATIONS):
                write_once(api_port, own, i, it, rng, problems)
                if it % 2 == i % 2:
                    write_once(api_port, shared, i, it, rng, problems)

        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
        try:
            for t in traffic:
                t.start()
            time.sleep(0.2)
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=90)
            assert not any(t.is_alive() for t in threads), "writers did not finish in 90 s"
            elapsed = time.monotonic() - t0
            time.sleep(0.2)
            covered = all(t.is_alive() for t in traffic)
        finally:
            for t in traffic:
                t.stop()
            tun.close()

        assert g.proc.poll() is None, "gostg died:\n" + g.log_text()[-3000:]
        assert problems == [], f"{len(problems)} failed API writes: {problems[:5]}"
        assert covered, "a traffic loop ended (count/time bound) before the writers did"
        for t in traffic:
            assert t.count >= 5, f"the traffic loop hardly ran ({t.count} requests in {elapsed:.1f}s)"
            assert t.failures == [], f"traffic failed {len(t.failures)}/{t.count}: {t.failures[:5]}"

        status, raw = api_call(api_port, "GET", "/config?format=json")
        assert status == 200
        services = {s["name"]: s for s in json.loads(raw)["services"]}
        assert sorted(services) == sorted(["traffic", "tunnel", *names])
        for name, w in writers.items():
            got = dict(services[name])
            st = got.pop("status")
            assert got == w.last, f"{name}: config is not the last acknowledged write"
            assert st["state"] == "ready", f"{name}: state {st['state']}"
        for name in ("traffic", "tunnel"):
            assert services[name]["status"]["state"] == "ready"

        # every service serves on its port with its protocol; its other port is closed
        for name, w in writers.items():
            port = int(w.last["addr"].rsplit(":", 1)[1])
            proxy = ("socks5h" if w.last["handler"]["type"] == "socks5" else "http") + f"://127.0.0.1:{port}"
            rc, code, body = curl_code("-x", proxy, f"{origin.url}/final-{name}", timeout=8)
            assert (rc, code) == (0, 200) and body.startswith(f"hello from origin /final-{name} ".encode()), \
                f"{name} on {proxy}: rc={rc} status={code} {body[:100]!r}"
            other = w.ports[1 - w.ports.index(port)]
            assert port_closed(other), f"{name}: the port it moved away from still accepts"

        log = g.log_text()
        for bad in ("Traceback", "handler failed", "internal error", '"kind": "api", "level": "error"'):
            assert bad not in log, f"gostg logged {bad!r}:\n{log[-3000:]}"
