"""Selector strategies ``parallel`` and ``lowestlatency`` with node probes (concepts/selector.md,
tutorials/probe.md) and the ``direct``/``virtual`` node (concepts/chain.md), with bin/gostg.

Which node carried a request is read where a user reads it: the node server's own log line
(``<-> target``). Latency is real: a relay in front of a node that holds each connection
before it connects on; a dead node is a closed port or a stopped microsocks; a stalled one a
listener that never accepts."""
import json
import socket
import threading
import time

import pytest
import yaml

from ..loopback import Stalled, closed_port, pipe
from .helpers import Echo, Gost, free_port, run_gostg
from .peers import Api, FastOrigin, Microsocks, TCPServerThread, curl_code, wait_log


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


class DelayRelay(TCPServerThread):
    """A TCP relay on 127.0.0.1 to ``upstream`` that holds each new connection ``delay``
    seconds before it connects on (a node alive but slow to answer); ``close()`` takes the
    node away (its port then refuses). Serving from construction on."""

    def __init__(self, upstream, delay=0.0):
        self.upstream, self.delay = upstream, delay
        self.conns = []
        super().__init__()
        self.thread.start()

    def handle_conn(self, c):
        self.conns.append(c)
        c.settimeout(None)
        if self._stop.wait(self.delay):   # the latency this node stands for
            return c.close()
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        except OSError:
            return c.close()
        self.conns.append(up)
        threading.Thread(target=pipe, args=(up, c), daemon=True).start()
        pipe(c, up)

    def close(self):
        self._stop.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


def gost_yaml(tmp_path, cfg, ports, name="gost.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return Gost("-C", path, ports=ports)


def carriers(g, dst):
    """Services of ``g`` that relayed to ``dst``, one per connection, in log order."""
    out = []
    for line in g.log_text().splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("msg", "").endswith(f" <-> {dst}") and d.get("service"):
            out.append(d["service"])
    return out


def fetch(port, url, n=1):
    """``n`` GETs of ``url`` through the HTTP proxy on ``port`` → their (rc, status) pairs."""
    return [curl_code("-x", f"http://127.0.0.1:{port}", url, timeout=8)[:2] for _ in range(n)]


def carried_by(g, port, url, dst):
    """One request; → the node service that relayed it (its log line is written before the
    answer, but the log may lag: wait for it)."""
    before = len(carriers(g, dst))
    assert fetch(port, url) == [(0, 200)]
    deadline = time.monotonic() + 5
    while len(carriers(g, dst)) <= before and time.monotonic() < deadline:
        time.sleep(0.02)
    return carriers(g, dst)[before]


def node(name, addr, **kw):
    return {"name": name, "addr": addr, "connector": {"type": "http"}, "dialer": {"type": "tcp"}, **kw}


def http_service(name, port, **kw):
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": "http", **kw.pop("handler", {})},
            "listener": {"type": "tcp"}, **kw}


# --- tutorials/probe.md -----------------------------------------------------------------------

def test_probe_docs_example_marks_the_dead_node_before_any_traffic(tmp_path, origin):
    """probe.md "TCP Probe + FailFilter": the dead node is marked by its probe, so round robin
    never sends a client to it: every request succeeds."""
    pf, pl, pd = free_port(), free_port(), closed_port()
    cfg = {
        "services": [http_service("proxy", pf, handler={"chain": "my-chain"}), http_service("relay", pl)],
        "chains": [{"name": "my-chain", "hops": [{
            "name": "hop-1", "selector": {"strategy": "round", "maxFails": 1, "failTimeout": "10s"},
            "nodes": [node("node-live", f"127.0.0.1:{pl}", probe={"type": "tcp", "addr": f"127.0.0.1:{pl}",
                                                                   "interval": "5s"}),
                      node("node-dead", f"127.0.0.1:{pd}", probe={"type": "tcp", "addr": f"127.0.0.1:{pd}",
                                                                   "interval": "5s"})]}]}]}
    with gost_yaml(tmp_path, cfg, [pf, pl]) as g:
        assert wait_log(g, r'"msg": "node node-dead down: [^"]*refused')
        assert wait_log(g, r'"msg": "node node-live up"')
        assert fetch(pf, f"{origin.url}/probe", 6) == [(0, 200)] * 6
        # one line per change of state, not one per probe
        assert len(wait_log(g, r'"msg": "node node-dead down', count=2, timeout=0.5)) == 1


def test_probe_docs_example_lowestlatency(tmp_path, origin):
    """probe.md "lowestlatency": of two live nodes the one with the lower probed latency
    carries the traffic (node-a answers 300 ms late)."""
    pf, pa_srv, pb = free_port(), free_port(), free_port()
    slow = DelayRelay(pa_srv, delay=0.3)
    cfg = {
        "services": [http_service("proxy", pf, handler={"chain": "my-chain"}),
                     http_service("node-a-srv", pa_srv), http_service("node-b-srv", pb)],
        "log": {"level": "debug"},
        "chains": [{"name": "my-chain", "hops": [{
            "name": "hop-1", "selector": {"strategy": "lowestlatency", "maxFails": 1, "failTimeout": "10s"},
            "nodes": [node("node-a", f"127.0.0.1:{slow.port}", probe={
                           "type": "tcp", "addr": f"127.0.0.1:{slow.port}", "interval": "5s"}),
                      node("node-b", f"127.0.0.1:{pb}", probe={
                           "type": "tcp", "addr": f"127.0.0.1:{pb}", "interval": "5s"})]}]}]}
    try:
        with gost_yaml(tmp_path, cfg, [pf, pa_srv, pb]) as g:
            assert wait_log(g, r'"msg": "node node-a up"') and wait_log(g, r'"msg": "node node-b up"')
            dst = f"127.0.0.1:{origin.port}"
            assert [carried_by(g, pf, f"{origin.url}/ll", dst) for _ in range(3)] == ["node-b-srv"] * 3
    finally:
        slow.close()


def test_lowestlatency_switches_when_the_fast_node_slows_or_dies(tmp_path, origin):
    """Probes every 300 ms: when the fast node slows down the traffic moves to the other; when
    it dies its probe marks it down; back and fast, it carries again. The nodes are reached by
    name through the hop's hosts, and a node's bypass still keeps its target away from it."""
    pf, pa_srv, pb_srv = free_port(), free_port(), free_port()
    a, b = DelayRelay(pa_srv, delay=0.25), DelayRelay(pb_srv, delay=0.0)
    probe = {"type": "tcp", "addr": f"127.0.0.1:{origin.port}", "interval": "300ms", "timeout": "5s"}
    names = {"name": "names", "mappings": [{"hostname": "node-a.test", "ip": "127.0.0.1"},
                                           {"hostname": "node-b.test", "ip": "127.0.0.1"},
                                           {"hostname": "far.test", "ip": "127.0.0.1"}]}
    cfg = {
        "services": [http_service("proxy", pf, handler={"chain": "c"}),
                     http_service("node-a-srv", pa_srv, hosts="names"), http_service("node-b-srv", pb_srv,
                                                                                     hosts="names")],
        "hosts": [names], "bypasses": [{"name": "not-far", "matchers": ["far.test"]}],
        "log": {"level": "debug"},
        "chains": [{"name": "c", "hops": [{
            "name": "h", "hosts": "names", "selector": {"strategy": "lowestlatency", "failTimeout": "30s"},
            "nodes": [node("node-a", f"node-a.test:{a.port}", probe=probe),
                      node("node-b", f"node-b.test:{b.port}", probe=probe, bypass="not-far")]}]}]}
    url, dst = f"{origin.url}/sw", f"127.0.0.1:{origin.port}"

    def settles_on(service, limit=8.0):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if carried_by(g, pf, url, dst) == service:
                return True
        return False

    try:
        with gost_yaml(tmp_path, cfg, [pf, pa_srv, pb_srv]) as g:
            assert wait_log(g, r'"msg": "node node-b up"')
            assert settles_on("node-b-srv")
            # the bypass of the fastest node sends far.test through the other
            assert carried_by(g, pf, f"http://far.test:{origin.port}/far", f"far.test:{origin.port}") == "node-a-srv"
            b.delay = 0.6
            assert settles_on("node-a-srv")
            b.delay = 0.0
            assert settles_on("node-b-srv")
            b.close()
            assert wait_log(g, r'"msg": "node node-b down')
            assert [carried_by(g, pf, url, dst) for _ in range(3)] == ["node-a-srv"] * 3
    finally:
        a.close()
        b.close()


def test_service_stop_stops_a_hanging_probe_promptly(tmp_path, origin):
    """A probe stuck in a connect (30 s timeout) does not hold up SIGTERM."""
    pf, st = free_port(), Stalled()
    cfg = {"services": [http_service("proxy", pf, handler={"chain": "c"})],
           "chains": [{"name": "c", "hops": [{"name": "h", "nodes": [node(
               "stuck", f"127.0.0.1:{st.port}", probe={"addr": f"127.0.0.1:{origin.port}", "timeout": "30s"})]}]}]}
    try:
        g = gost_yaml(tmp_path, cfg, [pf]).start()
        t0 = time.monotonic()
        assert g.stop(timeout=10) == 0
        assert time.monotonic() - t0 < 4
        assert "Traceback" not in g.log_text()
    finally:
        st.close()


def test_probes_follow_web_api_changes():
    """A chain POSTed through the Web API starts its nodes' probes, a PUT replaces them, a
    DELETE stops them (the node server sees no more probe connections)."""
    api_port = free_port()

    def chain(name):
        return {"name": "c", "hops": [{"name": "h", "nodes": [node(name, f"127.0.0.1:{srv.port}", probe={
            "addr": "127.0.0.1:9", "interval": "100ms", "timeout": "1s"})]}]}

    def probed(n, limit=5.0):
        deadline = time.monotonic() + limit
        while srv.count < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return srv.count >= n

    # the node is an echo server: it takes each probe's connection and answers nonsense
    with Echo() as srv, Gost("-api", f"127.0.0.1:{api_port}", ports=[api_port]) as g:
        api = Api(api_port)
        api.post("chains", chain("n1"))
        assert wait_log(g, r'"msg": "node n1 down: ')
        assert probed(3)
        api.put("chains", "c", chain("n2"))
        assert wait_log(g, r'"msg": "node n2 down: ')
        assert probed(srv.count + 2)
        api.delete("chains", "c")
        seen = srv.count
        time.sleep(1.0)   # ten probe intervals: an observation window, not a wait for an event
        assert srv.count <= seen + 1      # at most the one in flight when it was deleted


def test_probe_without_addr_is_refused(tmp_path):
    """GOST silently runs no probe when a tcp/http probe has no addr; gostg says so."""
    path = tmp_path / "noaddr.yaml"
    path.write_text(yaml.safe_dump({
        "chains": [{"name": "c", "hops": [{"name": "h", "nodes": [node("n", "127.0.0.1:1", probe={"type": "http"})]}]}],
        "services": [http_service("s", free_port(), handler={"chain": "c"})]}))
    r = run_gostg("-C", path)
    assert r.returncode != 0
    assert "chains[0].hops[0].nodes[0].probe.addr: is required for a http probe" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr


# --- concepts/selector.md: Race Strategy --------------------------------------------------------

def test_parallel_docs_example_survives_a_stopped_node(tmp_path, origin):
    """selector.md "Race Strategy" with two microsocks nodes: with one stopped, every request
    still succeeds (the race is won by the live node) and none waits for a timeout."""
    pf, p0, p1 = free_port(), free_port(), free_port()
    cfg = {"services": [{"name": "service-0", "addr": f"127.0.0.1:{pf}", "handler": {"type": "auto", "chain": "chain-0"},
                         "listener": {"type": "tcp"}}],
           "chains": [{"name": "chain-0", "hops": [{
               "name": "hop-0", "selector": {"strategy": "parallel", "maxFails": 1, "failTimeout": "10s"},
               "nodes": [{"name": "node-0", "addr": f"127.0.0.1:{p0}", "connector": {"type": "socks5"},
                          "dialer": {"type": "tcp"}},
                         {"name": "node-1", "addr": f"127.0.0.1:{p1}", "connector": {"type": "socks5"},
                          "dialer": {"type": "tcp"}}]}]}]}
    with Microsocks(p0) as m0, Microsocks(p1), gost_yaml(tmp_path, cfg, [pf]):
        assert fetch(pf, f"{origin.url}/race", 2) == [(0, 200)] * 2
        m0.__exit__()
        t0 = time.monotonic()
        assert fetch(pf, f"{origin.url}/race", 4) == [(0, 200)] * 4
        assert time.monotonic() - t0 < 6


def test_parallel_picks_the_node_that_handshakes_first(tmp_path, origin):
    """Two gostg socks5+tls nodes, one 500 ms late: the fast one carries every connection;
    when it is gone, the slow one does; a stalled third node never holds anything up."""
    pf, ps_srv, pq_srv = free_port(), free_port(), free_port()
    slow, fast, st = DelayRelay(ps_srv, delay=0.5), DelayRelay(pq_srv, delay=0.0), Stalled()
    tls = {"connector": {"type": "socks5"}, "dialer": {"type": "tls"}}
    cfg = {
        "services": [http_service("proxy", pf, handler={"chain": "c"}),
                     {"name": "slow-srv", "addr": f"127.0.0.1:{ps_srv}", "handler": {"type": "socks5"},
                      "listener": {"type": "tls"}},
                     {"name": "fast-srv", "addr": f"127.0.0.1:{pq_srv}", "handler": {"type": "socks5"},
                      "listener": {"type": "tls"}}],
        "log": {"level": "debug"},
        "chains": [{"name": "c", "hops": [{"name": "h", "selector": {"strategy": "parallel"}, "nodes": [
            {"name": "stalled", "addr": f"127.0.0.1:{st.port}", **tls},
            {"name": "slow", "addr": f"127.0.0.1:{slow.port}", **tls},
            {"name": "fast", "addr": f"127.0.0.1:{fast.port}", **tls}]}]}]}
    dst, url = f"127.0.0.1:{origin.port}", f"{origin.url}/first"
    try:
        with gost_yaml(tmp_path, cfg, [pf, ps_srv, pq_srv]) as g:
            assert [carried_by(g, pf, url, dst) for _ in range(3)] == ["fast-srv"] * 3
            fast.close()
            assert [carried_by(g, pf, url, dst) for _ in range(2)] == ["slow-srv"] * 2
    finally:
        for x in (slow, fast, st):
            x.close()


def test_parallel_forwarder_dials_every_target_at_once():
    """A port forwarder with ``strategy=parallel`` (selector.md's forwarder, raced): a stalled
    and a dead target never delay the connection the live one takes."""
    pf, st, dead = free_port(), Stalled(), closed_port()
    try:
        with Echo(tag=b"live:") as echo, Gost(
                "-L", f"tcp://127.0.0.1:{pf}/127.0.0.1:{st.port},127.0.0.1:{dead},127.0.0.1:{echo.port}"
                      "?strategy=parallel", ports=[pf]):
            t0 = time.monotonic()
            for i in range(3):
                with socket.create_connection(("127.0.0.1", pf), timeout=5) as c:
                    c.sendall(b"ping%d" % i)
                    got = b""
                    while len(got) < 10:
                        data = c.recv(64)
                        if not data:
                            break
                        got += data
                    assert got == b"live:ping%d" % i
            assert time.monotonic() - t0 < 5
    finally:
        st.close()


# --- concepts/chain.md: Virtual Node ------------------------------------------------------------

def test_virtual_node_docs_example(tmp_path, origin):
    """chain.md "Virtual Node" (its ``interface`` lines left out: binding to an interface is
    another part of gostg): the service reaches the target straight from this host."""
    pf = free_port()
    cfg = {"services": [{"name": "service-0", "addr": f"127.0.0.1:{pf}", "handler": {"type": "auto", "chain": "chain-0"},
                         "listener": {"type": "tcp"}}],
           "chains": [{"name": "chain-0", "hops": [{"name": "hop-0", "nodes": [
               {"name": "node-0", "connector": {"type": "virtual"}, "dialer": {"type": "virtual"}},
               {"name": "node-1", "connector": {"type": "virtual"}, "dialer": {"type": "virtual"}}]}]}]}
    with gost_yaml(tmp_path, cfg, [pf]):
        assert fetch(pf, f"{origin.url}/virtual", 2) == [(0, 200)] * 2
        rc, status, body = curl_code("-x", f"socks5h://127.0.0.1:{pf}", f"{origin.url}/v5")
        assert (rc, status) == (0, 200) and body.startswith(b"hello from origin /v5")


def test_direct_node_from_the_command_line_and_reject(tmp_path, origin):
    """``-F direct://:0`` (chain.md's CLI, without ``?interface=``) connects directly; a
    virtual node with ``action: reject`` refuses: the client gets the proxy's refusal."""
    pf = free_port()
    with Gost("-L", f"http://127.0.0.1:{pf}", "-F", "direct://:0", ports=[pf]):
        assert fetch(pf, f"{origin.url}/direct") == [(0, 200)]
    pr = free_port()
    cfg = {"services": [http_service("s", pr, handler={"chain": "c"})],
           "chains": [{"name": "c", "hops": [{"name": "h", "nodes": [
               {"name": "no", "connector": {"type": "virtual", "metadata": {"action": "reject"}},
                "dialer": {"type": "virtual"}}]}]}]}
    with gost_yaml(tmp_path, cfg, [pr]) as g:
        before = origin.connections
        rc, status = fetch(pr, f"{origin.url}/rejected")[0]
        assert status in (502, 503) and origin.connections == before
        assert wait_log(g, r"rejected \(connector action: reject\)")
