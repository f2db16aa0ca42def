"""gostg.loader: the line format of every source, how sources combine, what a failing source
does (keeps its last good lines, logs once, logs recovery), fail-closed objects while a source
has never been read, and the redis/http block checks."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gostg.dns.hosts import parse_hosts_lines
from gostg.errors import ConfigError
from gostg.loader import redisconn
from gostg.loader.build import check_http, check_redis, redis_type
from gostg.loader.fetch import split_lines, strip_comment
from gostg.loader.source import LineSource
from gostg.policy.admission import Admission
from gostg.policy.auth import parse_auth_lines
from gostg.policy.bypass import Bypass
from gostg.policy.group import UnreadSource
from gostg.policy.limiter import parse_counts, parse_rates, parse_traffic

from .loglines import Log


class Fake:
    """A redis/http stand-in: ``lines`` or an exception to raise."""

    kind = "redis"
    where = "fake"

    def __init__(self, result):
        self.result = result
        self.reads = 0
        self.closed = False

    def changed(self):
        return True

    def fetch(self):
        self.reads += 1
        if isinstance(self.result, Exception):
            raise self.result
        return list(self.result)

    def close(self):
        self.closed = True


# --- line formats ---------------------------------------------------------------------------------

def test_split_lines_cuts_comments_and_blanks_raw_keeps_them():
    text = "# head\n\n a.com  # trailing\r\n10.0.0.0/8\n   \n"
    assert split_lines(text) == ["a.com", "10.0.0.0/8"]
    assert split_lines("u pa#ss\r\n\nv\n", raw=True) == ["u pa#ss", "v"]


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="#\n\r", blacklist_categories=("Cs",)))))
def test_split_lines_is_the_stripped_non_empty_lines(lines):
    assert split_lines("\n".join(lines)) == [s.strip() for s in lines if s.strip()]


@given(st.text())
def test_strip_comment_never_keeps_a_hash(s):
    out = strip_comment(s)
    assert "#" not in out and out == out.strip()


users = st.text(alphabet=st.characters(blacklist_characters=" \t\n\r#", blacklist_categories=("Cs", "Z", "Cc")),
                min_size=1, max_size=12)
passwords = st.text(alphabet=st.characters(blacklist_characters="\n\r\t", blacklist_categories=("Cs", "Cc")),
                    max_size=12).map(str.strip)


@given(st.dictionaries(users, passwords))
def test_a_redis_hash_round_trips_through_auth_lines(h):
    """HGETALL's ``field value`` pairs, written as GOST's hash loader writes them, parse back."""
    assert parse_auth_lines([f"{u} {p}" for u, p in h.items()]) == h


@given(st.lists(st.text(max_size=40)))
def test_hosts_lines_never_raise_and_map_to_ips(lines):
    for name, ips in parse_hosts_lines(lines).items():
        assert name and ips


def test_hosts_line_forms():
    assert parse_hosts_lines(["127.0.0.1 a.test b.test # c.test", "bad a.test", "::1\tv6.test", "1.2.3.4"]) == {
        "a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"], "v6.test": ["::1"]}


def test_limiter_lines_of_each_kind_later_wins():
    assert parse_counts(["$ 5", "$ 7"]) is not None
    assert parse_rates(["$ 10", "$$ 1"]) is not None
    assert parse_traffic(["$ 1MB 2MB", "$$ 10KB"]) is not None
    with pytest.raises(ValueError):
        parse_traffic(["$ lots"])


# --- combining ------------------------------------------------------------------------------------

def test_sources_combine_in_gosts_order(tmp_path):
    f = tmp_path / "f"
    f.write_text("from-file\n")
    src = LineSource(["inline"], file=str(f), sources=[Fake(["from-redis"]), Fake(["from-http"])])
    assert src.value() == ["inline", "from-file", "from-redis", "from-http"]
    assert not src.pending and src.networked


def test_a_failing_source_keeps_its_lines_logs_once_and_logs_recovery():
    log = Log()
    a, b = Fake(["a"]), Fake(["b"])
    src = LineSource([], sources=[a, b], log=log)
    a.result = ConnectionError("Connection refused")
    b.result = ["b2"]
    for _ in range(3):
        src.refresh()
    assert src.value() == ["a", "b2"]
    assert log.lines.count(("warning", "redis loader: Connection refused; keeping the last good value")) == 1
    a.result = ["a3"]
    src.refresh()
    assert src.value() == ["a3", "b2"]
    assert ("info", "redis loader recovered") in log.lines


def test_a_result_that_does_not_parse_keeps_the_whole_last_value():
    log = Log()
    a = Fake(["1"])
    src = LineSource([], sources=[a], parse=lambda ls: [int(x) for x in ls], log=log)
    a.result = ["1", "x"]
    src.refresh()
    assert src.value() == [1]
    assert any("reload failed" in m for _, m in log.lines)
    a.result = ["1", "2"]
    src.refresh()
    assert src.value() == [1, 2]


def test_bad_network_lines_at_start_leave_the_source_pending():
    log = Log()
    src = LineSource(["1"], sources=[Fake(["x"])], parse=lambda ls: [int(x) for x in ls], log=log)
    assert src.value() == [1] and src.pending


def test_never_read_source_fails_closed_for_bypass_and_admission():
    down = ConnectionError("down")
    b = Bypass("b", ["10.0.0.1"], sources=[Fake(down)])
    a = Admission("a", [], sources=[Fake(down)])
    wb = Bypass("w", ["10.0.0.1"], whitelist=True, sources=[Fake(down)])
    for check in (lambda: b.contains("tcp", "example.com:80"), lambda: a.admit("127.0.0.1:5"),
                  lambda: wb.contains("tcp", "10.0.0.1:80")):
        with pytest.raises(UnreadSource, match="source has not been read yet"):
            check()
    assert not b.contains("tcp", "")   # no address: nothing to judge, nothing raised
    b.source.fetchers[0].result = ["10.0.0.2"]
    b.source.refresh()
    assert not b.contains("tcp", "example.com:80") and b.contains("tcp", "10.0.0.2:1")


def test_refresh_while_busy_asks_for_one_more_read():
    a = Fake(["1"])
    src = LineSource([], sources=[a])
    calls = []

    def fetch():
        calls.append(1)
        if len(calls) == 1:
            src.refresh()           # a push arriving mid-read
        return ["v%d" % len(calls)]

    a.fetch = fetch
    src.refresh()
    assert len(calls) == 2 and src.value() == ["v2"]


def test_close_closes_fetchers_and_is_idempotent():
    a = Fake(["1"])
    src = LineSource([], sources=[a])
    src.close()
    src.close()
    assert a.closed


def test_poller_runs_every_period_and_stops_on_close():
    import gevent

    a = Fake(["1"])
    src = LineSource([], sources=[a], reload=0.001)   # raised to MIN_PERIOD (0.1 s): no busy loop
    gevent.sleep(0.25)
    n = a.reads
    assert 2 <= n <= 4
    src.close()
    gevent.sleep(0.15)
    assert a.reads == n


def test_a_failing_source_is_retried_less_often():
    clock = [0.0]
    a = Fake(ConnectionError("down"))
    src = LineSource([], sources=[a], reload=0.2, clock=lambda: clock[0])
    tried = []   # the test drives the polls (it never yields to the poller greenlet)
    for step in range(100):   # 10 s in 0.1 s steps
        clock[0] = step / 10
        before = a.reads
        src.refresh(force=False)
        if a.reads > before:
            tried.append(clock[0])
    assert tried == [1.0, 3.0, 7.0]   # after 1 s, 2 s, 4 s; every 5 s from then on
    src.refresh()                      # a push (force) tries at once
    assert a.reads == 5
    src.close()


# --- config checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, cfg, where", [
    ("bypasses", {}, "x.addr"),
    ("bypasses", {"addr": "127.0.0.1:70000"}, "x.addr"),
    ("bypasses", {"addr": "[::1"}, "x.addr"),
    ("bypasses", {"addr": "h:1", "db": -1}, "x.db"),
    ("bypasses", {"addr": "h:1", "db": "one"}, "x.db"),
    ("bypasses", {"addr": "h:1", "type": "list"}, "x.type"),
    ("authers", {"addr": "h:1", "type": "set"}, "x.type"),
    ("hosts", {"addr": "h:1", "type": "hash"}, "x.type"),
    ("limiters", {"addr": "h:1", "key": 5}, "x.key"),
])
def test_bad_redis_blocks_name_their_key(kind, cfg, where):
    with pytest.raises(ConfigError) as e:
        check_redis(kind, cfg, "x")
    assert e.value.path == where


def test_redis_types_per_kind():
    assert redis_type("authers", {}, "x") == "hash"
    assert redis_type("bypasses", {}, "x") == redis_type("admissions", {"type": "SET"}, "x") == "set"
    for kind in ("hosts", "limiters", "climiters", "rlimiters"):
        assert redis_type(kind, {}, "x") == "set" and redis_type(kind, {"type": "list"}, "x") == "list"
    assert check_redis("bypasses", {"addr": "h"}, "x") == ("set", "gost")   # port 6379, key gost


@pytest.mark.parametrize("cfg, where", [({}, "x.url"), ({"url": "ftp://h/"}, "x.url"), ({"url": "http://"}, "x.url"),
                                        ({"url": "http://h/", "timeout": "soon"}, "x.timeout")])
def test_bad_http_blocks_name_their_key(cfg, where):
    with pytest.raises(ConfigError) as e:
        check_http(cfg, "x")
    assert e.value.path == where


def test_http_block():
    assert check_http({"url": "https://u:p@h/x", "timeout": "2s"}, "x") == ("https://u:p@h/x", 2.0)


def test_one_pool_per_redis_and_released_with_its_last_user():
    a = redisconn.client({"addr": "127.0.0.1:1"}, "p")
    b = redisconn.client({"addr": "127.0.0.1:1", "db": 0}, "p")
    c = redisconn.client({"addr": "127.0.0.1:1", "db": 2}, "p")
    assert a.connection_pool is b.connection_pool is not c.connection_pool
    key = a._gostg_pool_key   # (host, port, db, user, password, timeout)
    redisconn.release(a)
    assert key in redisconn._pools
    redisconn.release(b)
    redisconn.release(c)
    assert key not in redisconn._pools


def test_bad_lines_from_redis_are_logged_once_not_every_poll():
    log = Log()
    a = Fake(["1"])
    src = LineSource([], sources=[a], parse=lambda ls: [int(x) for x in ls], log=log)
    a.result = ["x"]
    for _ in range(4):
        src.refresh()
    assert src.value() == [1]
    assert sum("reload failed" in m for _, m in log.lines) == 1


def test_pending_until_every_network_source_was_read():
    a, b = Fake(["1"]), Fake(ConnectionError("down"))
    src = LineSource([], sources=[a, b])
    assert src.pending
    a.result = ["2"]
    src.refresh()
    assert src.pending and src.value() == ["2"]
    b.result = ["3"]
    src.refresh()
    assert not src.pending and src.value() == ["2", "3"]


def test_a_source_that_fails_to_build_closes_its_fetchers(tmp_path):
    a = Fake(["1"])
    with pytest.raises(ValueError, match="cannot read"):
        LineSource([], file=str(tmp_path / "missing"), sources=[a])
    assert a.closed


@given(st.lists(st.text(max_size=30), max_size=5))
def test_limiter_lines_from_anywhere_parse_or_raise_valueerror(lines):
    """Whatever a Redis key holds, a limiter parse either succeeds or raises ValueError (which
    keeps the last good limits, logged once)."""
    for parse in (parse_traffic, parse_counts, parse_rates):
        try:
            parse(lines)
        except ValueError:
            pass
