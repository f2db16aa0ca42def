"""Shared limiters' pure parts with a stand-in store (no Redis): what a refused, lost or lapsed
answer does to the local counts, the fallback share of a rate, and the ``store`` config key.
The Lua scripts run against a real redis-server in tests/integration/test_limiter_shared.py."""
import gevent
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gostg.config.build import build_limiter
from gostg.errors import ConfigError
from gostg.policy import limiter as L
from gostg.policy.limiter import parse_counts, parse_rates
from gostg.policy.limiter.shared import SharedConnLimiter, SharedRateLimiter, _Share
from gostg.policy.limiter.sharedtraffic import LeasedBucket, SharedTrafficLimiter
from gostg.policy.limiter.store import SCRIPTS, Store, StoreDown


class Source:
    def __init__(self, table):
        self.table = table

    def value(self):
        return self.table

    closed = False

    def close(self):
        self.closed = True


class FakeStore:
    """Store's interface: ``answers[name]`` is a value, a callable, or StoreDown to raise."""

    ttl = 30.0

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def key(self, kind, scope):
        return Store.key(self, kind, scope)

    prefix = "p"
    me = "m0"

    closed = False

    def renew(self):
        old, self.me = self.me, f"m{int(self.me[1:]) + 1}"
        return old

    def close(self):
        self.closed = True

    def run(self, name, keys, args):
        self.calls.append((name, list(keys), list(args)))
        a = self.answers[name]
        if a is StoreDown:
            raise StoreDown()
        return a(keys, args) if callable(a) else a


def conn(lines, **answers):
    return SharedConnLimiter("c", Source(parse_counts(lines)), FakeStore(**answers))


def test_keys_name_the_kind_and_scope():
    s = FakeStore()
    assert s.key("conn", "$") == "p:conn:$"
    assert s.key("rate", "10.0.0.1") == "p:rate:ip:10.0.0.1"


def test_admitted_lease_counts_locally_and_release_does_no_io():
    c = conn(["$ 3", "$$ 1"], acquire=1, sync=0)
    lease = c.acquire("10.0.0.1")
    assert lease is not None and c.store.calls[0][:2] == ("acquire", ["p:conn:$", "p:conn:ip:10.0.0.1"])
    assert c.store.calls[0][2] == [3, 1]
    assert c.count() == 1
    n = len(c.store.calls)
    lease.release()
    assert c.count() == 0 and len(c.store.calls) == n      # queued for the syncer, not sent here
    gevent.sleep(0.05)
    name, keys, args = c.store.calls[-1]
    assert name == "sync" and args[:2] == [2, ""] and keys[:2] == ["p:conn:$", "p:conn:ip:10.0.0.1"]
    c.close()


def test_refused_and_unanswered_acquires_count_nothing_and_fail_closed():
    assert conn(["$ 1"], acquire=0).acquire("1.2.3.4") is None
    c = conn(["$ 1"], acquire=StoreDown, sync=StoreDown)
    assert c.acquire("1.2.3.4") is None and c.count() == 0
    assert c._resync and c._dirty == {"p:conn:$"}   # the lost answer may have counted: re-assert later
    c.close()


def test_no_limit_needs_no_redis():
    c = conn([], acquire=StoreDown)
    assert c.acquire("1.2.3.4") is not None and c.store.calls == []


def test_a_lapsed_heartbeat_makes_the_next_sync_write_absolute_counts():
    c = conn(["$ 5"], acquire=3, sync=1)        # admitted (1) + lapsed (2)
    first = c.acquire("1.2.3.4")
    assert first is not None and not c._resync   # a member holding nothing has nothing to re-assert
    second = c.acquire("1.2.3.4")
    gevent.sleep(0.05)
    name, keys, args = c.store.calls[-1]
    assert name == "sync" and args[:2] == [0, "m0"] and keys == ["p:conn:$"] and args[2:] == [2]
    assert not c._resync and c.store.me == "m1"   # counts re-asserted under a new member
    first.release()
    c.retire()                                    # gostg stops with a connection still open:
    name, keys, args = c.store.calls[-1]          # the member retires, its counts leave Redis
    assert name == "sync" and args[1] == "m1" and keys == ["p:conn:$"] and args[2:] == [0]
    second.release()
    assert c._syncer is None


def test_releases_lost_while_redis_is_down_become_absolute_counts():
    answers = {"acquire": 1, "sync": StoreDown}
    c = conn(["$ 5"], **answers)
    a, b = c.acquire("1.2.3.4"), c.acquire("1.2.3.4")
    a.release()
    gevent.sleep(0.05)
    assert c._resync and "p:conn:$" in c._dirty
    c.store.answers["sync"] = 0
    c._wake.set()
    gevent.sleep(0.05)
    name, keys, args = c.store.calls[-1]
    assert name == "sync" and args[0] == 0 and args[1] and args[2:] == [1]   # one held, re-asserted
    b.release()
    c.close()


def test_rate_asks_redis_with_gosts_burst_and_remembers_the_peers():
    r = SharedRateLimiter("r", Source(parse_rates(["$ 10", "$$ 2.5"])), FakeStore(rate=[1, 3]))
    assert r.allow("10.0.0.1") and r.peers == 3
    name, keys, args = r.store.calls[0]
    assert keys == ["p:rate:$", "p:rate:ip:10.0.0.1"] and args == ["10.0", 11, "2.5", 3]
    r.store.answers["rate"] = [0, 3]
    assert not r.allow("10.0.0.1")


def test_rate_falls_back_to_the_local_share_when_redis_is_down():
    r = SharedRateLimiter("r", Source(parse_rates(["$ 9"])), FakeStore(rate=[1, 3]))
    assert r.allow("10.0.0.1")
    r.store.answers["rate"] = StoreDown
    got = [r.allow("10.0.0.1") for _ in range(10)]
    assert got.count(True) == 4      # 9 / 3 instances = 3/s: a burst of int(3) + 1


@given(st.integers(1, 50), st.floats(0.5, 1000, allow_nan=False))
def test_share_divides_every_rate(peers, rate):
    t = parse_rates([f"$ {rate}", f"$$ {rate}", f"10.0.0.1 {rate}", f"10.1.0.0/16 {rate}"])
    s = _Share(Source(t), lambda: peers).value()
    for v in (s.service, s.default, s.ips[next(iter(s.ips))], s.nets[0][1]):
        assert v == pytest.approx(rate / peers)


def test_scripts_are_one_round_trip_each():
    assert set(SCRIPTS) == {"acquire", "sync", "rate", "lease"}
    assert all("redis.call('TIME')" in s for s in SCRIPTS.values())   # Redis's clock, not ours


def _build(kind, store):
    return build_limiter(kind, {"name": "n", "limits": ["$ 1"], "store": store}, f"{kind}[0]")


def test_store_config():
    c = _build("climiters", {"redis": {"addr": "127.0.0.1:6399"}, "ttl": "2s"})
    assert isinstance(c, SharedConnLimiter) and c.store.prefix == "gostg:climiter:n" and c.store.ttl == 2.0
    r = _build("rlimiters", {"redis": {"addr": "127.0.0.1:6399", "key": "k"}})
    assert isinstance(r, SharedRateLimiter) and r.store.prefix == "k" and r.store.ttl == 10.0
    t = _build("limiters", {"redis": {"addr": "127.0.0.1:6399"}})
    assert isinstance(t, SharedTrafficLimiter) and t.store.prefix == "gostg:limiter:n"
    for kind, store, where in [("climiters", {"ttl": "1s"}, "climiters[0].store.redis"),
                               ("climiters", {"redis": {"addr": "x:1"}, "ttl": "0s"}, "climiters[0].store.ttl"),
                               ("climiters", {"redis": {}}, "climiters[0].store.redis"),
                               ("climiters", {"redis": {"addr": "[::1"}}, "climiters[0].store.redis")]:
        with pytest.raises(ConfigError) as e:
            _build(kind, store)
        assert e.value.path.startswith(where), (store, e.value.path)


def test_leased_bucket_asks_redis_once_per_lease_and_waits_as_told():
    store = FakeStore(lease=[0, 2])
    b = LeasedBucket(1000.0, store, "p:traffic:$:out")
    assert b.take(40) == 0.0 and len(store.calls) == 1          # a lease of 0.1 s = 100 tokens
    assert store.calls[0][2] == ["1000.0", b.burst, "100.0"]
    assert b.take(40) == 0.0 and b.take(20) == 0.0 and len(store.calls) == 1
    store.answers["lease"] = [250, 2]
    assert b.take(40) == 0.25 and len(store.calls) == 2         # Redis's bucket is in debt: wait
    store.answers["lease"] = StoreDown
    b.tokens = 0
    assert b.take(100) == 0.0 and b.local.rate == 500.0         # local share: 1000 / 2 instances
    assert b.take(10_000) > 0


def test_shared_traffic_limiter_leases_only_the_service_scope():
    from gostg.policy.limiter import parse_traffic

    lim = SharedTrafficLimiter("t", Source(parse_traffic(["$ 1MB 2MB", "$$ 100KB"])), FakeStore())
    inb, outb = lim.buckets(None)
    assert [type(b) for b in inb] == [LeasedBucket, L.TokenBucket] and outb[0].key == "p:traffic:$:out"


def test_a_replaced_limiter_keeps_its_leases_until_they_end_then_releases_the_store():
    """close() (an API replace, a reload): the open connections still count in Redis and are
    heartbeated; the last release goes out, then the store closes. Nothing is retired early."""
    c = conn(["$ 5"], acquire=1, sync=0)
    a, b = c.acquire("1.2.3.4"), c.acquire("1.2.3.4")
    c.close()
    assert c.source.closed and not c.store.closed and c.count() == 2
    assert not any(args[:1] == [0] and args[2:] == [0] for _, _, args in c.store.calls)   # no retirement
    def releases():   # the releases that reached the store: a sync with one pending key
        return [args for name, _, args in c.store.calls if name == "sync" and args[0] == 1]
    a.release()
    gevent.sleep(0.05)
    assert len(releases()) == 1 and not c.store.closed and c._syncer is not None   # one lease left
    b.release()
    gevent.sleep(0.05)
    assert len(releases()) == 2 and c.store.closed and c._syncer is None
    assert not any(args[0] == 0 and args[1] for _, _, args in c.store.calls)   # never retired
    n = len(c.store.calls)
    c.close()   # idempotent
    c.retire()  # nothing left to retire
    assert len(c.store.calls) == n


def test_a_deleted_or_stopped_limiter_retires_its_counts_at_once():
    c = conn(["$ 5"], acquire=1, sync=0)
    held = c.acquire("1.2.3.4")
    c.retire()
    c.close()
    name, keys, args = c.store.calls[-1]
    assert name == "sync" and args[0] == 0 and keys == ["p:conn:$"] and args[2:] == [0]
    assert c.store.closed and c.source.closed
    n = len(c.store.calls)
    held.release()
    gevent.sleep(0.05)
    assert len(c.store.calls) == n and c._syncer is None   # retired: nothing more goes to Redis


def test_an_unused_replaced_limiter_closes_its_store_at_once():
    for lim in (conn(["$ 5"]), SharedRateLimiter("r", Source(parse_rates(["$ 10"])), FakeStore()),
                SharedTrafficLimiter("t", Source(L.parse_traffic(["$ 1MB"])), FakeStore())):
        lim.close()
        assert lim.source.closed and lim.store.closed


def test_a_closed_store_answers_store_down_without_io():
    class Client:
        def register_script(self, text):
            raise AssertionError("no Redis after close")
    s = Store(Client(), "p", 1.0)
    s.client = None   # what close() leaves (release() needs a pooled client)
    with pytest.raises(StoreDown):
        s.run("sync", [], [])


def test_retiring_an_idle_limiter_still_clears_the_counts_redis_may_have_wrong():
    """An acquire whose answer was lost may have counted in Redis: deleting the limiter (retire,
    then close, as runtime does) writes those keys to 0 before the store is released."""
    c = conn(["$ 1"], acquire=StoreDown, sync=0)
    assert c.acquire("1.2.3.4") is None and c._dirty == {"p:conn:$"}
    c.retire()
    c.close()
    name, keys, args = c.store.calls[-1]
    assert name == "sync" and keys == ["p:conn:$"] and args[0] == 0 and args[2:] == [0] and c.store.closed
