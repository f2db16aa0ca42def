"""One config, one verdict (issue 11): the same service through ``-C`` at startup, ``-O``,
``--check``, reload (``POST /config/reload``) and ``POST /config/services`` gives the same
warnings and the same errors, because all of them run ``gostg.config.validate``."""
import json
import subprocess

import pytest
import yaml

from .helpers import Gost, free_port, port_closed, run_gostg, wait_port
from .peers import Api

CASES = [
    # (what, service keys beyond name/addr, expected level, expected text after the service's path)
    ("typo key", {"handler": {"type": "http"}, "handlr": {"type": "socks5"}},
     "warning", ".handlr: unknown key (did you mean 'handler'?)"),
    ("typo metadata", {"handler": {"type": "socks5", "metadata": {"udpp": True}}},
     "warning", ".handler.metadata.udpp: unknown metadata key (did you mean 'udp'?)"),
    ("observational feature", {"handler": {"type": "http"}, "metadata": {"labels": {"a": "b"}}},
     "warning", ".metadata.labels: service labels for recorders and logs is not built by gostg yet: not active"),
    ("unknown observer", {"handler": {"type": "http"}, "observer": "obs"},
     "error", ".observer: observer 'obs' does not exist (observers: none)"),
    ("unknown handler", {"handler": {"type": "sock5"}},
     "error", ".handler.type: unknown handler 'sock5' (did you mean 'socks5'?)"),
    ("routing feature", {"handler": {"type": "http"}, "rewriter": "rw0"},
     "error", ".rewriter: HTTP body rewriters is not built by gostg yet"),
    ("bad duration", {"handler": {"type": "http", "metadata": {"readTimeout": "soon"}}},
     "error", ".handler.metadata.readTimeout: bad duration 'soon'"),
]


def _service(name, port, extra):
    return {"name": name, "addr": f"127.0.0.1:{port}", **extra}


def _startup(tmp_path, svc, level):
    """-C at startup: an error exits 1 before binding (the port never listens); a warning is
    printed and the service listens. → (--check output, startup log, -O output, --check rc,
    -O rc)."""
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"services": [svc]}))
    port = int(svc["addr"].rsplit(":", 1)[1])
    r = run_gostg("--check", "-C", f)
    out = r.stdout + r.stderr
    with Gost("-C", f, ports=()) as g:
        if level == "error":
            try:
                rc = g.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rc = None
            log = g.log_text()
            assert rc == 1, f"startup with an error: exit status {rc} (want 1):\n{log[-2000:]}"
            assert port_closed(port) and "listening" not in log, f"an error config listened:\n{log[-2000:]}"
        else:
            wait_port(port, proc=g.proc)   # raises if the process exits first
            log = g.log_text()
            assert g.proc.poll() is None
    o = run_gostg("-O", "json", "-C", f)
    return out, log, o.stdout + o.stderr, r.returncode, o.returncode


@pytest.mark.parametrize("what, extra, level, text", CASES, ids=[c[0] for c in CASES])
def test_same_verdict_through_check_startup_output_reload_and_api(tmp_path, what, extra, level, text):
    svc = _service("s", free_port(), extra)
    check_out, start_log, o_out, rc, o_rc = _startup(tmp_path, svc, level)
    expected = f"services[0]{text}"
    # --check, startup and -O
    assert expected in check_out, check_out
    assert expected in start_log, start_log
    assert expected in o_out, o_out
    assert rc == (1 if level == "error" else 0), check_out
    assert o_rc == (1 if level == "error" else 0), f"-O exit status {o_rc}: {o_out}"
    if level == "error":
        assert f"gostg: config error: {expected}" in check_out
        assert start_log.count(f"gostg: config error: {expected}") == 1, start_log
        assert "Traceback" not in start_log + o_out
    else:
        assert f"gostg: config warning: {expected}" in check_out

    # reload and the Web API: a running gostg with one good service
    api_port, good_port = free_port(), free_port()
    f = tmp_path / "live.yaml"
    good = {"name": "good", "addr": f"127.0.0.1:{good_port}", "handler": {"type": "http"}}
    f.write_text(yaml.safe_dump({"services": [good]}))
    with Gost("-C", f, "-api", f"127.0.0.1:{api_port}", ports=[good_port, api_port]) as g:
        api = Api(api_port)
        # POST /config/services: the new service is services[1] in the model
        status, js, raw = api.request("POST", "/config/services", _service("s", free_port(), extra))
        if level == "error":
            assert status >= 400 and f"services[1]{text}" in js["msg"], raw
            assert "s" not in api.services()
        else:
            assert status == 200 and any(f"services[1]{text}" in w for w in js["warnings"]), raw
            api.delete("services", "s")
        # reload: the file now has the service as services[1]
        f.write_text(yaml.safe_dump({"services": [good, _service("s", free_port(), extra)]}))
        status, js, raw = api.reload()
        if level == "error":
            assert status >= 400 and f"services[1]{text}" in js["msg"], raw
            assert set(api.services()) == {"good"}, "a refused reload changes nothing"
        else:
            assert status == 200, raw
            assert any(f"services[1]{text}" in w for w in (js.get("data") or {}).get("warnings", [])), raw
            assert "s" in api.services(), "a warning-only reload did not apply"
        assert g.proc.poll() is None, "bad input never kills the process"


def test_unknown_keys_survive_output_round_trip(tmp_path):
    """An unknown key warns but is kept: -O prints it back, so a newer GOST's keys survive."""
    f = tmp_path / "c.yaml"
    svc = {"name": "s", "addr": "127.0.0.1:1", "handler": {"type": "http", "metadata": {"futureKey": "x"}},
           "futureTop": {"a": 1}}
    f.write_text(yaml.safe_dump({"services": [svc], "futureSection": [1, 2]}))
    r = run_gostg("-O", "json", "-C", f)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["futureSection"] == [1, 2]
    assert out["services"][0]["futureTop"] == {"a": 1}
    assert out["services"][0]["handler"]["metadata"]["futureKey"] == "x"
    assert "gostg: config warning: futureSection: unknown key" in r.stderr
    assert "gostg: config warning: services[0].futureTop: unknown key" in r.stderr


# --- the other top-level kinds through POST and PUT (and -O / --check) -------------------------

NODE = {"name": "n", "addr": "127.0.0.1:1", "connector": {"type": "http"}, "dialer": {"type": "tcp"}}
DOCS = "GOST docs: https://gost.run/en/concepts/"
UNBUILT = "is not built by gostg yet, and running without it would change who gets in or where traffic goes"

KIND_CASES = [
    # (what, kind, a good object, the same object with the problem, level, text after "<kind>[0]")
    ("chain typo key", "chains", {"name": "c", "hops": [{"name": "h", "nodes": [NODE]}]},
     {"name": "c", "hops": [{"name": "h", "nodes": [NODE]}], "selectr": {"strategy": "rand"}},
     "warning", ".selectr: unknown key (did you mean 'selector'?)"),
    ("hop unknown strategy", "hops", {"name": "hp", "selector": {"strategy": "round"}, "nodes": [NODE]},
     {"name": "hp", "selector": {"strategy": "rnd"}, "nodes": [NODE]},
     "error", ".selector.strategy: unknown value 'rnd' (did you mean 'rand'?) (one of: round, rr, rand, random, "
              "fifo, ha, hash, parallel, lowestlatency, lowest, ll)"),
    # GOST has no plugin for connection limiters
    ("climiter plugin", "climiters", {"name": "cl", "limits": ["$ 10"]},
     {"name": "cl", "plugin": {"type": "http", "addr": "127.0.0.1:8000"}},
     "error", f".plugin: plugin {UNBUILT} ({DOCS}plugin/)"),
    ("bypass redis type", "bypasses", {"name": "bp", "matchers": ["10.0.0.0/8"]},
     {"name": "bp", "redis": {"addr": "127.0.0.1:6379", "key": "gost:bypasses", "type": "list"}},
     "error", ".redis.type: unknown value 'list' (one of: set)"),
    ("auther plugin type", "authers", {"name": "au", "auths": [{"username": "u", "password": "p"}]},
     {"name": "au", "plugin": {"type": "grpcx", "addr": "127.0.0.1:8000"}},
     "error", ".plugin.type: unknown value 'grpcx' (did you mean 'grpc'?) (one of: http, grpc)"),
]


@pytest.fixture
def api_only():
    port = free_port()
    with Gost("-api", f"127.0.0.1:{port}", ports=[port]) as g:
        g.api = Api(port)
        yield g
        assert g.proc.poll() is None, "bad input never kills the process:\n" + g.log_text()[-2000:]


@pytest.mark.parametrize("what, kind, good, bad, level, text", KIND_CASES, ids=[c[0] for c in KIND_CASES])
def test_other_kinds_same_verdict_through_post_put_and_output(tmp_path, api_only, what, kind, good, bad, level, text):
    expected = f"{kind}[0]{text}"
    api, name = api_only.api, good["name"]

    # -O and --check on a file with the object
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"services": [_service("s", free_port(), {"handler": {"type": "http"}})],
                                 kind: [bad]}))
    o = run_gostg("-O", "json", "-C", f)
    c = run_gostg("--check", "-C", f)
    want_rc = 1 if level == "error" else 0
    assert o.returncode == want_rc and f"gostg: config {level}: {expected}" in o.stderr, (o.returncode, o.stderr)
    assert c.returncode == want_rc and f"gostg: config {level}: {expected}" in c.stdout + c.stderr, \
        (c.returncode, c.stdout + c.stderr)

    # POST
    status, js, raw = api.request("POST", f"/config/{kind}", bad)
    if level == "error":
        assert 400 <= status < 500 and js["msg"] == expected, raw
        assert not api.config().get(kind), f"a refused POST changed the config: {api.config()}"
    else:
        assert status == 200 and js["warnings"] == [expected], raw
        assert api.ok("GET", f"/config/{kind}/{name}")["data"] == bad, "a warning-only POST did not apply"
        assert expected in api_only.log_text()
        api.delete(kind, name)

    # PUT over a good object
    assert api.post(kind, good) == {"msg": "OK"}
    status, js, raw = api.request("PUT", f"/config/{kind}/{name}", bad)
    got = api.ok("GET", f"/config/{kind}/{name}")["data"]
    if level == "error":
        assert 400 <= status < 500 and js["msg"] == expected, raw
        assert got == good, f"a refused PUT changed the object: {got}"
    else:
        assert status == 200 and js["warnings"] == [expected], raw
        assert got == bad, "a warning-only PUT did not apply"
    api.delete(kind, name)


def test_save_keeps_unknown_keys(tmp_path):
    """``POST /config?format=json&path=…`` writes the running model: keys gostg does not know
    (from the file, and from a Web API write) are kept, as -O keeps them."""
    p, api_port = free_port(), free_port()
    f = tmp_path / "gost.yaml"
    svc = {"name": "s", "addr": f"127.0.0.1:{p}", "handler": {"type": "http", "metadata": {"futureKey": "x"}},
           "futureTop": {"a": 1}}
    f.write_text(yaml.safe_dump({"services": [svc], "futureSection": [1, 2]}))
    out = tmp_path / "saved.json"
    with Gost("-C", f, "-api", f"127.0.0.1:{api_port}", ports=[p, api_port]) as g:
        api = Api(api_port)
        chain = {"name": "c", "hops": [{"name": "h", "nodes": [NODE]}], "futureChainKey": True}
        (w,) = api.post("chains", chain)["warnings"]
        assert w.startswith("chains[0].futureChainKey: unknown key"), w
        status, js, raw = api.request("POST", f"/config?format=json&path={out}")
        assert status == 200, raw
    saved = json.loads(out.read_text())
    assert saved.get("futureSection") == [1, 2], saved
    (s,) = [x for x in saved["services"] if x["name"] == "s"]
    assert s["futureTop"] == {"a": 1}, s
    assert s["handler"]["metadata"]["futureKey"] == "x", s
    (c,) = saved["chains"]
    assert c["futureChainKey"] is True, c
    # the saved file is a config gostg takes back, with the same warnings
    r = run_gostg("--check", "-C", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "services[0].futureTop: unknown key" in r.stdout + r.stderr
