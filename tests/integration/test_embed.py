"""Embedding: a monkey-patched Python program runs ``gostg.Gost(...)`` in its own process and
uses it with plain urllib. Each script runs in a subprocess; the origin runs here."""
import os
import subprocess
import sys
import textwrap

import yaml

from .helpers import ROOT, Origin, free_port, port_closed

#: a host app's helpers (patched or not: tests/integration/test_embed_thread.py uses them too)
HELPERS = """\
import socket, sys, urllib.request
import gostg

def fetch(proxy_port, url):
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": "http://127.0.0.1:%d" % proxy_port}))
    with opener.open(url, timeout=10) as r:
        return r.read().decode()

def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False
"""
PRELUDE = "from gevent import monkey; monkey.patch_all()\n" + HELPERS


def run_script(body, tmp_path, timeout=30, prelude=PRELUDE):
    script = tmp_path / "embed_app.py"
    script.write_text(prelude + textwrap.dedent(body))
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=str(tmp_path))


def test_embed_dict_config(tmp_path):
    port = free_port()
    with Origin() as origin:
        r = run_script(f"""
            g = gostg.Gost({{"services": [{{"name": "embedded", "addr": "127.0.0.1:{port}",
                                            "handler": {{"type": "http"}}}}]}})
            g.start()
            print("BODY:" + fetch({port}, "{origin.url}/embedded"))
            g.stop()
            print("REFUSED" if refused({port}) else "STILL-OPEN")
        """, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "BODY:hello from origin /embedded" in r.stdout, r.stdout + r.stderr
        assert "REFUSED" in r.stdout, r.stdout
        assert port_closed(port)


def test_embed_config_path(tmp_path):
    port = free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(yaml.safe_dump({"services": [
        {"name": "from-file", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}}]}))
    with Origin() as origin:
        r = run_script(f"""
            g = gostg.Gost({str(cfg)!r})
            g.start()
            print("BODY:" + fetch({port}, "{origin.url}/from-file"))
            g.stop()
            print("REFUSED" if refused({port}) else "STILL-OPEN")
        """, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "BODY:hello from origin /from-file" in r.stdout, r.stdout + r.stderr
        assert "REFUSED" in r.stdout, r.stdout


def test_embed_context_manager_and_chain(tmp_path):
    """Two services in one embedded Gost, the http one chained through the socks5 one."""
    p_http, p_socks = free_port(), free_port()
    with Origin() as origin:
        r = run_script(f"""
            cfg = {{
                "services": [
                    {{"name": "front", "addr": "127.0.0.1:{p_http}", "handler": {{"type": "http", "chain": "c"}}}},
                    {{"name": "back", "addr": "127.0.0.1:{p_socks}", "handler": {{"type": "socks5"}}}},
                ],
                "chains": [{{"name": "c", "hops": [{{"name": "h", "nodes": [
                    {{"name": "n", "addr": "127.0.0.1:{p_socks}", "connector": {{"type": "socks5"}}}}]}}]}}],
            }}
            with gostg.Gost(cfg) as g:
                print("BODY:" + fetch({p_http}, "{origin.url}/chained"))
                print("STATS:%d" % g.service("back").status()["stats"]["totalConns"])
            print("REFUSED" if refused({p_http}) and refused({p_socks}) else "STILL-OPEN")
        """, tmp_path)
        assert r.returncode == 0, r.stderr
        assert "BODY:hello from origin /chained" in r.stdout, r.stdout + r.stderr
        stats = [ln for ln in r.stdout.splitlines() if ln.startswith("STATS:")]
        assert stats and int(stats[0][6:]) >= 1, r.stdout
        assert "REFUSED" in r.stdout, r.stdout


def test_embed_config_error_binds_nothing(tmp_path):
    p_good, p_bad = free_port(), free_port()
    r = run_script(f"""
        g = gostg.Gost({{"services": [
            {{"name": "good", "addr": "127.0.0.1:{p_good}", "handler": {{"type": "http"}}}},
            {{"name": "bad", "addr": "127.0.0.1:{p_bad}", "handler": {{"type": "foo"}}}}]}})
        try:
            g.start()
        except gostg.ConfigError as exc:
            print("ERROR:" + str(exc))
        print("REFUSED" if refused({p_good}) else "STILL-OPEN")
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ERROR:services[1].handler.type" in r.stdout, r.stdout
    assert "REFUSED" in r.stdout, r.stdout


def test_detached_idle_tunnels_count_against_the_limit_and_stop_closes_them(tmp_path):
    """Idle SOCKS5 tunnels leave their greenlets (relay/tcp.py rule 6): they still fill the
    service's connection limit, still relay, log ">-<" at their end, and Gost.stop closes
    the rest, leaving no descriptor behind."""
    port = free_port()
    r = run_script(f"""
        import os, gevent
        from gevent.server import StreamServer
        from gostg.core.service import Service
        Service.max_conns = 2

        def echo(c, _):
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)
        origin = StreamServer(("127.0.0.1", 0), echo)
        origin.start()
        op = origin.server_port

        def tunnel():
            s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
            s.sendall(b"\\x05\\x01\\x00\\x05\\x01\\x00\\x01\\x7f\\x00\\x00\\x01" + op.to_bytes(2, "big"))
            got = b""
            while len(got) < 12:
                got += s.recv(12 - len(got))
            return s

        def echoes(s, data):
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                got += s.recv(65536)
            return got == data

        g = gostg.Gost({{"services": [{{"name": "s", "addr": "127.0.0.1:{port}",
                                        "handler": {{"type": "socks5"}}}}]}})
        g.start()
        svc = g.service("s")
        fds0 = len(os.listdir("/proc/self/fd"))
        a, b = tunnel(), tunnel()
        gevent.sleep(0.3)
        print("DETACHED", len(svc.pool.tunnels), "CURRENT", svc.current_conns, "GREENLETS", len(svc.pool.greenlets))
        third = socket.create_connection(("127.0.0.1", {port}), timeout=0.5)
        third.sendall(b"\\x05\\x01\\x00")
        try:
            print("THIRD", third.recv(2))
        except socket.timeout:
            print("THIRD WAITS")
        print("ECHO", echoes(a, b"x" * 200000), echoes(b, b"hi"))
        a.close()
        third.settimeout(5)
        print("THIRD AFTER", third.recv(2))
        third.close()
        gevent.sleep(0.3)
        g.stop(timeout=0.3)
        b.settimeout(5)
        print("B AFTER STOP", b.recv(10))
        b.close()
        gevent.sleep(0.2)
        print("FDS LEFT", len(os.listdir("/proc/self/fd")) - fds0)
    """, tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "DETACHED 2 CURRENT 2 GREENLETS 0" in out, out + r.stderr
    assert "THIRD WAITS" in out, out
    assert "ECHO True True" in out, out
    assert "THIRD AFTER b'\\x05\\x00'" in out, out
    assert "B AFTER STOP b''" in out, out
    assert "FDS LEFT -1" in out, out + r.stderr   # all tunnels' gone, and the listener's
    ends = [line for line in r.stderr.splitlines() if ">-<" in line]
    # a's end; b was ended by the stop, as a killed greenlet's tunnel: no line
    assert len(ends) == 1 and '"inputBytes": 200000' in ends[0], r.stderr
    assert "Traceback" not in r.stderr, r.stderr
