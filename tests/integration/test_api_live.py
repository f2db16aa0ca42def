"""The Web API against a live gostg (spec §4, §1.7): services created, replaced and deleted while
running; named objects (chains, hops, bypasses, hosts, resolvers, authers) replaced and seen by
running services on their next connection; read shapes; saving the config.

Every gostg is a real ``bin/gostg -api 127.0.0.1:P`` process; every effect is proved with real
proxied traffic (curl, PySocks) on 127.0.0.1."""
import contextlib
import json
import os
import socket
import stat
import threading
import time

import pytest
import socks
import yaml

from .helpers import Echo, Gost, Origin, free_port, port_closed, run_gostg
from .peers import Api, DNSServer, relay_lines, via_http, via_socks5, wait_log


# --- API client and shared bits ---------------------------------------------------------------

@contextlib.contextmanager
def gostg(*args, cwd=None):
    """``bin/gostg *args -api 127.0.0.1:P`` → (Gost, Api); the process must survive the test."""
    port = free_port()
    g = Gost(*args, "-api", f"127.0.0.1:{port}", ports=[port], cwd=cwd)
    with g:
        yield g, Api(port)
        assert g.proc.poll() is None, "gostg died during the test:\n" + g.log_text()[-3000:]


def strip_status(cfg):
    cfg = json.loads(json.dumps(cfg))
    for s in cfg.get("services") or []:
        s.pop("status", None)
    return cfg


def svc(name, port, handler="http", **extra):
    """A service object; ``handler`` is a type name or a full handler object."""
    handler = handler if isinstance(handler, dict) else {"type": handler}
    o = {"name": name, "addr": f"127.0.0.1:{port}", "handler": handler, "listener": {"type": "tcp"}}
    o.update(extra)
    return o




def served(result, origin, path):
    rc, status, body = result
    return rc == 0 and status == 200 and body.startswith(f"hello from origin {path} ".encode())


def echo_roundtrip(sock, payload, timeout=5.0):
    sock.sendall(payload)
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < len(payload) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        got += d
    return got


def socks5_tunnel(port, target_port, user=None, password=None):
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", port, rdns=True, username=user, password=password)
    s.settimeout(5)
    s.connect(("127.0.0.1", target_port))
    return s


class Prober(threading.Thread):
    """Connects to ``port`` over and over (bounded in count and time) and records every refusal."""

    def __init__(self, port, max_count=3000, max_time=10.0):
        super().__init__(daemon=True)
        self.port, self.max_count, self.max_time = port, max_count, max_time
        self.count = 0
        self.failures = []
        self.done = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_time
        while not self.done.is_set() and self.count < self.max_count and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    pass
            except OSError as exc:
                self.failures.append(repr(exc))
            self.count += 1
            time.sleep(0.002)

    def stop(self):
        self.done.set()
        self.join(timeout=5)


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def upstreams():
    """Two upstream gostg HTTP proxies in their own processes (their info log shows every relay)."""
    p1, p2 = free_port(), free_port()
    with Gost("-L", f"http://127.0.0.1:{p1}", ports=[p1]) as u1, \
            Gost("-L", f"http://127.0.0.1:{p2}", ports=[p2]) as u2:
        u1.port, u2.port = p1, p2
        yield u1, u2


def node(port, name="n"):
    return {"name": name, "addr": f"127.0.0.1:{port}", "connector": {"type": "http"}, "dialer": {"type": "tcp"}}


# --- services --------------------------------------------------------------------------------

def test_post_service_accepts_traffic_at_once(origin):
    with gostg() as (g, api):
        port = free_port()
        assert api.post("services", svc("s1", port)) == {"msg": "OK"}
        # no waiting: a 200 means the port is already listening
        assert served(via_http(port, origin.url + "/at-once"), origin, "/at-once")
        data = api.service("s1")
        assert data["addr"] == f"127.0.0.1:{port}" and data["handler"] == {"type": "http"}
        assert data["status"]["state"] == "ready"


def test_put_moves_service_to_new_port_and_protocol(origin):
    with gostg() as (g, api):
        p1, p2 = free_port(), free_port()
        api.post("services", svc("s", p1, "http"))
        assert served(via_http(p1, origin.url + "/v1"), origin, "/v1")
        assert api.put("services", "s", svc("s", p2, "socks5")) == {"msg": "OK"}
        assert served(via_socks5(p2, origin.url + "/v2"), origin, "/v2")
        # the new port speaks socks5 only: an HTTP proxy request there fails
        rc, status, _ = via_http(p2, origin.url + "/v2-http")
        assert status != 200
        assert port_closed(p1), "the old port still accepts connections after PUT moved the service"
        data = api.service("s")
        assert data["addr"] == f"127.0.0.1:{p2}" and data["handler"]["type"] == "socks5"
        assert data["status"]["state"] == "ready"


def test_put_same_address_new_auth_keeps_port_and_open_tunnels(origin):
    with gostg() as (g, api), Echo() as echo:
        port = free_port()
        # the old version's postDown hook sleeps: a close-then-rebind handover would leave the
        # port refusing for at least that long
        api.post("services", svc("s", port, {"type": "socks5", "auth": {"username": "u1", "password": "p1"}},
                                 metadata={"postDown": ["sleep 0.3"]}))
        before = api.service("s")["status"]["createTime"]
        tunnel = socks5_tunnel(port, echo.port, "u1", "p1")
        try:
            assert echo_roundtrip(tunnel, b"before-put") == b"before-put"
            prober = Prober(port)
            prober.start()
            time.sleep(0.1)
            api.put("services", "s", svc("s", port, {"type": "socks5", "auth": {"username": "u2", "password": "p2"}}))
            time.sleep(0.2)
            prober.stop()
            assert prober.count > 10, "the prober hardly ran"
            assert prober.failures == [], f"port refused during the PUT: {prober.failures[:5]}"
            # the tunnel opened before the PUT still carries data both ways
            assert echo_roundtrip(tunnel, b"after-put" * 100) == b"after-put" * 100
        finally:
            tunnel.close()
        # new connections need the new credentials
        with pytest.raises(socks.ProxyError):
            socks5_tunnel(port, echo.port, "u1", "p1").close()
        t2 = socks5_tunnel(port, echo.port, "u2", "p2")
        try:
            assert echo_roundtrip(t2, b"new-creds") == b"new-creds"
        finally:
            t2.close()
        assert served(via_socks5(port, origin.url + "/u2", "u2:p2"), origin, "/u2")
        data = api.service("s")
        assert data["handler"]["auth"] == {"username": "u2", "password": "p2"}
        assert data["status"]["state"] == "ready" and data["status"]["createTime"] != before


def test_delete_closes_port_and_runs_down_hooks(origin, tmp_path):
    with gostg() as (g, api):
        port = free_port()
        pre, post = tmp_path / "pre-down", tmp_path / "post-down"
        api.post("services", svc("doomed", port, "http",
                                 metadata={"preDown": [f"touch {pre}"], "postDown": [f"touch {post}"]}))
        assert served(via_http(port, origin.url + "/alive"), origin, "/alive")
        assert not pre.exists() and not post.exists()
        assert api.delete("services", "doomed") == {"msg": "OK"}
        assert port_closed(port)
        assert pre.exists(), "preDown hook did not run on DELETE"
        assert post.exists(), "postDown hook did not run on DELETE"
        assert api.ok("GET", "/config/services/doomed") == {"data": {}}
        assert api.ok("GET", "/config/services")["data"] == {"count": 0, "list": []}
        status, js, _ = api.request("DELETE", "/config/services/doomed")
        assert 400 <= status < 500 and js["code"] == 40004


def test_post_errors_leave_running_config_unchanged(origin):
    with gostg() as (g, api):
        port = free_port()
        api.post("services", svc("s", port))
        before = strip_status(api.config())
        status, js, _ = api.request("POST", "/config/services", svc("s", free_port()))
        assert status == 400 and js["code"] == 40002
        status, js, _ = api.request("POST", "/config/services", {"addr": f"127.0.0.1:{free_port()}"})
        assert status == 400 and js["code"] == 40001
        status, js, _ = api.request("POST", "/config/services", svc("bad", free_port(), "no-such-handler"))
        assert 400 <= status < 500 and js["code"] == 40003 and "no-such-handler" in js["msg"]
        status, js, _ = api.request("PUT", "/config/services/missing", svc("missing", free_port()))
        assert 400 <= status < 500 and js["code"] == 40004
        # a PUT that cannot be built leaves the running service as it was (spec rule 1 of runtime)
        status, js, _ = api.request("PUT", "/config/services/s", svc("s", port, "no-such-handler"))
        assert 400 <= status < 500
        assert strip_status(api.config()) == before
        assert served(via_http(port, origin.url + "/still"), origin, "/still")


# --- named objects, late-bound -----------------------------------------------------------------

def test_chain_put_switches_upstream_without_restart(origin, upstreams):
    u1, u2 = upstreams
    dst = f"127.0.0.1:{origin.port}"
    with gostg() as (g, api):
        port = free_port()
        api.post("chains", {"name": "c", "hops": [{"name": "h0", "nodes": [node(u1.port)]}]})
        api.post("services", svc("s", port, {"type": "http", "chain": "c"}))
        created = api.service("s")["status"]["createTime"]
        n1, n2 = relay_lines(u1, dst), relay_lines(u2, dst)
        assert served(via_http(port, origin.url + "/via-u1"), origin, "/via-u1")
        assert len(wait_log(u1, r"<-> " + dst.replace(".", r"\."), count=n1 + 1)) == n1 + 1
        assert relay_lines(u2, dst) == n2
        assert api.put("chains", "c", {"name": "c", "hops": [{"name": "h0", "nodes": [node(u2.port)]}]}) == {"msg": "OK"}
        n1 = relay_lines(u1, dst)
        assert served(via_http(port, origin.url + "/via-u2"), origin, "/via-u2")
        assert len(wait_log(u2, r"<-> " + dst.replace(".", r"\."), count=n2 + 1)) == n2 + 1
        assert relay_lines(u1, dst) == n1, "traffic still went through the old upstream"
        assert api.service("s")["status"]["createTime"] == created, "the service was restarted"
        assert api.ok("GET", "/config/chains/c")["data"]["hops"][0]["nodes"][0]["addr"] == f"127.0.0.1:{u2.port}"


def test_chain_put_then_old_upstream_can_die(origin):
    """The first upstream is stopped after the PUT: traffic keeps flowing (through the second)."""
    p1, p2 = free_port(), free_port()
    with Gost("-L", f"http://127.0.0.1:{p1}", ports=[p1]) as u1, \
            Gost("-L", f"http://127.0.0.1:{p2}", ports=[p2]), gostg() as (g, api):
        port = free_port()
        api.post("chains", {"name": "c", "hops": [{"name": "h0", "nodes": [node(p1)]}]})
        api.post("services", svc("s", port, {"type": "http", "chain": "c"}))
        assert served(via_http(port, origin.url + "/one"), origin, "/one")
        u1.stop()
        assert port_closed(p1)
        rc, status, _ = via_http(port, origin.url + "/dead")
        assert status != 200, "the chain does not use the first upstream at all"
        api.put("chains", "c", {"name": "c", "hops": [{"name": "h0", "nodes": [node(p2)]}]})
        assert served(via_http(port, origin.url + "/two"), origin, "/two")


def test_hop_put_seen_by_chain_referencing_it(origin, upstreams):
    u1, u2 = upstreams
    dst = f"127.0.0.1:{origin.port}"
    rx = r"<-> " + dst.replace(".", r"\.")
    with gostg() as (g, api):
        port = free_port()
        api.post("hops", {"name": "hop-a", "nodes": [node(u1.port)]})
        api.post("chains", {"name": "c", "hops": [{"name": "hop-a"}]})
        api.post("services", svc("s", port, {"type": "http", "chain": "c"}))
        n1, n2 = relay_lines(u1, dst), relay_lines(u2, dst)
        assert served(via_http(port, origin.url + "/hop-u1"), origin, "/hop-u1")
        assert len(wait_log(u1, rx, count=n1 + 1)) == n1 + 1
        api.put("hops", "hop-a", {"name": "hop-a", "nodes": [node(u2.port)]})
        n1 = relay_lines(u1, dst)
        assert served(via_http(port, origin.url + "/hop-u2"), origin, "/hop-u2")
        assert len(wait_log(u2, rx, count=n2 + 1)) == n2 + 1
        assert relay_lines(u1, dst) == n1
        assert api.ok("GET", "/config/chains/c")["data"] == {"name": "c", "hops": [{"name": "hop-a"}]}


def test_bypass_put_refuses_target(origin):
    with gostg() as (g, api):
        port = free_port()
        api.post("bypasses", {"name": "bp", "matchers": ["blocked.invalid"]})
        api.post("services", svc("s", port, bypass="bp"))
        created = api.service("s")["status"]["createTime"]
        assert served(via_http(port, origin.url + "/open"), origin, "/open")
        api.put("bypasses", "bp", {"name": "bp", "matchers": ["127.0.0.1"]})
        rc, status, _ = via_http(port, origin.url + "/closed")
        assert status == 403, f"bypassed target not refused (status {status})"
        api.put("bypasses", "bp", {"name": "bp", "matchers": ["10.0.0.0/8"]})
        assert served(via_http(port, origin.url + "/reopened"), origin, "/reopened")
        assert api.service("s")["status"]["createTime"] == created


def test_hosts_put_changes_name_mapping(origin):
    """Names the hosts object does not map fall to a resolver that knows nothing (NXDOMAIN), so
    which name works shows where the hosts object maps."""
    with DNSServer({}) as dns, gostg() as (g, api):
        port = free_port()
        api.post("resolvers", {"name": "empty", "nameservers": [{"addr": f"udp://127.0.0.1:{dns.port}"}]})
        api.post("hosts", {"name": "h", "mappings": [{"ip": "127.0.0.1", "hostname": "alpha.test"}]})
        api.post("services", svc("s", port, hosts="h", resolver="empty"))
        created = api.service("s")["status"]["createTime"]
        assert served(via_http(port, f"http://alpha.test:{origin.port}/a"), origin, "/a")
        assert via_http(port, f"http://beta.test:{origin.port}/b")[1] == 503
        api.put("hosts", "h", {"name": "h", "mappings": [{"ip": "127.0.0.1", "hostname": "beta.test"}]})
        assert served(via_http(port, f"http://beta.test:{origin.port}/b"), origin, "/b")
        assert via_http(port, f"http://alpha.test:{origin.port}/a")[1] == 503
        assert api.service("s")["status"]["createTime"] == created


def test_resolver_put_changes_nameserver(origin):
    with DNSServer({"one.test": "127.0.0.1"}) as dns1, DNSServer({"two.test": "127.0.0.1"}) as dns2, \
            gostg() as (g, api):
        port = free_port()
        api.post("resolvers", {"name": "r", "nameservers": [{"addr": f"udp://127.0.0.1:{dns1.port}"}]})
        api.post("services", svc("s", port, resolver="r"))
        assert served(via_http(port, f"http://one.test:{origin.port}/1"), origin, "/1")
        assert via_http(port, f"http://two.test:{origin.port}/2")[1] == 503
        assert ("one.test", "A") in dns1.queries and not dns2.queries
        api.put("resolvers", "r", {"name": "r", "nameservers": [{"addr": f"udp://127.0.0.1:{dns2.port}"}]})
        assert served(via_http(port, f"http://two.test:{origin.port}/2"), origin, "/2")
        assert ("two.test", "A") in dns2.queries


def test_auther_put_changes_accepted_credentials(origin):
    with gostg() as (g, api):
        port = free_port()
        api.post("authers", {"name": "au", "auths": [{"username": "alice", "password": "a1"}]})
        api.post("services", svc("s", port, {"type": "http", "auther": "au"}))
        created = api.service("s")["status"]["createTime"]
        assert served(via_http(port, origin.url + "/alice", "alice:a1"), origin, "/alice")
        assert via_http(port, origin.url + "/bob", "bob:b1")[1] == 407
        api.put("authers", "au", {"name": "au", "auths": [{"username": "bob", "password": "b1"}]})
        assert served(via_http(port, origin.url + "/bob", "bob:b1"), origin, "/bob")
        assert via_http(port, origin.url + "/alice", "alice:a1")[1] == 407
        assert api.service("s")["status"]["createTime"] == created


# --- reading -----------------------------------------------------------------------------------

OBJECTS = {
    "chains": {"name": "c1", "hops": [{"name": "h", "nodes": [{"name": "n", "addr": "127.0.0.1:1",
                                                                 "connector": {"type": "http"}, "dialer": {"type": "tcp"}}]}]},
    "hops": {"name": "hp1", "nodes": [{"name": "n", "addr": "127.0.0.1:2", "connector": {"type": "socks5"},
                                        "dialer": {"type": "tcp"}}]},
    "authers": {"name": "a1", "auths": [{"username": "u", "password": "p"}]},
    "admissions": {"name": "ad1", "matchers": ["10.0.0.0/8"]},
    "bypasses": {"name": "b1", "matchers": ["example.invalid"]},
    "resolvers": {"name": "r1", "nameservers": [{"addr": "udp://127.0.0.1:5353"}]},
    "hosts": {"name": "ho1", "mappings": [{"ip": "127.0.0.1", "hostname": "x.test"}]},
}


def test_get_list_and_item_shapes():
    with gostg() as (g, api):
        port = free_port()
        service = svc("svc1", port, metadata={"enableStats": True})
        api.post("services", service)
        for kind, obj in OBJECTS.items():
            api.post(kind, obj)
        for kind, obj in [("services", service), *OBJECTS.items()]:
            listing = api.ok("GET", f"/config/{kind}")
            assert set(listing) == {"data"} and set(listing["data"]) == {"count", "list"}, listing
            assert listing["data"]["count"] == 1 and len(listing["data"]["list"]) == 1
            item = api.ok("GET", f"/config/{kind}/{obj['name']}")
            assert set(item) == {"data"}
            got = dict(item["data"])
            if kind == "services":
                assert got.pop("status")["state"] == "ready"
                assert listing["data"]["list"][0]["name"] == "svc1"
            else:
                assert listing["data"]["list"][0] == obj
            assert got == obj
            assert api.ok("GET", f"/config/{kind}/absent") == {"data": {}}
        for kind in ("limiters", "ingresses"):
            assert api.ok("GET", f"/config/{kind}") == {"data": {"count": 0, "list": []}}


def test_get_config_has_service_status_ready_with_stats(origin):
    with gostg() as (g, api):
        port = free_port()
        api.post("services", svc("s", port, metadata={"enableStats": True}))
        assert served(via_http(port, origin.url + "/stats"), origin, "/stats")
        deadline = time.monotonic() + 5
        while True:
            cfg = api.config()
            st = next(s for s in cfg["services"] if s["name"] == "s")["status"]
            if st["stats"]["currentConns"] == 0 and st["stats"]["outputBytes"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert st["state"] == "ready"
        assert isinstance(st["createTime"], int) and st["createTime"] > 0
        assert set(st["stats"]) == {"totalConns", "currentConns", "totalErrs", "inputBytes", "outputBytes"}
        assert st["stats"]["totalConns"] >= 1 and st["stats"]["currentConns"] == 0
        assert st["stats"]["inputBytes"] > 0 and st["stats"]["outputBytes"] > 0
        assert any("listening on" in e["msg"] for e in st["events"])
        assert cfg["api"]["addr"] == f"127.0.0.1:{api.port}"
        status, _, raw = api.request("GET", "/config?format=yaml")
        assert status == 200 and yaml.safe_load(raw)["services"][0]["status"]["state"] == "ready"


# --- saving ------------------------------------------------------------------------------------

def populate(api):
    api.post("chains", OBJECTS["chains"])
    api.post("hosts", OBJECTS["hosts"])
    api.post("services", svc("saved", free_port(), {"type": "socks5", "chain": "c1",
                                                          "auth": {"username": "u", "password": "p"}},
                             metadata={"enableStats": True, "preDown": ["true"]}))


def loads_back(path, expected):
    r = run_gostg("-C", path, "-O", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == expected


def only_file(d, name):
    assert sorted(os.listdir(d)) == [name], f"left behind: {sorted(os.listdir(d))}"


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_save_to_path_round_trips(tmp_path, fmt):
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"saved.{'yml' if fmt == 'yaml' else 'conf'}"
    with gostg(cwd=tmp_path) as (g, api):
        populate(api)
        query = f"path={target}" + ("&format=json" if fmt == "json" else "")
        assert api.ok("POST", f"/config?{query}") == {"msg": "OK"}
        expected = strip_status(api.config())
        only_file(out, target.name)
        text = target.read_text()
        if fmt == "json":
            assert json.loads(text) == expected
        else:
            assert not text.lstrip().startswith("{")
            assert yaml.safe_load(text) == expected
        assert "status" not in text
        # -O reads by extension; JSON is YAML too, so both load back through bin/gostg
        loads_back(target, expected)


def test_save_default_is_the_single_config_file(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    p = free_port()
    cfg.write_text(yaml.safe_dump({"services": [svc("from-file", p)]}))
    with gostg("-C", cfg, cwd=tmp_path) as (g, api):
        populate(api)
        assert api.ok("POST", "/config") == {"msg": "OK"}
        expected = strip_status(api.config())
        only_file(tmp_path, "cfg.yaml")
        assert [s["name"] for s in yaml.safe_load(cfg.read_text())["services"]] == ["from-file", "saved"]
        loads_back(cfg, expected)


@pytest.mark.parametrize("sources", ["none", "two-files"])
def test_save_default_is_gost_yaml_in_cwd_otherwise(tmp_path, sources):
    args = []
    keep = {}
    if sources == "two-files":
        for i in range(2):
            f = tmp_path / f"part{i}.yaml"
            f.write_text(yaml.safe_dump({"services": [svc(f"part{i}", free_port())]}))
            keep[f.name] = f.read_text()
            args += ["-C", f]
    with gostg(*args, cwd=tmp_path) as (g, api):
        populate(api)
        assert api.ok("POST", "/config") == {"msg": "OK"}
        expected = strip_status(api.config())
        assert sorted(os.listdir(tmp_path)) == sorted([*keep, "gost.yaml"])
        for name, text in keep.items():
            assert (tmp_path / name).read_text() == text, f"{name} was overwritten"
        loads_back(tmp_path / "gost.yaml", expected)
        assert api.ok("POST", "/config?format=json") == {"msg": "OK"}
        assert json.loads((tmp_path / "gost.json").read_text()) == expected
        assert sorted(os.listdir(tmp_path)) == sorted([*keep, "gost.yaml", "gost.json"])


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


@pytest.mark.parametrize("case", ["existing", "new"])
def test_save_file_permissions(tmp_path, case):
    """GOST writes with os.Create: an existing file keeps its mode, a new one gets 0666 &^ umask.
    An atomic save must not turn the config file into 0600."""
    target = tmp_path / "perm.yaml"
    if case == "existing":
        target.write_text("services: []\n")
        os.chmod(target, 0o640)
        want = 0o640
    else:
        want = 0o666 & ~_umask()
    with gostg(cwd=tmp_path) as (g, api):
        api.ok("POST", f"/config?path={target}")
    assert stat.S_IMODE(os.stat(target).st_mode) == want, oct(stat.S_IMODE(os.stat(target).st_mode))
