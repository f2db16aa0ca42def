"""gRPC plugins (GOST concepts/plugin, go-gost/plugin protos): bin/gostg asks a real grpcio
plugin server on 127.0.0.1 (tests/integration/grpcpeer.py) whether a client gets in (auther,
admission) and whether a target is refused (bypass). curl and PySocks clients see the
decisions; a plugin that rejects the token, hangs or is down refuses (fails closed) within its
timeout and says why in one log line; 200 connections at once each wait on the plugin while
gostg keeps serving others."""
import json
import os
import subprocess
import threading
import time

import pytest
import yaml

from .helpers import need_grpc

need_grpc(module=True)
import grpc  # noqa: E402
import socks  # noqa: E402

from .grpcpeer import PluginServer  # noqa: E402
from .helpers import GOSTG, Echo, Gost, Origin, free_port, run_gostg, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/curl") and not os.environ.get("CI"),
                                reason="curl not installed")

TOKEN = "s3cr3t"


def _config(tmp_path, plugin, auther=True, admission=False, bypass=False, open_port=None):
    """A socks5 service on a free port whose auther/admission/bypass is the plugin, and
    (``open_port``) a second socks5 service with no plugin at all."""
    port = free_port()
    svc = {"name": "guarded", "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5"}, "listener": {"type": "tcp"}}
    cfg = {"services": [svc]}
    if auther:
        svc["handler"]["auther"] = "pa"
        cfg["authers"] = [{"name": "pa", "plugin": dict(plugin)}]
    if admission:
        svc["admission"] = "padm"
        cfg["admissions"] = [{"name": "padm", "plugin": dict(plugin)}]
    if bypass:
        svc["bypass"] = "pbyp"
        cfg["bypasses"] = [{"name": "pbyp", "plugin": dict(plugin)}]
    if open_port:
        cfg["services"].append({"name": "open", "addr": f"127.0.0.1:{open_port}", "handler": {"type": "socks5"},
                                "listener": {"type": "tcp"}})
    path = tmp_path / "gostg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return port, str(path)


def curl(port, url, user=None, timeout=8):
    proxy = f"socks5h://{user + '@' if user else ''}127.0.0.1:{port}"
    return subprocess.run(["curl", "-s", "-m", str(timeout), "-x", proxy, url], capture_output=True, text=True,
                          timeout=timeout + 5)


def echo_through(port, target_port, payload, user=None, password=None, host="127.0.0.1", timeout=10):
    """One SOCKS5 tunnel (PySocks) to the echo server → what came back."""
    s = socks.socksocket()
    s.settimeout(timeout)
    s.set_proxy(socks.SOCKS5, "127.0.0.1", port, rdns=True, username=user, password=password)
    try:
        s.connect((host, target_port))
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            d = s.recv(65536)
            if not d:
                break
            got += d
        return got
    finally:
        s.close()


#: an embedding app's request through gostg's HTTP proxy with Basic credentials → its status
APP_GET = """
import base64, urllib.error, urllib.request
def get(url, port, user):
    req = urllib.request.Request(url)
    req.set_proxy("127.0.0.1:%d" % port, "http")
    req.add_header("Proxy-Authorization", "Basic " + base64.b64encode(user.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
"""


def failure_lines(log, cause):
    """The log lines saying the plugin fails with ``cause`` (a refused connection's own line,
    which may quote the cause as "plugin failed: …", is not one of them)."""
    return [ln for ln in log.splitlines() if cause in ln and "plugin failed:" not in ln]


@pytest.fixture
def origin():
    o = Origin()
    o.thread.start()
    yield o
    o.server.shutdown()
    o.server.server_close()


def test_grpc_auther_allows_and_refuses(tmp_path, origin):
    with PluginServer(token=TOKEN) as ps:
        port, cfg = _config(tmp_path, {"type": "grpc", "addr": ps.addr, "token": TOKEN, "timeout": "2s"})
        with Gost("-C", cfg, ports=[port]):
            ok = curl(port, f"{origin.url}/hello", "alice:secret")
            assert ok.returncode == 0 and "/hello" in ok.stdout, (ok.returncode, ok.stderr)
            bad = curl(port, f"{origin.url}/hello", "alice:wrong")
            assert bad.returncode == 97, (bad.returncode, bad.stderr)   # SOCKS5 auth refused
            nobody = curl(port, f"{origin.url}/hello", "mallory:secret")
            assert nobody.returncode == 97
        asked = [c for c in ps.calls if c[0] == "Authenticate"]
        assert [(c[1]["username"], c[1]["password"]) for c in asked] == [
            ("alice", "secret"), ("alice", "wrong"), ("mallory", "secret")]
        assert all(c[2].get("token") == TOKEN for c in asked)          # GOST's metadata key
        assert all(c[1]["client"].startswith("127.0.0.1") for c in asked)
        assert ps.bad_tokens == 0


def test_grpc_admission_and_bypass(tmp_path, origin):
    with PluginServer(token=TOKEN) as ps:
        plugin = {"addr": ps.addr, "token": TOKEN, "timeout": "2s"}     # type unset: grpc, as GOST
        port, cfg = _config(tmp_path, plugin, auther=False, admission=True, bypass=True)
        with Gost("-C", cfg, ports=[port]):
            assert curl(port, f"{origin.url}/in").returncode == 0
            # the bypass plugin names a target host: the service refuses it
            ps.bypass_hosts.add("localhost")
            p = curl(port, f"http://localhost:{origin.port}/bypassed")
            assert p.returncode == 97, (p.returncode, p.stderr)
            assert curl(port, f"{origin.url}/still-in").returncode == 0
            # the admission plugin refuses the client: the connection is closed unanswered
            ps.deny_admission.add("127.0.0.1")
            p = curl(port, f"{origin.url}/out")
            assert p.returncode != 0
        admits = [c[1]["addr"] for c in ps.calls if c[0] == "Admit"]
        assert admits and all(a.startswith("127.0.0.1:") for a in admits)
        targets = [(c[1]["network"], c[1]["addr"]) for c in ps.calls if c[0] == "Bypass"]
        assert ("tcp", f"localhost:{origin.port}") in targets


def test_grpc_bad_token_fails_closed(tmp_path, origin):
    with PluginServer(token=TOKEN) as ps:
        port, cfg = _config(tmp_path, {"addr": ps.addr, "token": "wrong", "timeout": "2s"})
        with Gost("-C", cfg, ports=[port]) as g:
            for _ in range(3):
                assert curl(port, f"{origin.url}/", "alice:secret").returncode == 97
            assert ps.bad_tokens == 3
            lines = wait_for(lambda: failure_lines(g.log_text(), "UNAUTHENTICATED"))
            assert len(lines) == 1, lines          # once per change, not per connection
            assert '"level": "error"' in lines[0] and "pa" in lines[0], lines


def test_grpc_garbage_reply_fails_closed(tmp_path, origin):
    with PluginServer(token=TOKEN) as ps:
        port, cfg = _config(tmp_path, {"addr": ps.addr, "token": TOKEN, "timeout": "2s"})
        with Gost("-C", cfg, ports=[port]) as g:
            assert curl(port, f"{origin.url}/", "alice:secret").returncode == 0
            ps.garbage = True
            for _ in range(2):
                assert curl(port, f"{origin.url}/", "alice:secret").returncode == 97
            lines = wait_for(lambda: failure_lines(g.log_text(), "INTERNAL"))
            assert len(lines) == 1, lines
            ps.garbage = False
            assert curl(port, f"{origin.url}/", "alice:secret").returncode == 0
            assert wait_for(lambda: "answers again" in g.log_text())


def test_grpc_plugin_down_fails_closed_with_a_log_line(tmp_path, origin):
    dead = free_port()      # nothing listens there
    port, cfg = _config(tmp_path, {"addr": f"127.0.0.1:{dead}", "timeout": "2s"}, admission=True)
    with Gost("-C", cfg, ports=[port]) as g:
        t0 = time.monotonic()
        for _ in range(3):
            assert curl(port, f"{origin.url}/", "alice:secret").returncode != 0
        assert time.monotonic() - t0 < 3 * 2.5 + 3
        lines = wait_for(lambda: failure_lines(g.log_text(), "UNAVAILABLE"))
        assert lines and all('"level": "error"' in ln for ln in lines), g.log_text()[-2000:]
        assert len(lines) <= 2, lines      # one per plugin object (admission, auther), not per connection
        assert origin.connections == 0
        # the plugin comes up: within gostg's reconnect backoff (2 s), clients get in again
        with PluginServer(port=dead):
            t0 = time.monotonic()
            assert wait_for(lambda: curl(port, f"{origin.url}/", "alice:secret", timeout=3).returncode == 0,
                            timeout=6, step=0.2)
            assert time.monotonic() - t0 < 5
            assert wait_for(lambda: "answers again" in g.log_text())


def test_grpc_hanging_plugin_fails_closed_in_time_and_others_are_served(tmp_path):
    """A plugin that never answers: each client is refused after ``timeout`` (plus a margin),
    and while 20 of them wait, a service without plugins still serves at once, including
    a target named by host name (looked up in gevent's thread pool, which gRPC must not hold)."""
    open_port = free_port()
    with PluginServer(token=TOKEN) as ps, Echo() as echo:
        port, cfg = _config(tmp_path, {"addr": ps.addr, "token": TOKEN, "timeout": "1s"}, open_port=open_port)
        with Gost("-C", cfg, ports=[port, open_port]):
            ps.hang = True
            results = [None] * 20

            def one(i):
                t = time.monotonic()
                try:
                    echo_through(port, echo.port, b"x", "alice", "secret")
                    results[i] = ("served", time.monotonic() - t)
                except (socks.ProxyError, OSError) as exc:
                    results[i] = (type(exc).__name__, time.monotonic() - t)

            threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(20)]
            for t in threads:
                t.start()
            wait_for(lambda: ps.count("Authenticate") >= 20, timeout=5)
            t = time.monotonic()
            assert echo_through(open_port, echo.port, b"meanwhile", host="localhost") == b"meanwhile"
            assert time.monotonic() - t < 0.9      # not behind the hung calls' 1 s deadline
            for th in threads:
                th.join(10)
        assert all(r is not None and r[0] != "served" for r in results), results
        slowest = max(r[1] for r in results)
        assert 0.9 < slowest < 1.0 + 0.5 + 2.0, results     # timeout + MARGIN + a busy box


def test_grpc_200_concurrent_auth_decisions(tmp_path):
    """200 clients at once, each one's SOCKS5 login a gRPC call the plugin answers after
    0.2 s: every one gets the right answer, in about the time of a few rounds (one at a time
    would take 40 s), and a service without plugins answers within a fraction of that
    meanwhile (the hub is never blocked on the plugin)."""
    n, delay = 200, 0.2
    open_port = free_port()
    with PluginServer(token=TOKEN, workers=100) as ps, Echo() as echo:
        port, cfg = _config(tmp_path, {"addr": ps.addr, "token": TOKEN, "timeout": "10s"}, open_port=open_port)
        # gevent's monitor thread reports any greenlet that holds the hub for 0.3 s
        monitor = {"GEVENT_MONITOR_THREAD_ENABLE": "1", "GEVENT_MAX_BLOCKING_TIME": "0.3"}
        with Gost("-C", cfg, ports=[port, open_port], env=monitor) as g:
            echo_through(port, echo.port, b"warm", "alice", "secret")     # channel connected
            ps.delay = delay
            results = [None] * n
            start = threading.Event()

            def one(i):
                good = i % 4 != 0
                start.wait(5)
                try:
                    got = echo_through(port, echo.port, b"c%d" % i, "alice", "secret" if good else "nope", timeout=20)
                    results[i] = got == b"c%d" % i if good else "bad login let in"
                except socks.ProxyError as exc:
                    results[i] = (not good and isinstance(exc.socket_err, socks.SOCKS5AuthError)) or repr(exc)
                except OSError as exc:
                    results[i] = repr(exc)

            threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
            for t in threads:
                t.start()
            t0 = time.monotonic()
            start.set()
            probes = []
            while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 30:
                t = time.monotonic()
                assert echo_through(open_port, echo.port, b"probe") == b"probe"
                probes.append(time.monotonic() - t)
                time.sleep(0.05)
            for t in threads:
                t.join(10)
            elapsed = time.monotonic() - t0
            assert "appears to be blocked" not in g.log_text()
        bad = [(i, r) for i, r in enumerate(results) if r is not True]
        assert not bad, bad[:10]
        assert ps.count("Authenticate") >= n
        assert elapsed < 15, elapsed
        assert probes and max(probes) < 1.0, probes


def test_grpc_plugin_config_errors(tmp_path):
    cases = [({"type": "grpcx", "addr": "127.0.0.1:1"}, "authers[0].plugin.type"),
             ({"type": "grpc"}, "authers[0].plugin.addr"),
             ({"addr": "http://127.0.0.1:1"}, "host:port"),
             ({"addr": "127.0.0.1:1", "tls": {"caFile": str(tmp_path / "missing.pem")}}, "caFile")]
    for plugin, words in cases:
        port, cfg = _config(tmp_path, plugin)
        p = run_gostg("-C", cfg, timeout=20)
        assert p.returncode != 0 and words in p.stderr + p.stdout, (plugin, p.stderr[-500:])


def self_signed(tmp_path, name="plugin.test"):
    """A self-signed certificate for ``name`` → (cert PEM, key PEM, path of the cert as a CA file)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert_pem)
    return cert_pem, key_pem, ca


def tls_plugin_server(tmp_path):
    """A PluginServer that also listens with TLS (plugin.test) → (server, TLS port, CA file)."""
    cert_pem, key_pem, ca = self_signed(tmp_path)
    ps = PluginServer(token=TOKEN)
    return ps, ps.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key_pem, cert_pem)])), ca


def test_grpc_plugin_over_tls(tmp_path, origin):
    """``tls`` is verified against ``caFile`` with ``serverName`` the name checked."""
    ps, tls_port, ca = tls_plugin_server(tmp_path)
    with ps:
        good = {"addr": f"127.0.0.1:{tls_port}", "token": TOKEN, "timeout": "2s",
                "tls": {"secure": True, "serverName": "plugin.test", "caFile": str(ca)}}
        port, cfg = _config(tmp_path, good)
        with Gost("-C", cfg, ports=[port]):
            assert curl(port, f"{origin.url}/tls", "alice:secret").returncode == 0
        # a name the certificate does not carry: refused, whatever the credentials
        port, cfg = _config(tmp_path, dict(good, tls={"serverName": "other.test", "caFile": str(ca)}))
        with Gost("-C", cfg, ports=[port]) as g:
            assert curl(port, f"{origin.url}/tls", "alice:secret").returncode == 97
            assert wait_for(lambda: "UNAVAILABLE" in g.log_text())
    assert ps.count("Authenticate") == 1


def _conns_to(pid, port):
    """Established TCP connections of process ``pid`` to 127.0.0.1:``port``."""
    import psutil

    return [c for c in psutil.Process(pid).net_connections("tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED]


def test_grpc_auther_replaced_through_the_api_drops_its_connection(tmp_path, origin):
    """PUT /config/authers/pa with another plugin: the next login asks the new server, and the
    old plugin's connection is closed (no socket left behind by a replaced object)."""
    from .peers import Api

    api_port = free_port()
    with PluginServer(token=TOKEN) as one, PluginServer(token=TOKEN, users={"bob": "pw"}) as two:
        port, cfg = _config(tmp_path, {"addr": one.addr, "token": TOKEN, "timeout": "2s"})
        with Gost("-C", cfg, "-api", f"127.0.0.1:{api_port}", ports=[port, api_port]) as g:
            assert curl(port, f"{origin.url}/", "alice:secret").returncode == 0
            assert wait_for(lambda: _conns_to(g.proc.pid, one.port))
            for i, srv in enumerate((two, one, two)):
                Api(api_port).ok("PUT", "/config/authers/pa", {
                    "name": "pa", "plugin": {"addr": srv.addr, "token": TOKEN, "timeout": "2s"}})
                user = "bob:pw" if srv is two else "alice:secret"
                assert curl(port, f"{origin.url}/{i}", user).returncode == 0
                assert curl(port, f"{origin.url}/{i}", "alice:secret" if srv is two else "bob:pw").returncode == 97
            assert wait_for(lambda: not _conns_to(g.proc.pid, one.port), timeout=5), _conns_to(g.proc.pid, one.port)
            assert len(_conns_to(g.proc.pid, two.port)) == 1


def test_grpc_auther_in_an_embedding_app(tmp_path):
    """A host app that ran ``patch_all()`` (threads patched too) embeds gostg with a gRPC
    auther: the plugin decides, and the app's own greenlets keep running meanwhile."""
    from .test_embed import PRELUDE as EMBED_PRELUDE, run_script

    port = free_port()
    with PluginServer(token=TOKEN) as ps, Origin() as origin:
        ps.delay = 0.2
        r = run_script(f"""
            import gevent, time
            g = gostg.Gost({{"services": [{{"name": "e", "addr": "127.0.0.1:{port}",
                                            "handler": {{"type": "http", "auther": "pa"}}}}],
                             "authers": [{{"name": "pa", "plugin": {{"addr": "{ps.addr}", "token": "{TOKEN}"}}}}]}})
            g.start()
            ticks = []
            ticker = gevent.spawn(lambda: [ticks.append(time.monotonic()) or gevent.sleep(0.02) for _ in range(1000)])

            users = ["alice:secret" if i % 2 else "alice:bad" for i in range(20)]
            jobs = [gevent.spawn(get, "{origin.url}/e", {port}, u) for u in users]
            gevent.joinall(jobs, timeout=15)
            gaps = [b - a for a, b in zip(ticks, ticks[1:])]
            print("CODES:" + ",".join(str(j.value) for j in jobs))
            print("MAXGAP:%.3f" % max(gaps))
            ticker.kill()
            g.stop()
        """, tmp_path, prelude=EMBED_PRELUDE + APP_GET)
        assert r.returncode == 0, r.stderr[-3000:]
        codes = r.stdout.split("CODES:")[1].split()[0].split(",")
        assert codes == ["407", "200"] * 10, r.stdout
        assert float(r.stdout.split("MAXGAP:")[1].split()[0]) < 0.15, r.stdout


def test_grpc_auther_in_thread_mode_across_restarts(tmp_path):
    """A plain threaded app (no patching) runs gostg in its own hub thread (``thread=True``),
    twice over: each hub gets gRPC's gevent mode anew, and the app's threads get the
    plugin's answers through both."""
    from .test_embed_thread import PRELUDE, run_script

    port = free_port()
    with PluginServer(token=TOKEN) as ps, Origin() as origin:
        r = run_script(f"""
            def one(i):
                return get("{origin.url}/t%d" % i, {port}, "alice:secret" if i % 2 else "alice:bad")
            for round in range(2):
                g = gostg.Gost({{"services": [{{"name": "t", "addr": "127.0.0.1:{port}",
                                                "handler": {{"type": "http", "auther": "pa"}}}}],
                                 "authers": [{{"name": "pa", "plugin": {{"addr": "{ps.addr}", "token": "{TOKEN}"}}}}],
                                 "log": {{"output": "none"}}}})
                g.start(thread=True)
                print("ROUND%d:" % round + ",".join(str(c) for c in in_threads(one, 8)))
                g.stop()
        """, tmp_path, prelude=PRELUDE + APP_GET)
        assert r.returncode == 0, r.stderr[-3000:]
        for rnd in (0, 1):
            assert f"ROUND{rnd}:" + ",".join(["407", "200"] * 4) in r.stdout, r.stdout + r.stderr[-2000:]
        assert ps.count("Authenticate") == 16


def test_grpc_observer_gets_status_and_stats(tmp_path, origin):
    """``observers: [{plugin: {addr}}]`` (type unset: gRPC, GOST's default): the service's
    status and its stats (``enableStats``) arrive as the proto's events; a report the plugin
    refuses (``ok: false``) is logged once and sent again."""
    port = free_port()
    with PluginServer(token=TOKEN) as ps:
        cfg = {"services": [{"name": "web", "addr": f"127.0.0.1:{port}", "observer": "obs",
                             "handler": {"type": "http"}, "listener": {"type": "tcp"},
                             "metadata": {"enableStats": True, "observer.period": "1s"}}],
               "observers": [{"name": "obs", "plugin": {"addr": ps.addr, "token": TOKEN, "timeout": "2s"}}]}
        path = tmp_path / "obs.yaml"
        path.write_text(yaml.safe_dump(cfg))
        with Gost("-C", str(path), ports=[port]) as g:
            assert wait_for(lambda: any(e["status"]["state"] == "ready" for e in ps.events("status")))
            ready = next(e for e in ps.events("status") if e["status"]["state"] == "ready")
            assert ready == {"kind": "service", "service": "web", "client": "", "type": "status", "stats": None,
                             "status": {"state": "ready", "msg": "service web is ready"}}
            p = subprocess.run(["curl", "-s", "-m", "5", "-x", f"http://127.0.0.1:{port}", f"{origin.url}/o"],
                               capture_output=True, timeout=10)
            assert p.returncode == 0
            assert wait_for(lambda: any(e["stats"]["totalConns"] >= 1 for e in ps.events("stats")), timeout=5)
            ev = [e for e in ps.events("stats") if e["stats"]["totalConns"] >= 1][0]
            assert ev["service"] == "web" and ev["stats"]["inputBytes"] > 0 and ev["stats"]["outputBytes"] > 0
            assert all(c[2].get("token") == TOKEN for c in ps.calls)
            ps.observe_ok = False
            subprocess.run(["curl", "-s", "-m", "5", "-x", f"http://127.0.0.1:{port}", f"{origin.url}/o2"],
                           capture_output=True, timeout=10)
            assert wait_for(lambda: "ok: false" in g.log_text(), timeout=5)
            ps.observe_ok = True
            assert wait_for(lambda: any(e["stats"]["totalConns"] >= 2 for e in ps.events("stats")), timeout=5)


def test_grpc_recorder_gets_the_records_of_real_traffic(tmp_path, origin):
    """``recorders: [{plugin: {type: grpc, addr, token}}]``: every dial of a curl request through
    the service reaches the plugin as GOST's RecordRequest (data: the dialed host, without the
    port, as GOST's router records it; metadata: the service's recorder metadata as JSON) with
    the token; a recorder plugin answering ``ok: false`` costs a warning, never the request."""
    port = free_port()
    with PluginServer(token=TOKEN) as ps:
        cfg = {"services": [{"name": "web", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"},
                             "listener": {"type": "tcp"},
                             "recorders": [{"name": "rec", "record": "recorder.service.router.dial.address",
                                            "metadata": {"site": "lab"}}]}],
               "recorders": [{"name": "rec", "plugin": {"type": "grpc", "addr": ps.addr, "token": TOKEN,
                                                        "timeout": "2s"}}]}
        path = tmp_path / "rec.yaml"
        path.write_text(yaml.safe_dump(cfg))
        with Gost("-C", str(path), ports=[port]) as g:
            host = f"localhost:{origin.port}"
            for i in range(3):
                p = subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                                    f"http://127.0.0.1:{port}", f"http://{host}/r{i}"],
                                   capture_output=True, text=True, timeout=10)
                assert p.stdout == "200", p
            assert wait_for(lambda: len(ps.records()) >= 3, timeout=5), ps.calls
            assert all(data == b"localhost" and json.loads(md) == {"site": "lab"} for data, md in ps.records()), ps.records()
            assert all(md.get("token") == TOKEN for name, _, md in ps.calls if name == "Record")
            ps.record_ok = False
            p = subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                                f"http://127.0.0.1:{port}", f"http://{host}/refused"],
                               capture_output=True, text=True, timeout=10)
            assert p.stdout == "200", p
            assert wait_for(lambda: "ok: false" in g.log_text(), timeout=5), g.log_text()[-2000:]


def test_grpc_plugin_without_grpcio_is_a_config_error_naming_the_pip_command(tmp_path):
    """gostg installed without the ``grpc`` extra: a config naming a gRPC plugin is refused at
    start, and the message says what to install (here grpcio is hidden from the import system)."""
    import sys

    port, cfg = _config(tmp_path, {"addr": "127.0.0.1:1"})
    hide = tmp_path / "nogrpc.py"
    hide.write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('grpc', 'google'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        f"sys.argv = ['gostg', '-C', {cfg!r}]\n"
        f"exec(open({GOSTG!r}).read(), {{'__file__': {GOSTG!r}, '__name__': '__main__'}})\n")
    p = subprocess.run([sys.executable, str(hide)], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0, p.stdout + p.stderr
    assert "authers[0].plugin.type" in p.stderr and "pip install 'gostg[grpc]'" in p.stderr, p.stderr


def test_grpc_failures_are_gostg_log_lines_not_grpc_core_noise(tmp_path, origin):
    """A plugin whose TLS name does not match: gostg says so in its own JSON log, and nothing
    else reaches its output (gRPC's C core writes errors of its own to stderr unless told not
    to: gostg sets GRPC_VERBOSITY=NONE when the user has not set it)."""
    ps, tls_port, ca = tls_plugin_server(tmp_path)
    with ps:
        port, cfg = _config(tmp_path, {"addr": f"127.0.0.1:{tls_port}", "timeout": "1s",
                                       "tls": {"serverName": "other.test", "caFile": str(ca)}})
        with Gost("-C", cfg, ports=[port]) as g:
            for _ in range(3):
                assert curl(port, f"{origin.url}/", "alice:secret").returncode == 97
            assert wait_for(lambda: failure_lines(g.log_text(), "UNAVAILABLE"))
            time.sleep(0.5)
            stray = [ln for ln in g.log_text().splitlines() if ln.strip() and not ln.startswith("{")]
            assert not stray, stray[:5]


def test_grpc_observer_down_is_a_warning_and_traffic_flows(tmp_path, origin):
    dead = free_port()
    port = free_port()
    cfg = {"services": [{"name": "web", "addr": f"127.0.0.1:{port}", "observer": "obs",
                         "handler": {"type": "http"}, "listener": {"type": "tcp"}}],
           "observers": [{"name": "obs", "plugin": {"addr": f"127.0.0.1:{dead}", "timeout": "1s"}}]}
    path = tmp_path / "obs.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with Gost("-C", str(path), ports=[port]) as g:
        p = subprocess.run(["curl", "-s", "-m", "5", "-x", f"http://127.0.0.1:{port}", f"{origin.url}/o"],
                           capture_output=True, timeout=10)
        assert p.returncode == 0
        lines = wait_for(lambda: failure_lines(g.log_text(), "UNAVAILABLE"))
        assert len(lines) == 1 and "sent again" in lines[0], lines
        assert "reporting failed" not in g.log_text()


def test_grpc_auther_in_every_worker(tmp_path, origin):
    """``-workers 2``: each worker process opens its own gRPC channel (made on first use, in the
    process that calls: nothing of grpcio crosses a process boundary) and asks the plugin; both
    workers let alice in, and a wrong password is refused."""
    from .peers import log_records

    def seen(g, msg):
        return {e.get("worker") for e in log_records(g, service="guarded") if msg in str(e.get("msg"))}

    with PluginServer(token=TOKEN) as ps:
        port, cfg = _config(tmp_path, {"type": "grpc", "addr": ps.addr, "token": TOKEN, "timeout": "2s"})
        with Gost("-C", cfg, "-workers", "2", ports=[port]) as g:
            assert wait_for(lambda: seen(g, "listening on") == {0, 1}, timeout=10), g.log_text()[-2000:]
            for _ in range(24):
                ok = curl(port, f"{origin.url}/hello", "alice:secret")
                assert ok.returncode == 0 and "/hello" in ok.stdout, (ok.returncode, ok.stderr)
            assert curl(port, f"{origin.url}/hello", "alice:wrong").returncode == 97
            assert wait_for(lambda: seen(g, "<->") == {0, 1}), seen(g, "<->")   # both workers asked
        asked = [c for c in ps.calls if c[0] == "Authenticate"]
        assert len(asked) == 25 and all(c[2].get("token") == TOKEN for c in asked), len(asked)
