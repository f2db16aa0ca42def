"""Fail closed (issue 11 must 4) and the open-proxy warning (must 8), end to end.

One ``bin/gostg -C file -api …`` process serves a service per kind of dangling reference
(chain, hop, auther, bypass, admission, climiter). Real clients (curl over HTTP and SOCKS5)
show that each one refuses — no byte reaches the origin directly — and the log names the
missing object; creating the object through the Web API makes traffic flow at once (through
the upstream gostg when it is a chain), and deleting it refuses again. Forward references
through the API answer 200 with the warning in the body, as GOST accepts them."""
import re
import signal
import time

import pytest
import yaml

from .helpers import Gost, Origin, free_port
from .peers import Api, refused_lines, relay_lines, served, via_http, via_socks5, wait_log

REFUSED = "connections will be refused until it is created"





def node(port, name="n"):
    return {"name": name, "addr": f"127.0.0.1:{port}", "connector": {"type": "http"}, "dialer": {"type": "tcp"}}


SERVICES = [  # (name, handler, extra service keys); ports are filled in
    ("chain-svc", {"type": "http", "chain": "later"}, {}),
    ("socks-svc", {"type": "socks5", "chain": "later"}, {}),
    ("hop-svc", {"type": "http", "chain": "by-hop"}, {}),
    ("auth-svc", {"type": "http", "auther": "au"}, {}),
    ("bypass-svc", {"type": "http"}, {"bypass": "bp"}),
    ("adm-svc", {"type": "http"}, {"admission": "ad"}),
    ("climit-svc", {"type": "http"}, {"climiter": "cl"}),
]


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


@pytest.fixture(scope="module")
def upstream():
    p = free_port()
    with Gost("-L", f"http://127.0.0.1:{p}", ports=[p]) as u:
        u.port = p
        yield u


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """The gostg under test: every service names an object that does not exist."""
    ports = {name: free_port() for name, _, _ in SERVICES}
    cfg = {"services": [{"name": n, "addr": f"127.0.0.1:{ports[n]}", "handler": h, "listener": {"type": "tcp"}, **x}
                        for n, h, x in SERVICES],
           "chains": [{"name": "by-hop", "hops": [{"name": "hop-later"}]}]}
    path = tmp_path_factory.mktemp("failclosed") / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg))
    api_port = free_port()
    with Gost("-C", path, "-api", f"127.0.0.1:{api_port}", ports=[api_port, *ports.values()]) as g:
        g.ports, g.api = ports, Api(api_port)
        yield g
        assert g.proc.poll() is None, "gostg died:\n" + g.log_text()[-3000:]



def test_startup_warns_once_per_dangling_reference(gw):
    want = {
        "services[0].handler.chain": "chain 'later'", "services[1].handler.chain": "chain 'later'",
        "services[3].handler.auther": "auther 'au'", "services[4].bypass": "bypass 'bp'",
        "services[5].admission": "admission 'ad'", "services[6].climiter": "climiter 'cl'",
        "chains[0].hops[0]": "hop 'hop-later'",
    }
    log = gw.log_text()
    for path, obj in want.items():
        line = f"{path}: {obj} does not exist ({REFUSED})"
        assert line in log, f"no startup warning {line!r}:\n{log[-3000:]}"
    # the services are all 127.0.0.1: no open-proxy warning
    assert "open proxy" not in log


def test_missing_chain_refuses_never_direct_then_api_chain_makes_traffic_flow(gw, origin, upstream):
    dst = f"127.0.0.1:{origin.port}"
    http, socks = gw.ports["chain-svc"], gw.ports["socks-svc"]
    before = origin.connections
    rc, status, _ = via_http(http, origin.url + "/no-chain")
    assert status == 503, f"a service with a missing chain answered {status} (rc {rc})"
    rc, status, _ = via_socks5(socks, origin.url + "/no-chain")
    assert rc != 0 and status == 0, f"SOCKS5 through a missing chain: rc {rc}, status {status}"
    assert origin.connections == before, "a connection went direct"
    assert len(refused_lines(gw, "chain 'later'", count=2)) >= 2
    assert '"service": "chain-svc"' in gw.log_text() and '"client": "127.0.0.1"' in gw.log_text()

    n = relay_lines(upstream, dst)
    assert gw.api.post("chains", {"name": "later", "hops": [{"name": "h0", "nodes": [node(upstream.port)]}]}) \
        == {"msg": "OK"}
    assert served(via_http(http, origin.url + "/chained"), "/chained")
    assert served(via_socks5(socks, origin.url + "/chained-socks"), "/chained-socks")
    assert len(wait_log(upstream, r"<-> " + re.escape(dst), count=n + 2)) >= n + 2, "not through the chain"

    js = gw.api.delete("chains", "later")
    assert js["msg"] == "OK"
    assert js["warnings"] == [f"services[0].handler.chain: chain 'later' does not exist ({REFUSED})",
                              f"services[1].handler.chain: chain 'later' does not exist ({REFUSED})"]
    before = origin.connections
    rc, status, _ = via_http(http, origin.url + "/deleted")
    assert status == 503
    rc, status, _ = via_socks5(socks, origin.url + "/deleted")
    assert rc != 0 and status == 0
    assert origin.connections == before, "after DELETE the service went direct"


def test_missing_hop_does_not_shorten_the_chain(gw, origin, upstream):
    port = gw.ports["hop-svc"]
    before = origin.connections
    rc, status, _ = via_http(port, origin.url + "/no-hop")
    assert status == 503 and origin.connections == before
    assert refused_lines(gw, "hop 'hop-later'")
    gw.api.post("hops", {"name": "hop-later", "nodes": [node(upstream.port)]})
    try:
        assert served(via_http(port, origin.url + "/hop"), "/hop")
    finally:
        gw.api.delete("hops", "hop-later")
    rc, status, _ = via_http(port, origin.url + "/hop-gone")
    assert status == 503


def test_missing_auther_refuses_every_client(gw, origin):
    port = gw.ports["auth-svc"]
    rc, status, _ = via_http(port, origin.url + "/a", user="user:pass")
    assert status == 407, f"missing auther: {status}"
    rc, status, _ = via_http(port, origin.url + "/a")
    assert status == 407, f"missing auther, no credentials: {status}"
    assert refused_lines(gw, "auther 'au'")
    gw.api.post("authers", {"name": "au", "auths": [{"username": "user", "password": "pass"}]})
    assert served(via_http(port, origin.url + "/auth-ok", user="user:pass"), "/auth-ok")
    assert via_http(port, origin.url + "/a", user="user:bad")[1] == 407
    gw.api.delete("authers", "au")
    assert via_http(port, origin.url + "/a", user="user:pass")[1] == 407


def test_missing_bypass_refuses_the_dial(gw, origin):
    port = gw.ports["bypass-svc"]
    before = origin.connections
    rc, status, _ = via_http(port, origin.url + "/b")
    assert status == 503 and origin.connections == before, f"missing bypass: {status}"
    assert refused_lines(gw, "bypass 'bp'")
    gw.api.post("bypasses", {"name": "bp", "matchers": ["10.0.0.0/8"]})
    assert served(via_http(port, origin.url + "/bypass-ok"), "/bypass-ok")
    gw.api.delete("bypasses", "bp")
    assert via_http(port, origin.url + "/b")[1] == 503


def test_missing_admission_closes_at_accept(gw, origin):
    port = gw.ports["adm-svc"]
    before = origin.connections
    rc, status, _ = via_http(port, origin.url + "/c")
    assert rc != 0 and status == 0 and origin.connections == before, f"missing admission: rc {rc}, {status}"
    assert refused_lines(gw, "admission 'ad'")
    gw.api.post("admissions", {"name": "ad", "matchers": ["127.0.0.1"], "whitelist": True})
    assert served(via_http(port, origin.url + "/admitted"), "/admitted")
    gw.api.delete("admissions", "ad")
    rc, status, _ = via_http(port, origin.url + "/c")
    assert rc != 0 and status == 0


def test_missing_climiter_refuses(gw, origin):
    port = gw.ports["climit-svc"]
    rc, status, _ = via_http(port, origin.url + "/d")
    assert rc != 0 and status == 0, f"missing climiter: rc {rc}, {status}"
    assert refused_lines(gw, "climiter 'cl'")
    gw.api.post("climiters", {"name": "cl", "limits": ["$ 100"]})
    assert served(via_http(port, origin.url + "/limited"), "/limited")
    gw.api.delete("climiters", "cl")
    assert via_http(port, origin.url + "/d")[1] == 0


def test_api_forward_reference_is_accepted_with_a_warning(gw, origin, upstream):
    """GOST's api/config.md "Forward Reference": a service may name a chain created later."""
    port = free_port()
    svc = {"name": "fwd", "addr": f"127.0.0.1:{port}", "handler": {"type": "http", "chain": "fwd-chain"},
           "listener": {"type": "tcp"}}
    status, js, raw = gw.api.request("POST", "/config/services", svc)
    assert status == 200 and js["msg"] == "OK", raw
    (w,) = js["warnings"]
    assert re.fullmatch(r"services\[\d+\]\.handler\.chain: chain 'fwd-chain' does not exist \(" + REFUSED + r"\)", w), w
    assert w in gw.log_text()
    try:
        before = origin.connections
        assert via_http(port, origin.url + "/fwd")[1] == 503 and origin.connections == before
        assert gw.api.post("chains", {"name": "fwd-chain", "hops": [{"name": "h", "nodes": [node(upstream.port)]}]}) \
            == {"msg": "OK"}
        assert served(via_http(port, origin.url + "/fwd-ok"), "/fwd-ok")
        gw.api.delete("chains", "fwd-chain")
        assert via_http(port, origin.url + "/fwd")[1] == 503
        status, js, raw = gw.api.request("PUT", "/config/services/fwd",
                                         {**svc, "handler": {"type": "http", "auther": "fwd-au"}})
        assert status == 200 and [w.split(": ", 1)[1] for w in js["warnings"]] == \
            [f"auther 'fwd-au' does not exist ({REFUSED})"], raw
        assert via_http(port, origin.url + "/fwd", user="u:p")[1] == 407
    finally:
        gw.api.delete("services", "fwd")
    # a PUT keeps the same rule; a wrong shape is still an error
    status, js, _ = gw.api.request("POST", "/config/services", {**svc, "handler": {"type": "http", "chain": ["x"]}})
    assert status == 409 and js["code"] == 40003


def test_reload_warns_the_same(tmp_path, origin):
    p, api_port = free_port(), free_port()
    f = tmp_path / "gost.yaml"
    f.write_text(yaml.safe_dump({"services": [{"name": "s", "addr": f"127.0.0.1:{p}", "handler": {"type": "http"}}]}))
    with Gost("-C", f, "-api", f"127.0.0.1:{api_port}", ports=[p, api_port]) as g:
        assert served(via_http(p, origin.url + "/r"), "/r")
        assert "does not exist" not in g.log_text()
        f.write_text(yaml.safe_dump({"services": [
            {"name": "s", "addr": f"127.0.0.1:{p}", "handler": {"type": "http", "chain": "gone"}, "admission": "adm"}]}))
        g.signal(signal.SIGHUP)
        want = [f"services[0].handler.chain: chain 'gone' does not exist ({REFUSED})",
                f"services[0].admission: admission 'adm' does not exist ({REFUSED})"]
        for w in want:
            assert wait_log(g, re.escape(w)), f"SIGHUP: no warning {w!r}:\n{g.log_text()[-2000:]}"
        status, js, raw = Api(api_port).reload()
        assert status == 200 and js["data"]["warnings"] == want, raw
        rc, status, _ = via_http(p, origin.url + "/r")
        assert rc != 0 and status == 0    # the admission is missing: closed at accept
        assert g.proc.poll() is None


def test_open_proxy_warning(origin):
    """0.0.0.0 without auth warns; loopback, authenticated, and forward-only services do not;
    an unauthenticated Web API beyond loopback warns."""
    p_open, p_lo, p_auth, p_fwd, p_api = (free_port() for _ in range(5))
    with Gost("-L", f"socks5://0.0.0.0:{p_open}", "-L", f"socks5://127.0.0.1:{p_lo}",
              "-L", f"http://user:pass@0.0.0.0:{p_auth}", "-L", f"tcp://0.0.0.0:{p_fwd}/127.0.0.1:{origin.port}",
              "-api", f"0.0.0.0:{p_api}", ports=[p_open, p_lo, p_auth, p_fwd, p_api]) as g:
        assert wait_log(g, re.escape(f"open proxy on 0.0.0.0:{p_open}: anyone who can reach it can use it"))
        time.sleep(0.2)
        log = g.log_text()
        assert f"open Web API on 0.0.0.0:{p_api}" in log
        for p in (p_lo, p_auth, p_fwd):
            assert f":{p}: anyone" not in log, f"port {p} warned as an open proxy:\n{log[-2000:]}"


def test_web_api_with_a_missing_auther_refuses_requests(tmp_path):
    p = free_port()
    f = tmp_path / "gost.yaml"
    f.write_text(yaml.safe_dump({"api": {"addr": f"127.0.0.1:{p}", "auther": "api-users"}}))
    with Gost("-C", f, ports=[p]) as g:
        assert "api.auther: auther 'api-users' does not exist (Web API requests will be refused until it is " \
               "created)" in g.log_text()
        status, js, _ = Api(p).request("GET", "/config")
        assert status == 401, js
        assert refused_lines(g, "auther 'api-users'")
