"""The GOST command line as a user types it: -V, -O yaml|json with GOST's generated names,
Go-style flags (the last of a repeated flag wins, -V whatever else), -h; every user error as one
line `gostg: config error: <where>: <what>` on stderr, exit 1, no traceback; startup validation;
no services but an api/metrics endpoint; the console script (gostg.cli:run)."""
import ctypes
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import yaml

from .helpers import GOSTG, ROOT, Gost, free_port, port_closed, run_gostg, wait_port

CHAIN_ARGS = ["-L", "http://:8080", "-L", "socks5://u:p@:1080", "-F", "socks5://a:1,b:2", "-F", "http://c:3"]


def _clean_env(tmp_path):
    """No GOST_* variables and a HOME / cwd without gost.yaml, so no default config is found."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOST_")}
    env["HOME"] = str(tmp_path)
    return env


def test_version():
    r = run_gostg("-V")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert re.fullmatch(r"gostg \d+\.\d+\.\d+\S* \(python \d+\.\d+\.\d+\S* \S+/\S+\)", line), line


def _check_chain_config(cfg):
    svcs = cfg["services"]
    assert [s["name"] for s in svcs] == ["service-0", "service-1"]
    assert svcs[0]["addr"] == ":8080" and svcs[1]["addr"] == ":1080"
    assert svcs[0]["handler"]["type"] == "http" and svcs[0]["listener"]["type"] == "tcp"
    assert svcs[1]["handler"]["type"] == "socks5" and svcs[1]["listener"]["type"] == "tcp"
    assert svcs[1]["handler"]["auth"] == {"username": "u", "password": "p"}
    assert "auth" not in svcs[0]["handler"]
    # every -L of the process shares the one chain built from all -F
    assert svcs[0]["handler"]["chain"] == "chain-0" and svcs[1]["handler"]["chain"] == "chain-0"

    chains = cfg["chains"]
    assert [c["name"] for c in chains] == ["chain-0"]
    hops = chains[0]["hops"]
    assert [h["name"] for h in hops] == ["hop-0", "hop-1"]
    n0 = hops[0]["nodes"]
    assert [n["name"] for n in n0] == ["node-0", "node-1"]
    assert [n["addr"] for n in n0] == ["a:1", "b:2"]
    assert all(n["connector"]["type"] == "socks5" and n["dialer"]["type"] == "tcp" for n in n0)
    n1 = hops[1]["nodes"]
    assert [n["name"] for n in n1] == ["node-0"]
    assert n1[0]["addr"] == "c:3"
    assert n1[0]["connector"]["type"] == "http" and n1[0]["dialer"]["type"] == "tcp"


def test_output_yaml_generated_names():
    r = run_gostg(*CHAIN_ARGS, "-O", "yaml")
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    _check_chain_config(cfg)
    # GOST prints services before chains
    assert list(cfg).index("services") < list(cfg).index("chains")


def test_output_json_generated_names_matches_yaml():
    rj = run_gostg(*CHAIN_ARGS, "-O", "json")
    ry = run_gostg(*CHAIN_ARGS, "-O", "yaml")
    assert rj.returncode == 0, rj.stderr
    cfg = json.loads(rj.stdout)
    _check_chain_config(cfg)
    assert cfg == yaml.safe_load(ry.stdout)


def test_output_forward_targets_named():
    r = run_gostg("-L", "tcp://:8000/10.0.0.1:80,10.0.0.2:80", "-O", "json")
    assert r.returncode == 0, r.stderr
    svc = json.loads(r.stdout)["services"][0]
    assert svc["name"] == "service-0"
    assert svc["handler"]["type"] == "tcp" and svc["listener"]["type"] == "tcp"
    nodes = svc["forwarder"]["nodes"]
    assert [(n["name"], n["addr"]) for n in nodes] == [("target-0", "10.0.0.1:80"), ("target-1", "10.0.0.2:80")]


def test_go_style_flags():
    r = run_gostg("-L=http://:8080", "-api", ":18080", "-O", "yaml")
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert cfg["api"] == {"addr": ":18080"}
    assert cfg["services"][0]["name"] == "service-0"
    assert cfg["services"][0]["addr"] == ":8080"
    assert cfg["services"][0]["handler"]["type"] == "http"
    # the raw text a user reads: api: {addr: ':18080'}
    assert re.search(r"^api:\n  addr: ['\"]?:18080['\"]?$", r.stdout, re.M), r.stdout


def test_go_style_flags_with_equals():
    r = run_gostg("-L=socks5://:1080", "-api=:18080", "-O=json")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["api"] == {"addr": ":18080"}
    assert cfg["services"][0]["handler"]["type"] == "socks5"


def test_output_bad_format_fails():
    r = run_gostg("-L", "http://:8080", "-O", "toml")
    assert r.returncode == 1
    assert r.stdout.strip() == ""
    _one_error(r, r"-O: unknown format 'toml'")


def test_unknown_flag_usage():
    r = run_gostg("-L", "http://:8080", "--bogus-flag")
    assert r.returncode == 1
    assert "usage" in r.stderr.lower() and "gostg" in r.stderr
    _one_error(r, r"--bogus-flag: unknown flag")


def test_no_args_no_config_usage(tmp_path):
    r = run_gostg(cwd=tmp_path, env=_clean_env(tmp_path))
    assert r.returncode == 1
    out = r.stderr + r.stdout
    assert "usage" in out.lower() and "-L" in out
    assert "Traceback" not in out


def test_empty_config_usage(tmp_path):
    r = run_gostg("-C", "{}", cwd=tmp_path, env=_clean_env(tmp_path))
    assert r.returncode == 1
    assert "usage" in r.stderr.lower() and "Traceback" not in r.stderr


# --- GOST's flag rules ------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["-h", "--help", "-help"])
def test_help_exits_zero(flag):
    r = run_gostg(flag)
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout and "-L <service>" in r.stdout and "--check" in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("args", [["-V", "--bogus"], ["--bogus", "-V"], ["-L", "sock5://:1", "-V"],
                                  ["-V=true"], ["-C", "/nonexistent.yaml", "--V"], ["-h", "-V"], ["-L"]])
def test_version_whatever_else_is_given(args):
    if args == ["-L"]:
        args = ["-V", "-L"]   # -V before a flag that misses its value
    r = run_gostg(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gostg ") and r.stderr == ""


def test_repeated_flag_takes_last_value():
    r = run_gostg("-L", "socks5://:1080", "-O", "json", "-O", "yaml")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("services:")   # yaml, not json
    r = run_gostg("-L", "socks5://:1080", "-O=yaml", "-O", "json", "--api", ":1", "-api=:2")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["api"] == {"addr": ":2"}
    r = run_gostg("-L", "socks5://:1080", "-D", "-D", "-D=false", "-O", "json")
    assert r.returncode == 0, r.stderr
    assert "log" not in json.loads(r.stdout)   # the last -D is false


def test_flag_needs_a_value():
    r = run_gostg("-L")
    assert r.returncode == 1
    _one_error(r, r"-L: flag needs an argument")


def test_stray_argument():
    r = run_gostg("socks5://:1080")
    assert r.returncode == 1
    _one_error(r, r"unexpected argument 'socks5://:1080'")


# --- one error format, once, exit 1, never a traceback ----------------------------------------

ERROR_LINE = re.compile(r"^gostg: config error: (.+)$", re.M)


def _one_error(r, pattern):
    """Exactly one error line, in the one format, matching ``pattern``; no traceback, and the
    error is not also logged as a JSON line."""
    out = r.stderr + r.stdout
    assert "Traceback" not in out, out
    errors = ERROR_LINE.findall(r.stderr)
    assert len(errors) == 1, r.stderr
    assert re.search(pattern, errors[0]), errors[0]
    assert '"level": "error"' not in out, out
    assert out.count(errors[0]) == 1, out


def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def _svc(port, htype="socks5", **extra):
    return {"name": "a", "addr": f"127.0.0.1:{port}", "handler": {"type": htype}, **extra}


def _case_args(case, tmp_path):
    """→ (args, pattern of the one error) for an error case."""
    port = free_port()
    if case == "missing file":
        return ["-C", tmp_path / "nope.yaml"], r"nope\.yaml: cannot read config: No such file"
    if case == "unreadable file":   # a directory: unreadable even for root
        (tmp_path / "dir.yaml").mkdir()
        return ["-C", tmp_path / "dir.yaml"], r"dir\.yaml: cannot read config: Is a directory"
    if case == "bad yaml":
        (tmp_path / "bad.yaml").write_text("services: [\n")
        return ["-C", tmp_path / "bad.yaml"], r"bad\.yaml: invalid YAML at line 2"
    if case == "bad json":
        (tmp_path / "bad.json").write_text('{"services": [}')
        return ["-C", tmp_path / "bad.json"], r"bad\.json: invalid JSON at line 1"
    if case == "not a mapping":
        (tmp_path / "list.yaml").write_text("- a\n- b\n")
        return ["-C", tmp_path / "list.yaml"], r"list\.yaml: config must be a mapping"
    if case == "bad -L url":
        return ["-L", "socks5://[::1"], r"services\[0\]\.addr: .*\[::1"
    if case == "unknown -L scheme":
        return ["-L", f"sock5://127.0.0.1:{port}"], r"-L sock5://.*: unknown scheme 'sock5' \(did you mean 'socks5'\?\)"
    if case == "unknown -F scheme":
        return ["-L", f"socks5://127.0.0.1:{port}", "-F", "bogus://127.0.0.1:1"], r"-F bogus://.*unknown scheme 'bogus'"
    if case == "unknown handler":
        return (["-C", json.dumps({"services": [_svc(port, "sock5")]})],
                r"^services\[0\]\.handler\.type: unknown handler 'sock5' \(did you mean 'socks5'\?\)")
    if case == "bad log.output":
        return (["-C", json.dumps({"log": {"output": "/proc/nonexistent/dir/gostg.log"}, "services": [_svc(port)]})],
                r"^log\.output: cannot open log file")
    if case == "address not available":
        return ["-L", "socks5://192.0.2.1:1080"], r"^services\[0\]\.addr: cannot listen on 192\.0\.2\.1:1080"
    if case == "bad -R":
        return ["-L", f"socks5://127.0.0.1:{port}", "-R", "5parsecs"], r"^-R: bad duration '5parsecs'"
    if case == "bad -api":
        return ["--api", "127.0.0.1:99999"], r"^api\.addr: .*99999"
    raise AssertionError(case)


CASES = ["missing file", "unreadable file", "bad yaml", "bad json", "not a mapping", "bad -L url",
         "unknown -L scheme", "unknown -F scheme", "unknown handler", "bad log.output", "address not available",
         "bad -R", "bad -api"]


@pytest.mark.parametrize("case", CASES)
def test_user_error_one_line_exit_1(case, tmp_path):
    args, pattern = _case_args(case, tmp_path)
    r = run_gostg(*args, cwd=tmp_path, env=_clean_env(tmp_path))
    assert r.returncode == 1, (r.stdout, r.stderr)
    _one_error(r, pattern)


def test_port_in_use_one_line_exit_1(tmp_path):
    busy = _busy_port()
    try:
        port = busy.getsockname()[1]
        r = run_gostg("-L", f"socks5://127.0.0.1:{port}", cwd=tmp_path, env=_clean_env(tmp_path))
        assert r.returncode == 1
        _one_error(r, rf"^services\[0\]\.addr: cannot listen on 127\.0\.0\.1:{port}: Address already in use")
        # the same from a file, second service: nothing of the first one stays bound
        good = free_port()
        f = tmp_path / "busy.yaml"
        f.write_text(yaml.safe_dump({"services": [_svc(good), dict(_svc(port), name="b")]}))
        r = run_gostg("-C", f, cwd=tmp_path, env=_clean_env(tmp_path))
        assert r.returncode == 1
        _one_error(r, r"^services\[1\]\.addr: .*Address already in use")
        assert port_closed(good)
    finally:
        busy.close()


def _no_bind_privilege():
    """In the child, before exec: without CAP_NET_BIND_SERVICE (root keeps every other right),
    so binding a port below 1024 is refused as it is for a user."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 10, 0, 0, 0) != 0:   # PR_CAPBSET_DROP, CAP_NET_BIND_SERVICE
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_permission_denied_one_line_exit_1(tmp_path):
    try:
        r = subprocess.run([sys.executable, GOSTG, "-L", "socks5://127.0.0.1:1"], capture_output=True, text=True,
                           timeout=20, preexec_fn=_no_bind_privilege, cwd=tmp_path, env=_clean_env(tmp_path))
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop CAP_NET_BIND_SERVICE here: {exc}")
    assert r.returncode == 1, r.stderr
    _one_error(r, r"^services\[0\]\.addr: cannot listen on 127\.0\.0\.1:1: Permission denied")


def test_unexpected_error_one_line_traceback_only_with_debug(tmp_path):
    """An error nobody foresaw (here: a config source that is a FIFO nobody writes, read with
    a deadline) still gives one line; -D adds the traceback for a bug report."""
    env = dict(_clean_env(tmp_path), PYTHONPATH=str(tmp_path))
    (tmp_path / "sitecustomize.py").write_text(
        "import gostg.config.load as L\n"
        "def boom(*a, **k):\n    raise RuntimeError('boom')\n"
        "L.merge = boom\n")
    r = run_gostg("-L", "socks5://127.0.0.1:1080", cwd=tmp_path, env=env)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["gostg: error: RuntimeError: boom"], r.stderr
    r = run_gostg("-D", "-L", "socks5://127.0.0.1:1080", cwd=tmp_path, env=env)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and r.stderr.strip().endswith("gostg: error: RuntimeError: boom")


# --- startup validation: warnings once, errors before anything binds ---------------------------

def test_startup_warning_printed_once_and_serves(tmp_path):
    port = free_port()
    cfg = {"services": [_svc(port, metdata={"readTimeout": "5s"})]}
    with Gost("-C", json.dumps(cfg), ports=[port], cwd=tmp_path, env=_clean_env(tmp_path)) as g:
        text = g.log_text()
    lines = [ln for ln in text.splitlines() if "metdata" in ln]
    assert lines == ["gostg: config warning: services[0].metdata: unknown key (did you mean 'metadata'?)"], text
    assert "Traceback" not in text


def test_startup_warning_also_in_log_file(tmp_path):
    port = free_port()
    logfile = tmp_path / "gostg.log"
    cfg = {"log": {"output": str(logfile)}, "services": [_svc(port, metdata={"readTimeout": "5s"})]}
    with Gost("-C", json.dumps(cfg), ports=[port], cwd=tmp_path, env=_clean_env(tmp_path)) as g:
        text = g.log_text()
    assert text.count("gostg: config warning: services[0].metdata: unknown key") == 1, text
    events = [json.loads(ln) for ln in logfile.read_text().splitlines()]
    assert [e for e in events if e.get("level") == "warning" and "metdata" in e["msg"]], events


def test_startup_errors_all_listed_nothing_bound(tmp_path):
    port = free_port()
    cfg = {"services": [_svc(port), {"name": "b", "addr": "127.0.0.1", "handler": {"type": "sock5"}}]}
    r = run_gostg("-C", json.dumps(cfg), cwd=tmp_path, env=_clean_env(tmp_path))
    assert r.returncode == 1
    errors = ERROR_LINE.findall(r.stderr)
    assert any(e.startswith("services[1].addr:") for e in errors), r.stderr
    assert any(e.startswith("services[1].handler.type: unknown handler 'sock5'") for e in errors), r.stderr
    assert len(errors) == len(set(errors)) and "Traceback" not in r.stderr
    assert port_closed(port)


def test_output_runs_validate(tmp_path):
    cfg = {"services": [_svc(1080, metdata={"readTimeout": "5s"})]}
    r = run_gostg("-C", json.dumps(cfg), "-O", "json", cwd=tmp_path, env=_clean_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["services"][0]["metdata"] == {"readTimeout": "5s"}   # kept for the round trip
    assert r.stderr.strip() == "gostg: config warning: services[0].metdata: unknown key (did you mean 'metadata'?)"
    cfg["services"][0]["handler"]["type"] = "sock5"
    r = run_gostg("-C", json.dumps(cfg), "-O", "json", cwd=tmp_path, env=_clean_env(tmp_path))
    assert r.returncode == 1 and r.stdout == ""
    assert "gostg: config error: services[0].handler.type: unknown handler 'sock5'" in r.stderr


# --- no services: an api or metrics endpoint alone keeps gostg running (GOST) -----------------

def test_metrics_only_keeps_running(tmp_path):
    cfg = {"metrics": {"addr": f"127.0.0.1:{free_port()}"}}
    with Gost("-C", json.dumps(cfg), cwd=tmp_path, env=_clean_env(tmp_path)) as g:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert g.proc.poll() is None, g.log_text()
            time.sleep(0.1)
        assert g.stop() == 0
        assert "Traceback" not in g.log_text()


def test_api_only_keeps_running(tmp_path):
    port = free_port()
    with Gost("--api", f"127.0.0.1:{port}", ports=[port], cwd=tmp_path, env=_clean_env(tmp_path)) as g:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /config HTTP/1.0\r\n\r\n")
            assert c.recv(12).startswith(b"HTTP/1."), g.log_text()
        assert g.proc.poll() is None
        assert g.stop() == 0


# --- the console script: gostg.cli:run --------------------------------------------------------

RUN = "import sys; from gostg.cli import run; run()"


def test_console_script_entry_point_version():
    r = subprocess.run([sys.executable, "-c", RUN, "-V"], capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gostg ")


def test_console_script_entry_point_serves(tmp_path):
    """run() patches gevent before gostg loads (no MonkeyPatchWarning) and serves."""
    port = free_port()
    env = dict(_clean_env(tmp_path), PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", RUN, "-L", f"socks5://127.0.0.1:{port}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_port(port, proc=proc)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"\x05\x01\x00")
            assert c.recv(2) == b"\x05\x00"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "MonkeyPatchWarning" not in out and "Traceback" not in out, out


def test_python_m_gostg_version():
    r = subprocess.run([sys.executable, "-m", "gostg", "-V"], capture_output=True, text=True, timeout=20, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gostg ")
