"""Selector strategies lowestlatency and parallel, maxLatency, node probes and the direct
connector, over real loopback servers: latency is a server that answers late, a dead node a
closed port, a stalled one a listener whose accept queue is full (its SYNs go unanswered)."""
import time

import gevent
import pytest
from gevent import socket
from gevent.server import StreamServer

from gostg.config.build import build_object
from gostg.core.probe import Prober, Probes, ProbeConfig
from gostg.core.race import Race
from gostg.core.registry import Registries
from gostg.core.selector import Selector
from gostg.errors import ConfigError, DialError

from ..loopback import Stalled, closed_port, pipe, read_head


class Proxy:
    """A real HTTP CONNECT proxy on 127.0.0.1: waits ``delay`` seconds before it answers a
    CONNECT (its latency), then connects to the target and relays."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.connects = []            # targets asked for
        self.open = 0                 # client conns not yet closed
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port
        self.addr = f"127.0.0.1:{self.port}"

    def _handle(self, sock, _):
        self.open += 1
        try:
            head = read_head(sock)
            if head is None:
                return
            target = head.split(b" ")[1].decode()
            self.connects.append(target)
            gevent.sleep(self.delay)   # the latency this server stands for
            host, port = target.rsplit(":", 1)
            try:
                up = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            g = gevent.spawn(pipe, up, sock)
            pipe(sock, up)
            g.join(timeout=5)
            up.close()
        finally:
            self.open -= 1

    def stop(self):
        self.server.stop(timeout=1)


class Origin:
    """HTTP origin answering ``GET /<status>`` with that status."""

    def __init__(self):
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.addr = f"127.0.0.1:{self.server.server_port}"

    def _handle(self, sock, _):
        head = read_head(sock)
        if head is None:
            return
        status = head.split(b" ")[1].strip(b"/") or b"200"
        sock.sendall(b"HTTP/1.1 " + status + b" X\r\nContent-Length: 0\r\n\r\n")

    def stop(self):
        self.server.stop(timeout=1)


def node(name, addr, probe=None, **extra):
    n = {"name": name, "addr": addr, "connector": {"type": "http"}, "dialer": {"type": "tcp"}, **extra}
    if probe:
        n["probe"] = probe
    return n


def hop(nodes, strategy, **sel):
    reg = Registries()
    h = build_object("hops", {"name": "h", "selector": {"strategy": strategy, **sel}, "nodes": nodes},
                     "hops[0]", reg)
    reg.hops.set("h", h)
    return h, reg


def chain_dial(h, reg, target, timeout=5.0):
    """What the router does: the hop picks, the route dials."""
    chain = build_object("chains", {"name": "c", "hops": ["h"]}, "chains[0]", reg)
    with gevent.Timeout(timeout):
        return chain.route("tcp", target).dial("tcp", target, None, timeout)


def ask(conn, status):
    """``GET /<status>`` on ``conn`` (a route to the origin) → the answer's first bytes."""
    try:
        conn.sendall(b"GET /%d HTTP/1.1\r\nHost: o\r\n\r\n" % status)
        return conn.recv(100)
    finally:
        conn.close()


def probe_all(h, reg):
    return [Prober(n, reg, None).probe() for n in h.nodes]


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.stop()


# --- lowestlatency --------------------------------------------------------------------------

def test_lowestlatency_follows_probed_latency(origin):
    """The fast node is picked; when it slows down, the next probes move selection over; when
    it dies, its probe marks it and the other is picked."""
    a, b = Proxy(delay=0.25), Proxy(delay=0.0)
    try:
        probe = {"type": "tcp", "addr": origin.addr}
        h, reg = hop([node("a", a.addr, probe), node("b", b.addr, probe)], "lowestlatency")
        assert probe_all(h, reg) == [True, True]
        na, nb = h.nodes
        assert nb.latency < 0.25 <= na.latency
        assert {h.select().name for _ in range(5)} == {"b"}
        b.delay = 0.5
        probe_all(h, reg)
        assert {h.select().name for _ in range(5)} == {"a"}
        b.delay = 0.0
        probe_all(h, reg)
        assert h.select().name == "b"
        b.stop()
        assert probe_all(h, reg) == [True, False]
        assert nb.latency == float("inf") and nb.marker.fails == 1
        assert {h.select().name for _ in range(5)} == {"a"}
    finally:
        a.stop()
        b.stop()


def test_lowestlatency_unprobed_and_failed_come_last():
    class N:
        backup, weight, max_fails, fail_timeout = False, 1, None, None

        def __init__(self, name, latency):
            from gostg.core.selector import Marker
            self.name, self.latency, self.marker = name, latency, Marker()

    never, failed, slow, fast = N("never", None), N("failed", float("inf")), N("slow", 0.2), N("fast", 0.01)
    sel = Selector("lowestlatency")
    assert sel.select([never, failed, slow, fast]) is fast
    assert sel.select([never, failed, slow]) is slow
    assert sel.select([failed, never]) is failed      # none measured: the first, as GOST
    assert Selector("ll").select([never, fast]) is fast and Selector("lowest").select([never, fast]) is fast
    # maxLatency: slower or failed probes out, never-probed kept; nothing left fails closed
    capped = Selector("round", max_latency=0.1)
    assert {capped.select([never, failed, slow, fast]).name for _ in range(4)} == {"never", "fast"}
    with pytest.raises(DialError, match="maxLatency"):
        capped.select([failed, slow])


# --- parallel -------------------------------------------------------------------------------

def test_parallel_keeps_the_first_node_to_connect(origin):
    """A stalled node and a dead node race a live one: the live one carries the connection,
    the dead one is marked, the stalled one is left unmarked and its attempt ends."""
    live, stalled, dead = Proxy(), Stalled(), f"127.0.0.1:{closed_port()}"
    try:
        h, reg = hop([node("stalled", stalled.addr), node("dead", dead), node("live", live.addr)], "parallel")
        assert isinstance(h.select(), Race)
        t0 = time.monotonic()
        assert ask(chain_dial(h, reg, origin.addr), 204).startswith(b"HTTP/1.1 204")
        assert time.monotonic() - t0 < 2
        assert live.connects == [origin.addr]
        stalled_node, dead_node, live_node = h.nodes
        assert dead_node.marker.fails == 1 and stalled_node.marker.fails == 0 and live_node.marker.fails == 0
        # the dead node is left out while marked; the race goes on with the other two
        assert {n.name for n in h.select().nodes} == {"stalled", "live"}
    finally:
        live.stop()
        stalled.close()


def test_parallel_and_lowestlatency_keep_node_bypass(origin):
    """A node whose bypass matches the target is out of the race and of the latency pick."""
    for strategy in ("parallel", "lowestlatency"):
        h, reg = hop([node("a", "127.0.0.1:1", bypass="far"), node("b", "127.0.0.1:2"),
                      node("c", "127.0.0.1:3")], strategy)
        reg.bypasses.set("far", build_object("bypasses", {"name": "far", "matchers": ["far.test"]},
                                             "bypasses[0]", reg))
        h.nodes[0].latency, h.nodes[1].latency, h.nodes[2].latency = 0.001, 0.5, 0.2
        picked = h.select(target="far.test:80")
        names = {n.name for n in picked.nodes} if isinstance(picked, Race) else {picked.name}
        assert names == ({"b", "c"} if strategy == "parallel" else {"c"})
        near = h.select(target="near.test:80")
        assert near.name == "a" if strategy == "lowestlatency" else len(near.nodes) == 3


def test_parallel_loser_that_connects_late_is_closed(origin):
    fast, slow = Proxy(), Proxy()
    try:
        # the race ends at the nodes' handshakes; the CONNECT to the target follows on the winner
        h, reg = hop([node("slow", slow.addr), node("fast", fast.addr)], "parallel")
        assert isinstance(h.select(), Race)
        conn = chain_dial(h, reg, origin.addr)
        conn.close()
        deadline = time.monotonic() + 5
        while (fast.open or slow.open) and time.monotonic() < deadline:
            gevent.sleep(0.02)
        assert fast.open == 0 and slow.open == 0        # nothing left open on either server
        assert len(fast.connects) + len(slow.connects) == 1
    finally:
        fast.stop()
        slow.stop()


def test_parallel_all_fail_names_each_node():
    h, reg = hop([node("d1", f"127.0.0.1:{closed_port()}"), node("d2", f"127.0.0.1:{closed_port()}")], "parallel")
    with pytest.raises(DialError) as e:
        chain_dial(h, reg, "127.0.0.1:9")
    assert "d1@" in str(e.value) and "d2@" in str(e.value)
    assert [n.marker.fails for n in h.nodes] == [1, 1]


def test_parallel_with_a_direct_node_and_a_backup(origin):
    """A direct node in a parallel hop; a backup proxy is used only when it is marked failed."""
    bk = Proxy()
    try:
        h, reg = hop([{"name": "direct", "connector": {"type": "direct"}, "dialer": {"type": "direct"}},
                      node("bk", bk.addr, metadata={"backup": True})], "parallel")
        assert h.select().name == "direct"          # one primary: no race needed
        conn = chain_dial(h, reg, origin.addr)
        conn.close()
        assert bk.connects == []
        h.nodes[0].marker.mark()
        conn = chain_dial(h, reg, origin.addr)
        conn.close()
        assert bk.connects == [origin.addr]
    finally:
        bk.stop()


# --- direct / virtual connector ---------------------------------------------------------------

def test_direct_node_connects_from_here_and_reject_refuses(origin):
    h, reg = hop([{"name": "v", "connector": {"type": "virtual"}, "dialer": {"type": "virtual"}}], "round")
    assert ask(chain_dial(h, reg, origin.addr), 200).startswith(b"HTTP/1.1 200")
    h, reg = hop([{"name": "r", "connector": {"type": "direct", "metadata": {"action": "reject"}},
                   "dialer": {"type": "direct"}}], "round")
    with pytest.raises(DialError, match="rejected"):
        chain_dial(h, reg, origin.addr)
    assert h.nodes[0].marker.fails == 0               # refusing is not failing


def test_direct_node_after_hop_0_adds_nothing(origin):
    """[proxy, direct]: the proxy connects to the target (the direct node is left out)."""
    p = Proxy()
    try:
        reg = Registries()
        for name, n in (("h0", node("p", p.addr)),
                        ("h1", {"name": "d", "connector": {"type": "direct"}, "dialer": {"type": "direct"}})):
            reg.hops.set(name, build_object("hops", {"name": name, "nodes": [n]}, "hops[0]", reg))
        chain = build_object("chains", {"name": "c", "hops": ["h0", "h1"]}, "chains[0]", reg)
        with gevent.Timeout(5):
            conn = chain.route("tcp", origin.addr).dial("tcp", origin.addr, None, 5)
        conn.close()
        assert p.connects == [origin.addr]
    finally:
        p.stop()


# --- probes -----------------------------------------------------------------------------------

def test_http_and_cmd_probes(origin):
    p = Proxy()
    try:
        h, reg = hop([node("ok", p.addr, {"type": "http", "addr": origin.addr, "httpPath": "/204",
                                          "expectedStatus": 204}),
                      node("bad", p.addr, {"type": "http", "addr": origin.addr, "httpPath": "/503"}),
                      node("c0", p.addr, {"type": "cmd", "command": "exit 0"}),
                      node("c3", p.addr, {"type": "cmd", "command": "exit 3"})], "round")
        assert probe_all(h, reg) == [True, False, True, False]
        assert [n.marker.fails for n in h.nodes] == [0, 1, 0, 1]
    finally:
        p.stop()


def test_probe_timeout_bounds_a_stalled_node_and_a_slow_command():
    st = Stalled()
    try:
        h, reg = hop([node("st", st.addr, {"addr": "127.0.0.1:9", "timeout": "200ms"}),
                      node("sleep", st.addr, {"type": "cmd", "command": "sleep 30", "timeout": "200ms"})], "round")
        t0 = time.monotonic()
        assert probe_all(h, reg) == [False, False]
        assert time.monotonic() - t0 < 3
        assert [n.marker.fails for n in h.nodes] == [1, 1]
    finally:
        st.close()


def test_probe_config_is_checked():
    assert ProbeConfig.parse({"addr": "a:1"}, "p", lambda v, p: float(v or 0)).interval == 30.0
    with pytest.raises(ConfigError, match=r"p\.addr: is required for a tcp probe"):
        ProbeConfig.parse({"type": "tcp"}, "p", lambda v, p: 0.0)
    with pytest.raises(ConfigError, match=r"p\.command"):
        ProbeConfig.parse({"type": "cmd"}, "p", lambda v, p: 0.0)
    with pytest.raises(ConfigError, match=r"hops\[0\]\.nodes\[0\]\.probe\.addr"):
        hop([node("x", "127.0.0.1:1", {"type": "http"})], "round")


def test_probes_follow_the_live_objects_and_stop(origin):
    """Probes.sync starts a probe per probed node, stops the probes of a replaced hop; stop()
    ends them all and closes what they had open."""
    st = Stalled()
    try:
        h, reg = hop([node("st", st.addr, {"addr": origin.addr, "interval": "50ms", "timeout": "5s"})], "round")
        probes = Probes(reg, None)
        probes.sync()
        (first,) = probes.running.values()
        gevent.idle()                           # it runs until its dial hangs
        h2, _ = hop([node("st", st.addr, {"addr": origin.addr})], "round")
        reg.hops.set("h", h2)
        probes.sync()
        assert first.greenlet.dead and list(probes.running.values())[0].node is h2.nodes[0]
        t0 = time.monotonic()
        probes.stop()
        assert time.monotonic() - t0 < 2 and not probes.running
    finally:
        st.close()
