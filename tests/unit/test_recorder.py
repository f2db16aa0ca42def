"""observe/recorder.py and records.py on their own: file rotation with GOST's keys, who gets a
record and how it is counted, the handler record's shape, the bounded queue of a slow endpoint,
and that a config without recorders loads none of it (end to end: tests/integration/test_recorders.py)."""
import gzip
import json
import os
import subprocess
import sys

import pytest

from gostg.config.build import build_service
from gostg.core.context import Context
from gostg.core.registry import Registries
from gostg.errors import ConfigError
from gostg.observe import recorder as R, records as RS
from gostg.observe.log import make_logger

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Collect(R.Recorder):
    def __init__(self, name):
        super().__init__(name)
        self.got = []

    def record(self, data, metadata=None):
        self.got.append((data, metadata))


class Log:
    def __init__(self):
        self.lines = []

    def warning(self, msg, **kw):
        self.lines.append((msg, kw))


def registries(**recs):
    reg = Registries()
    for name, r in recs.items():
        reg.recorders.set(name, r)
    return reg


def test_file_rotation_by_size_keeps_max_backups_and_compresses(tmp_path):
    path = tmp_path / "r.log"
    r = R.FileRecorder("f", str(path), "\n", {"maxSize": 0.0002, "maxBackups": 2, "compress": True})   # ~210 B
    for i in range(40):
        r.record(b"record-%02d-" % i + b"x" * 20)
    r.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["r.log", "r.log.1.gz", "r.log.2.gz"], names
    text = gzip.open(tmp_path / "r.log.1.gz").read() + path.read_bytes()
    assert text.endswith(b"record-39-" + b"x" * 20 + b"\n") and b"record-38-" in text
    assert os.path.getsize(path) <= 210


def test_file_without_rotation_appends_with_the_separator_only_when_set(tmp_path):
    path = tmp_path / "sub" / "r.txt"
    path.parent.mkdir()
    path.write_bytes(b"old|")
    r = R.FileRecorder("f", str(path))
    r.record(b"a")
    r.record(b"b")
    r.close()
    assert path.read_bytes() == b"old|ab"   # GOST: no separator unless sep is set


def test_every_recorder_naming_a_record_gets_it_and_each_is_counted(monkeypatch):
    counted = []
    monkeypatch.setattr(RS.metrics, "recorder_record", counted.append)
    a, b = Collect("a"), Collect("b")
    sr = RS.ServiceRecorders([("a", RS.DIAL_ADDRESS, None), ("b", RS.DIAL_ADDRESS, {"k": 1}),
                             ("a", RS.CLIENT_ADDRESS, None)], registries(a=a, b=b))
    assert sr.client and sr.dial and not sr.handler
    sr.emit(RS.DIAL_ADDRESS, b"example.com")
    sr.emit(RS.HANDLER, b"{}")             # nobody asked for it
    sr.emit(RS.CLIENT_ADDRESS, b"")        # nothing to record (GOST's len(data) == 0)
    assert a.got == [(b"example.com", None)] and b.got == [(b"example.com", {"k": 1})]
    assert counted == ["a", "b"]


def test_dial_records_the_host_without_port_and_the_error_too():
    a = Collect("a")
    sr = RS.ServiceRecorders([("a", RS.DIAL_ADDRESS, None), ("a", RS.DIAL_ADDRESS_ERROR, None)], registries(a=a))
    sr.dialed("[::1]:443", None)
    sr.dialed("example.com:80", None, error=OSError("refused"))
    sr.dialed("", None)                   # a UDP association: no target yet
    sr.dialed("no-port", None)            # malformed: as it came, never an exception of its own
    assert [d for d, _ in a.got] == [b"::1", b"example.com", b"example.com", b"no-port"]


def test_handler_record_has_gosts_fields_in_its_order():
    log = make_logger("info", "json", "none")
    sr = RS.ServiceRecorders([("a", RS.HANDLER, None)], registries(a=Collect("a")))
    ctx = RS.RecordedContext(sr, "svc", "10.0.0.1:5000", "127.0.0.1:8080", log, None, peer="127.0.0.1:4000")
    ctx.target = "example.com:443"
    ctx.client_id = "user1"
    sr.dialed("example.com:443", ctx, error=OSError("dial example.com:443: refused"), route="n1@1.2.3.4:1080 > example.com:443")
    ctx.stats_bytes(10, 20)
    ctx.stats_bytes(1, 2)
    ctx.ended()
    rec = json.loads(sr.registries.recorders.get("a").got[0][0])
    assert list(rec) == ["service", "network", "remote", "local", "client", "src", "dst", "host", "clientIP",
                         "clientID", "route", "inputBytes", "outputBytes", "err", "sid", "duration", "time"]
    assert rec["remote"] == "127.0.0.1:4000" and rec["client"] == "10.0.0.1:5000" and rec["clientIP"] == "10.0.0.1"
    assert (rec["inputBytes"], rec["outputBytes"]) == (11, 22) and rec["err"] == "dial example.com:443: refused"
    assert rec["route"] == "n1@1.2.3.4:1080 > example.com:443" and rec["sid"] == ctx.sid
    assert isinstance(rec["duration"], int) and rec["duration"] >= 0


@pytest.mark.parametrize("tz,t,text", [("UTC", 0.5, "1970-01-01T00:00:00.500000Z"),
                                       ("CST-8", 1726278418.997252, "2024-09-14T09:46:58.997252+08:00")])
def test_go_time_is_rfc3339_with_the_local_offset_z_for_utc(monkeypatch, tz, t, text):
    import time
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    RS._stamp[0] = None   # formatted once a second: not across a change of TZ
    try:
        assert RS._go_time(t) == text
    finally:
        monkeypatch.undo()
        time.tzset()
        RS._stamp[0] = None


def test_a_slow_endpoint_fills_a_bounded_queue_then_drops_with_one_warning(monkeypatch):
    monkeypatch.setattr(R, "MAX_QUEUE", 3)
    log = Log()
    r = R.TCPRecorder("t", "127.0.0.1:9", 1.0, log)
    monkeypatch.setattr(r, "_worker", object())   # a worker that never gets to run
    for i in range(10):
        r.record(b"%d" % i)
    assert len(r._q) == 3 and r.dropped == 7
    assert len(log.lines) == 1 and "dropped" in log.lines[0][0] and log.lines[0][1]["recorder"] == "t"


def test_http_recorder_url_forms():
    r = R.HTTPRecorder("h", "127.0.0.1:8000/rec", header={"content-type": "text/plain", "A": "b"})
    assert (r.addr, r.path, r.tls) == (("127.0.0.1", 8000), "/rec", False)
    req = r.request(b"xyz")
    assert req.startswith(b"POST /rec HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n") and req.endswith(b"\r\n\r\nxyz")
    assert b"content-type: text/plain" in req and b"application/json" not in req and b"Content-Length: 3" in req
    assert R.HTTPRecorder("h", "https://example.com").addr == ("example.com", 443)
    with pytest.raises(ConfigError):
        R.HTTPRecorder("h", "ftp://example.com/")


def test_a_recorder_is_exactly_one_of_file_tcp_http_redis(tmp_path):
    with pytest.raises(ConfigError, match="one of plugin, file, tcp, http, redis"):
        R.build_recorder({"name": "r"}, "recorders[0]")
    with pytest.raises(ConfigError, match="not file, tcp"):
        R.build_recorder({"name": "r", "file": {"path": str(tmp_path / "x")}, "tcp": {"addr": ":1"}}, "recorders[0]")
    with pytest.raises(ConfigError) as e:
        R.build_recorder({"name": "r", "file": {"path": "/proc/no/such/dir/x"}}, "recorders[2]")
    assert e.value.path == "recorders[2].file.path"


def test_a_service_without_recorders_has_none_and_plain_contexts():
    s = build_service({"name": "s", "addr": "127.0.0.1:0", "handler": {"type": "http"}}, "services[0]",
                      Registries(), make_logger("info", "json", "none"))
    assert s.recorders is None and s.ctx_class is Context and s.handler.router.recorders is None


def test_a_service_with_only_a_client_record_keeps_plain_contexts_and_router():
    reg = registries(a=Collect("a"))
    s = build_service({"name": "s", "addr": "127.0.0.1:0", "handler": {"type": "http"},
                       "recorders": [{"name": "a", "record": RS.CLIENT_ADDRESS}]}, "services[0]",
                      reg, make_logger("info", "json", "none"))
    assert s.recorders.client and s.ctx_class is Context and s.handler.router.recorders is None


def test_a_config_without_recorders_never_imports_the_recorder_module():
    code = ("import gostg; g = gostg.Gost({'services': [{'name': 's', 'addr': '127.0.0.1:0', "
            "'handler': {'type': 'http'}}]}, logger=None).build(); import sys; "
            "print('gostg.observe.recorder' in sys.modules or 'gostg.observe.records' in sys.modules, "
            "'redis' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_plugin_answer_parsing_reads_chunked_bodies():
    class S:
        def __init__(self, data):
            self.data = [data[i:i + 7] for i in range(0, len(data), 7)]

        def recv(self, n):
            return self.data.pop(0) if self.data else b""
    ans = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ok\"\r\n6\r\n:true}\r\n0\r\n\r\n"
    assert R._answer(S(ans), True) == (200, b'{"ok":true}')
    assert R._answer(S(b"HTTP/1.0 503 Busy\r\n\r\n"), False) == (503, b"")
    with pytest.raises(OSError, match="not an HTTP answer"):
        R._answer(S(b"SSH-2.0-OpenSSH\r\n"), False)


class Slow(R._Background):
    kind = "test"

    def __init__(self, delay, log=None):
        super().__init__("slow", 5.0, log)
        self.delay, self.sent = delay, []

    def send(self, data, metadata):
        import gevent
        gevent.sleep(self.delay)
        self.sent.append(data)


def test_close_lets_the_queue_drain_until_the_deadline_then_drops_the_rest(monkeypatch):
    import time
    r = Slow(0.01)
    for i in range(3):
        r.record(b"%d" % i)
    r.close(time.monotonic() + 2)
    assert r.sent == [b"0", b"1", b"2"] and r._worker is None
    monkeypatch.setattr(R, "STOP_GRACE", 0.05)
    log = Log()
    stuck = Slow(60, log)
    stuck.record(b"a")
    stuck.record(b"b")
    t0 = time.monotonic()
    stuck.close(time.monotonic() - 1)      # the stop's deadline has passed: a short grace only
    assert time.monotonic() - t0 < 1 and stuck.sent == []
    assert "1 records not sent before the stop" in log.lines[0][0]
