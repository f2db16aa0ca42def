"""The log file sink: lumberjack's backup names, pruning by count and age, the writer thread
(lines in order, reopen, close drains), the stdlib bridge and logger groups."""
import gzip
import logging
import os
import time

from gostg.observe import logfile
from gostg.observe.log import make_logger
from gostg.observe.loggers import GroupLogger, for_service
from gostg.observe.logstd import GostJsonFormatter, StdlibLogger, adapt
from gostg.errors import ConfigError

import pytest


def test_backup_name_is_lumberjacks():
    t = 1_700_000_000.123
    assert logfile.backup_name("/var/log/gost.log", t) == "/var/log/gost-2023-11-14T22-13-20.123.log"
    assert logfile.backup_name("/x/gost", t).endswith("/gost-2023-11-14T22-13-20.123")


def test_local_time_names_read_back(tmp_path):
    path = str(tmp_path / "gost.log")
    t = 1_700_000_000.5
    for local in (True, False):
        name = logfile.backup_name(path, t, local)
        open(name, "w").close()
        assert logfile.backups(path, local) == [(pytest.approx(t), name)]
        os.remove(name)


def test_prune_by_count_and_age(tmp_path):
    path = str(tmp_path / "gost.log")
    now = time.time()
    made = []
    for days in (0.1, 1.5, 2.5, 40):
        name = logfile.backup_name(path, now - days * 86400) + (".gz" if days > 2 else "")
        open(name, "w").close()
        made.append(name)
    (tmp_path / "gost.log").write_text("live")
    (tmp_path / "gost-notatime.log").write_text("keep")
    # maxAge 2 days: the 2.5 and 40 day old backups go, whatever their extension
    gone = logfile.prune(path, max_age_days=2, now=now)
    assert sorted(gone) == sorted(made[2:])
    # maxBackups 1: only the newest stays
    assert logfile.prune(path, max_backups=1, now=now) == [made[1]]
    assert [f for _, f in logfile.backups(path)] == [made[0]]
    assert (tmp_path / "gost.log").exists() and (tmp_path / "gost-notatime.log").exists()


def test_sink_writes_in_order_rotates_and_reopens(tmp_path):
    path = tmp_path / "a.log"
    s = logfile.FileSink(str(path), {"maxSize": 200 / 1024 / 1024, "maxBackups": 2, "compress": True})
    try:
        for i in range(30):
            s.emit(f"line {i:03d} " + "x" * 40 + "\n")
        assert s.sync()
        os.rename(path, tmp_path / "moved.log")
        s.reopen()
        s.emit("after\n")
    finally:
        s.close()
    assert path.read_text() == "after\n"
    backups = [f for _, f in logfile.backups(str(path))]
    assert len(backups) == 2 and all(f.endswith(".log.gz") for f in backups)
    text = "".join(gzip.open(f, "rt").read() for f in reversed(backups)) + (tmp_path / "moved.log").read_text()
    nums = [int(x.split()[1]) for x in text.splitlines()]
    assert nums == sorted(nums) and nums[-1] == 29     # in order, the newest kept
    assert all(os.path.getsize(f) < 200 for f in backups)


def test_sink_drops_and_says_so_when_the_writer_is_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(logfile, "MAX_PENDING", 0)
    s = logfile.FileSink(str(tmp_path / "d.log"))
    try:
        s.emit("lost\n")
        assert s.dropped == 1
        monkeypatch.setattr(logfile, "MAX_PENDING", 10)
        s.emit("kept\n")
    finally:
        s.close()
    text = (tmp_path / "d.log").read_text()
    assert "1 lines dropped" in text and text.endswith("kept\n") and "lost" not in text


def test_unopenable_path_is_a_config_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError) as e:
        make_logger("info", "json", str(tmp_path / "f" / "x.log"))
    assert e.value.path == "log.output"


def test_stdlib_logger_records_carry_gost_fields():
    seen = []
    lg = logging.getLogger("gostg-test-std")
    lg.setLevel(logging.INFO)
    h = logging.Handler()
    h.emit = seen.append
    lg.addHandler(h)
    try:
        log = adapt(lg).bind(service="s", name="n")     # ``name`` would collide as an extra
        assert isinstance(log, StdlibLogger)
        log.debug("hidden")
        log.info("shown %s", "x", dst="d:1", none=None)
        assert [r.getMessage() for r in seen] == ["shown x"]
        assert seen[0].gost == {"service": "s", "name": "n", "dst": "d:1"}
        assert seen[0].funcName == "test_stdlib_logger_records_carry_gost_fields"
        line = GostJsonFormatter().format(seen[0])
        assert line.startswith('{"service": "s", "name": "n", "dst": "d:1", "level": "info", "time": ')
    finally:
        lg.removeHandler(h)


class _Rec:
    def __init__(self, out, ctx=()):
        self.out, self.ctx = out, dict(ctx)

    def bind(self, **kw):
        return _Rec(self.out, {**self.ctx, **kw})

    def info(self, event, **kw):
        self.out.append((self.ctx.get("logger"), event, kw))


def test_group_fans_out_and_service_lookup():
    out = []
    a, b = _Rec(out, {"logger": "a"}), _Rec(out, {"logger": "b"})
    g = for_service({"loggers": ["a", "b"]}, "services[0]", {"a": a, "b": b}, None)
    assert isinstance(g, GroupLogger)
    g.bind(sid="1").info("hello", dst="x")
    assert out == [("a", "hello", {"dst": "x"}), ("b", "hello", {"dst": "x"})]
    assert for_service({"logger": "a", "loggers": ["a"]}, "p", {"a": a}, None) is a
    default = object()
    assert for_service({}, "p", {"a": a}, default) is default
    with pytest.raises(ConfigError) as e:
        for_service({"logger": "A1"}, "services[2]", {"a1": a}, None)
    assert e.value.path == "services[2].logger" and e.value.suggestion == "a1"


def test_a_failing_file_is_said_once_on_stderr_and_recovers(tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    s = logfile.FileSink(str(d / "x.log"))
    try:
        s.emit("one\n")
        assert s.sync()
        os.rename(d, tmp_path / "gone")      # the directory goes away: reopen fails
        s.reopen()
        s.emit("lost\n")
        s.emit("lost too\n")
        assert s.sync()
        assert s.errors >= 1
        d.mkdir()
        s.reopen()
        s.emit("back\n")
        assert s.sync()
    finally:
        s.close()
    err = capsys.readouterr().err
    assert err.count("gostg: warning: log file") == 1, err
    assert (d / "x.log").read_text() == "back\n"
    assert (tmp_path / "gone" / "x.log").read_text() == "one\n"


def test_rotation_without_a_file_output_is_said():
    from gostg.config.validate import validate

    found = validate({"log": {"rotation": {"maxSize": 1}},
                      "loggers": [{"name": "f", "log": {"output": "/tmp/x.log", "rotation": {"maxSize": 1}}},
                                  {"name": "s", "log": {"output": "stdout", "rotation": {"compress": True}}}]})
    assert [(p.level, p.path) for p in found] == [("warning", "log.rotation"), ("warning", "loggers[1].log.rotation")]
    assert "output is 'stdout'" in str(found[1])
    bad = validate({"log": {"output": "/tmp/x.log", "rotation": {"maxSize": -1, "maxBackups": "x"}}})
    assert {p.path for p in bad if p.level == "error"} == {"log.rotation.maxSize", "log.rotation.maxBackups"}


def test_rotation_values_are_read_as_gost_does(tmp_path):
    h = logfile._Rotating(str(tmp_path / "r.log"), {"maxsize": "0.5", "compress": "false", "maxBackups": "3"})
    try:
        assert (h.maxBytes, h.compress, h.max_backups, h.local) == (512 * 1024, False, 3, False)
        h.configure({})            # rotation given without maxSize: lumberjack's 100 MB
        assert h.maxBytes == 100 * 1024 * 1024
        h.configure(None)          # no rotation: never rotated
        assert h.maxBytes == 0
    finally:
        h.close()


def test_text_format_lines_are_whole_in_a_rotated_file(tmp_path):
    path = tmp_path / "t.log"
    log = make_logger("info", "text", str(path), {"maxSize": 300 / 1024 / 1024, "maxBackups": 0})
    for i in range(20):
        log.info("hello", n=i)
    assert logfile._sinks[str(path)].sync()
    files = [f for _, f in logfile.backups(str(path))] + [str(path)]
    assert len(files) > 2
    for f in files:
        text = open(f).read()
        assert text and text.endswith("\n")
        assert all(x.startswith("time=") and "msg=hello" in x for x in text.splitlines()), text


def test_stdlib_warnings_reach_the_status_pages_recent_errors():
    from gostg.observe import recent

    recent.clear()
    lg = logging.getLogger("gostg-test-recent")
    lg.setLevel(logging.INFO)
    lg.propagate = False
    log = adapt(lg).bind(service="s")
    log.info("fine")
    log.error("broken", dst="d:1")
    evs = recent.recent()
    assert [(e["msg"], e["level"], e["service"], e["dst"]) for e in evs] == [("broken", "error", "s", "d:1")]
    recent.clear()


def test_gzip_of_a_big_backup_does_not_stall_the_hub(tmp_path):
    """The rotation's gzip runs on the writer thread (zlib drops the GIL): the gevent hub
    keeps its timers while a 16 MB backup is compressed."""
    import gevent

    path = tmp_path / "big.log"
    with open(path, "wb") as f:
        f.write(os.urandom(16 << 20))
    s = logfile.FileSink(str(path), {"maxSize": 16, "compress": True})
    try:
        t0 = last = time.monotonic()
        gap = 0.0
        s.emit("trigger\n")
        while time.monotonic() - t0 < 20:
            gevent.sleep(0.005)
            now = time.monotonic()
            gap, last = max(gap, now - last), now
            if path.exists() and path.stat().st_size == len("trigger\n"):   # rotated, gzipped, written
                break
        took = time.monotonic() - t0
    finally:
        s.close()
    assert path.read_text() == "trigger\n"
    (_, gz), = logfile.backups(str(path))
    assert gz.endswith(".gz") and os.path.getsize(gz) > 16 << 20   # random data does not shrink
    assert gap < 0.25 and gap < took / 3, (gap, took)
