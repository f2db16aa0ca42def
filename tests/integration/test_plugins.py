"""GOST's HTTP plugins deciding for bin/gostg: auth, admission, bypass, hosts, resolver, hop
and the handler's traffic limiter, against a plugin server of the test's (pluginserver.py),
with curl and PySocks as clients. Every decision fails closed: a plugin that is slow, down or
answers garbage refuses the connection, within its timeout, with one log line."""
import time

import socks
import yaml

from .helpers import Echo, Gost, Origin, free_port, run_gostg, wait_for
from .peers import curl_code
from .pluginserver import PluginServer, Slow

STRICT = {"GOSTG_STRICT_SCHEMA": "1"}


def plugin(url, **kw):
    return {"type": "http", "addr": url, "timeout": "1s", **kw}


def start(tmp_path, cfg, ports):
    f = tmp_path / "plugins.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return Gost("-C", f, ports=ports, env=STRICT)


def through_socks(port, target=("10.9.9.9", 1111), user=None, password=None, timeout=4):
    """The first bytes an Echo (tagged) sends through the socks5 service at ``port``, or b""
    when the proxy refused."""
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", port, username=user, password=password)
    s.settimeout(timeout)
    try:
        s.connect(target)
        return s.recv(16)
    except (socks.ProxyError, OSError):
        return b""
    finally:
        s.close()


def lines(g, text):
    return [ln for ln in g.log_text().splitlines() if text in ln]


def test_auth_plugin_lets_in_who_it_says_with_a_bearer_token(tmp_path):
    def auth(r):
        return {"ok": r["username"] == "alice" and r["password"] == "good", "id": "alice-id"}
    port = free_port()
    with PluginServer({"/auth": auth}) as ps, Origin() as origin:
        cfg = {"services": [{"name": "s-auth", "addr": f"127.0.0.1:{port}",
                             "handler": {"type": "socks5", "auther": "pa"}}],
               "authers": [{"name": "pa", "plugin": plugin(f"{ps.url}/auth", token="tkn")}]}
        with start(tmp_path, cfg, [port]):
            assert curl_code("-x", f"socks5h://alice:good@127.0.0.1:{port}", origin.url + "/")[1] == 200
            rc, status, _ = curl_code("-x", f"socks5h://alice:bad@127.0.0.1:{port}", origin.url + "/")
            assert rc != 0 and status == 0
    path, headers, body = ps.seen("/auth")[0]
    assert headers["Authorization"] == "Bearer tkn" and headers["Content-Type"] == "application/json"
    assert set(body) == {"service", "username", "password", "client"}
    assert body["service"] == "s-auth" and body["username"] == "alice" and body["client"].startswith("127.0.0.1:")


def test_a_slow_garbage_or_down_auth_plugin_refuses_within_its_timeout(tmp_path):
    ports = [free_port() for _ in range(3)]
    dead = free_port()   # nothing listens there
    with PluginServer({"/slow": Slow(5), "/garbage": lambda r: b"<html>surely not JSON"}) as ps, Origin() as origin:
        urls = [f"{ps.url}/slow", f"{ps.url}/garbage", f"http://127.0.0.1:{dead}/auth"]
        cfg = {"services": [{"name": f"s{i}", "addr": f"127.0.0.1:{p}", "handler": {"type": "socks5", "auther": f"a{i}"}}
                            for i, p in enumerate(ports)],
               "authers": [{"name": f"a{i}", "plugin": {**plugin(u), "timeout": "0.5s"}} for i, u in enumerate(urls)]}
        with start(tmp_path, cfg, ports) as g:
            for p in ports:
                t0 = time.monotonic()
                rc, status, _ = curl_code("-x", f"socks5h://alice:good@127.0.0.1:{p}", origin.url + "/")
                took = time.monotonic() - t0
                assert rc != 0 and status == 0, p
                assert took < 0.5 + 2.0, took
            curl_code("-x", f"socks5h://alice:good@127.0.0.1:{ports[2]}", origin.url + "/")   # again: no new line
            assert wait_for(lambda: len(lines(g, "a2")) >= 2)
            assert lines(g, "no answer within 0.5s") and lines(g, "not JSON")
            # the down plugin: one "refusing" line for two connections, each refused with a reason
            assert len([ln for ln in lines(g, "auth plugin a2") if "refusing" in ln]) == 1
            assert len(lines(g, "auther 'a2': plugin failed")) == 2


def test_admission_and_bypass_plugins_refuse_what_they_are_told(tmp_path):
    ports = [free_port() for _ in range(3)]
    with PluginServer({"/admission": lambda r: {"ok": r["service"] != "s-deny"},
                       "/bypass": lambda r: {"ok": r["addr"].startswith("localhost:")}}) as ps, Origin() as origin:
        cfg = {"services": [{"name": "s-open", "addr": f"127.0.0.1:{ports[0]}", "admission": "adm",
                             "handler": {"type": "http"}},
                            {"name": "s-deny", "addr": f"127.0.0.1:{ports[1]}", "admission": "adm",
                             "handler": {"type": "http"}},
                            {"name": "s-byp", "addr": f"127.0.0.1:{ports[2]}", "bypass": "byp",
                             "handler": {"type": "http"}}],
               "admissions": [{"name": "adm", "plugin": plugin(f"{ps.url}/admission")}],
               "bypasses": [{"name": "byp", "plugin": plugin(f"{ps.url}/bypass")}]}
        with start(tmp_path, cfg, ports):
            assert curl_code("-x", f"http://127.0.0.1:{ports[0]}", origin.url + "/")[1] == 200
            assert curl_code("-x", f"http://127.0.0.1:{ports[1]}", origin.url + "/")[1] == 0
            assert curl_code("-x", f"http://127.0.0.1:{ports[2]}", origin.url + "/")[1] == 200
            assert curl_code("-x", f"http://127.0.0.1:{ports[2]}", f"http://localhost:{origin.port}/")[1] == 403
    adm = ps.seen("/admission")[0][2]
    assert set(adm) == {"service", "network", "addr"} and adm["addr"].startswith("127.0.0.1:")
    byp = [r[2] for r in ps.seen("/bypass")]
    assert {"service", "network", "addr", "client", "host", "path"} == set(byp[0])
    assert byp[0]["network"] == "tcp" and byp[0]["addr"] == f"127.0.0.1:{origin.port}"


def test_a_hop_bypass_plugin_that_is_down_does_not_send_traffic_around_the_hop(tmp_path):
    """GOST reads a failed bypass plugin as "bypassed": at a hop that cuts the chain and the
    connection goes directly. gostg refuses it; the upstream never sees it either."""
    port, up = free_port(), free_port()
    dead = free_port()
    with Origin() as origin:
        cfg = {"services": [{"name": "front", "addr": f"127.0.0.1:{port}", "handler": {"type": "http", "chain": "c"}},
                            {"name": "up", "addr": f"127.0.0.1:{up}", "handler": {"type": "http"}}],
               "chains": [{"name": "c", "hops": [{"name": "h", "bypass": "gone",
                                                   "nodes": [{"name": "n", "addr": f"127.0.0.1:{up}"}]}]}],
               "bypasses": [{"name": "gone", "plugin": plugin(f"http://127.0.0.1:{dead}/bypass")}]}
        with start(tmp_path, cfg, [port, up]) as g:
            assert curl_code("-x", f"http://127.0.0.1:{port}", origin.url + "/")[1] != 200
            assert origin.connections == 0
            assert wait_for(lambda: lines(g, "bypass 'gone': plugin failed"))
            assert not [ln for ln in g.log_text().splitlines() if '"up"' in ln and "<->" in ln]


def test_hop_plugin_picks_the_node_it_names(tmp_path):
    def hop(r):
        port = r["addr"].rsplit(":", 1)[1]
        if port == "1111":
            return {"name": "node-a", "addr": f"127.0.0.1:{ea.port}", "connector": {"type": "forward"}}
        if port == "2222":
            return {"name": "node-b", "addr": f"127.0.0.1:{eb.port}", "connector": {"type": "forward"}}
        if port == "3333":
            return {"name": "no-addr", "connector": {"type": "forward"}}   # does not build
        return {}   # no node: refused, never direct
    port = free_port()
    with Echo(b"A") as ea, Echo(b"B") as eb, PluginServer({"/hop": hop}) as ps:
        cfg = {"services": [{"name": "s-hop", "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5", "chain": "c"}}],
               "chains": [{"name": "c", "hops": [{"name": "hp", "plugin": plugin(f"{ps.url}/hop", token="t")}]}]}
        with start(tmp_path, cfg, [port]) as g:
            assert through_socks(port, ("10.9.9.9", 1111)) == b"A"
            assert through_socks(port, ("10.9.9.9", 2222)) == b"B"
            assert through_socks(port, ("10.9.9.9", 1111)) == b"A"
            assert through_socks(port, ("127.0.0.1", eb.port)) == b""    # the plugin named none
            assert through_socks(port, ("10.9.9.9", 3333)) == b""
            assert wait_for(lambda: lines(g, "the plugin named no node") and lines(g, "does not build"))
    req = ps.seen("/hop")[0]
    assert req[1]["Authorization"] == "Bearer t"
    assert set(req[2]) == {"network", "addr", "host", "path", "client", "src"}
    assert req[2]["network"] == "tcp" and req[2]["addr"] == "10.9.9.9:1111" and req[2]["src"].startswith("127.0.0.1:")


def test_hosts_and_resolver_plugins_map_names(tmp_path):
    ports = [free_port(), free_port()]
    with PluginServer({"/hosts": lambda r: {"ips": ["127.0.0.1"], "ok": r["host"] == "plug.test"},
                       "/resolver": lambda r: {"ips": ["127.0.0.1"], "ok": r["host"] == "res.test"}}) as ps, \
            Origin() as origin:
        cfg = {"services": [{"name": "s-hosts", "addr": f"127.0.0.1:{ports[0]}", "hosts": "hp",
                             "handler": {"type": "http"}},
                            {"name": "s-res", "addr": f"127.0.0.1:{ports[1]}", "resolver": "rp",
                             "handler": {"type": "http"}}],
               "hosts": [{"name": "hp", "plugin": plugin(f"{ps.url}/hosts")}],
               "resolvers": [{"name": "rp", "plugin": plugin(f"{ps.url}/resolver")}]}
        with start(tmp_path, cfg, ports):
            assert curl_code("-x", f"http://127.0.0.1:{ports[0]}", f"http://plug.test:{origin.port}/")[1] == 200
            assert curl_code("-x", f"http://127.0.0.1:{ports[1]}", f"http://res.test:{origin.port}/")[1] == 200
            assert curl_code("-x", f"http://127.0.0.1:{ports[1]}", f"http://nowhere.test:{origin.port}/")[1] != 200
    h = ps.seen("/hosts")[0][2]
    assert set(h) == {"network", "host", "client"} and h["host"] == "plug.test"
    assert ps.seen("/resolver")[0][2]["host"] == "res.test"


def test_handler_limiter_plugin_shapes_each_client_and_refuses_when_down(tmp_path):
    rate = 100 * 1024
    ports = [free_port(), free_port()]
    dead = free_port()
    with PluginServer({"/limiter": lambda r: {"in": 0, "out": rate}}) as ps, Origin() as origin:
        cfg = {"services": [{"name": f"s{i}", "addr": f"127.0.0.1:{p}",
                             "handler": {"type": "socks5", "auther": "users", "limiter": f"l{i}"}}
                            for i, p in enumerate(ports)],
               "authers": [{"name": "users", "auths": [{"username": "alice", "password": "pw"}]}],
               "limiters": [{"name": "l0", "plugin": plugin(f"{ps.url}/limiter")},
                            {"name": "l1", "plugin": plugin(f"http://127.0.0.1:{dead}/limiter")}]}
        with start(tmp_path, cfg, ports) as g:
            t0 = time.monotonic()
            rc, status, body = curl_code("-x", f"socks5h://alice:pw@127.0.0.1:{ports[0]}",
                                         origin.url + "/bytes/150000")
            took = time.monotonic() - t0
            assert status == 200 and len(body) == 150000
            assert 1.0 < took < 6, took   # 150 kB at 100 kB/s (a burst of 0.1 s)
            rc, status, _ = curl_code("-x", f"socks5h://alice:pw@127.0.0.1:{ports[1]}", origin.url + "/")
            assert status != 200
            assert wait_for(lambda: lines(g, "limiter 'l1': plugin failed"))
    req = ps.seen("/limiter")[0][2]
    assert set(req) == {"service", "scope", "network", "addr", "client", "src"}
    assert req["scope"] == "client" and req["client"] == "alice" and req["service"] == "s0"
    assert req["addr"].endswith(f":{origin.port}") and req["src"].startswith("127.0.0.1:")


def test_plugin_objects_through_the_web_api(tmp_path):
    """POST a bypass plugin and a hop with a file loader, PUT the bypass to rules, DELETE the
    hop: each change governs the next connection, and gostg survives it."""
    from .test_api_live import gostg, svc

    port = free_port()
    nodes = tmp_path / "nodes.json"
    with Echo(b"A") as ea, PluginServer({"/bypass": lambda r: {"ok": r["addr"].endswith(":1111")}}) as ps:
        nodes.write_text(f'[{{"name": "a", "addr": "127.0.0.1:{ea.port}", "connector": {{"type": "forward"}}}}]')
        with gostg() as (g, api):
            api.post("bypasses", {"name": "byp", "plugin": plugin(f"{ps.url}/bypass")})
            api.post("hops", {"name": "h", "reload": "0.2s", "file": {"path": str(nodes)}})
            api.post("chains", {"name": "c", "hops": ["h"]})
            api.post("services", svc("s", port, {"type": "socks5", "chain": "c"}, bypass="byp"))
            assert through_socks(port, ("10.9.9.9", 2222)) == b"A"
            assert through_socks(port, ("10.9.9.9", 1111)) == b""            # the plugin bypasses it
            api.put("bypasses", "byp", {"name": "byp", "matchers": ["10.9.9.9:2222"]})
            assert through_socks(port, ("10.9.9.9", 1111)) == b"A"
            assert through_socks(port, ("10.9.9.9", 2222)) == b""
            api.delete("chains", "c")
            api.delete("hops", "h")
            assert through_socks(port, ("10.9.9.9", 1111)) == b""            # the chain is gone: refused
    assert len(ps.seen("/bypass")) == 2


def test_auth_plugin_over_https_is_verified_against_its_ca_and_name(tmp_path):
    """``plugin: {type: http, addr: https://…, tls: {caFile, serverName}}``: with the CA that
    signed the plugin's certificate and the name it carries, the plugin decides (alice gets in);
    without ``caFile`` (the system CAs do not know it) or with another ``serverName``, the TLS
    handshake fails, the user is refused, the token is never sent, and the log says why."""
    import ssl

    from .pki import make_pki

    pki = make_pki(tmp_path, "plugin.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    tls = [{"caFile": str(pki["ca"]), "serverName": "plugin.test"},      # right CA, right name
           {"serverName": "plugin.test"},                                # no caFile: system CAs
           {"caFile": str(pki["ca"]), "serverName": "other.test"}]       # a name it does not carry
    ports = [free_port() for _ in tls]
    with PluginServer({"/auth": lambda r: {"ok": r["password"] == "good"}}, tls=ctx) as ps, Origin() as origin:
        assert ps.url.startswith("https://")
        cfg = {"services": [{"name": f"s{i}", "addr": f"127.0.0.1:{p}", "handler": {"type": "http", "auther": f"a{i}"}}
                            for i, p in enumerate(ports)],
               "authers": [{"name": f"a{i}", "plugin": plugin(f"{ps.url}/auth", token="tkn", tls=t)}
                           for i, t in enumerate(tls)]}
        with start(tmp_path, cfg, ports) as g:
            assert curl_code("-x", f"http://alice:good@127.0.0.1:{ports[0]}", origin.url + "/in")[1] == 200
            assert curl_code("-x", f"http://alice:bad@127.0.0.1:{ports[0]}", origin.url + "/in")[1] == 407
            for p in ports[1:]:
                _, status, _ = curl_code("-x", f"http://alice:good@127.0.0.1:{p}", origin.url + "/out")
                assert status == 407, p
            assert origin.connections == 1
            no_ca = wait_for(lambda: [ln for ln in lines(g, "auth plugin a1") if "refusing" in ln])
            wrong_name = wait_for(lambda: [ln for ln in lines(g, "auth plugin a2") if "refusing" in ln])
            assert len(no_ca) == 1 and "CERTIFICATE_VERIFY_FAILED" in no_ca[0], no_ca
            assert "unable to get local issuer certificate" in no_ca[0], no_ca
            assert len(wrong_name) == 1 and "CERTIFICATE_VERIFY_FAILED" in wrong_name[0], wrong_name
            assert "other.test" in wrong_name[0], wrong_name
    # only the verified plugin was asked (the token went nowhere else)
    assert [(h["Authorization"], b["username"]) for _, h, b in ps.seen("/auth")] == [("Bearer tkn", "alice")] * 2


def test_an_unusable_plugin_ca_file_is_a_config_error(tmp_path):
    """A ``caFile`` gostg cannot read is refused at start (``--check`` says which key), for an
    HTTP auther as for an HTTP observer: not a plugin that fails at every connection."""
    missing = str(tmp_path / "missing-ca.pem")
    cfg = {"services": [{"name": "s", "addr": "127.0.0.1:1", "observer": "o",
                         "handler": {"type": "http", "auther": "a"}}],
           "authers": [{"name": "a", "plugin": plugin("https://127.0.0.1:1/auth", tls={"caFile": missing})}],
           "observers": [{"name": "o", "plugin": plugin("https://127.0.0.1:1/obs", tls={"caFile": missing})}]}
    f = tmp_path / "ca.yaml"
    f.write_text(yaml.safe_dump(cfg))
    p = run_gostg("-C", f, "--check", env=STRICT)
    assert p.returncode != 0 and "authers[0].plugin.tls.caFile: cannot use" in p.stderr, p.stderr
    del cfg["authers"], cfg["services"][0]["handler"]["auther"]
    f.write_text(yaml.safe_dump(cfg))
    p = run_gostg("-C", f, "--check", env=STRICT)
    assert p.returncode != 0 and "observers[0].plugin.tls.caFile: cannot use" in p.stderr, p.stderr


def test_a_slow_or_down_admission_plugin_refuses_the_client(tmp_path):
    """An admission plugin that does not answer within its timeout, or is down: the client is
    refused (the origin never sees it), within the timeout, with one log line per plugin."""
    ports = [free_port(), free_port()]
    dead = free_port()
    with PluginServer({"/slow": Slow(3)}) as ps, Origin() as origin:
        urls = [f"{ps.url}/slow", f"http://127.0.0.1:{dead}/admission"]
        cfg = {"services": [{"name": f"s{i}", "addr": f"127.0.0.1:{p}", "admission": f"adm{i}",
                             "handler": {"type": "http"}} for i, p in enumerate(ports)],
               "admissions": [{"name": f"adm{i}", "plugin": {**plugin(u), "timeout": "0.5s"}}
                              for i, u in enumerate(urls)]}
        with start(tmp_path, cfg, ports) as g:
            for p in ports:
                t0 = time.monotonic()
                assert curl_code("-x", f"http://127.0.0.1:{p}", origin.url + "/")[1] != 200, p
                assert time.monotonic() - t0 < 0.5 + 2.0
            assert origin.connections == 0
            for name, why in (("adm0", "no answer within 0.5s"), ("adm1", "refused")):
                failed = wait_for(lambda: [ln for ln in lines(g, f"admission plugin {name}") if "refusing" in ln])
                assert len(failed) == 1 and why in failed[0].lower(), failed
