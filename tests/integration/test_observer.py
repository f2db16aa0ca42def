"""Observers (GOST concepts/observer): bin/gostg POSTs service status and stats events in GOST's
JSON to an HTTP plugin — here an http.server on 127.0.0.1 that records what it gets. curl pulls
known sizes through the service, and the reported counters must match them."""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from .helpers import GOSTG, Gost, HTTPServerThread, Origin, _ThreadingHTTP, free_port, run_gostg, wait_port
from .test_hooks import wait_for

pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/bin/curl") and not os.environ.get("CI"), reason="curl not installed")

BODY = 100_000    # bytes per curl download
HTTP_OVERHEAD = 600   # request + response heads, per download, both ways together (generous)


class Plugin(HTTPServerThread):
    """The observer plugin: records (headers, JSON) of each POST; ``reply`` is what it answers
    (``"ok"``, ``"garbage"``, ``"notok"``, ``"slow"``)."""

    def __init__(self, reply="ok"):
        self.posts = []
        self.reply = reply
        plugin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                plugin.posts.append((dict(self.headers), json.loads(data), self.path))
                if plugin.reply == "slow":
                    time.sleep(3)
                body = {"ok": b'{"ok":true}', "notok": b'{"ok":false}'}.get(plugin.reply, b"\x00garbage")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _ThreadingHTTP(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/observer"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self, type_=None):
        return [e for _, body, _ in list(self.posts) for e in body["events"] if type_ is None or e["type"] == type_]

    @staticmethod
    def wait(pred, timeout=10.0):
        return wait_for(pred, timeout)


def config(tmp_path, port, plugin_url, md=None, token=None, timeout=None, extra=None, handler="http"):
    plugin = {"type": "http", "addr": plugin_url}
    if token:
        plugin["token"] = token
    if timeout:
        plugin["timeout"] = timeout
    cfg = {"services": [{"name": "web", "addr": f"127.0.0.1:{port}", "observer": "obs-0",
                         "handler": {"type": handler}, "listener": {"type": "tcp"}, "metadata": md or {}}],
           "observers": [{"name": "obs-0", "plugin": plugin}]}
    cfg.update(extra or {})
    f = tmp_path / "observer.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def curl_bytes(port, url, n=BODY):
    r = subprocess.run(["curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{size_download}",
                        "-x", f"http://127.0.0.1:{port}", f"{url}/bytes/{n}"],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == n
    return n


def test_status_events_and_token(tmp_path):
    port = free_port()
    with Plugin() as plugin:
        cfg = config(tmp_path, port, plugin.url, token="s3cret")
        with Gost("-C", cfg, ports=[port]) as g:
            assert plugin.wait(lambda: any(e["status"]["state"] == "ready" for e in plugin.events("status")))
            ready = next(e for e in plugin.events("status") if e["status"]["state"] == "ready")
            assert ready == {"kind": "service", "service": "web", "type": "status",
                             "status": {"state": "ready", "msg": "service web is ready"}}
            states = [e["status"]["state"] for e in plugin.events("status")]
            assert states[:2] == ["running", "ready"]
            headers, _, path = plugin.posts[0]
            assert headers["Authorization"] == "Bearer s3cret"
            assert headers["Content-Type"] == "application/json"
            assert path == "/observer"
            # no enableStats: no stats events, however long it runs
            time.sleep(1.3)
            assert plugin.events("stats") == []
            g.stop()
            assert plugin.wait(lambda: any(e["status"]["state"] == "closed" for e in plugin.events("status")))


def settle(plugin):
    """The port wait of the Gost helper is a connection too: → totalConns once it is reported,
    after checking that a quiet service then reports nothing more (GOST: only on change)."""
    assert plugin.wait(lambda: plugin.events("stats"))
    n = len(plugin.events("stats"))
    time.sleep(2.2)
    assert len(plugin.events("stats")) == n
    return plugin.events("stats")[-1]["stats"]["totalConns"]


def test_stats_every_period_follow_traffic(tmp_path):
    port = free_port()
    with Plugin() as plugin, Origin() as origin:
        cfg = config(tmp_path, port, plugin.url, md={"enableStats": True, "observer.period": "1s"})
        with Gost("-C", cfg, ports=[port]):
            base = settle(plugin)
            t0 = time.monotonic()
            for _ in range(3):
                curl_bytes(port, origin.url)
            assert plugin.wait(lambda: any(e["stats"]["totalConns"] == base + 3 for e in plugin.events("stats")))
            assert time.monotonic() - t0 < 3.5      # within a period or two
            s = plugin.events("stats")[-1]
            assert s["kind"] == "service" and s["service"] == "web" and "client" not in s
            st = s["stats"]
            assert st["totalConns"] == base + 3 and st["currentConns"] == 0 and st["totalErrs"] == 0
            assert 3 * BODY <= st["outputBytes"] <= 3 * (BODY + HTTP_OVERHEAD)
            assert 0 < st["inputBytes"] <= 3 * HTTP_OVERHEAD
            curl_bytes(port, origin.url)
            assert plugin.wait(lambda: any(e["stats"]["totalConns"] == base + 4 for e in plugin.events("stats")))
            after = plugin.events("stats")[-1]["stats"]
            assert 4 * BODY <= after["outputBytes"] <= 4 * (BODY + HTTP_OVERHEAD)   # totals grow


def test_reset_traffic_gives_deltas(tmp_path):
    port = free_port()
    with Plugin() as plugin, Origin() as origin:
        cfg = config(tmp_path, port, plugin.url,
                     md={"enableStats": True, "observer.period": "1s", "observer.resetTraffic": True})
        with Gost("-C", cfg, ports=[port]):
            base = settle(plugin)
            curl_bytes(port, origin.url)
            curl_bytes(port, origin.url)
            assert plugin.wait(lambda: any(e["stats"]["totalConns"] == base + 2 for e in plugin.events("stats")))
            curl_bytes(port, origin.url, 50_000)
            assert plugin.wait(lambda: any(e["stats"]["totalConns"] == base + 3 for e in plugin.events("stats")))
            stats = [e["stats"] for e in plugin.events("stats")]
            last = stats[-1]
            # the last report holds only the third download's bytes; conns stay totals
            assert 50_000 <= last["outputBytes"] <= 50_000 + HTTP_OVERHEAD
            assert last["totalConns"] == base + 3
            # the reports add up to everything that went through
            total = sum(s["outputBytes"] for s in stats)
            assert 250_000 <= total <= 250_000 + 3 * HTTP_OVERHEAD


@pytest.mark.parametrize("reply", ["dead", "garbage", "notok", "slow"])
def test_plugin_down_or_bad_never_blocks_traffic(tmp_path, reply):
    port = free_port()
    with Origin() as origin, Plugin("ok" if reply == "dead" else reply) as plugin:
        url = plugin.url
        if reply == "dead":
            dead = free_port()          # nothing listens there
            url = f"http://127.0.0.1:{dead}/observer"
        cfg = config(tmp_path, port, url, md={"enableStats": True, "observer.period": "1s"}, timeout="1s")
        with Gost("-C", cfg, ports=[port]) as g:
            t0 = time.monotonic()
            for _ in range(5):
                curl_bytes(port, origin.url)
            assert time.monotonic() - t0 < 4      # the plugin never holds traffic up
            assert plugin.wait(lambda: "observer" in g.log_text() and "warning" in g.log_text(), timeout=6)
            time.sleep(2.5)                      # a few failed periods
            for _ in range(5):
                curl_bytes(port, origin.url)
            log = [json.loads(line) for line in g.log_text().splitlines() if line.startswith("{")]
            warns = [e for e in log if e.get("kind") == "observer" and e.get("level") == "warning"]
            # one warning while it stays down (not one per period), naming the observer
            assert len(warns) == 1, warns
            assert warns[0]["observer"] == "obs-0"
            if reply != "dead":
                # every failed report is sent again: its stats go on arriving
                assert len(plugin.events("stats")) >= 2
            # no greenlet piles up: the process has a handful of sockets, not one per period
            fds = len(os.listdir(f"/proc/{g.proc.pid}/fd"))
            assert fds < 30, fds
            assert g.stop() == 0


def test_plugin_recovers_and_gets_what_it_missed(tmp_path):
    """Reports kept while the plugin answers garbage arrive once it answers ok."""
    port = free_port()
    with Origin() as origin, Plugin("notok") as plugin:
        cfg = config(tmp_path, port, plugin.url, md={"enableStats": True, "observer.period": "1s"})
        with Gost("-C", cfg, ports=[port]) as g:
            curl_bytes(port, origin.url)
            assert plugin.wait(lambda: plugin.events("stats"))
            missed = plugin.events("stats")[-1]
            plugin.reply = "ok"
            assert plugin.wait(lambda: "answers again" in g.log_text(), timeout=8)
            # the report it refused comes again, unchanged, and then new ones
            assert missed in plugin.events("stats")[1:]
            n = missed["stats"]["totalConns"]
            curl_bytes(port, origin.url)
            assert plugin.wait(lambda: any(e["stats"]["totalConns"] == n + 1 for e in plugin.events("stats")))


def test_unknown_observer_and_bad_plugin_fail_config(tmp_path):
    port = free_port()
    cfg = config(tmp_path, port, "http://127.0.0.1:1/observer")
    data = yaml.safe_load(cfg.read_text())
    data["services"][0]["observer"] = "obs0"
    cfg.write_text(yaml.safe_dump(data))
    r = run_gostg("-C", cfg)
    assert r.returncode != 0
    assert "services[0].observer" in r.stderr and "obs0" in r.stderr and "obs-0" in r.stderr, r.stderr
    data["services"][0]["observer"] = "obs-0"
    data["observers"][0]["plugin"]["type"] = "grpcx"
    cfg.write_text(yaml.safe_dump(data))
    r = run_gostg("-C", cfg)
    assert r.returncode != 0
    assert "observers[0].plugin.type" in r.stderr and "grpcx" in r.stderr, r.stderr
    del data["observers"][0]["plugin"]["type"]     # GOST's default is grpc: host:port, not a URL
    cfg.write_text(yaml.safe_dump(data))
    r = run_gostg("-C", cfg)
    assert r.returncode != 0 and "observers[0].plugin.addr" in r.stderr and "host:port" in r.stderr, r.stderr


def test_web_api_creates_replaces_and_deletes_observers(tmp_path):
    """POST /config/observers, a service PUT to use it, the observer PUT to another plugin
    (stats go on there), DELETE: GOST's dynamic observers."""
    from .peers import Api

    port, api_port = free_port(), free_port()
    f = tmp_path / "api.yaml"
    f.write_text(yaml.safe_dump({"services": [{"name": "web", "addr": f"127.0.0.1:{port}",
                                               "handler": {"type": "http"}}]}))
    with Plugin() as p1, Plugin() as p2, Origin() as origin, \
            Gost("-C", f, "-api", f"127.0.0.1:{api_port}", ports=[port, api_port]) as g:
        api = Api(api_port)
        api.post("observers", {"name": "o", "plugin": {"type": "http", "addr": p1.url}})
        svc = {"name": "web", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}, "observer": "o",
               "metadata": {"enableStats": True, "observer.period": "1s"}}
        api.put("services", "web", svc)
        assert p1.wait(lambda: [e["status"]["state"] for e in p1.events("status")] == ["running", "ready"])
        curl_bytes(port, origin.url)
        assert p1.wait(lambda: any(e["stats"]["totalConns"] >= 1 for e in p1.events("stats")))
        api.put("observers", "o", {"name": "o", "plugin": {"type": "http", "addr": p2.url}})
        curl_bytes(port, origin.url)
        # the new observer goes on from where the old one stopped: totals, no state change needed
        assert p2.wait(lambda: any(e["stats"]["totalConns"] >= 2 for e in p2.events("stats")))
        n1 = len(p1.posts)
        status, js, raw = api.request("PUT", "/config/services/web", {**svc, "observer": "oo"})
        assert status >= 400 and "observer 'oo' does not exist (did you mean 'o'?)" in js["msg"], raw
        api.delete("observers", "o")
        curl_bytes(port, origin.url)
        time.sleep(1.5)
        assert len(p1.posts) == n1       # the replaced observer's greenlet is gone
        assert g.proc.poll() is None
        assert "observer 'o' not found" not in g.log_text()   # (debug only)


EMBED = """\
from gevent import monkey; monkey.patch_all()
import gc, sys, time, urllib.request
import gevent
import gostg

port, plugin_url, origin_url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
g = gostg.Gost({"services": [{"name": "e", "addr": "127.0.0.1:%d" % port, "handler": {"type": "http"},
                              "observer": "o", "metadata": {"enableStats": True, "observer.period": "1s"}}],
                "observers": [{"name": "o", "plugin": {"type": "http", "addr": plugin_url, "timeout": "1s"}}]})
g.start()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": "http://127.0.0.1:%d" % port}))
for _ in range(3):
    with opener.open(origin_url + "/bytes/1000", timeout=10) as r:
        assert len(r.read()) == 1000
time.sleep(2.5)
g.stop()
gevent.sleep(0.1)
# gevent.spawn's greenlets (the hub and the resolver's thread pool are gevent's own)
alive = [o for o in gc.get_objects() if isinstance(o, gevent.Greenlet) and not o.dead]
print("ALIVE", len(alive), [repr(o)[:80] for o in alive])
"""


@pytest.mark.parametrize("dead", [False, True])
def test_embedded_gost_reports_and_stop_leaves_no_greenlet(tmp_path, dead):
    port = free_port()
    script = tmp_path / "embed_obs.py"
    script.write_text(EMBED)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    with Plugin() as plugin, Origin() as origin:
        url = f"http://127.0.0.1:{free_port()}/observer" if dead else plugin.url
        r = subprocess.run([sys.executable, str(script), str(port), url, origin.url], capture_output=True,
                           text=True, timeout=30, env=env)
        assert r.returncode == 0, r.stderr
        assert "ALIVE 0 []" in r.stdout, r.stdout + r.stderr
        if not dead:
            states = [e["status"]["state"] for e in plugin.events("status")]
            assert states == ["running", "ready", "closed"], states
            assert plugin.events("stats")[-1]["stats"]["totalConns"] == 3


def test_handler_observer_reports_per_client(tmp_path):
    """GOST's handler observer: one ``kind: handler`` stats event per client id (the auther's
    user), every period, for the clients whose counts changed."""
    port = free_port()
    with Plugin() as plugin, Origin() as origin:
        cfg = {"services": [{"name": "web", "addr": f"127.0.0.1:{port}",
                             "handler": {"type": "http", "auther": "users", "observer": "obs-0",
                                         "metadata": {"observer.period": "1s"}}}],
               "authers": [{"name": "users", "auths": [{"username": "alice", "password": "a"},
                                                       {"username": "bob", "password": "b"}]}],
               "observers": [{"name": "obs-0", "plugin": {"type": "http", "addr": plugin.url}}]}
        f = tmp_path / "h.yaml"
        f.write_text(yaml.safe_dump(cfg))
        with Gost("-C", f, ports=[port]):
            for user, n in (("alice:a", BODY), ("alice:a", BODY), ("bob:b", 30_000)):
                r = subprocess.run(["curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{size_download}",
                                    "-x", f"http://{user}@127.0.0.1:{port}", f"{origin.url}/bytes/{n}"],
                                   capture_output=True, text=True, timeout=15)
                assert r.stdout == str(n), r.stderr
            assert plugin.wait(lambda: {e.get("client") for e in plugin.events("stats")} >= {"alice", "bob"})
            last = {}
            for e in plugin.events("stats"):
                assert e["kind"] == "handler" and e["service"] == "web"
                last[e["client"]] = e["stats"]
            assert last["alice"]["totalConns"] == 2 and last["alice"]["currentConns"] == 0
            assert 2 * BODY <= last["alice"]["outputBytes"] <= 2 * (BODY + HTTP_OVERHEAD)
            assert last["bob"]["totalConns"] == 1
            assert 30_000 <= last["bob"]["outputBytes"] <= 30_000 + HTTP_OVERHEAD
            assert plugin.events("status") == []    # a handler observer reports stats only
            # bob is quiet: only alice is reported again
            n = len(plugin.events("stats"))
            curl = subprocess.run(["curl", "-sS", "-m", "10", "-o", "/dev/null", "-x",
                                   f"http://alice:a@127.0.0.1:{port}", f"{origin.url}/bytes/10"], timeout=15)
            assert curl.returncode == 0
            assert plugin.wait(lambda: len(plugin.events("stats")) > n)
            time.sleep(1.2)
            assert [e["client"] for e in plugin.events("stats")[n:]] == ["alice"]


def test_out_of_descriptors_reports_failed_then_ready(tmp_path):
    """GOST's ``failed`` state: accepting pauses while the process is out of descriptors, and
    the service is ``ready`` again once it resumes; the plugin learns both (the reports that
    could not go out while no socket could be made are sent afterwards)."""
    import resource

    port = free_port()

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    with Plugin() as plugin:
        cfg = config(tmp_path, port, plugin.url, timeout="1s")
        proc = subprocess.Popen([sys.executable, GOSTG, "-C", str(cfg)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, preexec_fn=limit)
        clients = []
        try:
            wait_port(port, proc=proc)
            assert plugin.wait(lambda: [e["status"]["state"] for e in plugin.events("status")] == ["running", "ready"])
            for _ in range(120):    # idle clients: each holds one descriptor in gostg
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(1.5)
            for c in clients:
                c.close()
            clients = []
            assert plugin.wait(lambda: "failed" in [e["status"]["state"] for e in plugin.events("status")],
                               timeout=15)
            states = [e["status"]["state"] for e in plugin.events("status")]
            failed = next(e for e in plugin.events("status") if e["status"]["state"] == "failed")
            assert failed["status"]["msg"] == "service web is failed"
            assert plugin.wait(lambda: [e["status"]["state"] for e in plugin.events("status")][-1] == "ready")
            assert proc.poll() is None, states
        finally:
            for c in clients:
                c.close()
            proc.terminate()
            proc.wait(timeout=10)


class SlowOrigin:
    """An HTTP origin on 127.0.0.1 that sends ``chunks`` × ``chunk`` bytes, one every ``pause``
    seconds: a download that lasts, whatever the socket buffers hold."""

    def __init__(self, chunk=100_000, chunks=40, pause=0.1):
        self.chunk, self.chunks, self.pause = chunk, chunks, pause
        self.size = chunk * chunks
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                data += c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % self.size)
            for _ in range(self.chunks):
                c.sendall(b"x" * self.chunk)
                time.sleep(self.pause)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_long_download_moves_the_counts_while_it_runs(tmp_path):
    """A tunnel's bytes are reported while it is open (read from the connection registry's
    live counters), not only once it ends: a SOCKS5 tunnel (relay/tcp.py counts as it goes)."""
    port = free_port()
    with Plugin() as plugin, SlowOrigin() as origin:     # 4 MB over ~4 s
        cfg = config(tmp_path, port, plugin.url, md={"enableStats": True, "observer.period": "1s"}, handler="socks5")
        with Gost("-C", cfg, ports=[port]):
            base = settle(plugin)
            r = subprocess.run(["curl", "-sS", "-m", "20", "-o", "/dev/null", "-w", "%{size_download}",
                                "--socks5", f"127.0.0.1:{port}", f"{origin.url}/slow"],
                               capture_output=True, text=True, timeout=25)
            assert r.stdout == str(origin.size), r.stderr
            assert plugin.wait(lambda: any(e["stats"]["totalConns"] == base + 1 and e["stats"]["currentConns"] == 0
                                           and e["stats"]["outputBytes"] >= origin.size
                                           for e in plugin.events("stats")))
            moving = [e["stats"]["outputBytes"] for e in plugin.events("stats") if e["stats"]["currentConns"] == 1]
            # reported while open, growing, each short of the whole
            assert len(set(moving)) >= 2 and moving == sorted(moving), moving
            assert all(0 < m < origin.size for m in moving[1:]), moving


def test_reload_keeps_observer_and_refuses_dropping_a_used_one(tmp_path):
    """A reload that leaves the observer as it was keeps it (no status lost, no new events);
    one that drops an observer a service still names is refused, and nothing changes."""
    from .peers import Api

    port, api_port = free_port(), free_port()
    with Plugin() as plugin:
        cfg = config(tmp_path, port, plugin.url)
        with Gost("-C", cfg, "-api", f"127.0.0.1:{api_port}", ports=[port, api_port]) as g:
            api = Api(api_port)
            assert plugin.wait(lambda: len(plugin.events("status")) == 2)
            status, js, raw = api.reload()
            assert status == 200, raw
            data = yaml.safe_load(cfg.read_text())
            del data["observers"]
            cfg.write_text(yaml.safe_dump(data))
            status, js, raw = api.reload()
            assert status >= 400 and "services[0].observer: observer 'obs-0' does not exist" in js["msg"], raw
            time.sleep(0.5)
            assert [e["status"]["state"] for e in plugin.events("status")] == ["running", "ready"]
            g.stop()
            assert plugin.wait(lambda: [e["status"]["state"] for e in plugin.events("status")][-1] == "closed")
