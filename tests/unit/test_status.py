"""The status page's data: the log's ring buffer of warning+ lines (gostg.observe.recent) and
``GET {pathPrefix}/api/status`` with the page's files, through the Web API's WSGI app of a
built (not started) Gost: auth enforced, pathPrefix honoured, values as the selector sees them."""
import base64
import io
import json
import time

import pytest

from gostg import Gost
from gostg.observe import log as logmod, recent

USER, PASSWORD = "admin", "s3cret"


@pytest.fixture(autouse=True)
def empty_buffer():
    recent.clear()
    yield
    recent.clear()


# --- the ring buffer -------------------------------------------------------------------------

def test_json_logger_keeps_warning_and_error_lines_only():
    out = io.StringIO()
    log = logmod.make_logger("debug").bind(service="s1")
    log._out.f = out
    log.debug("quiet")
    log.info("hello")
    log.warning("careful %s", "now", dst="a:1")
    log.error("broken")
    log.log(40, "via log()")
    log.log(20, "info via log()")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    got = recent.recent()
    assert [(e["level"], e["msg"]) for e in got] == [
        ("warning", "careful now"), ("error", "broken"), ("error", "via log()"), ("error", "failed")]
    assert got[0]["service"] == "s1" and got[0]["dst"] == "a:1" and got[0]["time"]
    assert "ValueError: boom" in got[3]["exception"]
    # what the buffer holds is the line the log wrote
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert got == [e for e in lines if e["level"] in ("warning", "error")]


def test_a_level_above_warning_keeps_only_what_it_writes():
    log = logmod.make_logger("error", output="none")
    log.warning("not written")
    log.error("written")
    assert [e["msg"] for e in recent.recent()] == ["written"]


def test_text_format_events_are_kept_as_fields():
    log = logmod.make_logger("info", fmt="text", output="none")
    log.info("hello")
    log.warning("careful", service="s2", n=3)
    got = recent.recent()
    assert len(got) == 1 and got[0]["msg"] == "careful" and got[0]["level"] == "warning"
    assert got[0]["service"] == "s2" and got[0]["n"] == 3 and "event" not in got[0]


def test_the_buffer_is_bounded_in_count_and_line_length():
    for i in range(recent.SIZE + 30):
        recent.remember(json.dumps({"level": "error", "msg": f"m{i}"}) + "\n")
    got = recent.recent()
    assert len(got) == recent.SIZE
    assert got[0]["msg"] == "m30" and got[-1]["msg"] == f"m{recent.SIZE + 29}"
    assert [e["msg"] for e in recent.recent(3)] == [f"m{recent.SIZE + i}" for i in (27, 28, 29)]
    assert recent.recent(0) == []
    recent.clear()
    long = json.dumps({"level": "error", "msg": "x" * 10000}) + "\n"
    recent.remember(long)
    (e,) = recent.recent()
    assert e == {"msg": long[:recent.MAX_LINE]}   # cut: shown as text, not lost


def test_an_event_a_logger_group_wrote_twice_is_listed_once():
    a = logmod.make_logger("info", output="none").bind(logger="file", service="s")
    b = logmod.make_logger("info", output="none").bind(logger="console", service="s")
    for lg in (a, b):   # what a service with ``loggers: [file, console]`` does per event
        lg.warning("refused", sid="1")
    for lg in (a, b):
        lg.warning("refused", sid="2")
    a.warning("refused", sid="2")   # the same logger again: another event
    got = recent.recent()
    assert [(e["sid"], e["logger"]) for e in got] == [("1", "file"), ("2", "file"), ("2", "file")]


# --- GET /api/status and the page ---------------------------------------------------------------

def _cfg(prefix="/p"):
    return {
        "api": {"addr": "127.0.0.1:0", "pathPrefix": prefix, "auth": {"username": USER, "password": PASSWORD}},
        "services": [
            {"name": "web", "addr": "127.0.0.1:0", "handler": {"type": "http", "chain": "c1"},
             "listener": {"type": "tcp"}},
            {"name": "fwd", "addr": "127.0.0.1:0", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
             "forwarder": {"nodes": [{"name": "t1", "addr": "127.0.0.1:9"}]}},
        ],
        "hops": [{"name": "named-hop", "selector": {"maxFails": 3, "failTimeout": "30s"},
                  "nodes": [{"name": "n2", "addr": "127.0.0.1:2"}]}],
        "chains": [{"name": "c1", "hops": [{"name": "h1", "nodes": [{"name": "n1", "addr": "127.0.0.1:1"}]},
                                           {"name": "named-hop"}]}],
    }


@pytest.fixture()
def gost():
    g = Gost(_cfg()).build()
    try:
        yield g
    finally:
        g.stop(timeout=0)


def call(g, method, path, auth=(USER, PASSWORD)):
    """→ (status int, headers dict, body bytes) from the API's WSGI app."""
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "wsgi.input": io.BytesIO(),
           "REMOTE_ADDR": "127.0.0.1"}
    if auth:
        env["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = int(status.split()[0]), dict(headers)
    body = b"".join(g.internal["api"].handler.app(env, start_response))
    return got["status"], got["headers"], body


PAGE_PATHS = ("/p/api/status", "/p", "/p/", "/p/ui", "/p/ui/", "/p/ui/app.js", "/p/ui/style.css")


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_auth_is_enforced(gost, path):
    for auth in (None, (USER, "wrong"), ("", "")):
        status, headers, body = call(gost, "GET", path, auth=auth)
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="gostg"', (path, auth)
        assert json.loads(body) == {"code": 401, "msg": "Unauthorized"}
    assert call(gost, "GET", path)[0] == 200


@pytest.mark.parametrize("path", ["/api/status", "/", "/ui", "/ui/app.js", "/x/api/status", "/pp/api/status"])
def test_only_under_the_path_prefix(gost, path):
    status, _, body = call(gost, "GET", path)
    assert status == 404 and json.loads(body)["code"] == 404


def test_the_page_and_its_files(gost):
    status, headers, body = call(gost, "GET", "/p/ui")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<base href="/p/">' in body and b'src="ui/app.js"' in body and b"{{BASE}}" not in body
    assert b"http://" not in body and b"https://" not in body   # nothing from elsewhere
    assert call(gost, "GET", "/p/")[2] == body
    status, headers, js = call(gost, "GET", "/p/ui/app.js")
    assert headers["Content-Type"].startswith("text/javascript") and b'"api/status"' in js
    assert b"innerHTML" not in js   # server data goes in as text only
    assert call(gost, "GET", "/p/ui/style.css")[1]["Content-Type"].startswith("text/css")
    for path in ("/p/ui/index.html", "/p/ui/../swagger.yaml", "/p/ui/nope.js", "/p/ui/a/b", "/p/api", "/p/api/nope"):
        assert call(gost, "GET", path)[0] == 404, path
    assert call(gost, "POST", "/p/api/status")[0] == 405
    assert call(gost, "DELETE", "/p/ui")[0] == 405


def test_prefix_is_escaped_into_the_page():
    g = Gost(_cfg(prefix='/a"b')).build()
    try:
        body = call(g, "GET", '/a"b/ui')[2]
        assert b'<base href="/a&quot;b/">' in body
    finally:
        g.stop(timeout=0)


def _status(g):
    status, headers, body = call(g, "GET", "/p/api/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    return json.loads(body)


def test_status_services(gost):
    web = gost.services["web"]
    web.stats.total_conns, web.stats.total_errs, web.stats.input_bytes, web.stats.output_bytes = 5, 1, 100, 2000

    class Tunnel:   # the live-tunnel registry's Context: bytes so far, read live
        def __init__(self, i, o):
            self.io = (i, o)

        def bytes(self):
            return self.io

    web.tunnels = {"a": Tunnel(10, 300), "b": Tunnel(1, 2)}
    st = _status(gost)
    assert abs(st["time"] - time.time()) < 5
    by = {s["name"]: s for s in st["services"]}
    assert set(by) == {"web", "fwd"}   # the API's own service is not one of the config's
    w = by["web"]
    assert (w["state"], w["listener"], w["handler"], w["chain"]) == ("running", "tcp", "http", "c1")
    assert w["addr"] == web.addr and w["addr"].startswith("127.0.0.1:")
    assert w["stats"] == {"totalConns": 5, "currentConns": 0, "totalErrs": 1, "inputBytes": 111, "outputBytes": 2302}
    assert w["tunnels"] == 2
    assert by["fwd"]["chain"] == ""


def test_status_nodes_health(gost):
    st = _status(gost)
    (c1,) = st["chains"]
    assert c1["name"] == "c1" and [h["name"] for h in c1["hops"]] == ["h1", "named-hop"]
    n1 = c1["hops"][0]["nodes"][0]
    assert n1 == {"name": "n1", "addr": "127.0.0.1:1", "fails": 0, "maxFails": 1, "failTimeout": 10.0,
                  "dead": False, "deadUntil": None, "lastError": "", "lastErrorTime": None, "latency": None,
                  "probeFailed": False, "backup": False}
    hop = gost.registries.chains.get("c1").hops[0]
    hop.nodes[0].marker.mark(ConnectionRefusedError(111, "Connection refused"))
    named = gost.registries.hops.get("named-hop")
    named.nodes[0].marker.mark(OSError("first"))
    named.nodes[0].marker.mark(TimeoutError())
    st = _status(gost)
    n1 = st["chains"][0]["hops"][0]["nodes"][0]
    now = time.time()
    assert n1["dead"] and n1["fails"] == 1 and "Connection refused" in n1["lastError"]
    assert abs(n1["lastErrorTime"] - now) < 2 and abs(n1["deadUntil"] - (n1["lastErrorTime"] + 10)) < 0.01
    n2 = st["chains"][0]["hops"][1]["nodes"][0]
    # the hop's selector: 3 fails in 30 s make it dead; 2 do not
    assert (n2["fails"], n2["maxFails"], n2["failTimeout"], n2["dead"]) == (2, 3, 30.0, False)
    assert n2["lastError"] == "TimeoutError"
    # a success resets the count; the last error stays to be read
    hop.nodes[0].marker.reset()
    n1 = _status(gost)["chains"][0]["hops"][0]["nodes"][0]
    assert (n1["fails"], n1["dead"], n1["deadUntil"]) == (0, False, None) and "refused" in n1["lastError"]
    # forwarder nodes, per service
    (f,) = _status(gost)["forwarders"]
    assert f["service"] == "fwd" and [n["addr"] for n in f["nodes"]] == ["127.0.0.1:9"]


def test_status_missing_hop_is_shown_not_raised(gost):
    gost.registries.hops.delete("named-hop")
    hops = _status(gost)["chains"][0]["hops"]
    assert hops[1] == {"name": "named-hop", "missing": True, "nodes": []}


def test_status_recent_errors(gost):
    gost.log.bind(service="web").warning("a warning", dst="x:1")
    gost.log.info("not this")
    errs = _status(gost)["errors"]
    assert [(e["level"], e["msg"], e.get("service")) for e in errs][-1] == ("warning", "a warning", "web")
    assert all(e["level"] in ("warning", "error", "critical") for e in errs)


def test_an_installed_package_has_the_page(tmp_path):
    """setup.py's package data: a build (what ``pip install .`` copies) carries every file of
    gostg/api/ui/, not only the checkout."""
    import os
    import subprocess
    import sys
    from gostg.api import page
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run([sys.executable, "setup.py", "-q", "build", "--build-base", str(tmp_path / "b"),
                        "egg_info", "--egg-base", str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    shipped = sorted(os.listdir(tmp_path / "b" / "lib" / "gostg" / "api" / "ui"))
    assert shipped == sorted(os.listdir(page.UI)) == sorted(["index.html", *page.ASSETS])
