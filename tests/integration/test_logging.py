"""GOST's log: JSON lines by default with service/handler/sid/remote/local/dst per connection and
duration/inputBytes/outputBytes when it closes; ``log: {format, level, output}``; -D; errors that
name the service, the peer and the target."""
import json
import re
import socket
import struct
import subprocess
import time

import yaml

from .helpers import Gost, Origin, free_port


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "-m", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 5)


def events(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


def wait_events(get_text, pred, timeout=5.0):
    """Poll the log until ``pred(events)`` is truthy; → the last events."""
    deadline = time.monotonic() + timeout
    evs = events(get_text())
    while not pred(evs) and time.monotonic() < deadline:
        time.sleep(0.05)
        evs = events(get_text())
    return evs


def config(tmp_path, port, htype="http", log=None, name="svc-log"):
    cfg = {"services": [{"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": htype}}]}
    if log is not None:
        cfg["log"] = log
    f = tmp_path / "log.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def _close_line(evs, dst):
    return [e for e in evs if e.get("dst") == dst and "duration" in e]


def _check_connection_lines(evs, port, dst, handler):
    conn = [e for e in evs if e.get("dst") == dst]
    assert conn, evs
    for e in conn:
        assert e.get("service") == "svc-log", e
        assert e.get("handler") == handler, e
        assert e.get("sid"), e
        assert re.fullmatch(r"127\.0\.0\.1:\d+", e.get("remote", "")), e
        assert e.get("local") == f"127.0.0.1:{port}", e
        assert e.get("level") and e.get("time") and "msg" in e, e
    assert len({e["sid"] for e in conn}) == 1, "one connection, one sid"
    closes = _close_line(evs, dst)
    assert closes, "no closing line with duration"
    c = closes[-1]
    assert isinstance(c["duration"], (int, float)) or isinstance(c["duration"], str), c
    assert "inputBytes" in c and "outputBytes" in c, c
    assert int(c["inputBytes"]) > 0 and int(c["outputBytes"]) > 0, c
    return c


def test_default_json_lines_plain_http(tmp_path):
    port = free_port()
    with Origin() as origin, Gost("-C", config(tmp_path, port), ports=[port]) as g:
        r = curl("-x", f"http://127.0.0.1:{port}", origin.url + "/logme")
        assert r.returncode == 0, r.stderr
        dst = f"127.0.0.1:{origin.port}"
        evs = wait_events(g.log_text, lambda e: _close_line(e, dst))
        # every non-empty line is a JSON object
        lines = [ln for ln in g.log_text().splitlines() if ln.strip()]
        assert len(events(g.log_text())) == len(lines), lines
        c = _check_connection_lines(evs, port, dst, "http")
        body = len("hello from origin /logme host=127.0.0.1:%d\n" % origin.port)
        assert int(c["outputBytes"]) > body


def test_default_json_lines_connect_tunnel(tmp_path):
    port = free_port()
    with Origin() as origin, Gost("-C", config(tmp_path, port), ports=[port]) as g:
        r = curl("-p", "-x", f"http://127.0.0.1:{port}", origin.url + "/tunnel")
        assert r.returncode == 0, r.stderr
        dst = f"127.0.0.1:{origin.port}"
        evs = wait_events(g.log_text, lambda e: _close_line(e, dst))
        _check_connection_lines(evs, port, dst, "http")


def test_text_format_is_logfmt(tmp_path):
    port = free_port()
    with Origin() as origin, Gost("-C", config(tmp_path, port, log={"format": "text"}), ports=[port]) as g:
        r = curl("-x", f"http://127.0.0.1:{port}", origin.url + "/text")
        assert r.returncode == 0, r.stderr
        dst = f"127.0.0.1:{origin.port}"
        deadline = time.monotonic() + 5
        while f"dst={dst}" not in g.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [ln for ln in g.log_text().splitlines() if ln.strip()]
        assert lines
        pair = r'[A-Za-z_.]+=(?:"(?:[^"\\]|\\.)*"|\S+)'
        for ln in lines:
            assert not ln.lstrip().startswith("{"), ln
            assert re.fullmatch(rf"{pair}(?: {pair})*", ln), ln
        joined = "\n".join(lines)
        assert "level=info" in joined
        assert "service=svc-log" in joined
        assert f"dst={dst}" in joined
        assert re.search(r"\bsid=\S+", joined)


def test_level_error_suppresses_info(tmp_path):
    port, closed = free_port(), free_port()
    with Origin() as origin, Gost("-C", config(tmp_path, port, htype="socks5", log={"level": "error"}),
                                  ports=[port]) as g:
        r = curl("-x", f"socks5h://127.0.0.1:{port}", origin.url + "/quiet")
        assert r.returncode == 0, r.stderr
        r = curl("-x", f"socks5h://127.0.0.1:{port}", f"http://127.0.0.1:{closed}/")
        assert r.returncode != 0
        evs = wait_events(g.log_text, lambda e: any(x.get("level") == "error" for x in e))
        assert any(e.get("level") == "error" for e in evs), g.log_text()
        assert not [e for e in evs if e.get("level") in ("info", "debug", "trace", "warn", "warning")], evs


def test_output_to_file(tmp_path):
    port = free_port()
    path = tmp_path / "logs" / "gost.log"
    with Origin() as origin, Gost("-C", config(tmp_path, port, log={"output": str(path)}), ports=[port]) as g:
        r = curl("-x", f"http://127.0.0.1:{port}", origin.url + "/tofile")
        assert r.returncode == 0, r.stderr
        dst = f"127.0.0.1:{origin.port}"
        evs = wait_events(lambda: path.read_text() if path.exists() else "",
                          lambda e: any(x.get("dst") == dst for x in e))
        assert any(x.get("dst") == dst for x in evs)
        assert any("listening on" in x.get("msg", "") for x in evs)
        # nothing of it on the process's stdout/stderr
        assert not events(g.log_text()), g.log_text()


def test_debug_flag(tmp_path):
    port = free_port()
    with Origin() as origin:
        with Gost("-C", config(tmp_path, port), ports=[port]) as g:
            assert curl("-x", f"http://127.0.0.1:{port}", origin.url + "/nodebug").returncode == 0
            dst = f"127.0.0.1:{origin.port}"
            evs = wait_events(g.log_text, lambda e: _close_line(e, dst))
            assert _close_line(evs, dst)
            assert not [e for e in evs if e.get("level") == "debug"], evs
        with Gost("-C", config(tmp_path, port), "-D", ports=[port]) as g:
            assert curl("-x", f"http://127.0.0.1:{port}", origin.url + "/debug").returncode == 0
            evs = wait_events(g.log_text, lambda e: any(x.get("level") == "debug" and x.get("sid") for x in e))
            dbg = [e for e in evs if e.get("level") == "debug" and e.get("sid")]
            assert dbg, g.log_text()
            assert all(e.get("service") == "svc-log" for e in dbg)


def test_error_names_service_remote_and_dst(tmp_path):
    port, closed = free_port(), free_port()
    with Gost("-C", config(tmp_path, port, htype="socks5"), ports=[port]) as g:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            me = "%s:%d" % s.getsockname()
            s.sendall(b"\x05\x01\x00")
            assert s.recv(2) == b"\x05\x00"
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", closed))
            rep = s.recv(10)
            assert rep[:2] != b"\x05\x00" and rep[0:1] == b"\x05", rep
        dst = f"127.0.0.1:{closed}"
        evs = wait_events(g.log_text, lambda e: any(x.get("level") == "error" and x.get("dst") == dst for x in e))
        errs = [e for e in evs if e.get("level") == "error" and e.get("dst") == dst]
        assert errs, g.log_text()
        e = errs[0]
        assert e.get("service") == "svc-log"
        assert e.get("handler") == "socks5"
        assert e.get("remote") == me
        assert e.get("sid")
        assert str(closed) in e.get("msg", "")


def test_sigterm_stops_even_when_log_pipe_is_gone(tmp_path):
    """``gostg … | head``: once the reader of the log is gone, SIGTERM must still stop gostg."""
    import signal
    import sys

    from .helpers import GOSTG, wait_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, GOSTG, "-L", f"http://127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_port(port, proc=proc)
        proc.stdout.close()  # the reader goes away
        with Origin() as origin:
            curl("-x", f"http://127.0.0.1:{port}", origin.url + "/nobody-reads", timeout=5)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=8)
        except subprocess.TimeoutExpired:
            raise AssertionError("gostg ignored SIGTERM after its log pipe closed") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
