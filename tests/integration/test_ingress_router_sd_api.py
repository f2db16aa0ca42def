"""Ingresses, routers and sds through what a user drives: bin/gostg's Web API (CRUD on
/config/ingresses, /config/routers, /config/sds; GET /config shows them), --check and -O, and
no leak when one is replaced or deleted (Redis sees its connections and polls go; a plugin's
transport is closed), nor when -R re-reads an unchanged config."""
import json

import yaml

from .helpers import Gost, free_port, run_gostg
from .peers import Api, log_records
from .pluginserver import PluginServer
from .redisproc import redis_srv, until  # noqa: F401 - fixture

U1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
U2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"


def _subscribers(r):
    return r.pubsub_numsub("gostg:reload")[0][1]


def _clients(r):
    return len(r.client_list()) - 1   # not counting this one


def _calls(r, cmd):
    return r.info("commandstats").get(f"cmdstat_{cmd}", {}).get("calls", 0)


def test_api_crud_shows_objects_refuses_bad_ones_and_closes_what_it_replaces(tmp_path, redis_srv):
    r = redis_srv.client()
    r.hset("gost:ing", "a.example.com", U1)
    r.rpush("gost:rt", "10.0.0.0/8 gw")
    api_port = free_port()
    ing = {"name": "ing", "reload": "200ms", "rules": [{"hostname": "*.example.org", "endpoint": f"${U2}"}],
           "redis": {"addr": redis_srv.addr, "key": "gost:ing", "pubsub": True}}
    rt = {"name": "rt", "reload": "200ms", "routes": [{"dst": "192.168.1.0/24", "gateway": "192.168.123.2"}],
          "redis": {"addr": redis_srv.addr, "key": "gost:rt", "type": "list"}}
    with PluginServer() as web, Gost("-api", f"127.0.0.1:{api_port}", ports=[api_port]) as g:
        sd = {"name": "sd", "plugin": {"type": "http", "addr": f"{web.url}/sd", "timeout": "2s"}}
        api = Api(api_port)
        api.post("ingresses", ing)
        api.post("routers", rt)
        api.post("sds", sd)
        cfg = api.config()
        assert cfg["ingresses"] == [ing] and cfg["routers"] == [rt] and cfg["sds"] == [sd]
        assert api.ok("GET", "/config/routers")["data"] == {"count": 1, "list": [rt]}
        assert yaml.safe_load(api.request("GET", "/config?format=yaml")[2])["ingresses"] == [ing]
        assert [x["msg"] for x in log_records(g, kind="api")][:3] == ["ingress ing created", "router rt created",
                                                                       "sd sd created"]
        # bad objects: refused with the path of what is wrong; nothing changes
        for kind, bad, where in (
                ("ingresses", {"name": "b", "rules": [{"hostname": "x.com", "endpoint": "tunnel-1"}]},
                 "rules[0].endpoint"),
                ("routers", {"name": "b", "routes": [{"dst": "10.0.0.0/99", "gateway": "g"}]}, "routes[0].dst"),
                ("sds", {"name": "b"}, "plugin"),
                ("ingresses", {"name": "b", "redis": {"addr": redis_srv.addr, "type": "list"}}, "redis.type")):
            status, js, raw = api.request("POST", f"/config/{kind}", bad)
            assert status in (400, 409) and f"{kind}[1].{where}" in js["msg"], (kind, status, raw)
        assert api.config() == cfg
        assert until(lambda: _subscribers(r) == 1 and _clients(r) <= 2, timeout=5), r.client_list()
        for _ in range(3):                                   # replaced three times: one of each left
            api.put("ingresses", "ing", ing)
            api.put("routers", "rt", rt)
        assert until(lambda: _subscribers(r) == 1 and _clients(r) <= 2, timeout=5), r.client_list()
        api.delete("ingresses", "ing")
        api.delete("routers", "rt")
        api.delete("sds", "sd")
        assert until(lambda: _subscribers(r) == 0 and _clients(r) == 0, timeout=5), r.client_list()
        polls = _calls(r, "hgetall") + _calls(r, "lrange")
        until(lambda: False, timeout=0.6)                    # three poll periods
        assert _calls(r, "hgetall") + _calls(r, "lrange") == polls, "a poller still runs"
        assert {k: v for k, v in api.config().items() if k in ("ingresses", "routers", "sds")} in (
            {}, {"ingresses": [], "routers": [], "sds": []})
        assert g.proc.poll() is None
        assert "Traceback" not in g.log_text()


def test_check_and_output_say_what_a_user_wrote(tmp_path):
    good = {"ingresses": [{"name": "ing", "rules": [{"hostname": "example.com", "endpoint": U1},
                                                    {"hostname": ".example.org", "endpoint": f"${U2}"}],
                           "file": {"path": str(tmp_path / "rules.txt")}, "reload": "10s"}],
            "routers": [{"name": "rt", "routes": [{"net": "192.168.1.0/24", "gateway": "192.168.123.2"},
                                                  {"dst": "10.0.0.1", "gateway": "192.168.123.1"}]}],
            "sds": [{"name": "sd", "plugin": {"type": "http", "addr": "http://127.0.0.1:1/sd"}}],
            "api": {"addr": f"127.0.0.1:{free_port()}"}}
    (tmp_path / "rules.txt").write_text(f"a.example.net {U1}\n")
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(good, sort_keys=False))
    res = run_gostg("-C", path, "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    out = run_gostg("-C", path, "-O", "yaml")
    assert out.returncode == 0 and yaml.safe_load(out.stdout) == good, out.stdout + out.stderr
    again = tmp_path / "again.yaml"
    again.write_text(out.stdout)
    assert yaml.safe_load(run_gostg("-C", again, "-O", "json").stdout) == good
    for broken, where in (
            ({"ingresses": [{"name": "i", "rules": [{"hostname": "*x.com", "endpoint": U1}]}]},
             "ingresses[0].rules[0].hostname"),
            ({"routers": [{"name": "r", "routes": [{"dst": "10.0.0.1", "gw": "g"}]}]}, "routers[0].routes[0].gw"),
            ({"ingresses": [{"name": "i", "file": {"path": str(tmp_path / "missing.txt")}}]},
             "ingresses[0].file.path")):
        p = tmp_path / "bad.yaml"
        p.write_text(json.dumps({**broken, "api": good["api"]}))
        res = run_gostg("-C", p, "--check")
        assert res.returncode != 0 and where in res.stderr + res.stdout, (where, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr


def test_periodic_reload_keeps_an_unchanged_redis_ingress_and_replaces_a_changed_one(tmp_path, redis_srv):
    r = redis_srv.client()
    r.hset("k1", "a.com", U1)
    api_port = free_port()

    def cfg(key):
        return {"api": {"addr": f"127.0.0.1:{api_port}"},
                "ingresses": [{"name": "ing", "redis": {"addr": redis_srv.addr, "key": key, "pubsub": True}}]}

    path = tmp_path / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg("k1")))
    with Gost("-C", path, "-R", "0.2s", ports=[api_port]) as g:
        assert until(lambda: _subscribers(r) == 1, timeout=5)
        reads = _calls(r, "hgetall")
        until(lambda: False, timeout=1.0)                    # five config reloads
        assert _calls(r, "hgetall") == reads
        path.write_text(yaml.safe_dump(cfg("k2")))
        assert until(lambda: Api(api_port).config()["ingresses"][0]["redis"]["key"] == "k2", timeout=5)
        assert until(lambda: _subscribers(r) == 1 and _clients(r) <= 2, timeout=5), r.client_list()
        assert g.proc.poll() is None
