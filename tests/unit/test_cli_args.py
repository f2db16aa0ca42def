"""GOST's flag rules as gostg.cli.normalize applies them (pure: no process, no socket)."""
import pytest

from gostg.cli import UsageError, _scan, normalize, parse


def test_go_and_gnu_spellings_are_one():
    assert normalize(["-L=http://:8080", "--L", "socks5://:1080", "-api", ":1", "--metrics=:2", "-DD"]) == [
        "-L", "http://:8080", "-L", "socks5://:1080", "--api=:1", "--metrics=:2", "--DD"]


def test_repeated_single_valued_flag_keeps_the_last():
    assert normalize(["-O", "json", "-O=yaml", "-R", "1s", "-R", "2s", "--api", ":1", "-api=:2"]) == [
        "-O", "yaml", "-R", "2s", "--api=:2"]


def test_repeatable_flags_accumulate_in_order():
    args = parse(["-C", "a.yaml", "-F", "x://h:1", "-C", "-", "-F", "y://h:2"])
    assert args["-C"] == ["a.yaml", "-"] and args["-F"] == ["x://h:1", "y://h:2"]


def test_boolean_flags():
    assert normalize(["-D", "-D"]) == ["-D"]
    assert normalize(["-D", "-D=false"]) == []
    assert normalize(["-D=1", "--check", "-check"]) == ["-D", "--check"]
    with pytest.raises(UsageError, match="invalid boolean value 'maybe'"):
        normalize(["-D=maybe"])


def test_stuck_value():
    assert normalize(["-Lsocks5://:1080?a=b"]) == ["-L", "socks5://:1080?a=b"]


@pytest.mark.parametrize("argv, msg", [(["--bogus"], "--bogus: unknown flag"), (["-x=1"], "-x: unknown flag"),
                                       (["-L"], "-L: flag needs an argument"),
                                       (["http://:1"], "unexpected argument 'http://:1'")])
def test_errors(argv, msg):
    with pytest.raises(UsageError) as e:
        normalize(argv)
    assert msg in str(e.value)


def test_scan_sees_version_and_help_past_errors():
    opts, errors = _scan(["--bogus", "-V", "-h", "-L"])
    assert opts["-V"] and opts["-h"] and len(errors) == 2


def test_parse_matches_the_usage_text():
    args = parse(["-L", "socks5://:1080", "-O", "json", "--check", "-D"])
    assert args["-L"] == ["socks5://:1080"] and args["-O"] == "json" and args["--check"] and args["-D"]
    assert args["--api"] is None and not args["-V"]


def test_metrics_flag_parsed_like_gost():
    """``-metrics [user:pass@]addr[?path=]`` (GOST's form) → the metrics object, not an address
    with the credentials and query still in it."""
    from gostg.cli import parse_metrics
    assert parse_metrics("user:pass@:9000?path=/m") == {
        "addr": ":9000", "path": "/m", "auth": {"username": "user", "password": "pass"}}
    assert parse_metrics(":9000") == {"addr": ":9000"}
