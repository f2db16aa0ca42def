"""Ingresses, routers and sds as the tunnel/router handlers will see them: each object built
by gostg's own code in a gevent-patched process (objprobe.py), its interface called, its log read;
sources are a real redis-server (HASH, SET, LIST; a restart; push), files and an HTTP server;
plugins are a real HTTP plugin server and a real gRPC one. The Web API side (CRUD, GET /config,
no leak on replace/delete) is in test_ingress_router_sd_api.py."""
import json
import os
import subprocess
import sys
import time

import pytest

from .helpers import free_port
from .pluginserver import PluginServer, Slow
from .redisproc import RedisServer, redis_srv, until  # noqa: F401 - fixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
U1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
U2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"
U3 = "c9ef8f8c-d687-4dca-be7a-1467b6565404"
U4 = "1b564300-a2c5-406d-af0c-b7bdb039b0e3"


class Probe:
    """objprobe.py as a subprocess: ``call(method, *args)`` → the JSON answer; ``log()`` its
    log lines (dicts)."""

    def __init__(self, tmp_path, kind, obj):
        self.err = open(tmp_path / f"probe-{time.monotonic_ns()}.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.integration.objprobe"], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     env=dict(os.environ, GOSTG_STRICT_SCHEMA="1"))
        self._send({"kind": kind, "object": obj})

    def _send(self, doc):
        self.proc.stdin.write(json.dumps(doc) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the probe ended: {self.log_text()[-2000:]}"
        return json.loads(line)

    def call(self, method, *args):
        return self._send([method, list(args)])

    def until(self, pred, method, *args, timeout=5.0):
        """Call until ``pred(answer)`` (the probe sleeps 20 ms between calls) → the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.call(method, *args)
            if pred(v) or time.monotonic() > deadline:
                return v
            self.call("sleep", 0.02)

    def log_text(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def log(self):
        return [json.loads(x) for x in self.log_text().splitlines() if x.startswith("{")]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def endpoint(rule):
    return rule["endpoint"] if rule else None


def gateway(route):
    return route["gateway"] if route else None


# --- sources -----------------------------------------------------------------------------------------

def test_ingress_reads_inline_file_redis_hash_or_set_and_http_a_later_source_winning(tmp_path, redis_srv):
    r = redis_srv.client()
    r.hset("gost:ingresses:h", mapping={"redis.example.com": U2, "both.example.com": U3, "bad.example.com": "nope"})
    r.sadd("gost:ingresses:s", f"*.set.example.org {U4}", "set.example.net    # a comment, no endpoint")
    f = tmp_path / "rules.txt"
    f.write_text(f"# hostname endpoint\nfile.example.com  {U1}\n\nboth.example.com\t{U2}  # file's\n")
    with PluginServer(files={"/rules": f"http.example.com {U3}\nboth.example.com ${U4}\n".encode()}) as web:
        obj = {"name": "ing", "rules": [{"hostname": "both.example.com", "endpoint": U1},
                                        {"hostname": ".inline.example.com", "endpoint": U1}],
               "file": {"path": str(f)}, "redis": {"addr": redis_srv.addr, "key": "gost:ingresses:h"},
               "http": {"url": f"{web.url}/rules", "timeout": "2s"}}
        with Probe(tmp_path, "ingresses", obj) as p:
            assert endpoint(p.call("get_rule", "redis.example.com:443")) == U2
            assert endpoint(p.call("get_rule", "file.example.com")) == U1
            assert endpoint(p.call("get_rule", "http.example.com")) == U3
            assert endpoint(p.call("get_rule", "x.inline.example.com")) == U1
            assert endpoint(p.call("get_rule", "both.example.com")) == f"${U4}"    # http wins, then redis …
            assert p.call("get_rule", "bad.example.com") is None
            assert p.call("set_rule", "new.example.com", U1) is False              # a local ingress refuses
            skipped = [x["msg"] for x in p.log() if "skipped" in x.get("msg", "")]
            assert len(skipped) == 1 and "nope" in skipped[0] and "bad.example.com" not in json.dumps(
                [x for x in p.log() if x.get("level") == "error"])
            assert all(x.get("ingress") == "ing" for x in p.log() if "skipped" in x.get("msg", "")), p.log()
        obj["redis"] = {"addr": redis_srv.addr, "key": "gost:ingresses:s", "type": "set"}
        with Probe(tmp_path, "ingresses", obj) as p:
            assert endpoint(p.call("get_rule", "a.b.set.example.org")) == U4
            assert endpoint(p.call("get_rule", "set.example.org")) == U4
            assert p.call("get_rule", "set.example.net") is None


def test_router_reads_redis_hash_set_and_list_first_match_in_source_order(tmp_path, redis_srv):
    r = redis_srv.client()
    r.hset("rt:h", mapping={"10.0.0.0/8": "192.168.123.1", "172.10.0.0/16": "192.168.123.3"})
    r.sadd("rt:s", "192.168.1.0/24 192.168.123.2", "bogus 1.2.3.4")
    r.rpush("rt:l", "10.1.0.0/16 192.168.123.9", "fd00::/8 fd00::1")
    f = tmp_path / "routes.txt"
    f.write_text("# dst gateway\n10.0.0.1  192.168.123.7\n")
    base = {"name": "rt", "routes": [{"dst": "10.2.0.0/16", "gateway": "inline"}], "file": {"path": str(f)}}
    with Probe(tmp_path, "routers", {**base, "redis": {"addr": redis_srv.addr, "key": "rt:h"}}) as p:
        assert gateway(p.call("get_route", "10.2.3.4")) == "inline"        # inline first
        assert gateway(p.call("get_route", "10.0.0.1")) == "192.168.123.7"  # then the file
        assert gateway(p.call("get_route", "10.9.9.9")) == "192.168.123.1"  # then Redis
        assert p.call("get_route", "172.10.3.4") == {"net": "172.10.0.0/16", "dst": "172.10.0.0/16",
                                                     "gateway": "192.168.123.3"}
        assert p.call("get_route", "8.8.8.8") is None
    with Probe(tmp_path, "routers", {"name": "rt", "redis": {"addr": redis_srv.addr, "key": "rt:s",
                                                              "type": "set"}}) as p:
        assert gateway(p.call("get_route", "192.168.1.77")) == "192.168.123.2"
        assert any("bogus" in x.get("msg", "") and "skipped" in x["msg"] for x in p.log())
    with Probe(tmp_path, "routers", {"name": "rt", "redis": {"addr": redis_srv.addr, "key": "rt:l",
                                                              "type": "list"}}) as p:
        assert gateway(p.call("get_route", "10.1.2.3")) == "192.168.123.9"
        assert gateway(p.call("get_route", "fd00::42")) == "fd00::1"


def test_redis_restart_keeps_the_last_good_rules_logged_once_then_recovered(tmp_path):
    with RedisServer(tmp_path) as srv:
        srv.client().hset("k", "a.example.com", U1)
        obj = {"name": "ing", "reload": "100ms", "redis": {"addr": srv.addr, "key": "k"}}
        with Probe(tmp_path, "ingresses", obj) as p:
            assert endpoint(p.call("get_rule", "a.example.com")) == U1
            srv.stop()
            p.call("sleep", 0.6)                                             # several failed polls
            assert endpoint(p.call("get_rule", "a.example.com")) == U1      # last good kept
            failing = [x for x in p.log() if "keeping the last good value" in x.get("msg", "")]
            assert len(failing) == 1 and failing[0]["loader"] == "redis", p.log_text()
            srv.start()                                                      # no persistence: empty
            srv.client().hset("k", "b.example.com", U2)
            assert endpoint(p.until(lambda v: v is not None, "get_rule", "b.example.com", timeout=8)) == U2
            assert p.call("get_rule", "a.example.com") is None               # the store's truth now
            assert any(x.get("msg") == "redis loader recovered" for x in p.log())


def test_a_source_never_read_routes_nothing(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    with Probe(tmp_path, "ingresses", {"name": "ing", "rules": [{"hostname": "a.com", "endpoint": U1}],
                                       "redis": {"addr": dead}}) as p:
        assert p.call("get_rule", "a.com") is None        # its rules are unknown: fail closed
        assert any("connection refused" in x.get("msg", "").lower() for x in p.log()), p.log_text()
    with Probe(tmp_path, "routers", {"name": "rt", "routes": [{"dst": "10.0.0.0/8", "gateway": "g"}],
                                     "redis": {"addr": dead}}) as p:
        assert p.call("get_route", "10.1.1.1") is None


def test_push_applies_a_redis_change_at_once(tmp_path, redis_srv):
    r = redis_srv.client()
    obj = {"name": "ing", "redis": {"addr": redis_srv.addr, "key": "pk", "pubsub": True}}   # no reload
    with Probe(tmp_path, "ingresses", obj) as p:
        assert p.call("get_rule", "p.example.com") is None
        assert until(lambda: r.pubsub_numsub("gostg:reload")[0][1] == 1, timeout=5)
        r.hset("pk", "p.example.com", U3)
        r.publish("gostg:reload", "pk")
        t0 = time.monotonic()
        assert endpoint(p.until(lambda v: v is not None, "get_rule", "p.example.com", timeout=3)) == U3
        assert time.monotonic() - t0 < 1.0
    obj = {"name": "rt", "redis": {"addr": redis_srv.addr, "key": "rk", "type": "list", "pubsub": True}}
    with Probe(tmp_path, "routers", obj) as p:
        assert until(lambda: r.pubsub_numsub("gostg:reload")[0][1] == 1, timeout=5)
        r.rpush("rk", "10.0.0.0/8 gw")
        r.publish("gostg:reload", "rk")
        assert gateway(p.until(lambda v: v is not None, "get_route", "10.3.3.3", timeout=3)) == "gw"


# --- HTTP plugins --------------------------------------------------------------------------------------

def test_http_plugins_speak_gosts_rest_protocol(tmp_path):
    rules = {"a.example.com": U1}
    services = []

    def get_rule(q):
        return {"endpoint": rules.get(q["host"], "")}

    def sd_get(q):
        return {"services": [s for s in services if s["name"] == q["name"]]}

    rest = {("GET", "/ingress"): get_rule, ("PUT", "/ingress"): lambda b: {"ok": True},
            ("GET", "/router"): lambda q: {"dst": "192.168.1.0/24", "gateway": "192.168.123.2"},
            ("POST", "/sd"): lambda b: services.append(b) or {}, ("PUT", "/sd"): lambda b: {},
            ("DELETE", "/sd"): lambda b: services.clear() or {}, ("GET", "/sd"): sd_get}
    with PluginServer(rest=rest) as web:
        plug = {"type": "http", "addr": f"{web.url}/ingress?v=1", "token": "t0k", "timeout": "2s"}
        with Probe(tmp_path, "ingresses", {"name": "pi", "plugin": plug}) as p:
            assert p.call("get_rule", "a.example.com") == {"hostname": "a.example.com", "endpoint": U1}
            assert p.call("get_rule", "b example&x=1") is None
            assert p.call("set_rule", "c.example.com", f"${U2}") is True
        paths = [x[0] for x in web.requests if x[0].startswith("/ingress")]
        assert paths[:2] == ["/ingress?host=a.example.com&v=1", "/ingress?host=b+example%26x%3D1&v=1"]
        assert web.calls[2] == ("PUT", "/ingress", {"service": "", "host": "c.example.com", "endpoint": f"${U2}"})
        assert all(h.get("Authorization") == "Bearer t0k" for _, h, _ in web.requests)
        plug = {"type": "http", "addr": f"{web.url}/router"}
        with Probe(tmp_path, "routers", {"name": "pr", "plugin": plug}) as p:
            assert p.call("get_route", "192.168.1.2", "", U4) == {"net": "192.168.1.0/24", "dst": "192.168.1.0/24",
                                                                   "gateway": "192.168.123.2"}
        assert web.requests[-1][0] == f"/router?dst=192.168.1.2&id={U4}"
        svc = ["c23d4f42", U3, "db670b91", "tcp", "10.42.0.100:80"]
        with Probe(tmp_path, "sds", {"name": "sd", "plugin": {"type": "http", "addr": f"{web.url}/sd"}}) as p:
            assert p.call("register", *svc) is True and p.call("renew", *svc) is True
            assert p.call("get", U3) == [dict(zip(("id", "name", "node", "network", "address"), svc))]
            assert p.call("deregister", *svc) is True and p.call("get", U3) == []
        assert [c[0] for c in web.calls if c[1] == "/sd"] == ["POST", "PUT", "GET", "DELETE", "GET"]
        assert web.calls[-5][2] == dict(zip(("id", "name", "node", "network", "address"), svc))


def test_http_plugins_that_fail_route_nothing_log_once_and_recover(tmp_path):
    state = {"code": 500}

    def rule(q):
        return (state["code"], {"endpoint": U1})

    rest = {("GET", "/ingress"): rule, ("GET", "/sd"): lambda q: (state["code"], b"{}"), ("GET", "/slow"): Slow(1.5)}
    with PluginServer(rest=rest) as web:
        slow = {"name": "ps", "plugin": {"type": "http", "addr": f"{web.url}/slow", "timeout": "300ms"}}
        with Probe(tmp_path, "routers", slow) as p:
            t0 = time.monotonic()
            assert p.call("get_route", "10.0.0.1") is None       # a slow plugin: no route, in its timeout
            assert time.monotonic() - t0 < 1.2
            assert "no answer within 0.3s" in p.log_text()
        with Probe(tmp_path, "ingresses", {"name": "pi", "plugin": {"type": "http", "addr": f"{web.url}/ingress"}}) as p:
            for _ in range(3):
                assert p.call("get_rule", "a.com") is None
            state["code"] = 200
            assert endpoint(p.call("get_rule", "a.com")) == U1
            lines = [(x["level"], x["msg"]) for x in p.log()
                     if x.get("kind") == "ingress" and x.get("ingress") == "pi"]
            assert lines == [("error", "ingress plugin pi: HTTP 500: no rule until it answers"),
                             ("info", "ingress plugin pi answers again")], p.log_text()
        state["code"] = 502
        with Probe(tmp_path, "sds", {"name": "sd", "plugin": {"type": "http", "addr": f"{web.url}/sd"}}) as p:
            assert p.call("get", U1) == [] and p.call("get", U2) == []
            assert len([x for x in p.log() if x.get("level") == "error"]) == 1
    with Probe(tmp_path, "routers", {"name": "pr", "plugin": {"type": "http", "addr": web.url, "timeout": "1s"}}) as p:
        assert p.call("get_route", "10.0.0.1") is None      # the plugin server is gone
        assert "no route until it answers" in p.log_text()


# --- gRPC plugins -------------------------------------------------------------------------------------

def test_grpc_plugins_ingress_router_sd(tmp_path):
    try:
        import grpc  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("grpcio not installed")
    from .grpcpeer import PluginServer as GrpcPlugin

    with GrpcPlugin(token="tk") as srv:
        srv.rules["a.example.com"] = f"${U1}"
        srv.routes["10.1.1.1"] = ("10.0.0.0/8", "gw")
        plug = {"type": "grpc", "addr": srv.addr, "token": "tk", "timeout": "3s"}
        with Probe(tmp_path, "ingresses", {"name": "gi", "plugin": plug}) as p:
            assert endpoint(p.call("get_rule", "a.example.com")) == f"${U1}"
            assert p.call("get_rule", "b.example.com") is None
            assert p.call("set_rule", "b.example.com", U2) is True
            assert endpoint(p.call("get_rule", "b.example.com")) == U2
        with Probe(tmp_path, "routers", {"name": "gr", "plugin": plug}) as p:
            assert p.call("get_route", "10.1.1.1") == {"net": "10.0.0.0/8", "dst": "10.0.0.0/8", "gateway": "gw"}
            assert p.call("get_route", "10.1.1.2") is None
        svc = ["id1", U3, "node1", "tcp", "10.0.0.1:80"]
        with Probe(tmp_path, "sds", {"name": "gs", "plugin": plug}) as p:
            assert p.call("register", *svc) is True and p.call("renew", *svc) is True
            assert p.call("get", U3) == [dict(zip(("id", "name", "node", "network", "address"), svc))]
            assert p.call("deregister", *svc) is True and p.call("get", U3) == []
        assert [c[0] for c in srv.calls[-5:]] == ["Register", "Renew", "Get", "Deregister", "Get"]
        assert srv.calls[-5][1]["service"] == dict(zip(("id", "name", "node", "network", "address"), svc))
        assert all(c[2].get("token") == "tk" for c in srv.calls)
        assert srv.bad_tokens == 0
        srv.hang = True
        with Probe(tmp_path, "sds", {"name": "gs", "plugin": {**plug, "timeout": "300ms"}}) as p:
            t0 = time.monotonic()
            assert p.call("get", U3) == []                       # fail closed within the timeout
            assert time.monotonic() - t0 < 3
            assert "no service found until it answers" in p.log_text()
