"""gostg.selector: GOST's fail and backup filters, then round/rand/fifo/hash strategies."""
import time
import zlib
from collections import Counter

import pytest

from gostg.core.selector import Marker, Selector


class Node:
    def __init__(self, name, backup=False, weight=1, max_fails=None, fail_timeout=None):
        self.name = name
        self.marker = Marker()
        self.backup = backup
        self.weight = weight
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout

    def __repr__(self):
        return f"Node({self.name})"


class Ctx:
    def __init__(self, client_ip, client_id=""):
        self.client_ip = client_ip
        self.client_id = client_id


def nodes(*names, **kw):
    return [Node(n, **kw) for n in names]


def fail(node, ago=0.0, times=1):
    for _ in range(times):
        node.marker.mark()
    node.marker.last = time.monotonic() - ago


def picks(sel, ns, n, **kw):
    return [sel.select(ns, **kw).name for _ in range(n)]


# --- Marker -----------------------------------------------------------------------------------

def test_marker():
    m = Marker()
    assert not m.failed(1, 10)
    m.mark()
    assert m.fails == 1 and m.failed(1, 10)
    assert not m.failed(2, 10)
    m.mark()
    assert m.failed(2, 10)
    assert not m.failed(0, 10)            # maxFails 0: never considered failed
    m.last = time.monotonic() - 11
    assert not m.failed(1, 10)            # failTimeout passed
    m.mark()
    m.reset()
    assert m.fails == 0 and not m.failed(1, 10)


# --- strategies -------------------------------------------------------------------------------

def test_empty_and_single():
    sel = Selector()
    assert sel.select([]) is None
    (only,) = nodes("a")
    fail(only)
    assert sel.select([only]) is only  # one node: no filtering at all


def test_round_robin_order():
    ns = nodes("a", "b", "c")
    assert picks(Selector("round"), ns, 7) == ["a", "b", "c", "a", "b", "c", "a"]
    assert picks(Selector("rr"), ns, 3) == ["a", "b", "c"]


def test_round_robin_is_per_selector():
    ns = nodes("a", "b")
    s1, s2 = Selector(), Selector()
    assert s1.select(ns).name == "a"
    assert s2.select(ns).name == "a"
    assert s1.select(ns).name == "b"


def test_default_strategy_is_round_robin():
    assert picks(Selector(), nodes("a", "b"), 4) == ["a", "b", "a", "b"]


def test_round_robin_skips_failed():
    ns = nodes("a", "b", "c")
    fail(ns[1])
    assert set(picks(Selector("round"), ns, 6)) == {"a", "c"}


def test_fifo_picks_first_alive():
    ns = nodes("a", "b", "c")
    sel = Selector("fifo")
    assert picks(sel, ns, 3) == ["a", "a", "a"]
    fail(ns[0])
    assert picks(sel, ns, 3) == ["b", "b", "b"]
    fail(ns[1])
    assert sel.select(ns).name == "c"
    assert Selector("ha").select(ns).name == "c"


def test_fifo_primary_comes_back_after_fail_timeout():
    ns = nodes("a", "b")
    sel = Selector("fifo", max_fails=1, fail_timeout=10)
    fail(ns[0], ago=5)
    assert sel.select(ns).name == "b"
    fail(ns[0], ago=11)
    assert sel.select(ns).name == "a"


def test_max_fails_threshold():
    ns = nodes("a", "b")
    sel = Selector("fifo", max_fails=3, fail_timeout=10)
    fail(ns[0], times=2)
    assert sel.select(ns).name == "a"
    fail(ns[0])
    assert sel.select(ns).name == "b"
    ns[0].marker.reset()
    assert sel.select(ns).name == "a"


def test_node_overrides_max_fails_and_fail_timeout():
    a, b = Node("a", max_fails=5), Node("b")
    fail(a, times=3)
    assert Selector("fifo").select([a, b]) is a
    a2 = Node("a2", fail_timeout=1.0)
    fail(a2, ago=2)  # 2s ago: past its own 1s timeout though within the selector's 10s
    assert Selector("fifo", fail_timeout=10).select([a2, b]) is a2


def test_last_resort_when_all_failed():
    ns = nodes("a", "b", "c")
    for n in ns:
        fail(n)
    sel = Selector("fifo")
    assert sel.select(ns).name == "a"
    assert set(picks(Selector("round"), ns, 3)) == {"a", "b", "c"}


def test_backup_only_when_primaries_failed():
    a, b = Node("a"), Node("b")
    bk = Node("bk", backup=True)
    ns = [bk, a, b]
    sel = Selector("round")
    assert "bk" not in picks(sel, ns, 10)
    fail(a)
    assert set(picks(sel, ns, 6)) == {"b"}
    fail(b)
    assert set(picks(sel, ns, 4)) == {"bk"}
    a.marker.reset()
    assert set(picks(sel, ns, 4)) == {"a"}


def test_all_failed_prefers_primaries_as_last_resort():
    a, bk = Node("a"), Node("bk", backup=True)
    fail(a)
    fail(bk)
    assert set(picks(Selector("round"), [bk, a], 4)) == {"a"}


def test_only_backups():
    ns = nodes("x", "y", backup=True)
    assert picks(Selector("round"), ns, 2) == ["x", "y"]


def test_random_weighted():
    heavy, light = Node("heavy", weight=9), Node("light", weight=1)
    c = Counter(picks(Selector("rand"), [heavy, light], 2000))
    assert set(c) == {"heavy", "light"}
    assert c["heavy"] > 4 * c["light"]
    c = Counter(picks(Selector("random"), nodes("a", "b", weight=0), 400))
    assert set(c) == {"a", "b"}  # weight ≤ 0 counts as 1


def test_hash_stable_per_client_ip():
    ns = nodes(*"abcdefgh")
    sel = Selector("hash")
    for ip in ("10.0.0.1", "10.0.0.2", "192.168.1.77", "::1"):
        got = {sel.select(ns, ctx=Ctx(ip)).name for _ in range(20)}
        assert len(got) == 1
        assert got == {ns[zlib.crc32(ip.encode()) % len(ns)].name}
    spread = {sel.select(ns, ctx=Ctx(f"10.0.{i}.{i}")).name for i in range(64)}
    assert len(spread) > 1


def test_hash_prefers_client_id():
    ns = nodes(*"abcdefgh")
    sel = Selector("hash")
    picked = {sel.select(ns, ctx=Ctx(f"10.0.0.{i}", client_id="alice")).name for i in range(30)}
    assert picked == {ns[zlib.crc32(b"alice") % len(ns)].name}


def test_hash_by_target_host():
    ns = nodes(*"abcdefgh")
    sel = Selector("hash", hash_host=True)
    picked = {sel.select(ns, ctx=Ctx(f"10.0.0.{i}"), target="example.com").name for i in range(30)}
    assert picked == {ns[zlib.crc32(b"example.com") % len(ns)].name}


def test_hash_skips_failed_node():
    ns = nodes(*"abcd")
    sel = Selector("hash")
    first = sel.select(ns, ctx=Ctx("10.0.0.9"))
    fail(first)
    assert sel.select(ns, ctx=Ctx("10.0.0.9")) is not first


def test_unknown_strategy():
    with pytest.raises(ValueError):
        Selector("fastest")
