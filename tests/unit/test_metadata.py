"""gostg.metadata: Go-style durations and the case-insensitive, loosely typed metadata view."""
import math

import pytest

from gostg.errors import ConfigError
from gostg.config.metadata import Metadata, format_duration, parse_duration


@pytest.mark.parametrize("v,expect", [
    ("1m30s", 90.0),
    ("500ms", 0.5),
    ("1h", 3600.0),
    ("1h2m3s", 3723.0),
    ("1.5s", 1.5),
    ("2.5m", 150.0),
    ("100us", 1e-4),
    ("100µs", 1e-4),
    ("10ns", 1e-8),
    ("10", 10.0),          # GOST: a bare number is seconds
    ("0", 0.0),
    ("  5s ", 5.0),
    ("-1s", -1.0),
    ("-1m30s", -90.0),
    ("+2s", 2.0),
    (10, 10.0),
    (2.5, 2.5),
    (0, 0.0),
    (-3, -3.0),
    (None, 0.0),
    ("", 0.0),
])
def test_parse_duration(v, expect):
    assert parse_duration(v) == pytest.approx(expect)


@pytest.mark.parametrize("v", [
    "abc", "10x", "s", "1s2", "1 s", "1.2.3s", "m1", "1s 2m", True, False,
    "nan", "inf", "-inf", "NaN",   # floats Python accepts but no duration means
    "--1s",                        # Go's time.ParseDuration: invalid
])
def test_parse_duration_bad_values(v):
    with pytest.raises(ConfigError) as ei:
        parse_duration(v, "services[0].metadata.readTimeout")
    assert ei.value.path == "services[0].metadata.readTimeout"


def test_parse_duration_result_is_finite_for_any_accepted_string():
    for s in ("1e308", "1e309", "9" * 400):
        try:
            d = parse_duration(s)
        except ConfigError:
            continue
        assert math.isfinite(d), s


def test_format_duration_round_trips():
    for secs in (0, 1, 30, 1.5, 0.25, 3600):
        assert parse_duration(format_duration(secs)) == pytest.approx(secs)
    assert format_duration(30) == "30s"


def test_keys_are_case_insensitive():
    md = Metadata({"ReadTimeout": "5s", "keepAlive": "true"})
    assert md.duration("readtimeout") == 5.0
    assert md.duration("READTIMEOUT") == 5.0
    assert md.bool("KeepAlive") is True
    assert "readTIMEOUT" in md and "nope" not in md


def test_first_present_key_wins():
    md = Metadata({"max_fails": "3", "maxFails": "2"})
    assert md.int("maxFails", "max_fails") == 2
    assert md.int("nope", "max_fails") == 3
    assert Metadata({"a": None, "b": "x"}).str("a", "b") == "x"


@pytest.mark.parametrize("v,expect", [
    ("true", True), ("TRUE", True), ("True", True), ("1", True), ("t", True), (" true ", True),
    ("false", False), ("0", False), ("f", False), ("", False), ("no", False), ("junk", False),
    (True, True), (False, False), (1, True), (0, False), (2.0, True),
])
def test_bool(v, expect):
    assert Metadata({"k": v}).bool("k") is expect


def test_defaults():
    md = Metadata({})
    assert md.bool("x") is False and md.bool("x", default=True) is True
    assert md.int("x") == 0 and md.int("x", default=7) == 7
    assert md.float("x") == 0.0
    assert md.str("x") == "" and md.str("x", default="d") == "d"
    assert md.duration("x") == 0.0 and md.duration("x", default=15.0) == 15.0
    assert md.list("x") == []
    assert Metadata(None).raw("x") is None


def test_int_and_float():
    md = Metadata({"a": "3", "b": 4, "c": "2.9", "d": "zz", "e": "", "f": True, "g": "1.5"})
    assert md.int("a") == 3 and md.int("b") == 4 and md.int("c") == 2
    assert md.int("d", default=-1) == -1 and md.int("e", default=5) == 5
    assert md.int("f") == 1
    assert md.float("g") == 1.5 and md.float("d", default=0.5) == 0.5


@pytest.mark.parametrize("v", ["inf", "-inf", "1e400", "nan", [1], {"a": 1}])
def test_int_of_unusable_value_falls_back_to_default(v):
    # e.g. `-L :8080?retries=inf` must not crash the command-line parser with OverflowError
    assert Metadata({"k": v}).int("k", default=9) == 9


def test_duration_getter_swallows_bad_values():
    md = Metadata({"a": "1m", "b": "bogus", "c": 20})
    assert md.duration("a") == 60.0
    assert md.duration("b", default=3.0) == 3.0
    assert md.duration("c") == 20.0


def test_list():
    assert Metadata({"k": "a, b,,c ,"}).list("k") == ["a", "b", "c"]
    assert Metadata({"k": ["x", 1]}).list("K") == ["x", "1"]
    assert Metadata({"k": ("y",)}).list("k") == ["y"]
    assert Metadata({"k": "single"}).list("k") == ["single"]
    assert Metadata({"k": ""}).list("k") == []
