"""Recorders (issue 14 must 4), end to end: ``bin/gostg -C`` with GOST's ``recorders:`` and a
service's ``recorders:``, curl through it, and the records read back where they went — a file,
a TCP server and an HTTP server of this test on loopback, and a real ``redis-server`` (apt)
started on a free loopback port and stopped by PID. A recorder endpoint that is down or never
answers costs a warning, never a request."""
import json
import socket
import subprocess
import threading
import time

import pytest
import yaml

from .helpers import Echo, Gost, Origin, free_port, run_gostg, wait_port
from .redisproc import RedisServer

CLIENT, DIAL, DIAL_ERR, HANDLER = ("recorder.service.client.address", "recorder.service.router.dial.address",
                                   "recorder.service.router.dial.address.error", "recorder.service.handler")
#: GOST's HandlerRecorderObject fields that are always there (the rest are omitempty)
HANDLER_FIELDS = {"service", "network", "remote", "local", "client", "src", "dst", "host", "clientIP",
                  "inputBytes", "outputBytes", "sid", "duration", "time"}


def curl(proxy, url, timeout=10):
    t0 = time.monotonic()
    p = subprocess.run(["curl", "-sS", "-m", str(timeout), "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy, url],
                       capture_output=True, text=True, timeout=timeout + 5)
    return p.stdout, time.monotonic() - t0


def gostg(tmp_path, recorders, uses, port):
    cfg = {"services": [{"name": "svc-rec", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"},
                         "recorders": [{"name": n, "record": r} for n, r in uses]}],
           "recorders": recorders}
    f = tmp_path / "rec.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return Gost("-C", f, ports=[port], env={"GOSTG_STRICT_SCHEMA": "1"})


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def closed_port():
    """A loopback port nothing listens on (connection refused)."""
    return free_port()


def split(raw):
    """Records as received → (the plain ones, the handler records of real requests): the
    start-up port probe (a connection without a request) has a handler record too."""
    plain = sorted(r for r in raw if not r.startswith(b"{"))
    records = [json.loads(r) for r in raw if r.startswith(b"{")]
    return plain, [r for r in records if r["host"]]


def check_handler_record(rec, host, port, err=False):
    assert HANDLER_FIELDS <= set(rec), rec
    assert rec["service"] == "svc-rec" and rec["network"] == "tcp"
    assert rec["host"] == host and rec["clientIP"] == "127.0.0.1"
    assert rec["local"] == f"127.0.0.1:{port}" and rec["remote"].startswith("127.0.0.1:")
    assert isinstance(rec["duration"], int) and rec["duration"] > 0
    assert rec["time"][:4].isdigit() and "T" in rec["time"]
    if err:
        assert "refused" in rec["err"].lower() and rec["outputBytes"] == 0
    else:
        assert "err" not in rec and rec["dst"] == host and rec["src"].startswith("127.0.0.1:")
        assert rec["inputBytes"] > 0 and rec["outputBytes"] > 250   # the answer went through


def test_file_recorder_client_dial_and_handler_records(tmp_path):
    port, dead = free_port(), closed_port()
    out = tmp_path / "records" / "rec.txt"
    recorders = [{"name": "rec-file", "file": {"path": str(out), "sep": "\n"}}]
    uses = [("rec-file", CLIENT), ("rec-file", DIAL), ("rec-file", DIAL_ERR), ("rec-file", HANDLER)]
    with Origin() as origin, gostg(tmp_path, recorders, uses, port) as g:
        host = f"127.0.0.1:{origin.port}"
        for _ in range(3):
            assert curl(f"http://127.0.0.1:{port}", f"{origin.url}/bytes/1500")[0] == "200"
        assert curl(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{dead}/")[0] == "503"
        lines = wait_for(lambda: [ln for ln in out.read_text().split("\n") if ln]
                         if out.exists() and out.read_text().count('"sid":') >= 5 else None)   # and the probe's
        log = g.log_text()
    assert lines, log
    # the start-up port probe is a client too (GOST records every accepted connection)
    records = [json.loads(ln) for ln in lines if ln.startswith("{")]
    probe = [r for r in records if not r["host"]]
    assert len(probe) == 1 and probe[0]["inputBytes"] == 0 and probe[0]["err"]
    records = [r for r in records if r["host"]]
    plain = [ln for ln in lines if not ln.startswith("{")]
    # 5 clients, 4 dials, 1 dial error: each the client's or the target's host, without a port
    assert plain == ["127.0.0.1"] * 10, lines
    assert len(records) == 4
    for rec in records[:3]:
        check_handler_record(rec, host, port)
    check_handler_record(records[3], f"127.0.0.1:{dead}", port, err=True)
    assert len({r["sid"] for r in records}) == 4


def test_file_recorder_dial_error_only_for_unreachable(tmp_path):
    """dial.address.error gets only the failed targets' hosts; dial.address all of them."""
    port, dead = free_port(), closed_port()
    ok, bad = tmp_path / "dial.txt", tmp_path / "err.txt"
    recorders = [{"name": "dials", "file": {"path": str(ok), "sep": "\n"}},
                 {"name": "errors", "file": {"path": str(bad), "sep": "\n"}}]
    with Origin() as origin, gostg(tmp_path, recorders, [("dials", DIAL), ("errors", DIAL_ERR)], port):
        assert curl(f"http://127.0.0.1:{port}", f"http://localhost:{origin.port}/")[0] == "200"
        assert curl(f"http://127.0.0.1:{port}", f"http://localhost:{dead}/")[0] == "503"
        wait_for(lambda: bad.exists() and bad.read_text())
    assert ok.read_text() == "localhost\nlocalhost\n"   # GOST records the host, without the port
    assert bad.read_text() == "localhost\n"


class TCPCollector(Echo):
    """A loopback TCP server keeping what each connection sent, until it closed."""

    def __init__(self):
        super().__init__()
        self.received = []

    def _echo(self, c):
        with c:
            c.settimeout(5)
            self.received.append(b"".join(iter(lambda: c.recv(65536), b"")))


def test_tcp_recorder_gets_one_connection_per_record(tmp_path):
    port = free_port()
    with TCPCollector() as tcp, Origin() as origin:
        recorders = [{"name": "rec-tcp", "tcp": {"addr": f"127.0.0.1:{tcp.port}", "timeout": "2s"}}]
        with gostg(tmp_path, recorders, [("rec-tcp", CLIENT), ("rec-tcp", HANDLER)], port):
            for _ in range(2):
                assert curl(f"http://127.0.0.1:{port}", f"{origin.url}/bytes/1500")[0] == "200"
            assert wait_for(lambda: len(tcp.received) >= 6)   # and the start-up probe's two
    plain, records = split(tcp.received)
    assert plain == [b"127.0.0.1"] * 3    # no separator: the connection frames a record
    assert len(records) == 2
    for rec in records:
        check_handler_record(rec, f"127.0.0.1:{origin.port}", port)


class HTTPCollector:
    """A loopback HTTP/1.1 server keeping each request (method, path, headers, body)."""

    def __init__(self, status=200, answer=b""):
        import http.server

        box = self
        self.requests = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                box.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_http_recorder_posts_records_with_headers(tmp_path):
    port = free_port()
    web = HTTPCollector()
    recorders = [{"name": "rec-http", "http": {"url": f"http://127.0.0.1:{web.port}/records?x=1", "timeout": "2s",
                                               "header": {"X-Token": "s3cret"}}}]
    try:
        with Origin() as origin, gostg(tmp_path, recorders, [("rec-http", DIAL), ("rec-http", HANDLER)], port):
            assert curl(f"http://127.0.0.1:{port}", f"{origin.url}/bytes/1500")[0] == "200"
            assert wait_for(lambda: len(web.requests) >= 3)   # dial, the request's and the probe's records
    finally:
        web.close()
    for method, path, headers, _ in web.requests:
        assert (method, path) == ("POST", "/records?x=1")
        assert headers["Content-Type"] == "application/json" and headers["X-Token"] == "s3cret"
    plain, records = split([r[3] for r in web.requests])
    assert plain == [b"127.0.0.1"] and len(records) == 1
    check_handler_record(records[0], f"127.0.0.1:{origin.port}", port)


def test_http_plugin_recorder_gets_gosts_plugin_body(tmp_path):
    """GOST's HTTP recorder plugin: POST {"data": base64, "metadata": base64 JSON} with the
    token as a Bearer; an answer without ok=true is a failure (one warning)."""
    import base64

    port = free_port()
    good, bad = HTTPCollector(answer=b'{"ok":true}'), HTTPCollector(answer=b'{"ok":false}')
    recorders = [{"name": "plug", "plugin": {"type": "http", "addr": f"http://127.0.0.1:{good.port}/recorder",
                                             "token": "tkn", "timeout": "2s"}},
                 {"name": "plug-no", "plugin": {"type": "http", "addr": f"http://127.0.0.1:{bad.port}/r"}}]
    cfg = {"services": [{"name": "svc-rec", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"},
                         "recorders": [{"name": "plug", "record": DIAL, "metadata": {"testKey": "testValue"}},
                                       {"name": "plug-no", "record": DIAL}]}],
           "recorders": recorders}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(cfg))
    try:
        with Origin() as origin, Gost("-C", f, ports=[port], env={"GOSTG_STRICT_SCHEMA": "1"}) as g:
            assert curl(f"http://127.0.0.1:{port}", f"http://localhost:{origin.port}/")[0] == "200"
            assert wait_for(lambda: good.requests and bad.requests)
            assert wait_for(lambda: "plug-no" in g.log_text())
            log = g.log_text()
    finally:
        good.close()
        bad.close()
    method, path, headers, body = good.requests[0]
    assert (method, path, headers["Authorization"], headers["Content-Type"]) == (
        "POST", "/recorder", "Bearer tkn", "application/json")
    js = json.loads(body)
    assert base64.b64decode(js["data"]) == b"localhost"
    assert json.loads(base64.b64decode(js["metadata"])) == {"testKey": "testValue"}
    assert "plugin answered ok: false" in log and "services[0].recorders[0].metadata" in log


@pytest.fixture
def redis_server(tmp_path):
    with RedisServer(tmp_path) as r:
        yield r.port


def test_redis_recorder_set_sorted_set_and_list(tmp_path, redis_server):
    import redis

    port = free_port()
    addr = f"127.0.0.1:{redis_server}"
    recorders = [{"name": "r-set", "redis": {"addr": addr, "key": "gost:clients", "type": "set"}},
                 {"name": "r-sset", "redis": {"addr": addr, "db": 1, "key": "gost:dials", "type": "sset"}},
                 {"name": "r-list", "redis": {"addr": addr, "key": "gost:conns", "type": "list"}}]
    uses = [("r-set", CLIENT), ("r-sset", DIAL), ("r-list", HANDLER)]
    r0 = redis.Redis(host="127.0.0.1", port=redis_server, db=0)
    r1 = redis.Redis(host="127.0.0.1", port=redis_server, db=1)
    with Origin() as origin, gostg(tmp_path, recorders, uses, port):
        for _ in range(3):
            assert curl(f"http://127.0.0.1:{port}", f"http://localhost:{origin.port}/bytes/1500")[0] == "200"
        assert wait_for(lambda: r0.llen("gost:conns") >= 4 and r1.zscore("gost:dials", "localhost") == 3)
    assert r0.type("gost:clients") == b"set" and r0.smembers("gost:clients") == {b"127.0.0.1"}
    assert r1.type("gost:dials") == b"zset" and r1.zrange("gost:dials", 0, -1, withscores=True) == [(b"localhost", 3.0)]
    assert r0.type("gost:conns") == b"list"
    _, recs = split(r0.lrange("gost:conns", 0, -1))
    assert len(recs) == 3
    for rec in recs:
        assert rec["host"] == f"localhost:{origin.port}" and rec["outputBytes"] > 1000 and "err" not in rec
    r0.close()
    r1.close()


def test_dead_and_silent_endpoints_leave_traffic_alone(tmp_path):
    """tcp, http and redis recorders whose endpoints refuse, and an HTTP endpoint that accepts
    and never answers: every request is served at full speed, and each recorder logs one
    warning (rate-limited), not one per record."""
    port, dead = free_port(), closed_port()
    silent = socket.create_server(("127.0.0.1", 0))   # the kernel accepts; nobody ever reads
    recorders = [{"name": "dead-tcp", "tcp": {"addr": f"127.0.0.1:{dead}", "timeout": "1s"}},
                 {"name": "dead-http", "http": {"url": f"http://127.0.0.1:{dead}/", "timeout": "1s"}},
                 {"name": "dead-redis", "redis": {"addr": f"127.0.0.1:{dead}", "key": "k", "timeout": "1s"}},
                 {"name": "silent-http", "http": {"url": f"http://127.0.0.1:{silent.getsockname()[1]}/",
                                                  "timeout": "1s"}}]
    uses = [(n, r) for n in ("dead-tcp", "dead-http", "dead-redis", "silent-http") for r in (CLIENT, HANDLER)]
    try:
        with Origin() as origin, gostg(tmp_path, recorders, uses, port) as g:
            times = []
            for _ in range(8):
                code, took = curl(f"http://127.0.0.1:{port}", f"{origin.url}/bytes/1500")
                assert code == "200"
                times.append(took)
            log = wait_for(lambda: g.log_text() if g.log_text().count("recorder ") >= 4 else None, timeout=6)
            assert g.proc.poll() is None
    finally:
        silent.close()
    assert max(times) < 0.9, times    # never waited for the 1 s recorder timeout
    warns = [json.loads(ln) for ln in log.splitlines() if '"recorder"' in ln and ln.startswith("{")]
    by = {}
    for w in warns:
        assert w["level"] == "warning" and w["kind"] == "recorder"
        by.setdefault(w["recorder"], []).append(w["msg"])
    assert set(by) == {"dead-tcp", "dead-http", "dead-redis", "silent-http"}, log
    assert all(len(v) == 1 for v in by.values()), by   # 16 failed records each, one line each
    assert "no answer in 1s" in by["silent-http"][0]


def test_unknown_recorder_name_fails_the_config(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({
        "services": [{"name": "s", "addr": f"127.0.0.1:{free_port()}", "handler": {"type": "http"},
                      "recorders": [{"name": "rec-fil", "record": CLIENT}]}],
        "recorders": [{"name": "rec-file", "file": {"path": str(tmp_path / "r.txt")}}]}))
    for args in ((), ("--check",), ("-O", "yaml")):   # serving, checking and printing agree
        p = run_gostg("-C", f, *args)
        assert p.returncode == 1, args
        assert ("services[0].recorders[0].name: recorder 'rec-fil' not found (did you mean 'rec-file'?)"
                in p.stderr), (args, p.stderr)


def test_unknown_record_type_fails_the_config(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({
        "services": [{"name": "s", "addr": f"127.0.0.1:{free_port()}", "handler": {"type": "http"},
                      "recorders": [{"name": "r", "record": "recorder.service.router.dial.adress"}]}],
        "recorders": [{"name": "r", "file": {"path": str(tmp_path / "r.txt")}}]}))
    p = run_gostg("-C", f)
    assert p.returncode != 0
    assert "services[0].recorders[0].record" in p.stderr and "recorder.service.router.dial.address" in p.stderr


def test_recorders_through_the_web_api_and_reload(tmp_path):
    """POST /config/recorders builds one; a service created after it records there; a PUT
    moves the records to a new file at once (late binding by name); deleting it answers with
    the warning that the service's records are dropped; SIGHUP reload takes the file's config."""
    from .peers import Api

    port, api_port, svc_port = free_port(), free_port(), free_port()
    first, second, third = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    cfgf = tmp_path / "rec.yaml"
    cfgf.write_text(yaml.safe_dump({"services": [{"name": "svc-rec", "addr": f"127.0.0.1:{port}",
                                                  "handler": {"type": "http"}}]}))
    with Origin() as origin, Gost("-C", cfgf, "-api", f"127.0.0.1:{api_port}", ports=[port, api_port],
                                  env={"GOSTG_STRICT_SCHEMA": "1"}) as g:
        api = Api(api_port)
        api.post("recorders", {"name": "dials", "file": {"path": str(first), "sep": "\n"}})
        api.post("services", {"name": "svc-api", "addr": f"127.0.0.1:{svc_port}", "handler": {"type": "http"},
                              "recorders": [{"name": "dials", "record": DIAL}]})
        wait_port(svc_port)
        assert curl(f"http://127.0.0.1:{svc_port}", f"http://localhost:{origin.port}/")[0] == "200"
        assert wait_for(lambda: first.exists() and first.read_text() == "localhost\n")
        api.put("recorders", "dials", {"file": {"path": str(second), "sep": "\n"}})
        assert curl(f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{origin.port}/")[0] == "200"
        assert wait_for(lambda: second.exists() and second.read_text() == "127.0.0.1\n")
        assert first.read_text() == "localhost\n"
        status, js, _ = Api(api_port).request("DELETE", "/config/recorders/dials")
        assert status == 200 and any("records are dropped" in w for w in js.get("warnings", [])), js
        assert curl(f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{origin.port}/")[0] == "200"
        # the file config gets a recorder and a service using it: SIGHUP reloads it
        cfgf.write_text(yaml.safe_dump({
            "services": [{"name": "svc-rec", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"},
                          "recorders": [{"name": "clients", "record": CLIENT}]}],
            "recorders": [{"name": "clients", "file": {"path": str(third), "sep": "\n"}}]}))
        g.signal(__import__("signal").SIGHUP)
        assert wait_for(lambda: "config reloaded" in g.log_text())
        assert curl(f"http://127.0.0.1:{port}", f"{origin.url}/")[0] == "200"
        assert wait_for(lambda: third.exists() and "127.0.0.1\n" in third.read_text())
    assert second.read_text() == "127.0.0.1\n"


def test_http_proxy_records_each_request_with_gosts_http_object(tmp_path):
    """GOST's HTTP handler records each proxied request (not the connection): two requests on
    one kept-alive connection are two records with the same sid, each with its own byte counts
    and an ``http`` part; the password in Proxy-Authorization is not recorded."""
    port = free_port()
    out = tmp_path / "http.jsonl"
    cfg = {"services": [{"name": "svc-rec", "addr": f"127.0.0.1:{port}",
                         "handler": {"type": "http", "auth": {"username": "u1", "password": "p4ss"}},
                         "recorders": [{"name": "conns", "record": HANDLER}]}],
           "recorders": [{"name": "conns", "file": {"path": str(out), "sep": "\n"}}]}
    f = tmp_path / "h.yaml"
    f.write_text(yaml.safe_dump(cfg))
    with Origin() as origin, Gost("-C", f, ports=[port], env={"GOSTG_STRICT_SCHEMA": "1"}):
        p = subprocess.run(["curl", "-sS", "-m", "10", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} ",
                            "-x", f"http://127.0.0.1:{port}", "-U", "u1:p4ss",
                            f"{origin.url}/bytes/1500", f"{origin.url}/bytes/300"], capture_output=True, text=True,
                           timeout=15)
        assert p.stdout.split() == ["200", "200"], p.stderr
        assert wait_for(lambda: out.exists() and out.read_text().count('"http":') >= 2)
    assert origin.connections == 1
    recs = [r for r in map(json.loads, out.read_text().splitlines()) if r["host"]]
    assert len(recs) == 2 and recs[0]["sid"] == recs[1]["sid"]
    for rec, n in zip(recs, (1500, 300)):
        check_handler_record(rec, f"127.0.0.1:{origin.port}", port)
        h = rec["http"]
        assert rec["proto"] == "http" and rec["clientID"] == "u1"
        assert (h["method"], h["proto"], h["scheme"], h["statusCode"]) == ("GET", "HTTP/1.1", "http", 200)
        assert h["uri"] == f"{origin.url}/bytes/{n}" and h["host"] == f"127.0.0.1:{origin.port}"
        assert h["request"]["header"]["Proxy-Authorization"] == ["[redacted]"]
        assert "p4ss" not in json.dumps(rec) and "dTE6cDRzcw" not in json.dumps(rec)
        assert h["response"]["contentLength"] == n and h["response"]["header"]["Content-Length"] == [str(n)]
        assert n < rec["outputBytes"] < n + 400   # this response only, head included


def test_connect_tunnel_is_one_record_for_the_connection(tmp_path):
    """A CONNECT tunnel (curl -p) is one handler record when it ends, with GOST's proto "http"
    and no http part; the tunnel's bytes both ways."""
    port = free_port()
    out = tmp_path / "c.jsonl"
    with Origin() as origin, gostg(tmp_path, [{"name": "conns", "file": {"path": str(out), "sep": "\n"}}],
                                   [("conns", HANDLER)], port):
        p = subprocess.run(["curl", "-sS", "-m", "10", "-p", "-o", "/dev/null", "-w", "%{http_code}",
                            "-x", f"http://127.0.0.1:{port}", f"{origin.url}/bytes/1500"],
                           capture_output=True, text=True, timeout=15)
        assert p.stdout == "200", p.stderr
        assert wait_for(lambda: out.exists() and '"proto":"http"' in out.read_text())
    recs = [r for r in map(json.loads, out.read_text().splitlines()) if r["host"]]
    assert len(recs) == 1 and recs[0]["proto"] == "http" and "http" not in recs[0]
    check_handler_record(recs[0], f"127.0.0.1:{origin.port}", port)


def test_mux_listener_records_each_stream_not_the_session(tmp_path):
    """Over an mtcp session each stream is a connection of its own: one handler record per
    request stream, none for the session that carried them."""
    port, front = free_port(), free_port()
    out = tmp_path / "m.jsonl"
    cfg = {"services": [{"name": "svc-rec", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"},
                         "listener": {"type": "mtcp"}, "recorders": [{"name": "conns", "record": HANDLER}]}],
           "recorders": [{"name": "conns", "file": {"path": str(out), "sep": "\n"}}]}
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump(cfg))
    with Origin() as origin, Gost("-C", f, ports=[port], env={"GOSTG_STRICT_SCHEMA": "1"}) as server:
        with Gost("-L", f"http://127.0.0.1:{front}", "-F", f"mtcp://127.0.0.1:{port}", ports=[front]):
            for _ in range(2):
                assert curl(f"http://127.0.0.1:{front}", f"{origin.url}/bytes/1500")[0] == "200"
            assert wait_for(lambda: out.exists() and out.read_text().count('"proto":"http"') >= 2)
        server.stop()
    recs = list(map(json.loads, out.read_text().splitlines()))
    # the front gostg sends a CONNECT per request on a stream of its session; the sessions
    # (its own and the start-up probe's) have no record
    assert len(recs) == 2 and len({r["sid"] for r in recs}) == 2, recs
    for r in recs:
        check_handler_record(r, f"127.0.0.1:{origin.port}", port)


def test_a_stop_sends_the_records_of_the_connections_it_ends(tmp_path):
    """SIGTERM with a tunnel open: the stop ends it, and its handler record still reaches the
    TCP recorder before the process exits (the stop lets the recorder's queue drain)."""
    port = free_port()
    with TCPCollector() as tcp, Echo() as echo:
        recorders = [{"name": "rec-tcp", "tcp": {"addr": f"127.0.0.1:{tcp.port}", "timeout": "2s"}}]
        g = gostg(tmp_path, recorders, [("rec-tcp", HANDLER)], port).start()
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
            c.sendall(b"ping")
            assert c.recv(16) == b"ping"
            g.stop()    # SIGTERM; the tunnel stays open until the stop ends it
            assert g.proc.returncode == 0
            c.close()
        finally:
            g.stop()
        got = wait_for(lambda: [r for r in split(tcp.received)[1] if r["host"] == f"127.0.0.1:{echo.port}"], 3)
    assert len(got) == 1 and got[0]["inputBytes"] == 4 and got[0]["outputBytes"] == 4 and got[0]["proto"] == "http"
