"""The JSON logger writes what structlog's processor chain wrote (the one gostg used before it
rendered lines itself): same keys, same order, same text, one write per line."""
import io
import json
import logging

import pytest
import structlog

from gostg.observe import log as logmod

STAMP = "2026-12-06T14:23:04.666+0000"


class Out(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, s):
        self.writes += 1
        return super().write(s)


def chain(out, level="info"):
    """gostg's former JSON logger: structlog's processors and JSONRenderer."""
    return structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[structlog.processors.add_log_level, logmod._drop_none, logmod._timestamp,
                    structlog.processors.format_exc_info, structlog.processors.EventRenamer("msg"),
                    structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logmod.LEVELS[level]))


@pytest.fixture
def pair(monkeypatch):
    monkeypatch.setattr(logmod, "_now", lambda: STAMP)
    monkeypatch.setattr(logmod, "_output", lambda _o, _r=None: logmod._Safe(Out()))

    def make(level="info"):
        new = logmod.make_logger(level, "json", "x")
        old_out = Out()
        return new, new._out.f, chain(old_out, level), old_out
    return make


class Obj:
    def __repr__(self):
        return "<obj>"


class Custom:
    def __structlog__(self):
        return {"custom": 1}


BINDS = [{}, {"service": "svc", "listener": "tcp", "handler": "socks5"},
         {"service": "svc", "sid": "ab\u00e9\"\\\n", "remote": "127.0.0.1:1", "local": None}]
EVENTS = [
    ("info", "127.0.0.1:1 <-> 127.0.0.1:2", {"dst": "127.0.0.1:2"}),
    ("info", "127.0.0.1:1 >-< 127.0.0.1:2", {"dst": "127.0.0.1:2", "duration": 0.001234, "inputBytes": 64,
                                             "outputBytes": 0}),
    ("warning", "protocol error: bad", {"dst": None}),
    ("error", "ünïcode \u2028 \"quoted\"", {"n": True, "f": float("inf"), "l": [1, "a"], "o": Obj(),
                                             "c": Custom(), "d": {"k": None}}),
    ("info", "rebinds a context key", {"service": "other", "sid": None}),
    ("info", "reserved keys", {"level": "x", "time": "t", "msg": "m"}),
    ("debug", "below the level", {"a": 1}),
    ("info", 12345, {}),
]


@pytest.mark.parametrize("ctx", BINDS)
@pytest.mark.parametrize("method,event,kw", EVENTS)
def test_same_line_as_the_structlog_chain(pair, ctx, method, event, kw):
    new, new_out, old, old_out = pair()
    getattr(new.bind(**ctx), method)(event, **kw)
    getattr(old.bind(**ctx), method)(event, **kw)
    assert new_out.getvalue() == old_out.getvalue()


def test_rebinding_keeps_the_key_where_it_was(pair):
    new, new_out, old, old_out = pair()
    for lg in (new, old):
        lg.bind(a=1, b=None, c=3).bind(b=2, a=None, d=4).info("x", c=5)
    assert new_out.getvalue() == old_out.getvalue()
    assert list(json.loads(new_out.getvalue())) == ["b", "c", "d", "level", "time", "msg"]


def test_exception_and_interpolation(pair):
    new, new_out, old, old_out = pair("debug")
    for lg in (new, old):
        try:
            raise ValueError("boom")
        except ValueError:
            lg.bind(sid="1").exception("handler failed: %r", 7, dst="d")
        lg.warn("%(a)s-%(b)s", {"a": 1, "b": 2})
        lg.msg("msg is info")
        lg.log(logging.ERROR, "via log %s", "x")
        lg.fatal("fatal is critical")
    assert new_out.getvalue() == old_out.getvalue()
    assert "ValueError: boom" in new_out.getvalue()


def test_one_write_per_line_and_filtered_levels_write_nothing(pair):
    new, new_out, _old, _ = pair("info")
    lg = new.bind(service="s").bind(sid="1", remote="r", local="l", client="c")
    lg.debug("not written", x=1)
    assert new_out.writes == 0
    lg.info("a <-> b", dst="b")
    lg.info("a >-< b", dst="b", duration=0.5, inputBytes=1, outputBytes=2)
    assert new_out.writes == 2
    assert new_out.getvalue().count("\n") == 2
    assert not lg.is_enabled_for(logging.DEBUG) and lg.is_enabled_for(logging.INFO)


def test_json_format_does_not_import_structlog():
    import subprocess
    import sys
    code = ("import sys; from gostg.observe.log import make_logger; "
            "make_logger('info', 'json', 'stderr').bind(a=1).info('x', b=2); "
            "print('structlog' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r
    assert json.loads(r.stderr)["msg"] == "x"
