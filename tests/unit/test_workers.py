"""-workers pieces that need no process: the value, what each worker runs, summed stats and
metrics, the split limits, the control socket's framing, the shareable listeners."""
import math
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostg.config.metadata import Metadata
from gostg.errors import ConfigError
from gostg.policy.limiter import common, parse_counts, parse_rates, parse_traffic
from gostg.workers import count, wanted
from gostg.workers import channel
from gostg.workers.sums import StatsCarry, merge_status
from gostg.workers.metricsum import Carry, merge
from gostg.workers.share import metrics_wanted, worker_config


# -- the value ----------------------------------------------------------------------------------

def test_count_takes_numbers_and_auto():
    import os
    assert count(None) == 1 and count(1) == 1 and count("3") == 3 and count(" 2 ") == 2
    assert count("auto") == count("AUTO") == len(os.sched_getaffinity(0))
    for bad in (0, -1, 257, "0", "two", "", "1.5", 1.5, True, [2], {"n": 2}):
        with pytest.raises(ConfigError) as exc:
            count(bad)
        assert exc.value.path == "workers"


def test_auto_counts_the_cores_this_process_may_use(monkeypatch):
    """``auto`` under taskset/a cpuset: the allowed cores, not the machine's (os.cpu_count())."""
    import os
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert count("auto") == 1
    monkeypatch.delattr(os, "sched_getaffinity")   # a platform without it: the machine's count
    assert count("auto") == 64


@given(st.integers(min_value=1, max_value=256))
def test_count_accepts_every_number_in_range(n):
    assert count(n) == n == count(str(n))


@given(st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=True), st.none()))
@settings(max_examples=200)
def test_count_answers_or_refuses_never_crashes(v):
    try:
        n = count(v)
    except ConfigError:
        return
    assert 1 <= n <= 256


def test_the_flag_wins_over_the_file():
    assert wanted({"workers": 4}) == 4
    assert wanted({"workers": 4}, "1") == 1
    with pytest.raises(ConfigError) as exc:
        wanted({}, "zero")
    assert exc.value.path == "-workers"


# -- what each worker runs --------------------------------------------------------------------

CFG = {
    "workers": 2, "api": {"addr": ":18080"}, "metrics": {"addr": ":9000", "metadata": {"clientLabel": False}},
    "log": {"level": "debug"},
    "services": [
        {"name": "tcp", "addr": ":1080", "handler": {"type": "socks5"},
         "metadata": {"PreUp": ["echo up"], "postDown": "echo down", "keep": 1}},
        {"name": "udp", "addr": ":53", "handler": {"type": "udp"}, "listener": {"type": "udp"}},
    ],
}


def test_worker_0_runs_everything_the_others_the_shared_ports():
    w0 = worker_config(CFG, 0, {"tcp"})
    w1 = worker_config(CFG, 1, {"tcp"})
    for w in (w0, w1):
        assert not {"api", "metrics", "workers"} & set(w)
        assert w["log"] == {"level": "debug"}
        assert w["services"][0]["metadata"] == {"keep": 1}   # hooks run in the supervisor, once
    assert [s["name"] for s in w0["services"]] == ["tcp", "udp"]
    assert [s["name"] for s in w1["services"]] == ["tcp"]
    assert CFG["services"][0]["metadata"]["PreUp"] == ["echo up"]   # the model is not touched


def test_supervisor_services_reach_no_worker():
    cfg = {"services": CFG["services"] + [{"name": "api", "addr": ":1", "handler": {"type": "api"}}]}
    for i in (0, 1):
        assert "api" not in [s["name"] for s in worker_config(cfg, i, {"tcp", "api"}, {"api"})["services"]]


def test_metrics_wanted():
    assert metrics_wanted(CFG) is False
    assert metrics_wanted({"metrics": {"addr": ":9000"}}) is True
    assert metrics_wanted({}) is None and metrics_wanted({"metrics": {}}) is None
    svc = {"name": "m", "handler": {"type": "metrics", "metadata": {"clientLabel": "false"}}}
    assert metrics_wanted({"services": [svc]}) is False
    assert metrics_wanted({"services": [{"name": "m", "handler": {"type": "metrics"}}]}) is True


def test_shareable_listeners():
    from gostg.listeners.dns import DNSListener
    from gostg.listeners.remote import RTCPListener, RUDPListener
    from gostg.listeners.tcp import TCPListener, UnixListener
    from gostg.listeners.tls import TLSListener
    from gostg.listeners.udp import UDPListener

    def md(**kw):
        return Metadata(kw)
    assert TCPListener(":1", md()).shareable and TLSListener.shareable
    assert not UDPListener.shareable and not UnixListener.shareable
    local = RTCPListener(":1", md())
    assert local.shareable                      # no chain: a local TCP listener
    local.chain = "c"
    assert not local.shareable                  # bound on the far server: once
    assert not RUDPListener(":1", md()).shareable
    assert DNSListener(":1", md(mode="tcp")).shareable and not DNSListener(":1", md()).shareable


# -- sums ---------------------------------------------------------------------------------------

def test_merge_status_sums_stats():
    a = {"createTime": 5, "state": "ready", "events": [1], "stats": {"totalConns": 3, "currentConns": 1,
                                                                       "inputBytes": 10}}
    b = {"createTime": 4, "state": "ready", "events": [2], "stats": {"totalConns": 4, "currentConns": 0,
                                                                       "inputBytes": 5}}
    m = merge_status([a, b])
    assert m["stats"] == {"totalConns": 7, "currentConns": 1, "inputBytes": 15}
    assert m["createTime"] == 4 and m["events"] == [1] and a["stats"]["totalConns"] == 3


TEXT = """# HELP gost_service_requests_total Total number of requests
# TYPE gost_service_requests_total counter
gost_service_requests_total{host="h",service="s"} 3.0
# HELP gost_services Current number of services
# TYPE gost_services gauge
gost_services{host="h"} 2.0
# HELP gost_service_request_duration_seconds Distribution
# TYPE gost_service_request_duration_seconds histogram
gost_service_request_duration_seconds_bucket{host="h",le="1"} 2.0
gost_service_request_duration_seconds_bucket{host="h",le="+Inf"} 3.0
gost_service_request_duration_seconds_sum{host="h"} 0.5
gost_service_request_duration_seconds_count{host="h"} 3.0
# HELP process_start_time_seconds Start time
# TYPE process_start_time_seconds gauge
process_start_time_seconds 100.0
"""


def _samples(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def test_metrics_merge():
    other = TEXT.replace("3.0", "4.0").replace("100.0", "90.0").replace("gost_services{host=\"h\"} 2.0",
                                                                       "gost_services{host=\"h\"} 1.0")
    out = merge([TEXT, other])
    s = _samples(out)
    assert s['gost_service_requests_total{host="h",service="s"}'] == 7.0
    assert s['gost_service_request_duration_seconds_count{host="h"}'] == 7.0
    assert s['gost_service_request_duration_seconds_sum{host="h"}'] == 1.0
    assert s['gost_services{host="h"}'] == 2.0            # max: the group's services, not a sum
    assert s["process_start_time_seconds"] == 90.0        # the first worker's start
    for fam in ("gost_service_requests_total", "gost_services", "gost_service_request_duration_seconds"):
        assert out.count(f"# TYPE {fam} ") == 1 and out.count(f"# HELP {fam} ") == 1
    assert merge([]) == "" and merge(["", ""]) == ""
    assert _samples(merge([TEXT])) == _samples(TEXT)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200), max_size=4))
@settings(max_examples=200)
def test_metrics_merge_never_crashes_on_garbage(texts):
    out = merge(texts)
    assert isinstance(out, str)


@given(st.lists(st.tuples(st.sampled_from(["a_total", "b", 'c{x="1"}', 'c{x="2"}']),
                          st.integers(min_value=0, max_value=10**9)), max_size=12), st.integers(1, 4))
def test_metrics_merge_sums_every_sample(samples, copies):
    text = "".join(f"{k} {v}\n" for k, v in dict(samples).items())
    s = _samples(merge([text] * copies))
    for k, v in dict(samples).items():
        assert math.isclose(s[k], v * copies)


def test_a_dead_workers_counters_are_carried_and_its_gauges_are_not():
    """Worker A reported TEXT and died; its successor starts from zero: the sum of the carried
    counters (counter, histogram buckets/sum/count) and the live ones never goes back; A's gauges
    (its services, its start time) are gone with it."""
    carry = Carry()
    carry.add(TEXT + '# TYPE x_summary summary\nx_summary{quantile="0.5"} 9.0\nx_summary_sum 2.0\n')
    fresh = TEXT.replace("3.0", "1.0").replace("2.0", "1.0").replace("0.5", "0.1").replace("100.0", "200.0")
    s = _samples(merge([fresh, carry.text()]))
    assert s['gost_service_requests_total{host="h",service="s"}'] == 4.0
    assert s['gost_service_request_duration_seconds_bucket{host="h",le="+Inf"}'] == 4.0
    assert s['gost_service_request_duration_seconds_count{host="h"}'] == 4.0
    assert math.isclose(s['gost_service_request_duration_seconds_sum{host="h"}'], 0.6)
    assert s['gost_services{host="h"}'] == 1.0 and s["process_start_time_seconds"] == 200.0
    assert s["x_summary_sum"] == 2.0 and 'x_summary{quantile="0.5"}' not in s
    carry.add(TEXT)   # a second death adds up
    assert _samples(carry.text())['gost_service_requests_total{host="h",service="s"}'] == 6.0
    assert Carry().text() == "" and merge(["", Carry().text()]) == ""


def test_the_supervisors_metrics_never_go_back_when_a_worker_dies_or_is_slow():
    """Controller._metrics_exposition over a stand-in pool: a dead worker's last counters are
    carried, a live worker that did not answer counts with its last exposition."""
    from types import SimpleNamespace

    from gostg.workers.control import Controller

    def text(n):
        return f"# TYPE r_total counter\nr_total {n}\n# TYPE open gauge\nopen {n}\n"

    class Pool:
        answers, live = [], []

        def ask_all(self, op):
            return self.answers

        def pids(self):
            return self.live
    sup = SimpleNamespace(pool=Pool(), _reported={}, _carried=Carry())

    def scrape(answers, live):
        sup.pool.answers, sup.pool.live = [{"ok": True, "pid": p, "text": text(n)} for p, n in answers], live
        return _samples(Controller._metrics_exposition(sup))
    assert scrape([(1, 3), (2, 5)], [1, 2]) == {"r_total": 8.0, "open": 8.0}
    assert scrape([(1, 4), (3, 1)], [1, 3]) == {"r_total": 10.0, "open": 5.0}   # 2 died: 5 carried
    assert scrape([(3, 2)], [1, 3]) == {"r_total": 11.0, "open": 6.0}           # 1 slow: its last
    assert scrape([(3, 2)], [3]) == {"r_total": 11.0, "open": 2.0}              # 1 died too


def test_a_dead_workers_service_totals_are_carried_while_the_service_is_the_same():
    """GET /config and /api/status: a dead worker's totals (not its open connections) stay in
    the sums of the service it ran; a replaced service (another token) starts from zero."""
    c, token = StatsCarry(), {"s": 1.0}
    st = {"totalConns": 5, "currentConns": 2, "totalErrs": 1, "inputBytes": 10, "outputBytes": 20}
    c.note(7, {"s": st, "gone": None})
    c.note(None, {"s": st})                 # not kept
    c.fold({7}, token.get)
    assert c.extra("s", token.get) is None   # alive: nothing carried
    c.fold(set(), token.get)
    assert c.extra("s", token.get) == {"totalConns": 5, "totalErrs": 1, "inputBytes": 10, "outputBytes": 20}
    c.note(8, {"s": st})
    c.fold(set(), token.get)
    assert c.extra("s", token.get)["totalConns"] == 10
    merged = merge_status([{"createTime": 9, "state": "ready", "stats": dict(st)}, {"stats": c.extra("s", token.get)}])
    assert merged["createTime"] == 9 and merged["state"] == "ready" and merged["stats"]["totalConns"] == 15
    assert merged["stats"]["currentConns"] == 2
    token["s"] = 2.0                         # replaced: its stats start again
    assert c.extra("s", token.get) is None
    c.note(9, {"s": st})
    c.fold(set(), token.get)
    assert c.extra("s", token.get)["totalConns"] == 5


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200), max_size=4))
@settings(max_examples=100)
def test_carry_never_crashes_on_garbage(texts):
    carry = Carry()
    for t in texts:
        carry.add(t)
    assert isinstance(merge([carry.text()]), str)


# -- split limits --------------------------------------------------------------------------------

@pytest.fixture
def two_workers():
    common.workers = 2
    yield
    common.workers = 1


def test_limits_are_split_per_worker(two_workers):
    t = parse_counts(["$ 3", "$$ 1", "10.0.0.1 4", "$$ 0"])
    assert t.service == 2 and t.default is None          # ceil(3/2); "no limit" stays none
    assert t.ips[list(t.ips)[0]] == 2
    r = parse_rates(["$ 10", "$$ 1"])
    assert r.service == 5.0 and r.default == 0.5
    tr = parse_traffic(["$ 100 50", "$$ 10 10", "10.0.0.1 9 0"])
    assert tr.service == (50, 25)
    assert tr.default == (10, 10)                         # one connection lives in one worker
    assert list(tr.ips.values()) == [(5, 0)]              # 0 = unlimited stays unlimited


def test_shared_counts_keep_limits_whole(two_workers):
    from gostg.policy.limiter import build

    assert build("climiters", "c", ["$ 3"], split=False).source.value().service == 3
    assert build("climiters", "c", ["$ 3"]).source.value().service == 2
    assert parse_counts.whole(["$ 3"]).service == 3


def test_one_worker_keeps_limits_whole():
    assert parse_counts(["$ 3"]).service == 3 and parse_rates(["$ 10"]).service == 10.0


# -- the control socket ---------------------------------------------------------------------------

def test_channel_round_trip_and_garbage():
    import datetime

    a, b = socket.socketpair()
    with a, b:
        msg = {"op": "config", "config": {"services": [{"name": "x"}], "when": datetime.date(2024, 1, 2)}}
        channel.send(a, msg)
        assert channel.recv(b) == msg
        a.sendall(b"\x00\x00\x00\x03abc")
        with pytest.raises(channel.ChannelClosed):
            channel.recv(b)
        a.sendall(b"\xff\xff\xff\xff")
        with pytest.raises(channel.ChannelClosed):
            channel.recv(b)
    c, d = socket.socketpair()
    with d:
        c.close()
        with pytest.raises(channel.ChannelClosed):
            channel.recv(d)


# -- embedding ---------------------------------------------------------------------------------------

class _Log:
    def __init__(self):
        self.lines = []

    def bind(self, **_):
        return self

    def warning(self, msg, *_, **__):
        self.lines.append(msg)

    def __getattr__(self, _):
        return lambda *a, **k: None


def test_embedded_gost_ignores_workers_and_says_so():
    from gostg.runtime import Gost

    log = _Log()
    Gost({"workers": 4, "services": []}, logger=log)
    assert any("workers: 4 ignored" in line and "does not fork" in line for line in log.lines), log.lines
    log = _Log()
    Gost({"workers": 1}, logger=log)
    assert not log.lines


def test_a_workers_error_names_the_groups_service():
    from gostg.workers.worker import _group_path

    cfg = {"services": [{"name": "tcp2"}]}          # worker 1: the UDP service before it is not here
    names = ["udp", "tcp2"]
    assert _group_path("services[0].addr", cfg, names) == "services[1].addr"
    assert _group_path("api.addr", cfg, names) == "api.addr"
    assert _group_path("services[7].addr", cfg, names) == "services[7].addr"   # unknown: as it was
    assert _group_path("services[0].addr", cfg, None) == "services[0].addr"
