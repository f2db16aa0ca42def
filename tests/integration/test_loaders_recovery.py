"""Each loader-capable object kind (admissions, bypasses, authers, hosts, climiters, routers)
when its source fails mid-run, seen by a real client of one gostg process per kind:

a) a ``redis`` object: Redis stops — the last good items stay in force, the failure is logged
   once; Redis comes back (empty: no persistence) and a change is written — the new items apply
   and the recovery is logged once;
b) an ``http`` object: a 200 body applies (and a changed one), then HTTP 500 keeps the last
   good items (logged once); a 200 again applies and the recovery is logged.

Every object holds an "old" then a "new" item list, and each kind's probe tells old, new and
"no items at all" apart, so a dropped value cannot pass for a kept one."""
import socket
import struct
import time

import pytest
import yaml

from .helpers import Echo, Gost, free_port
from .peers import log_records
from .redisproc import redis_srv, socks5, socks_svc, until  # noqa: F401 (fixture)
from .test_limiter import svc as http_svc, tunnel
from .test_loaders import FileServer
from .test_router_sources import Hosts
from .test_tun import _ipv4

RELOAD = "200ms"


def admitted(port, source):
    """gostg answers a SOCKS5 greeting from ``source`` (an admission refusal closes at once)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(source, 0)) as s:
            s.sendall(b"\x05\x01\x00")
            return len(s.recv(2)) == 2
    except OSError:
        return False


def connect_status(port, target):
    """An HTTP CONNECT through gostg → the status code, or None when it closed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = s.recv(64)
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def held(port, target, most=3):
    """How many CONNECT tunnels gostg lets be open at once (up to ``most``)."""
    socks = []
    try:
        for _ in range(most):
            s = tunnel(port, target)
            if s is None:
                break
            socks.append(s)
        return len(socks)
    finally:
        for s in socks:
            s.close()


class Kind:
    """One object kind: its config, its old/new item lines, and a probe of a service using it."""
    section = key = ""
    rtype = "set"
    old = new = ()

    def __init__(self, ctx):
        self.ctx = ctx

    def service(self, name, port):
        return socks_svc(name, port, **{self.key: name})

    def lines(self, which):
        return list(self.old if which == "old" else self.new)

    def probe(self, port):
        raise NotImplementedError

    def want(self, which):
        raise NotImplementedError

    def close(self):
        pass


class Admissions(Kind):
    section, key = "admissions", "admission"
    old, new = ["127.0.0.2"], ["127.0.0.1"]   # refused client addresses

    def probe(self, port):
        return admitted(port, "127.0.0.1"), admitted(port, "127.0.0.2")

    def want(self, which):
        return (True, False) if which == "old" else (False, True)


class Bypasses(Kind):
    section, key = "bypasses", "bypass"

    def lines(self, which):   # refused targets: the other echo server's port
        e1, e2 = self.ctx["echoes"]
        return [f"127.0.0.1:{(e2 if which == 'old' else e1).port}"]

    def probe(self, port):
        return tuple(socks5(port, dport=e.port) == 0 for e in self.ctx["echoes"])

    def want(self, which):
        return (True, False) if which == "old" else (False, True)


class Authers(Kind):
    section, key, rtype = "authers", "auther", "hash"
    old, new = ["alice old-pw"], ["alice new-pw"]

    def service(self, name, port):
        return socks_svc(name, port, handler={"type": "socks5", "auther": name})

    def probe(self, port):
        e = self.ctx["echoes"][0]
        ok = [pw for pw in ("old-pw", "new-pw") if socks5(port, dport=e.port, user="alice", password=pw) == 0]
        return tuple(ok)

    def want(self, which):
        return (f"{which}-pw",)


class HostsKind(Kind):
    """Both names always mapped (no DNS lookup while items are loaded): to the echo server's
    127.0.0.1 or to 127.0.0.3, where nothing listens."""
    section, key = "hosts", "hosts"
    old, new = ["127.0.0.1 old.test", "127.0.0.3 new.test"], ["127.0.0.3 old.test", "127.0.0.1 new.test"]

    def service(self, name, port):
        return http_svc(name, port, hosts=name)

    def probe(self, port):
        e = self.ctx["echoes"][0]
        return tuple(connect_status(port, f"{n}.test:{e.port}") == 200 for n in ("old", "new"))

    def want(self, which):
        return (True, False) if which == "old" else (False, True)


class Climiters(Kind):
    section, key, rtype = "climiters", "climiter", "list"
    old, new = ["$ 1"], ["$ 2"]   # no items: no limit (3 held)

    def service(self, name, port):
        return http_svc(name, port, climiter=name)

    def probe(self, port):
        return held(port, f"127.0.0.1:{self.ctx['echoes'][0].port}")

    def want(self, which):
        return 1 if which == "old" else 2


class Routers(Kind):
    """GOST's routing tunnel server: host-1 sends a packet to 192.168.100.7; the route's gateway
    (host-2 old, host-3 new) receives it."""
    section, rtype = "routers", "hash"
    old, new = ["192.168.100.0/24 host-2"], ["192.168.100.0/24 host-3"]

    def __init__(self, ctx):
        super().__init__(ctx)
        self.hosts = {}

    def service(self, name, port):
        return {"name": name, "addr": f"127.0.0.1:{port}", "listener": {"type": "tcp"},
                "handler": {"type": "router", "metadata": {"router": name}}}

    def probe(self, port):
        h = self.hosts.get(port)
        if h is None:
            h = self.hosts[port] = Hosts(port, "host-1", "host-2", "host-3")
        pkt = _ipv4("192.168.123.1", "192.168.100.7")
        h.conns["host-1"].sendall(struct.pack("!H", len(pkt)) + pkt)
        want = struct.pack("!H", len(pkt)) + pkt
        return next((g for g in ("host-2", "host-3") if h.got(g, want, 0.3)), None)

    def want(self, which):
        return "host-2" if which == "old" else "host-3"

    def close(self):
        for h in self.hosts.values():
            h.close()


KINDS = [Admissions, Bypasses, Authers, HostsKind, Climiters, Routers]


def write(r, kind, key, lines):
    r.delete(key)
    if kind.rtype == "hash":
        r.hset(key, mapping=dict(line.split(" ", 1) for line in lines))
    elif kind.rtype == "list":
        r.rpush(key, *lines)
    else:
        r.sadd(key, *lines)


def body(lines):
    return ("\n".join(lines) + "\n").encode()


def loader_msgs(g, loader, level):
    return [x["msg"] for x in log_records(g, loader=loader, level=level)]


@pytest.mark.parametrize("cls", KINDS, ids=[k.section for k in KINDS])
def test_a_failing_source_keeps_the_last_good_items_and_recovers(tmp_path, redis_srv, cls):
    r = redis_srv.client()
    key = f"gost:{cls.section}"
    files = {}
    with Echo(b"") as e1, Echo(b"") as e2, FileServer(files) as fs:
        kind = cls({"echoes": (e1, e2)})
        write(r, kind, key, kind.lines("old"))
        files["/items"] = (200, body(kind.lines("old")))
        rp, hp = free_port(), free_port()
        typed = {} if kind.rtype == "set" else {"type": kind.rtype}
        cfg = {"services": [kind.service("r", rp), kind.service("h", hp)],
               cls.section: [{"name": "r", "reload": RELOAD, "redis": {"addr": redis_srv.addr, "key": key, **typed}},
                             {"name": "h", "reload": RELOAD, "http": {"url": f"{fs.url}/items", "timeout": "1s"}}]}
        path = tmp_path / "gost.yaml"
        path.write_text(yaml.safe_dump(cfg))
        try:
            with Gost("-C", path, ports=[rp, hp]) as g:
                tail = g.log_text
                assert until(lambda: kind.probe(rp) == kind.want("old"), timeout=3), (kind.probe(rp), tail()[-2000:])
                assert until(lambda: kind.probe(hp) == kind.want("old"), timeout=3), (kind.probe(hp), tail()[-2000:])
                # b) a changed 200 body applies
                files["/items"] = (200, body(kind.lines("new")))
                assert until(lambda: kind.probe(hp) == kind.want("new"), timeout=3), tail()[-2000:]

                # both sources fail: Redis stops, the HTTP source answers 500
                files["/items"] = (500, b"")
                redis_srv.stop()
                assert until(lambda: loader_msgs(g, "redis", "warning") and loader_msgs(g, "http", "warning"),
                             timeout=3), tail()[-2000:]
                # past the first retry of each (1 s after its failure): a second failure logs nothing
                t0, hits = time.monotonic(), fs.server.hits
                assert until(lambda: fs.server.hits > hits, timeout=3)
                time.sleep(max(0.0, 1.3 - (time.monotonic() - t0)))
                assert until(lambda: kind.probe(rp) == kind.want("old"), timeout=2), "redis: last good dropped"
                assert until(lambda: kind.probe(hp) == kind.want("new"), timeout=2), "http: last good dropped"
                warn = loader_msgs(g, "redis", "warning")
                assert len(warn) == 1 and "keeping the last good value" in warn[0], warn
                warn = loader_msgs(g, "http", "warning")
                assert len(warn) == 1 and "HTTP 500" in warn[0] and "keeping the last good value" in warn[0], warn

                # back: Redis restarted on the same port (empty) and the change written; HTTP 200
                redis_srv.start()
                write(redis_srv.client(), kind, key, kind.lines("new"))
                files["/items"] = (200, body(kind.lines("old")))
                # a failing source is retried after 1 s, 2 s …: recovery within one of those
                assert until(lambda: kind.probe(rp) == kind.want("new"), timeout=8), tail()[-2000:]
                assert until(lambda: kind.probe(hp) == kind.want("old"), timeout=8), tail()[-2000:]
                assert loader_msgs(g, "redis", "info") == ["redis loader recovered"]
                assert loader_msgs(g, "http", "info") == ["http loader recovered"]
                assert len(loader_msgs(g, "redis", "warning")) == 1 and len(loader_msgs(g, "http", "warning")) == 1
        finally:
            kind.close()
