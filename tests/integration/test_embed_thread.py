"""Both kinds of host app (issue 15, must 3). Each app is a script run in a subprocess.

Plain threaded apps never monkey-patch: their sockets stay the stdlib's, gostg runs its own hub in
a background thread (``thread=True``), the app's threads (and programs outside) use the services
and ``g.dial`` hands them connected stdlib sockets. ``stop()`` leaves no thread and no file
descriptor. Without ``thread=True`` an unpatched ``start()`` refuses with a message naming both
choices. A gevent-patched app works as it always did (tests/integration/test_embed.py too)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import ROOT, Echo, Gost, Origin, free_port, port_closed, wait_port
from .test_embed import HELPERS, run_script

PRELUDE = "import os, signal, threading, time\n" + HELPERS + """
def fds():
    return len(os.listdir("/proc/self/fd"))

def tasks():
    return len(os.listdir("/proc/self/task"))

def wait_tasks(n, timeout=3.0):
    # a native thread deregisters just before it ends: give it a moment, bounded
    deadline = time.monotonic() + timeout
    while tasks() > n and time.monotonic() < deadline:
        time.sleep(0.02)
    return tasks()

def in_threads(fn, n, timeout=60):
    \"\"\"fn(i) in n app threads at once → their results (or exceptions).\"\"\"
    results = [None] * n
    def one(i):
        try:
            results[i] = fn(i)
        except BaseException as exc:
            results[i] = exc
    ts = [threading.Thread(target=one, args=(i,), name="app-%d" % i) for i in range(n)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    return results

def recv_exact(s, n=1 << 30):
    \"\"\"n bytes, or fewer if the peer ends first (default: everything until EOF).\"\"\"
    buf = b""
    while len(buf) < n:
        d = s.recv(min(65536, n - len(buf)))
        if not d:
            break
        buf += d
    return buf
"""


def run_app(body, tmp_path, timeout=90, prelude=PRELUDE):
    r = run_script(body, tmp_path, timeout, prelude)
    assert "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def lines(out, tag):
    return [ln[len(tag):].strip() for ln in out.splitlines() if ln.startswith(tag)]


def test_unpatched_start_without_thread_mode_names_both_choices(tmp_path):
    port = free_port()
    out = run_app(f"""
        cfg = {{"services": [{{"name": "s", "addr": "127.0.0.1:{port}", "handler": {{"type": "http"}}}}]}}
        for how in ("start", "with"):
            try:
                if how == "start":
                    gostg.Gost(cfg).start()
                else:
                    with gostg.Gost(cfg):
                        pass
                print("STARTED SILENTLY")
            except gostg.NotPatchedError as exc:
                print("ERROR " + how + " " + " ".join(str(exc).split()))
        print("REFUSED", refused({port}))
        print("THREADS", [t.name for t in threading.enumerate()])
    """, tmp_path)
    assert "STARTED SILENTLY" not in out
    for how in ("start", "with"):
        msg = lines(out, f"ERROR {how} ")
        assert msg, out
        assert "monkey.patch_all()" in msg[0] and "thread=True" in msg[0], msg[0]
        assert "not gevent-patched" in msg[0], msg[0]
    assert "REFUSED True" in out, out
    assert "THREADS ['MainThread']" in out, out


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_threaded_app_serves_http_and_socks5_to_its_threads_and_to_curl(tmp_path):
    ph, ps, pa = free_port(), free_port(), free_port()
    with Origin() as origin:
        out = run_app(f"""
            import subprocess, urllib.request
            import socks   # PySocks

            cfg = {{"services": [{{"name": "h", "addr": "127.0.0.1:{ph}", "handler": {{"type": "http"}}}},
                                {{"name": "s", "addr": "127.0.0.1:{ps}", "handler": {{"type": "socks5"}}}}],
                   "api": {{"addr": "127.0.0.1:{pa}"}}, "log": {{"level": "error"}}}}
            sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)
            handlers0 = [signal.getsignal(s) for s in sigs]
            fds0, tasks0 = fds(), tasks()
            g = gostg.Gost(cfg, thread=True)
            g.start()
            print("THREADED", g.threaded, sorted(t.name for t in threading.enumerate()))
            print("SIGNALS SAME", [signal.getsignal(s) for s in sigs] == handlers0)

            def via_http(i):
                op = urllib.request.build_opener(urllib.request.ProxyHandler({{"http": "http://127.0.0.1:{ph}"}}))
                with op.open("{origin.url}/http/%d" % i, timeout=10) as r:
                    return r.read().decode()

            def via_socks(i):
                s = socks.socksocket()
                s.set_proxy(socks.SOCKS5, "127.0.0.1", {ps}, rdns=True)
                s.settimeout(10)
                s.connect(("127.0.0.1", {origin.port}))
                s.sendall(b"GET /socks/%d HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n" % i)
                with s:
                    return recv_exact(s).decode()

            def via_curl(i):
                proxy = ["-x", "http://127.0.0.1:{ph}"] if i % 2 else ["--socks5-hostname", "127.0.0.1:{ps}"]
                r = subprocess.run(["curl", "-sS", "--max-time", "10", *proxy, "{origin.url}/curl/%d" % i],
                                   capture_output=True, text=True, timeout=20)
                return r.stdout + r.stderr

            res = in_threads(lambda i: (via_http, via_socks, via_curl)[i % 3](i), 30)
            ok = sum(isinstance(r, str) and ("hello from origin /http/%d" % i in r or
                                             "hello from origin /socks/%d" % i in r or
                                             "hello from origin /curl/%d" % i in r)
                     for i, r in enumerate(res))
            print("OK", ok, [r for r in res if not isinstance(r, str) or "hello" not in r][:3])
            # the Web API serves from the hub thread too (curl from outside)
            r = subprocess.run(["curl", "-sS", "--max-time", "10", "http://127.0.0.1:{pa}/config/services"],
                               capture_output=True, text=True, timeout=20)
            print("API", r.stdout.count('"name"'), r.stderr)
            stats = g.call(lambda: {{n: g.service(n).status()["stats"]["totalConns"] for n in ("h", "s")}})
            print("CONNS", stats["h"], stats["s"])
            t0 = time.monotonic()
            g.stop()
            print("STOP SECONDS", round(time.monotonic() - t0, 1))
            print("REFUSED", refused({ph}) and refused({ps}) and refused({pa}))
            print("THREADS LEFT", wait_tasks(tasks0) - tasks0, [t.name for t in threading.enumerate()])
            print("FDS LEFT", fds() - fds0)
            print("STDLIB SOCKETS", socket.socket.__module__, type(socket.socket()).__module__)
        """, tmp_path)
    assert "THREADED True ['MainThread', 'gostg-hub']" in out, out
    assert "SIGNALS SAME True" in out, out
    assert "OK 30 []" in out, out
    assert "API 2 " in out, out
    assert lines(out, "CONNS ")[0] == "15 15", out   # 10 urllib + 5 curl -x; 10 PySocks + 5 curl --socks5-hostname
    assert float(lines(out, "STOP SECONDS ")[0]) < 5, out
    assert "REFUSED True" in out, out
    assert "THREADS LEFT 0 ['MainThread']" in out, out
    assert "FDS LEFT 0" in out, out
    assert "STDLIB SOCKETS socket socket" in out, out


def test_twenty_app_threads_dial_through_a_chain_and_direct(tmp_path):
    """g.dial from 20 threads at once: through a 1-hop chain to a second bin/gostg over TLS
    (not a plain socket: relayed through a loopback pair), over one multiplexed TLS session
    (mtls: relayed too), over plain TCP (the tunnel's own fd: its peer is the hop) and direct
    (its peer is the echo server). stop() ends a relayed socket the app still holds, the mux
    session, the hub thread and every descriptor."""
    pt, pp, pm = free_port(), free_port(), free_port()
    with Echo() as echo, Gost("-L", f"socks5+tls://127.0.0.1:{pt}", "-L", f"socks5://127.0.0.1:{pp}",
                              "-L", f"socks5+mtls://127.0.0.1:{pm}", ports=[pt, pp, pm]):
        out = run_app(f"""
            def node(name, port, dialer):
                return {{"name": name, "hops": [{{"name": name, "nodes": [{{"name": name, "addr": "127.0.0.1:%d" % port,
                        "connector": {{"type": "socks5"}}, "dialer": {{"type": dialer}}}}]}}]}}
            cfg = {{"chains": [node("tls", {pt}, "tls"), node("plain", {pp}, "tcp"), node("mux", {pm}, "mtls")],
                   "log": {{"level": "error"}}}}
            fds0, tasks0 = fds(), tasks()
            g = gostg.Gost(cfg, thread=True).start()   # no service at all: only dials
            barrier = threading.Barrier(20, timeout=30)

            def talk(i):
                barrier.wait()
                seen = []
                for route in ("tls", "mux", "plain", None):
                    s = g.dial(("127.0.0.1", {echo.port}), chain=route, timeout=10)
                    try:
                        data = os.urandom(50000 + i)
                        s.sendall(data)
                        same = recv_exact(s, len(data)) == data
                        seen.append("%s:%s:%s:%s:%s" % (route or "direct", same, type(s).__module__,
                                                        s.getpeername()[1], s.gettimeout()))
                    finally:
                        s.close()
                return seen

            res = in_threads(talk, 20)
            bad = [r for r in res if not isinstance(r, list)]
            print("ERRORS", bad[:3])
            for route, peer in (("tls", None), ("mux", None), ("plain", {pp}), ("direct", {echo.port})):
                got = [x for r in res if isinstance(r, list) for x in r if x.startswith(route + ":")]
                ok = [x for x in got if x.split(":")[1:3] == ["True", "socket"] and x.split(":")[4] == "10.0"]
                peers = set(int(x.split(":")[3]) for x in got)
                print("ROUTE", route, len(ok), "OWN-FD" if peers == {{peer}} else "RELAYED" if peer is None
                      and not peers & {{{echo.port}, {pt}, {pp}, {pm}}} else "PEERS %s" % peers)

            # a name: the direct dial resolves it on gevent's resolver threads, which stop ends too
            byname = g.dial(("localhost", {echo.port}), timeout=10)
            byname.sendall(b"name")
            print("BY NAME", recv_exact(byname, 4))
            byname.close()
            held = g.dial(("127.0.0.1", {echo.port}), chain="tls", timeout=10)
            held.sendall(b"ping")
            print("HELD", recv_exact(held, 4))
            g.stop()
            try:
                print("HELD AFTER STOP", held.recv(10))
            except ConnectionResetError:
                print("HELD AFTER STOP", b"")
            held.close()
            try:
                g.dial(("127.0.0.1", {echo.port}), timeout=5)
                print("DIALED AFTER STOP")
            except gostg.GostgError as exc:
                print("AFTER STOP", type(exc).__name__)
            print("THREADS LEFT", wait_tasks(tasks0) - tasks0, [t.name for t in threading.enumerate()])
            print("FDS LEFT", fds() - fds0)
        """, tmp_path)
    assert "ERRORS []" in out, out
    assert "ROUTE tls 20 RELAYED" in out, out
    assert "ROUTE mux 20 RELAYED" in out, out
    assert "ROUTE plain 20 OWN-FD" in out, out
    assert "ROUTE direct 20 OWN-FD" in out, out
    assert "BY NAME b'name'" in out, out
    assert "HELD b'ping'" in out, out
    assert "HELD AFTER STOP b''" in out, out
    assert "AFTER STOP HubStopped" in out, out
    assert "THREADS LEFT 0 ['MainThread']" in out, out
    assert "FDS LEFT 0" in out, out


def test_thread_mode_calls_errors_and_timeouts(tmp_path):
    p_bad, p_ok = free_port(), free_port()
    out = run_app(f"""
        import gevent
        tasks0 = tasks()
        bad = gostg.Gost({{"services": [{{"name": "bad", "addr": "127.0.0.1:{p_bad}", "handler": {{"type": "foo"}}}}]}},
                         thread=True)
        try:
            bad.start()
            print("STARTED")
        except gostg.ConfigError as exc:
            print("CONFIG ERROR", exc.path)
        print("AFTER ERROR", bad.threaded, wait_tasks(tasks0) - tasks0, refused({p_bad}))

        # hooks run children: libev watches them only on the main thread's loop
        g = gostg.Gost({{"services": [{{"name": "ok", "addr": "127.0.0.1:{p_ok}", "handler": {{"type": "http"}},
                                       "metadata": {{"preUp": ["touch pre-up"], "postDown": ["touch post-down"]}}}}],
                        "log": {{"level": "error"}}}})
        g.start(thread=True)
        print("PRE-UP RAN", os.path.exists("pre-up"))
        print("CALL", g.call(lambda a, b=0: a + b, 1, b=2))
        print("NESTED", g.call(lambda: g.call(lambda: 7)))
        try:
            g.call(int, "x")
        except ValueError as exc:
            print("RAISED", type(exc).__name__)
        t0 = time.monotonic()
        try:
            g.call(gevent.sleep, 5, timeout=0.3)
        except TimeoutError:
            print("TIMEOUT AFTER", round(time.monotonic() - t0, 1))
        print("STILL SERVES", not refused({p_ok}))
        # a hub blocked by code that does not yield: the app's wait is still bounded, and the
        # socket its dial makes once the hub is free again is closed there, not leaked
        blocker = threading.Thread(target=g.call, args=(time.sleep, 3))
        blocker.start()
        time.sleep(0.2)
        fds1 = fds()
        t0 = time.monotonic()
        try:
            g.dial(("127.0.0.1", {p_ok}), timeout=0.2)
            print("DIALED THROUGH A BLOCKED HUB")
        except TimeoutError:
            print("DIAL GAVE UP", time.monotonic() - t0 < 2.5)
        blocker.join(10)
        deadline = time.monotonic() + 3
        while fds() > fds1 and time.monotonic() < deadline:
            time.sleep(0.05)
        # no more fds than before the dial (another fd of the process may close meanwhile)
        print("LATE SOCKET CLOSED", fds() <= fds1)
        # an API-style change from an app thread goes through call()
        g.call(g.update, "services", "ok", {{"name": "ok", "addr": "127.0.0.1:{p_ok}", "handler": {{"type": "socks5"}}}})
        c = socket.create_connection(("127.0.0.1", {p_ok}), timeout=5)
        c.sendall(b"\\x05\\x01\\x00")
        print("UPDATED, NOW SOCKS5", recv_exact(c, 2))
        c.close()
        g.stop()
        try:
            g.call(lambda: 1)
        except gostg.HubStopped:
            print("CALL AFTER STOP HubStopped")
        print("POST-DOWN RAN", os.path.exists("post-down"))
        fds2 = fds()
        g.stop()   # again: nothing to do, nothing made in this thread
        try:
            g.start()
            print("RESTARTED")
        except gostg.GostgError as exc:
            print("RESTART REFUSED", "new Gost" in str(exc))
        print("FDS AFTER", fds() - fds2)
        print("THREADS LEFT", wait_tasks(tasks0) - tasks0)
    """, tmp_path)
    assert "CONFIG ERROR services[0].handler.type" in out, out
    assert "AFTER ERROR False 0 True" in out, out
    assert "PRE-UP RAN True" in out and "POST-DOWN RAN True" in out, out
    assert "CALL 3" in out and "NESTED 7" in out and "RAISED ValueError" in out, out
    assert float(lines(out, "TIMEOUT AFTER ")[0]) < 1.0, out
    assert "STILL SERVES True" in out, out
    assert "DIAL GAVE UP True" in out and "LATE SOCKET CLOSED True" in out, out
    assert "UPDATED, NOW SOCKS5 b'\\x05\\x00'" in out, out
    assert "CALL AFTER STOP HubStopped" in out, out
    assert "RESTART REFUSED True" in out and "FDS AFTER 0" in out, out
    assert "THREADS LEFT 0" in out, out


def test_patched_app_runs_in_its_own_hub_even_with_thread_true(tmp_path):
    """A gevent-patched app keeps today's embedding: services are greenlets of its hub, and
    ``thread=True`` (code written for a threaded app, now run under gunicorn -k gevent) does
    not start a second hub; ``call`` and ``dial`` work there too."""
    port = free_port()
    with Origin() as origin:
        out = run_app(f"""
            import urllib.request
            g = gostg.Gost({{"services": [{{"name": "h", "addr": "127.0.0.1:{port}", "handler": {{"type": "http"}}}}],
                            "log": {{"level": "error"}}}}, thread=True)
            g.start()
            print("THREADED", g.threaded, [t.name for t in threading.enumerate()])
            op = urllib.request.build_opener(urllib.request.ProxyHandler({{"http": "http://127.0.0.1:{port}"}}))
            print("BODY", op.open("{origin.url}/patched", timeout=10).read().decode().strip())
            s = g.dial(("127.0.0.1", {origin.port}), timeout=5)
            s.sendall(b"GET /dialed HTTP/1.0\\r\\n\\r\\n")
            print("DIALED", type(s).__module__, b"/dialed" in recv_exact(s, 400))
            s.close()
            print("CALL", g.call(lambda: 5, timeout=1))
            g.stop()
            print("REFUSED", refused({port}))
        """, tmp_path, prelude="from gevent import monkey; monkey.patch_all()\n" + PRELUDE)
    assert "THREADED False ['MainThread']" in out, out
    assert "BODY hello from origin /patched" in out, out
    assert "DIALED gevent._socket3 True" in out, out
    assert "CALL 5" in out, out
    assert "REFUSED True" in out, out
    assert port_closed(port)


def test_stop_while_app_threads_dial_ends_every_call_and_leaks_nothing(tmp_path):
    """10 app threads dial and echo in a loop (bounded) while the main thread stops gostg: every
    thread ends promptly, each with HubStopped (or a connection the stop cut, or its last
    round done); nothing hangs, no descriptor and no thread is left."""
    with Echo() as echo:
        out = run_app(f"""
            fds0, tasks0 = fds(), tasks()
            g = gostg.Gost({{"log": {{"level": "error"}}}}, thread=True).start()
            started = threading.Barrier(11, timeout=20)

            def loop(i):
                started.wait()
                for n in range(100000):
                    try:
                        s = g.dial(("127.0.0.1", {echo.port}), timeout=5)
                    except gostg.HubStopped:
                        return "stopped"
                    with s:
                        try:
                            s.sendall(b"x" * 1000)
                            recv_exact(s, 1000)
                        except OSError:
                            return "cut"
                return "done"

            results = []
            runner = threading.Thread(target=lambda: results.extend(in_threads(loop, 10, timeout=30)))
            runner.start()
            started.wait()
            time.sleep(0.5)
            t0 = time.monotonic()
            g.stop()
            runner.join(30)
            print("ENDED", not runner.is_alive(), round(time.monotonic() - t0, 1))
            print("RESULTS", sorted(set(r if isinstance(r, str) else type(r).__name__ for r in results)))
            print("THREADS LEFT", wait_tasks(tasks0) - tasks0)
            print("FDS LEFT", fds() - fds0)
        """, tmp_path)
    ended = lines(out, "ENDED ")[0].split()
    assert ended[0] == "True" and float(ended[1]) < 10, out
    kinds = set(lines(out, "RESULTS ")[0].strip("[]").replace("'", "").split(", "))
    assert kinds <= {"stopped", "cut"} and "stopped" in kinds, out
    assert "THREADS LEFT 0" in out and "FDS LEFT 0" in out, out


@pytest.mark.parametrize("run", range(5))   # the exit crash it guards against was 1 exit in 20
def test_a_forgotten_stop_does_not_keep_the_app_alive(tmp_path, run):
    """gostg's hub thread is a daemon: an app that ends without stop() (an exception, a
    sys.exit) exits at once, with its own status, while a tunnel is still open, and does not
    crash on the way out (the hub thread is ended at exit, before the interpreter finalizes)."""
    port = free_port()
    with Echo() as echo:
        script = f"""
            g = gostg.Gost({{"services": [{{"name": "s", "addr": "127.0.0.1:{port}", "handler": {{"type": "socks5"}}}}],
                            "log": {{"level": "error"}}}}, thread=True).start()
            held = g.dial(("127.0.0.1", {echo.port}), timeout=5)
            c = socket.create_connection(("127.0.0.1", {port}), timeout=5)
            c.sendall(b"\\x05\\x01\\x00")
            print("GREETED", recv_exact(c, 2))
            sys.exit(3)
        """
        t0 = time.monotonic()
        r = run_script(script, tmp_path, 30, PRELUDE)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "GREETED b'\\x05\\x00'" in r.stdout, r.stdout + r.stderr
    assert time.monotonic() - t0 < 10
    assert "Traceback" not in r.stderr and "Fatal" not in r.stderr, r.stderr


# -- a gevent-patched host app for real: gunicorn -k gevent ---------------------------------

GUNICORN_APP = '''\
import os
import flask
import gostg

E = os.environ
# imported in the worker, after gunicorn's gevent worker patched it: the worker's hub runs gostg
g = gostg.Gost({
    "services": [{"name": "w", "addr": "127.0.0.1:%s" % E["SVC_PORT"], "handler": {"type": "http"}}],
    "chains": [{"name": "c", "hops": [
        {"name": "h1", "nodes": [{"name": "a", "addr": "127.0.0.1:%s" % E["HOP1"], "connector": {"type": "socks5"}}]},
        {"name": "h2", "nodes": [{"name": "b", "addr": "127.0.0.1:%s" % E["HOP2"],
                                  "connector": {"type": "relay"}, "dialer": {"type": "tls"}}]}]}],
    "log": {"level": "error"}})
g.start()
app = flask.Flask(__name__)


@app.route("/out/<int:i>")
def out(i):
    s = g.dial(("127.0.0.1", int(E["ORIGIN"])), chain="c", timeout=10)
    with s, s.makefile("rb") as f:
        s.sendall(b"GET /gunicorn/%d HTTP/1.0\\r\\nHost: origin\\r\\n\\r\\n" % i)
        buf = f.read()
    return {"threaded": g.threaded, "socket": type(s).__module__,
            "body": buf.split(b"\\r\\n\\r\\n", 1)[-1].decode()}
'''


def _gunicorn(tmp_path, env, *extra):
    (tmp_path / "gapp.py").write_text(GUNICORN_APP)
    env = dict(os.environ, **{k: str(v) for k, v in env.items()})
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "--worker-connections", "200",
                             "-b", f"127.0.0.1:{env['WEB_PORT']}", "--chdir", str(tmp_path), "--no-control-socket",
                             "--graceful-timeout", "5", *extra, "gapp:app"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _have(module):
    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not (_have("gunicorn") and _have("flask")), reason="gunicorn/flask not installed")
def test_gunicorn_gevent_worker_embeds_gostg_and_calls_out_through_a_chain(tmp_path):
    """Must 3 (a) as users run it: a Flask app under gunicorn -k gevent starts gostg at import (in
    the patched worker): its service serves curl, and 50 concurrent requests each dial out
    through a 2-hop chain (socks5 → relay over TLS, a second bin/gostg) from a greenlet."""
    web, svc, hop1, hop2 = free_port(), free_port(), free_port(), free_port()
    with Origin() as origin, Gost("-L", f"socks5://127.0.0.1:{hop1}", "-L", f"relay+tls://127.0.0.1:{hop2}",
                                  ports=[hop1, hop2]) as hops:
        proc = _gunicorn(tmp_path, dict(WEB_PORT=web, SVC_PORT=svc, HOP1=hop1, HOP2=hop2, ORIGIN=origin.port))
        try:
            wait_port(web, timeout=30, proc=proc)
            wait_port(svc, timeout=10, proc=proc)

            def get(i):
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/out/{i}", timeout=30) as r:
                    return json.loads(r.read())

            with ThreadPoolExecutor(50) as ex:
                got = list(ex.map(get, range(50)))
            assert all(r["body"] == f"hello from origin /gunicorn/{i} host=origin\n" for i, r in enumerate(got)), got[:3]
            assert {(r["threaded"], r["socket"]) for r in got} == {(False, "gevent._socket3")}
            via = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", f"http://127.0.0.1:{svc}", origin.url + "/svc"],
                                 capture_output=True, text=True, timeout=20)
            assert "hello from origin /svc" in via.stdout, via.stdout + via.stderr
        finally:
            proc.terminate()
            out = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, out
        assert "Traceback" not in out, out
        assert port_closed(svc) and port_closed(web)
        log = hops.log_text()
    # the last hop dialed the origin for each request (the first only reached the second)
    assert log.count(f"127.0.0.1:{origin.port}") >= 50, log[-2000:]


@pytest.mark.skipif(not (_have("gunicorn") and _have("flask")), reason="gunicorn/flask not installed")
def test_gunicorn_preload_imports_unpatched_and_says_what_to_do(tmp_path):
    """With --preload the app is imported in gunicorn's master, before any worker patched: the
    start refuses with the message naming both ways, and gunicorn does not boot."""
    proc = _gunicorn(tmp_path, dict(WEB_PORT=free_port(), SVC_PORT=free_port(), HOP1=1, HOP2=1, ORIGIN=1), "--preload")
    try:
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0, out
    assert "not gevent-patched" in out and "monkey.patch_all()" in out and "thread=True" in out, out
