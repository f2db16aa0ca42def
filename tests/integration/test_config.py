"""Configuration sources (-C file/stdin/inline, merged in order) and config errors, which must
name where the problem is and leave nothing bound."""
import json
import socket
import subprocess
import sys
import time

import yaml

from .helpers import GOSTG, Echo, Gost, Origin, free_port, port_closed, run_gostg


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "-m", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 5)


def _svc(name, port, htype="http", **extra):
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": htype}, **extra}


def _names(cfg):
    return [s["name"] for s in cfg.get("services", [])]


# --- sources ---------------------------------------------------------------------------------

def test_file_yaml(tmp_path):
    f = tmp_path / "gost.yaml"
    f.write_text(yaml.safe_dump({"services": [_svc("y-http", 8080)]}))
    r = run_gostg("-C", f, "-O", "json")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert _names(cfg) == ["y-http"]
    assert cfg["services"][0]["handler"]["type"] == "http"


def test_file_json(tmp_path):
    f = tmp_path / "gost.json"
    f.write_text(json.dumps({"services": [_svc("j-socks", 1080, "socks5")]}))
    r = run_gostg("-C", f, "-O", "yaml")
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert _names(cfg) == ["j-socks"]
    assert cfg["services"][0]["handler"]["type"] == "socks5"


def test_stdin_yaml():
    r = run_gostg("-C", "-", "-O", "json", stdin=yaml.safe_dump({"services": [_svc("stdin-y", 8081)]}))
    assert r.returncode == 0, r.stderr
    assert _names(json.loads(r.stdout)) == ["stdin-y"]


def test_stdin_json():
    r = run_gostg("-C", "-", "-O", "json", stdin=json.dumps({"services": [_svc("stdin-j", 8082)]}))
    assert r.returncode == 0, r.stderr
    assert _names(json.loads(r.stdout)) == ["stdin-j"]


def test_inline_json():
    r = run_gostg("-C", json.dumps({"services": [_svc("inline", 8083, "socks5")]}), "-O", "json")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert _names(cfg) == ["inline"]
    assert cfg["services"][0]["handler"]["type"] == "socks5"


def test_stdin_config_serves():
    port = free_port()
    with Origin() as origin, Gost("-C", "-", stdin=yaml.safe_dump({"services": [_svc("from-stdin", port)]}),
                                  ports=[port]):
        r = curl("-x", f"http://127.0.0.1:{port}", origin.url + "/stdin")
        assert r.returncode == 0, r.stderr
        assert "hello from origin /stdin" in r.stdout


def test_merge_in_order(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text(yaml.safe_dump({
        "services": [_svc("svc-a", 9001)],
        "chains": [{"name": "chain-a", "hops": [{"name": "hop-a", "nodes": [{"name": "n", "addr": "127.0.0.1:1"}]}]}],
        "log": {"level": "warn", "format": "json"},
    }))
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"services": [_svc("svc-b", 9002, "socks5")],
                             "log": {"level": "error", "format": "text"}}))
    inline = json.dumps({"services": [_svc("svc-c", 9003)]})
    r = run_gostg("-C", a, "-C", b, "-C", inline, "-L", "socks5://127.0.0.1:9004", "-O", "json")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    # lists concatenate in source order, CLI services last
    assert _names(cfg) == ["svc-a", "svc-b", "svc-c", "service-0"]
    assert cfg["services"][3]["addr"] == "127.0.0.1:9004"
    assert [c["name"] for c in cfg["chains"]] == ["chain-a"]
    # singletons: the later source wins as a whole
    assert cfg["log"] == {"level": "error", "format": "text"}


def test_missing_file_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    r = run_gostg("-C", missing)
    assert r.returncode != 0
    assert "nope.yaml" in r.stderr + r.stdout


# --- errors: the message says where, and nothing binds ----------------------------------------

def _run_watching(args, port_a, timeout=10.0):
    """Run bin/gostg to completion while probing ``port_a`` as an HTTP proxy client.
    → (returncode, output, elapsed, served) where served is True if port_a ever answered."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, GOSTG, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    served = False
    try:
        deadline = t0 + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port_a), timeout=0.3) as s:
                    s.settimeout(0.3)
                    s.sendall(b"GET http://127.0.0.1:9/ HTTP/1.0\r\n\r\n")
                    if s.recv(64):
                        served = True
            except OSError:
                pass
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        out, _ = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode, out.decode(errors="replace"), time.monotonic() - t0, served


def _assert_failed_cleanly(rc, out, elapsed, served, port_a):
    assert rc is not None and rc != 0, out
    assert elapsed < 8, f"gostg took {elapsed:.1f}s to give up"
    assert not served, "a service of a config that failed to load answered a client"
    assert port_closed(port_a)


def test_broken_yaml_names_file_and_line(tmp_path):
    port_a = free_port()
    f = tmp_path / "broken.yaml"
    f.write_text(f"services:\n- name: a\n  addr: 127.0.0.1:{port_a}\n   handler: {{type: http}}\n")
    rc, out, elapsed, served = _run_watching(["-C", f], port_a)
    _assert_failed_cleanly(rc, out, elapsed, served, port_a)
    assert "broken.yaml" in out
    assert "line 4" in out


def test_broken_json_names_file_and_line(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('{"services": [\n  {"name": "a", "addr": ":1"\n]}\n')
    r = run_gostg("-C", f)
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert "broken.json" in out and "line 3" in out


def test_unknown_handler_type_path(tmp_path):
    port_a, port_b = free_port(), free_port()
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"services": [_svc("good", port_a), _svc("bad", port_b, "foo")]}))
    rc, out, elapsed, served = _run_watching(["-C", f], port_a)
    _assert_failed_cleanly(rc, out, elapsed, served, port_a)
    assert "services[1].handler.type" in out
    assert "foo" in out
    assert port_closed(port_b)


def test_duplicate_service_names(tmp_path):
    port_a, port_b = free_port(), free_port()
    f = tmp_path / "dup.yaml"
    f.write_text(yaml.safe_dump({"services": [_svc("same", port_a), _svc("same", port_b)]}))
    rc, out, elapsed, served = _run_watching(["-C", f], port_a)
    _assert_failed_cleanly(rc, out, elapsed, served, port_a)
    assert "services[1].name" in out
    assert "duplicate" in out.lower() and "same" in out
    assert port_closed(port_b)


def test_port_in_use_names_addr(tmp_path):
    port_a = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port_b = busy.getsockname()[1]
    try:
        f = tmp_path / "busy.yaml"
        f.write_text(yaml.safe_dump({"services": [_svc("first", port_a), _svc("second", port_b, "socks5")]}))
        rc, out, elapsed, served = _run_watching(["-C", f], port_a)
        _assert_failed_cleanly(rc, out, elapsed, served, port_a)
        assert "services[1].addr" in out
        assert str(port_b) in out
    finally:
        busy.close()


def test_port_in_use_from_cli(tmp_path):
    port_a = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port_b = busy.getsockname()[1]
        rc, out, elapsed, served = _run_watching(
            ["-L", f"http://127.0.0.1:{port_a}", "-L", f"socks5://127.0.0.1:{port_b}"], port_a)
        _assert_failed_cleanly(rc, out, elapsed, served, port_a)
        assert "services[1].addr" in out
    finally:
        busy.close()


# --- a real config, driven by curl ------------------------------------------------------------

def test_yaml_config_auth_chain_hops_forwarder_ignorechain(tmp_path):
    p_entry, p_up, p_fwd, p_direct, p_control = (free_port() for _ in range(5))
    dead = free_port()  # nothing listens here: a chain through it cannot work
    with Origin() as origin, Echo() as echo:
        cfg = {
            "services": [
                {"name": "entry", "addr": f"127.0.0.1:{p_entry}",
                 "handler": {"type": "http", "auth": {"username": "alice", "password": "s3cret"},
                             "chain": "chain-up"},
                 "listener": {"type": "tcp"}},
                {"name": "upstream", "addr": f"127.0.0.1:{p_up}", "handler": {"type": "socks5"}},
                {"name": "fwd", "addr": f"127.0.0.1:{p_fwd}",
                 "handler": {"type": "tcp", "chain": "chain-up"}, "listener": {"type": "tcp"},
                 "forwarder": {"nodes": [{"name": "echo", "addr": f"127.0.0.1:{echo.port}"}]}},
                # lower-case metadata key: GOST's metadata keys are case-insensitive
                {"name": "direct", "addr": f"127.0.0.1:{p_direct}",
                 "handler": {"type": "http", "chain": "chain-dead"}, "metadata": {"ignorechain": True}},
                {"name": "control", "addr": f"127.0.0.1:{p_control}",
                 "handler": {"type": "http", "chain": "chain-dead"}},
            ],
            "chains": [
                {"name": "chain-up", "hops": [{"name": "hop-up"}]},  # a reference to hops[]
                {"name": "chain-dead", "hops": [{"name": "hop-dead", "nodes": [
                    {"name": "dead", "addr": f"127.0.0.1:{dead}", "connector": {"type": "http"}}]}]},
            ],
            "hops": [{"name": "hop-up", "nodes": [
                {"name": "up-0", "addr": f"127.0.0.1:{p_up}", "connector": {"type": "socks5"},
                 "dialer": {"type": "tcp"}}]}],
        }
        f = tmp_path / "gost.yaml"
        f.write_text(yaml.safe_dump(cfg, sort_keys=False))
        with Gost("-C", f, ports=[p_entry, p_up, p_fwd, p_direct, p_control]) as g:
            # handler auth
            r = curl("-o", "/dev/null", "-w", "%{http_code}", "-x", f"http://127.0.0.1:{p_entry}", origin.url + "/")
            assert r.stdout == "407", r
            r = curl("-x", f"http://alice:s3cret@127.0.0.1:{p_entry}", origin.url + "/via-chain")
            assert r.returncode == 0, r.stderr
            assert "hello from origin /via-chain" in r.stdout

            # forwarder through the same named hop
            with socket.create_connection(("127.0.0.1", p_fwd), timeout=5) as s:
                s.sendall(b"ping-through-forwarder")
                got = b""
                while len(got) < 22:
                    d = s.recv(64)
                    if not d:
                        break
                    got += d
            assert got == b"ping-through-forwarder"

            # ignorechain (any case) skips the dead chain; without it the chain is used and fails
            r = curl("-x", f"http://127.0.0.1:{p_direct}", origin.url + "/direct")
            assert r.returncode == 0 and "hello from origin /direct" in r.stdout, r
            r = curl("-o", "/dev/null", "-w", "%{http_code}", "-x", f"http://127.0.0.1:{p_control}",
                     origin.url + "/control")
            assert r.stdout != "200", r

            # the upstream socks5 service saw the entry's and the forwarder's traffic
            origin_dst = f"127.0.0.1:{origin.port}"
            echo_dst = f"127.0.0.1:{echo.port}"
            deadline = time.monotonic() + 5
            seen = set()
            while time.monotonic() < deadline and seen != {origin_dst, echo_dst}:
                for line in g.log_text().splitlines():
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("service") == "upstream" and ev.get("dst") in (origin_dst, echo_dst):
                        seen.add(ev["dst"])
                time.sleep(0.05)
            assert seen == {origin_dst, echo_dst}, g.log_text()
