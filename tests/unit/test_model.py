"""gostg.config.model: check() paths and canonical() ordering."""
import pytest

from gostg.config.model import canonical, check
from gostg.errors import ConfigError


def test_valid_config_passes():
    check({})
    check({"services": [{"name": "a"}, {"name": "b"}], "chains": [{"name": "a"}], "log": {"level": "info"},
           "hops": None})


@pytest.mark.parametrize("cfg,path", [
    ({"services": [{"name": "a"}, {"name": "a"}]}, "services[1].name"),
    ({"services": [{"name": "a"}, {"addr": ":1"}]}, "services[1].name"),
    ({"services": [{"name": ""}]}, "services[0].name"),
    ({"services": [{"name": 5}]}, "services[0].name"),
    ({"chains": [{"name": "c"}, {"name": "d"}, {"name": "c"}]}, "chains[2].name"),
    ({"bypasses": [{"name": "b"}, 3]}, "bypasses[1]"),
    ({"hosts": {"name": "h"}}, "hosts"),
    ({"limiters": "x"}, "limiters"),
    ({"tls": ["a"]}, "tls"),
    ({"log": "debug"}, "log"),
])
def test_check_errors_carry_path(cfg, path):
    with pytest.raises(ConfigError) as ei:
        check(cfg)
    assert ei.value.path == path
    assert str(ei.value).startswith(path + ":")


def test_same_name_in_different_kinds_is_fine():
    check({"services": [{"name": "x"}], "chains": [{"name": "x"}], "hops": [{"name": "x"}]})


def test_check_top_level_not_mapping():
    with pytest.raises(ConfigError):
        check(["services"])


def test_canonical_orders_keys_like_gost():
    cfg = {"log": {"level": "info"}, "x-unknown": 1,
           "chains": [{"hops": [{"nodes": [{"dialer": {}, "addr": "h:1", "name": "n"}], "name": "h",
                                 "selector": {"failTimeout": "1s", "strategy": "fifo"}}], "name": "c"}],
           "services": [{"handler": {"metadata": {}, "type": "http", "chain": "c"}, "addr": ":1", "name": "s",
                         "forwarder": {"selector": {"maxFails": 1, "strategy": "round"}, "nodes": []}}]}
    out = canonical(cfg)
    assert list(out) == ["services", "chains", "log", "x-unknown"]
    s = out["services"][0]
    assert list(s) == ["name", "addr", "handler", "forwarder"]
    assert list(s["handler"]) == ["type", "chain", "metadata"]
    assert list(s["forwarder"]["selector"]) == ["strategy", "maxFails"]
    hop = out["chains"][0]["hops"][0]
    assert list(out["chains"][0]) == ["name", "hops"]
    assert list(hop) == ["name", "selector", "nodes"]
    assert list(hop["selector"]) == ["strategy", "failTimeout"]
    assert list(hop["nodes"][0]) == ["name", "addr", "dialer"]
