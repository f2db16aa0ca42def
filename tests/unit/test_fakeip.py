"""gostg.embed.fakeip: the fake-ip pool's rules (module docstring), as properties over random
sequences of lookups, connects and clock steps on small blocks."""
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostg.embed.fakeip import V4, V6, FakeIP, FakeIPPool, PoolExhausted

NAMES = st.sampled_from([f"host{i}.example" for i in range(12)])
# (op, name, seconds the clock moves first)
OPS = st.lists(st.tuples(st.sampled_from(["allocate", "lookup"]), NAMES, st.integers(0, 30)), max_size=80)


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@settings(max_examples=300, deadline=None)
@given(OPS, st.integers(3, 6), st.integers(0, 40))
def test_pool_rules_hold_over_any_sequence(ops, prefix_bits, hold):
    """A /29../26 block (6..62 usable) against 12 names: lending, reuse, eviction, exhaustion."""
    clock = Clock()
    net = f"198.18.0.0/{32 - prefix_bits}"
    pool = FakeIPPool(net, hold=hold, clock=clock)
    network = ipaddress.ip_network(net)
    lent = {}        # name → address, as we expect it
    last_use = {}    # address → time of its last use
    for op, name, step in ops:
        clock.t += step
        if op == "allocate":
            try:
                ip = pool.allocate(name)
            except PoolExhausted:
                # rule 3: only when the block is full and every address was used within hold
                assert name not in lent
                assert len(lent) == pool.size
                assert all(clock.t - t < hold for t in last_use.values())
                continue
            a = ipaddress.ip_address(ip)
            # rule 4: inside the block, never its first or last address
            assert a in network and a not in (network.network_address, network.broadcast_address)
            if name in lent:
                assert ip == lent[name]            # rule 1: same name, same address
            else:
                owner = next((n for n, i in lent.items() if i == ip), None)
                if owner is not None:              # taken back from another name: rule 2
                    assert clock.t - last_use[ip] >= hold
                    del lent[owner]
                lent[name] = ip
            last_use[ip] = clock.t
        else:
            ip = lent.get(name)
            if ip is None:
                continue
            assert pool.lookup(ip) == name         # an address maps back to its name
            last_use[ip] = clock.t
        # one name per address, and the pool never holds more than the block
        assert len(set(lent.values())) == len(lent) == len(pool) <= pool.size
    for name, ip in lent.items():
        assert pool.lookup(ip) == name


@given(st.ip_addresses(v=4))
def test_lookup_of_any_other_address_is_none(ip):
    pool = FakeIPPool(V4, hold=0)
    pool.allocate("a.example")
    expected = "a.example" if str(ip) == "198.18.0.1" else None
    assert pool.lookup(ip) == expected


def test_fresh_addresses_come_in_order_then_the_least_recently_used_is_taken_back():
    clock = Clock()
    pool = FakeIPPool("198.18.0.0/30", hold=10, clock=clock)   # two usable: .1 and .2
    assert pool.allocate("a") == "198.18.0.1"
    assert pool.allocate("b") == "198.18.0.2"
    with pytest.raises(PoolExhausted):
        pool.allocate("c")
    clock.t += 10
    assert pool.lookup("198.18.0.1") == "a"     # a connect counts as a use: b is older now
    assert pool.allocate("c") == "198.18.0.2"
    assert pool.lookup("198.18.0.2") == "c"


def test_dual_pool_and_default_blocks():
    f = FakeIP(hold=0)
    v4, v6 = f.allocate("x.example"), f.allocate("x.example", 6)
    assert ipaddress.ip_address(v4) in ipaddress.ip_network(V4)
    assert ipaddress.ip_address(v6) in ipaddress.ip_network(V6)
    assert f.lookup(v4) == f.lookup(v6) == "x.example"
    assert f.is_fake("198.19.255.254") and f.is_fake("2001:2::9") and not f.is_fake("8.8.8.8")
    assert f.lookup("2001:2::9") is None
    with pytest.raises(ValueError):
        FakeIP(v4=V6, v6=V4)
    with pytest.raises(ValueError):
        FakeIPPool("198.18.0.0/31")
