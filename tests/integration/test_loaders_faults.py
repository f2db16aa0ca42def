"""Redis sources when Redis misbehaves: a restart mid-run, a key of the wrong type, Redis down
from the start (fail closed), and objects replaced or deleted through the Web API (their
poller and push subscription end: Redis sees the connections go)."""
import time

import yaml

from .helpers import Echo, Gost, free_port
from .peers import Api, log_records
from .redisproc import RedisServer, need_redis, redis_srv, socks5, socks_svc, until  # noqa: F401 (fixture)


def run(tmp_path, cfg, ports, *args):
    path = tmp_path / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return Gost("-C", path, *args, ports=ports)


def refused(port, echo):
    return socks5(port, dport=echo.port) not in (0, None)


def loader_lines(g, level):
    return [x["msg"] for x in log_records(g, loader="redis", level=level)]


def test_redis_restart_keeps_the_last_good_value_and_logs_once(tmp_path, redis_srv):
    redis_srv.client().sadd("gost:bp", "127.0.0.1")
    p = free_port()
    cfg = {"services": [socks_svc("s", p, bypass="bp")],
           "bypasses": [{"name": "bp", "reload": "200ms", "redis": {"addr": redis_srv.addr, "key": "gost:bp"}}]}
    with Echo() as echo, run(tmp_path, cfg, [p]) as g:
        assert refused(p, echo)
        redis_srv.stop()
        assert until(lambda: loader_lines(g, "warning"), timeout=5)
        time.sleep(1.0)                                  # five more failed polls
        assert refused(p, echo), "the last good rules were dropped while Redis was down"
        warn = loader_lines(g, "warning")
        assert len(warn) == 1 and "keeping the last good value" in warn[0], warn
        redis_srv.start()                                # same port, empty (no persistence)
        redis_srv.client().sadd("gost:bp", "127.0.0.9")
        # a failing source is retried after 1 s, 2 s, 4 s …: recovery within one of those
        assert until(lambda: not refused(p, echo), timeout=10), g.log_text()[-2000:]
        assert loader_lines(g, "info") == ["redis loader recovered"]
        assert len(loader_lines(g, "warning")) == 1


def test_wrong_key_type_is_logged_and_the_last_good_value_kept(tmp_path, redis_srv):
    r = redis_srv.client()
    r.sadd("gost:bp", "127.0.0.1")
    p = free_port()
    cfg = {"services": [socks_svc("s", p, bypass="bp")],
           "bypasses": [{"name": "bp", "reload": "200ms", "redis": {"addr": redis_srv.addr, "key": "gost:bp"}}]}
    with Echo() as echo, run(tmp_path, cfg, [p]) as g:
        assert refused(p, echo)
        r.delete("gost:bp")
        r.set("gost:bp", "127.0.0.1")                    # a string where a set belongs
        assert until(lambda: loader_lines(g, "warning"), timeout=5)
        time.sleep(0.6)
        warn = loader_lines(g, "warning")
        assert len(warn) == 1 and "WRONGTYPE" in warn[0], warn
        assert refused(p, echo)
        r.delete("gost:bp")
        r.rpush("gost:bp", "x")                          # still wrong: a list; the same reason, no new line
        time.sleep(0.6)
        assert len(loader_lines(g, "warning")) == 1
        r.delete("gost:bp")
        r.sadd("gost:bp", "10.1.1.1")
        assert until(lambda: not refused(p, echo), timeout=10)
        assert loader_lines(g, "info") == ["redis loader recovered"]


def test_redis_down_from_the_start_fails_closed(tmp_path):
    """A bypass and an admission whose Redis has never answered: their rules are unknown, so the
    service's bypass refuses every target, the admission every client, and a hop's bypass fails
    the dial instead of sending the connection direct — until Redis answers."""
    need_redis()
    srv = RedisServer(tmp_path)
    p, a, h, dead = free_port(), free_port(), free_port(), free_port()
    rcfg = {"addr": srv.addr, "key": "gost:rules"}
    hop = {"name": "hop", "bypass": "bp", "nodes": [{"name": "n", "addr": f"127.0.0.1:{dead}",
                                                     "connector": {"type": "socks5"}, "dialer": {"type": "tcp"}}]}
    cfg = {"services": [socks_svc("s", p, bypass="bp"), socks_svc("a", a, admission="adm"),
                        socks_svc("h", h, handler={"type": "socks5", "chain": "c"})],
           "chains": [{"name": "c", "hops": [hop]}],
           "bypasses": [{"name": "bp", "reload": "200ms", "redis": rcfg}],
           "admissions": [{"name": "adm", "reload": "200ms", "redis": rcfg}]}
    with Echo() as echo, run(tmp_path, cfg, [p, a, h]) as g:
        assert refused(p, echo)
        assert socks5(a, dport=echo.port) is None
        assert refused(h, echo), "the hop's unread bypass sent the connection direct"
        assert any("Connection refused" in m for m in loader_lines(g, "warning"))
        assert "its redis/http source has not been read yet: connection refused" in g.log_text()
        srv.start()
        try:
            srv.client().sadd("gost:rules", "127.0.0.1")
            # both sources recovered (the bypass and the admission read Redis each on its own);
            # while still unread the bypass refuses with the same reply as a matched rule, so
            # the service's answer alone does not say it was read: the hop's does
            assert until(lambda: socks5(a, dport=echo.port) is None and socks5(p, dport=echo.port) not in (0, None)
                         and g.log_text().count("loader recovered") >= 2, timeout=5)
            # now the hop's bypass lets it go direct
            assert until(lambda: socks5(h, dport=echo.port) == 0, timeout=5)
            srv.client().delete("gost:rules")
            assert until(lambda: socks5(p, dport=echo.port) == 0 and socks5(a, dport=echo.port) == 0, timeout=5)
        finally:
            srv.stop()


def _subscribers(r):
    return r.pubsub_numsub("gostg:reload")[0][1]


def _clients(r):
    return len(r.client_list()) - 1   # not counting this one


def test_api_replace_and_delete_end_the_poller_and_subscription(tmp_path, redis_srv):
    r = redis_srv.client()
    r.sadd("gost:bp", "127.0.0.1")
    p, api_port = free_port(), free_port()
    cfg = {"services": [socks_svc("s", p, bypass="bp")]}
    bp = {"name": "bp", "reload": "200ms", "redis": {"addr": redis_srv.addr, "key": "gost:bp", "pubsub": True}}
    with Echo() as echo, run(tmp_path, cfg, [p, api_port], "-api", f"127.0.0.1:{api_port}") as g:
        api = Api(api_port)
        api.post("bypasses", bp)
        assert refused(p, echo)
        assert until(lambda: _subscribers(r) == 1)
        for _ in range(3):                                # replaced three times: still one of each
            api.put("bypasses", "bp", bp)
        assert refused(p, echo)
        time.sleep(0.5)                                   # the replaced pollers' next period
        assert _subscribers(r) == 1
        assert _clients(r) <= 2, r.client_list()          # one for reads, one subscribed
        api.delete("bypasses", "bp")
        assert until(lambda: _subscribers(r) == 0 and _clients(r) == 0, timeout=5), r.client_list()
        gets = r.info("commandstats").get("cmdstat_smembers", {}).get("calls", 0)
        time.sleep(0.6)
        assert r.info("commandstats").get("cmdstat_smembers", {}).get("calls", 0) == gets, "a poller still runs"
        assert g.proc.poll() is None


def test_periodic_config_reload_keeps_an_unchanged_redis_object_and_replaces_a_changed_one(tmp_path, redis_srv):
    """-R re-reads the config every period: an unchanged redis-backed bypass stays the same
    object (one subscription, no re-read per period); editing its key replaces it cleanly."""
    r = redis_srv.client()
    r.sadd("k1", "127.0.0.1")
    p = free_port()

    def cfg(key):
        return {"services": [socks_svc("s", p, bypass="bp")],
                "bypasses": [{"name": "bp", "redis": {"addr": redis_srv.addr, "key": key, "pubsub": True}}]}

    path = tmp_path / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg("k1")))
    with Echo() as echo, Gost("-C", path, "-R", "0.2s", ports=[p]) as g:
        assert refused(p, echo)
        assert until(lambda: _subscribers(r) == 1)
        reads = r.info("commandstats").get("cmdstat_smembers", {}).get("calls", 0)
        time.sleep(1.0)                                   # five config reloads
        assert r.info("commandstats").get("cmdstat_smembers", {}).get("calls", 0) == reads
        path.write_text(yaml.safe_dump(cfg("k2")))        # k2 is empty: nothing refused
        assert until(lambda: not refused(p, echo), timeout=5), g.log_text()[-2000:]
        assert until(lambda: _subscribers(r) == 1 and _clients(r) <= 2), r.client_list()
        r.sadd("k2", "127.0.0.1")
        r.publish("gostg:reload", "k2")
        assert until(lambda: refused(p, echo), timeout=3)


def test_redis_password_and_a_wrong_one(tmp_path, redis_srv):
    """``password`` is sent; a wrong one is a failing source: logged, and fail closed."""
    r = redis_srv.client()
    r.config_set("requirepass", "right")
    r = redis_srv.client()
    r.connection_pool.connection_kwargs["password"] = "right"
    r.sadd("gost:bp", "10.1.1.1")
    p, q = free_port(), free_port()
    cfg = {"services": [socks_svc("good", p, bypass="good"), socks_svc("bad", q, bypass="bad")],
           "bypasses": [{"name": "good", "redis": {"addr": redis_srv.addr, "key": "gost:bp", "password": "right"}},
                        {"name": "bad", "redis": {"addr": redis_srv.addr, "key": "gost:bp", "password": "wrong"}}]}
    with Echo() as echo, run(tmp_path, cfg, [p, q]) as g:
        assert socks5(p, dport=echo.port) == 0
        assert refused(q, echo)
        warn = [x for x in log_records(g, loader="redis", level="warning") if x.get("name") == "bad"]
        assert len(warn) == 1 and "keeping the last good value" in warn[0]["msg"], g.log_text()[-2000:]
        assert "wrong" not in g.log_text() and "right" not in g.log_text()


def test_a_slow_http_source_times_out_and_never_stalls_connections(tmp_path):
    """An HTTP source that stops answering: each read ends at ``timeout`` (logged once), the last
    good rules stay, and connections are decided at once meanwhile (the read waits in its own
    greenlet)."""
    import http.server
    import threading

    state = {"slow": False}

    class Slow(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if state["slow"]:
                time.sleep(2.0)
            body = b"127.0.0.1\n"
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass   # gostg gave up waiting (the timeout under test)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    p = free_port()
    cfg = {"services": [socks_svc("s", p, bypass="bp")],
           "bypasses": [{"name": "bp", "reload": "200ms",
                         "http": {"url": f"http://127.0.0.1:{srv.server_address[1]}/rules", "timeout": "300ms"}}]}
    try:
        with Echo() as echo, run(tmp_path, cfg, [p]) as g:
            assert refused(p, echo)
            state["slow"] = True
            assert until(lambda: [x for x in log_records(g, loader="http") if "timed out" in x["msg"]], timeout=5)
            t0 = time.monotonic()
            for _ in range(20):
                assert refused(p, echo)
            assert time.monotonic() - t0 < 1.0, "connections waited for the HTTP source"
            time.sleep(0.8)
            assert len([x for x in log_records(g, loader="http") if x.get("level") == "warning"]) == 1
    finally:
        srv.shutdown()
        srv.server_close()


def test_check_and_output_with_redis_sources(tmp_path):
    """--check builds the objects: a Redis that is down is a warning there (serving would start
    and retry), not an error; -O does not connect at all."""
    from .helpers import run_gostg

    dead = free_port()
    cfg = {"services": [socks_svc("s", free_port(), bypass="bp", admission="adm")],
           "bypasses": [{"name": "bp", "reload": "1s", "redis": {"addr": f"127.0.0.1:{dead}", "pubsub": True}}],
           "admissions": [{"name": "adm", "http": {"url": f"http://127.0.0.1:{dead}/adm", "timeout": "1s"}}]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    c = run_gostg("--check", "-C", path)
    out = c.stdout + c.stderr
    assert c.returncode == 0, out
    assert "config warning: redis loader: Error 111 connecting" in out and "config warning: http loader:" in out, out
    o = run_gostg("-O", "json", "-C", path)
    assert o.returncode == 0 and '"pubsub": true' in o.stdout, o.stderr
