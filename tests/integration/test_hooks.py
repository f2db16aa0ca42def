"""Service hooks preUp/postUp/preDown/postDown (service metadata): each entry is shlex-split and
run without a shell, in GOST's order; a failing hook is logged and the service keeps serving."""
import json
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml

from .helpers import Gost, Origin, free_port, port_closed


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "-m", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 5)


def append_cmd(path, word):
    """A hook command (a string, as in YAML) that appends ``word`` and a newline to ``path``."""
    code = f"open({str(path)!r}, 'a').write({word!r} + chr(10))"
    return shlex.join([sys.executable, "-c", code])


def read_lines(path):
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def write_config(tmp_path, port, md):
    f = tmp_path / "hooks.yaml"
    f.write_text(yaml.safe_dump({"services": [
        {"name": "hooked", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}, "metadata": md}]}))
    return f


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_hook_order_start_and_stop(tmp_path, sig):
    port = free_port()
    out = tmp_path / "order.txt"
    md = {"preUp": [append_cmd(out, "preUp"), append_cmd(out, "preUp2")],
          "postUp": [append_cmd(out, "postUp")],
          "preDown": [append_cmd(out, "preDown")],
          "postDown": [append_cmd(out, "postDown")]}
    cfg = write_config(tmp_path, port, md)
    g = Gost("-C", cfg, ports=[port])
    with g:
        assert wait_for(lambda: len(read_lines(out)) >= 3)
        assert read_lines(out) == ["preUp", "preUp2", "postUp"]
        rc = g.stop(sig=sig, timeout=10)
        assert rc == 0, g.log_text()
        assert read_lines(out) == ["preUp", "preUp2", "postUp", "preDown", "postDown"]
        assert port_closed(port)


def test_hooks_run_with_metadata_key_any_case(tmp_path):
    port = free_port()
    out = tmp_path / "case.txt"
    cfg = write_config(tmp_path, port, {"preup": [append_cmd(out, "pre")], "POSTUP": [append_cmd(out, "post")]})
    with Gost("-C", cfg, ports=[port]):
        assert wait_for(lambda: read_lines(out) == ["pre", "post"]), read_lines(out)


def test_failing_hooks_are_logged_and_service_serves(tmp_path):
    port = free_port()
    out = tmp_path / "after.txt"
    missing = tmp_path / "no-such-program"
    md = {"preUp": ["false", str(missing), append_cmd(out, "still-ran")],
          "postUp": ["false"]}
    cfg = write_config(tmp_path, port, md)
    with Origin() as origin, Gost("-C", cfg, ports=[port]) as g:
        r = curl("-x", f"http://127.0.0.1:{port}", origin.url + "/after-hooks")
        assert r.returncode == 0 and "hello from origin /after-hooks" in r.stdout, r
        assert read_lines(out) == ["still-ran"]

        def errors_logged():
            evs = []
            for line in g.log_text().splitlines():
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("level") == "error":
                    evs.append(ev)
            return evs

        # postUp runs while the port already serves: its error may land just after the curl
        wait_for(lambda: any("postUp" in e.get("msg", "") for e in errors_logged()))
        errors = errors_logged()
        msgs = " | ".join(e.get("msg", "") for e in errors)
        assert any("preUp" in e.get("msg", "") and "false" in e.get("msg", "") for e in errors), msgs
        assert any("postUp" in e.get("msg", "") and "false" in e.get("msg", "") for e in errors), msgs
        assert any(str(missing) in e.get("msg", "") for e in errors), msgs
        assert all(e.get("service") == "hooked" for e in errors), errors


def test_hooks_do_not_use_a_shell(tmp_path):
    port = free_port()
    x = tmp_path / "X"
    z = tmp_path / "Z"
    y = tmp_path / "Y"
    md = {"postUp": [f"echo marker-a; touch {x}", f"echo $(touch {z}) marker-b", f"touch {y}"]}
    cfg = write_config(tmp_path, port, md)
    with Gost("-C", cfg, ports=[port]) as g:
        assert wait_for(y.exists), "the plain hook did not run"
        # echo got the metacharacters as arguments: printed verbatim, nothing else ran
        assert wait_for(lambda: "marker-a; touch" in g.log_text()), g.log_text()
        assert f"$(touch {z}) marker-b" in g.log_text()
        assert not x.exists()
        assert not z.exists()


def probe_cmd(path, word, port):
    """A hook that records ``word`` and whether ``port`` accepts connections right now."""
    code = ("import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), 1).close(); state = 'open'\n"
            "except OSError:\n"
            "    state = 'closed'\n"
            f"open({str(path)!r}, 'a').write({word!r} + '=' + state + chr(10))")
    return shlex.join([sys.executable, "-c", code])


def test_down_hooks_around_listener_close(tmp_path):
    port = free_port()
    out = tmp_path / "probe.txt"
    md = {"postUp": [probe_cmd(out, "postUp", port)],
          "preDown": [probe_cmd(out, "preDown", port)],
          "postDown": [probe_cmd(out, "postDown", port)]}
    cfg = write_config(tmp_path, port, md)
    g = Gost("-C", cfg, ports=[port])
    with g:
        assert wait_for(lambda: read_lines(out) == ["postUp=open"]), read_lines(out)
        assert g.stop(timeout=10) == 0
    assert read_lines(out) == ["postUp=open", "preDown=open", "postDown=closed"]
