"""GOST's logging, as a user runs it (tutorials/log.md): ``log: {level, format, output,
rotation}``, named ``loggers:`` used by a service's ``logger``/``loggers``, GOST_LOGGER_LEVEL,
SIGHUP and ``-R`` reopening the file after logrotate moved it, and the stdlib ``logging``
bridge of an embedding app. Every check reads files gostg wrote under tmp_path."""
import glob
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import yaml

from .helpers import GOSTG, ROOT, Gost, free_port, run_gostg, wait_for, wait_port


def hit(port, n=1):
    """``n`` proxy requests to a closed port: each logs an error and a closing line."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
            s.settimeout(5)
            try:
                s.recv(4096)
            except OSError:
                pass


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


def closes(evs):
    """The closing line of each connection (``>-<``, with the byte counts)."""
    return [e for e in evs if " >-< " in e.get("msg", "")]


def write_cfg(tmp_path, cfg):
    f = tmp_path / "gost.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def service(port, name="svc", **kw):
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}, **kw}


def test_two_loggers_on_one_service_each_get_the_line_at_their_level(tmp_path):
    """#365: a file and stdout at once; each logger of a group filters at its own level and
    renders its own format; a service without a logger writes to the global log."""
    port, other = free_port(), free_port()
    errors, debug, main = tmp_path / "errors.log", tmp_path / "debug.log", tmp_path / "main.log"
    cfg = write_cfg(tmp_path, {
        "services": [service(port, loggers=["errs", "dbg", "console"]), service(other, name="plain")],
        "log": {"output": str(main)},
        "loggers": [{"name": "errs", "log": {"level": "error", "output": str(errors)}},
                    {"name": "dbg", "log": {"level": "debug", "output": str(debug)}},
                    {"name": "console", "log": {"format": "text", "output": "stdout"}}]})
    with Gost("-C", cfg, ports=[port, other]) as g:
        hit(port, 2)
        hit(other)
        assert wait_for(lambda: len(closes(lines(debug))) == 2 and closes(lines(main)))
        assert wait_for(lambda: len(re.findall(r' >-< ', g.log_text())) == 2)
        text = g.log_text()
    errs, dbg, glob_ = lines(errors), lines(debug), lines(main)
    assert errs and all(e["level"] == "error" for e in errs), errs
    assert all(e["logger"] == "errs" and e["service"] == "svc" for e in errs), errs
    assert {e["level"] for e in dbg} >= {"debug", "info", "error"}, dbg
    assert all(e["logger"] == "dbg" for e in dbg)
    # the same connection in both files, one sid
    assert {e["sid"] for e in errs} == {e["sid"] for e in closes(dbg)}
    # the console logger: logfmt on stdout, info and up (no debug), named
    conn = [x for x in text.splitlines() if "logger=console" in x]
    assert any(" >-< " in x and "service=svc" in x for x in conn), text
    assert not any("level=debug" in x for x in conn), text
    # the service without a logger: only in the global log, not in the named loggers
    assert {e["service"] for e in closes(glob_)} == {"plain"}, glob_
    assert "logger" not in closes(glob_)[0]
    assert not any(e.get("service") == "plain" for e in errs + dbg)


def test_output_stdout_and_none(tmp_path):
    port = free_port()
    for output in ("stdout", "none"):
        cfg = write_cfg(tmp_path, {"services": [service(port)], "log": {"output": output}})
        with Gost("-C", cfg, ports=[port]) as g:
            hit(port)
            if output == "stdout":   # helpers.Gost captures stdout and stderr in one file
                assert wait_for(lambda: closes([json.loads(x) for x in g.log_text().splitlines()
                                                if x.startswith("{")]))
            else:
                time.sleep(0.5)
                assert g.log_text().strip() == "", g.log_text()
    r = subprocess.run([sys.executable, GOSTG, "-C", str(cfg), "-O", "json"], capture_output=True, text=True,
                       timeout=20)
    assert json.loads(r.stdout)["log"] == {"output": "none"}


def _backups(path):
    stem, ext = os.path.splitext(path)
    return sorted(glob.glob(f"{glob.escape(stem)}-*{ext}*"))


def test_rotation_by_size_keeps_max_backups_gzipped(tmp_path):
    """#201: a log that rotates instead of filling the disk: GOST's backup names (UTC time),
    gzip, at most maxBackups, the live file under maxSize."""
    port = free_port()
    log = tmp_path / "logs" / "gost.log"      # the directory is created, as GOST does
    cfg = write_cfg(tmp_path, {"services": [service(port)],
                               "log": {"output": str(log), "rotation": {"maxSize": 0.004, "maxBackups": 2,
                                                                        "compress": True}}})
    with Gost("-C", cfg, ports=[port]):
        hit(port, 30)      # ~30 × 800 bytes: several rotations of 4 KiB
        assert wait_for(lambda: len(closes(lines(log))) >= 1 and len(_backups(str(log))) == 2)
        time.sleep(0.3)
    backups = _backups(str(log))
    assert len(backups) == 2, backups
    sids = set()
    for b in backups:
        assert re.fullmatch(r"gost-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log\.gz", os.path.basename(b)), b
        with gzip.open(b, "rt") as f:
            evs = [json.loads(x) for x in f]
        assert evs and os.path.getsize(b) < 4 * 1024
        sids |= {e["sid"] for e in evs if "sid" in e}
    assert os.path.getsize(log) <= 0.004 * 1024 * 1024
    # the live file ends with the last connection; the backups hold the ones just before
    last = int(closes(lines(log))[-1]["sid"][-8:], 16)   # sid: 8 hex of process, 8 of counter
    assert last >= 30 and last - 6 <= max(int(x[-8:], 16) for x in sids) < last, (last, sids)


def test_rotation_max_age_deletes_old_backups(tmp_path):
    """maxAge: backups whose name says they are older than N days go at the next rotation."""
    port = free_port()
    log = tmp_path / "gost.log"
    old = tmp_path / "gost-2020-01-01T00-00-00.000.log"
    old_gz = tmp_path / "gost-2020-01-02T00-00-00.000.log.gz"
    recent_t = time.gmtime(time.time() - 3600)
    recent = tmp_path / f"gost-{time.strftime('%Y-%m-%dT%H-%M-%S', recent_t)}.000.log"
    unrelated = tmp_path / "other-2020-01-01T00-00-00.000.log"
    for f in (old, old_gz, recent, unrelated):
        f.write_text("x\n")
    log.write_text("y" * 5000 + "\n")   # over maxSize: the first line rotates
    cfg = write_cfg(tmp_path, {"services": [service(port)],
                               "log": {"output": str(log), "rotation": {"maxSize": 0.004, "maxAge": 1}}})
    with Gost("-C", cfg, ports=[port]):
        assert wait_for(lambda: not old.exists() and not old_gz.exists())
    assert recent.exists() and unrelated.exists()
    new = [b for b in _backups(str(log)) if "2020" not in b and b != str(recent)]
    assert len(new) == 1 and open(new[0]).read().startswith("yyy"), new


def test_sighup_reopens_the_file_after_logrotate_moved_it(tmp_path):
    port = free_port()
    log, moved = tmp_path / "gost.log", tmp_path / "gost.log.1"
    cfg = write_cfg(tmp_path, {"services": [service(port)], "log": {"output": str(log)}})
    with Gost("-C", cfg, ports=[port]) as g:
        hit(port)
        assert wait_for(lambda: closes(lines(log)))
        os.rename(log, moved)          # logrotate's move …
        g.signal(signal.SIGHUP)        # … then HUP
        assert wait_for(log.exists)
        hit(port)
        assert wait_for(lambda: closes(lines(log)))
        assert g.proc.poll() is None
    before, after = closes(lines(moved)), closes(lines(log))
    assert len(before) == 1 and len(after) == 1, (before, after)
    assert before[0]["sid"] != after[0]["sid"]


def test_periodic_reload_reopens_the_file(tmp_path):
    port = free_port()
    log, moved = tmp_path / "gost.log", tmp_path / "gost.log.old"
    cfg = write_cfg(tmp_path, {"services": [service(port)], "log": {"output": str(log)}})
    with Gost("-C", cfg, "-R", "1s", ports=[port]):
        assert wait_for(log.exists)
        os.rename(log, moved)
        assert wait_for(log.exists, timeout=5)
        hit(port)
        assert wait_for(lambda: closes(lines(log)))
    assert not closes(lines(moved))


def test_gost_logger_level_env_and_cli_priority(tmp_path):
    """GOST_LOGGER_LEVEL beats the file's level; -D beats GOST_LOGGER_LEVEL."""
    port = free_port()
    log = tmp_path / "gost.log"
    cfg = write_cfg(tmp_path, {"services": [service(port)], "log": {"level": "info", "output": str(log)}})

    def run(*extra, env=None):
        log.unlink(missing_ok=True)
        with Gost("-C", cfg, *extra, ports=[port], env=env):
            hit(port)
            wait_for(lambda: closes(lines(log)) or [e for e in lines(log) if e["level"] == "error"])
            time.sleep(0.3)
        return {e["level"] for e in lines(log)}

    assert "debug" not in run() and "info" in run()
    assert "debug" in run(env={"GOST_LOGGER_LEVEL": "debug"})
    assert run(env={"GOST_LOGGER_LEVEL": "error"}) == {"error"}
    assert "debug" in run("-D", env={"GOST_LOGGER_LEVEL": "error"})


def test_unknown_logger_name_fails_with_path_and_suggestion(tmp_path):
    port = free_port()
    cfg = write_cfg(tmp_path, {"services": [service(port, loggers=["console", "fiel"])],
                               "loggers": [{"name": "file", "log": {"output": str(tmp_path / "f.log")}},
                                           {"name": "console", "log": {"output": "stderr"}}]})
    r = run_gostg("-C", cfg)
    assert r.returncode != 0
    assert "services[0].loggers[1]" in r.stderr and "unknown logger 'fiel'" in r.stderr, r.stderr
    assert "did you mean 'file'" in r.stderr, r.stderr
    r = run_gostg("-C", cfg, "--check")
    assert r.returncode != 0 and "did you mean 'file'" in r.stderr + r.stdout


def test_bad_rotation_value_is_a_config_error(tmp_path):
    cfg = write_cfg(tmp_path, {"services": [service(free_port())],
                               "log": {"output": str(tmp_path / "x.log"), "rotation": {"maxSize": "big"}}})
    r = run_gostg("-C", cfg)
    assert r.returncode != 0 and "log.rotation.maxSize" in r.stderr, r.stderr


PRELUDE = """\
from gevent import monkey; monkey.patch_all()
import json, logging, socket, sys
import gostg
from gostg.observe.logstd import GostJsonFormatter

def hit(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET http://127.0.0.1:1/ HTTP/1.1\\r\\nHost: 127.0.0.1:1\\r\\n\\r\\n")
        s.recv(4096)
"""


def run_script(tmp_path, body):
    script = tmp_path / "app.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30, env=env,
                          cwd=str(tmp_path))


def test_embedding_with_a_stdlib_logger_and_output_logging(tmp_path):
    """``Gost(config, logger=logging.getLogger(…))``: records whose message is GOST's msg and
    whose ``gost`` attribute holds GOST's fields; the app's level decides. ``log.output:
    logging`` sends the same to the stdlib logger "gostg"."""
    port, port2 = free_port(), free_port()
    r = run_script(tmp_path, f"""
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record)
        app = logging.getLogger("myapp")
        app.setLevel(logging.INFO)
        app.addHandler(Keep())
        g = gostg.Gost({{"services": [{{"name": "emb", "addr": "127.0.0.1:{port}", "handler": {{"type": "http"}}}}]}},
                       logger=app)
        g.start()
        hit({port})
        g.stop()
        for rec in records:
            print("A", json.dumps({{"name": rec.name, "level": rec.levelname, "msg": rec.getMessage(),
                                   "gost": rec.gost, "line": GostJsonFormatter().format(rec)}}))
        gl = logging.getLogger("gostg")
        gl.setLevel(logging.DEBUG)
        kept = []
        gl.addHandler(type("K", (logging.Handler,), {{"emit": lambda self, r: kept.append(r)}})())
        g2 = gostg.Gost({{"services": [{{"name": "emb2", "addr": "127.0.0.1:{port2}", "handler": {{"type": "http"}}}}],
                          "log": {{"output": "logging", "level": "warn"}}}})
        g2.start()
        hit({port2})
        g2.stop()
        for rec in kept:
            print("B", json.dumps({{"level": rec.levelname, "msg": rec.getMessage(), "gost": rec.gost}}))
    """)
    assert r.returncode == 0, r.stderr
    a = [json.loads(x[2:]) for x in r.stdout.splitlines() if x.startswith("A ")]
    b = [json.loads(x[2:]) for x in r.stdout.splitlines() if x.startswith("B ")]
    close = [x for x in a if " >-< " in x["msg"]]
    assert close and close[0]["name"] == "myapp" and close[0]["level"] == "INFO", a
    g = close[0]["gost"]
    assert g["service"] == "emb" and g["handler"] == "http" and g["dst"] == "127.0.0.1:1" and g["sid"], g
    assert isinstance(g["inputBytes"], int)
    line = json.loads(close[0]["line"])
    assert line["msg"] == close[0]["msg"] and line["level"] == "info" and line["sid"] == g["sid"]
    assert not any(x["level"] == "DEBUG" for x in a), "the app's level decides"
    assert any(x["msg"].startswith("listening on") for x in a)
    # output: logging at level warn: the dial error, no info lines
    assert b and {x["level"] for x in b} == {"ERROR"}, b
    assert all(x["gost"]["service"] == "emb2" for x in b)


def test_reload_rebuilds_the_services_of_a_changed_logger(tmp_path):
    """SIGHUP with a named logger now writing elsewhere: its service logs there from then on;
    a service whose logger did not change keeps its port and its file."""
    port, other = free_port(), free_port()
    first, second, keep = tmp_path / "first.log", tmp_path / "second.log", tmp_path / "keep.log"

    def cfg(path):
        return write_cfg(tmp_path, {
            "services": [service(port, logger="moving"), service(other, name="steady", logger="fixed")],
            "loggers": [{"name": "moving", "log": {"output": str(path)}},
                        {"name": "fixed", "log": {"output": str(keep)}}]})
    f = cfg(first)
    with Gost("-C", f, ports=[port, other]) as g:
        hit(port)
        assert wait_for(lambda: closes(lines(first)))
        cfg(second)
        g.signal(signal.SIGHUP)
        assert wait_for(lambda: any(e["msg"].startswith("listening on") for e in lines(second)))
        hit(port)
        hit(other)
        assert wait_for(lambda: closes(lines(second)) and closes(lines(keep)))
        assert not any(e["msg"].startswith("service ") for e in lines(keep)), "steady was not rebuilt"
        assert any(e["msg"].startswith("service ") for e in lines(first)), "moving was"
    assert len(closes(lines(first))) == 1 and len(closes(lines(second))) == 1
    assert [e["service"] for e in closes(lines(keep))] == ["steady"]


def test_web_api_creates_a_logger_and_a_service_that_uses_it(tmp_path):
    from .peers import Api

    api_port, port = free_port(), free_port()
    log = tmp_path / "api-made.log"
    with Gost("-api", f"127.0.0.1:{api_port}", ports=[api_port]):
        api = Api(api_port)
        api.post("loggers", {"name": "made", "log": {"output": str(log)}})
        status, _, raw = api.request("POST", "/config/services", service(port, logger="mdae"))
        assert status >= 400 and b"did you mean 'made'" in raw, raw
        api.post("services", service(port, logger="made"))
        wait_port(port)
        hit(port)
        assert wait_for(lambda: closes(lines(log)))
        assert closes(lines(log))[0]["logger"] == "made"
        # PUT the logger elsewhere: the service that logs to it is rebuilt on the new one
        moved = tmp_path / "api-moved.log"
        api.put("loggers", "made", {"name": "made", "log": {"output": str(moved)}})
        hit(port)
        assert wait_for(lambda: closes(lines(moved)))
        assert len(closes(lines(log))) == 1
        api.delete("services", "svc")
        api.delete("loggers", "made")
        status, _, raw = api.request("POST", "/config/services", service(port, logger="made"))
        assert status >= 400 and b"unknown logger 'made'" in raw, raw
