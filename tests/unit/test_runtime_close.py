"""runtime closes every object that leaves a registry through its ``close()`` (one mechanism
for every kind in CLOSE_KINDS): on an API replace, a delete, a reload that drops or changes it,
and at stop; deleted and stopped ones are also retired (a shared limiter's Redis counts)."""
import pytest

from gostg import runtime

OBJECTS = {
    "authers": {"name": "x", "auths": [{"username": "u", "password": "p"}]},
    "admissions": {"name": "x", "matchers": ["127.0.0.1"]},
    "bypasses": {"name": "x", "matchers": ["example.com"]},
    "hosts": {"name": "x", "mappings": [{"ip": "127.0.0.1", "hostname": "a.example"}]},
    "resolvers": {"name": "x", "nameservers": [{"addr": "udp://127.0.0.1:53"}]},
    "limiters": {"name": "x", "limits": ["$ 1MB 1MB"]},
    "climiters": {"name": "x", "limits": ["$ 10"]},
    "rlimiters": {"name": "x", "limits": ["$ 10"]},
    "ingresses": {"name": "x", "rules": [{"hostname": "a.example", "endpoint": "4d21094e-b74c-4916-86c1-d9fa36ea677b"}]},
    "routers": {"name": "x", "routes": [{"dst": "10.0.0.0/8", "gateway": "host-1"}]},
    "sds": {"name": "x", "plugin": {"type": "http", "addr": "http://127.0.0.1:1/sd"}},
}

#: built from a plugin alone: an unchanged one is kept over a reload (its transport stays open)
PLUGIN_ONLY = {"sds"}


def test_every_close_kind_is_covered_here():
    assert set(OBJECTS) == set(runtime.CLOSE_KINDS)


def _spy(g, kind, calls):
    obj = getattr(g.registries, kind).get("x")
    real = obj.close
    obj.close = lambda: (calls.append(("close", kind, id(obj))), real())[-1]
    obj.retire = lambda timeout=1.0: calls.append(("retire", kind, id(obj)))
    return obj


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_replace_delete_and_stop_close_the_object(kind):
    g = runtime.Gost({kind: [OBJECTS[kind]]}, thread=False)
    g.start()
    calls = []
    first = _spy(g, kind, calls)
    g.update(kind, "x", OBJECTS[kind])                    # an API replace: closed, not retired
    assert calls == [("close", kind, id(first))]
    second = _spy(g, kind, calls)
    g.delete(kind, "x")                                   # deleted: retired and closed
    assert calls[1:] == [("retire", kind, id(second)), ("close", kind, id(second))]
    g.create(kind, OBJECTS[kind])
    third = _spy(g, kind, calls)
    cfg = dict(g.config)
    g.reload({**cfg, kind: [OBJECTS[kind]]})
    if kind in PLUGIN_ONLY:                               # unchanged plugin: kept, its transport open
        assert getattr(g.registries, kind).get("x") is third and calls[3:] == []
        calls.append(("close", kind, id(third)))         # keeps the indices below aligned
        fourth = third
    else:                                                 # unchanged and local: rebuilt, closed
        fourth = _spy(g, kind, calls)
        assert calls[3:] == [("close", kind, id(third))]
    g.reload({k: v for k, v in cfg.items() if k != kind})  # dropped by a reload: as a delete
    assert calls[4:] == [("retire", kind, id(fourth)), ("close", kind, id(fourth))]
    g.create(kind, OBJECTS[kind])
    fifth = _spy(g, kind, calls)
    g.stop(0)                                             # stop: retired and closed
    assert calls[6:] == [("retire", kind, id(fifth)), ("close", kind, id(fifth))]


def test_an_unchanged_shared_limiter_stays_one_member_over_a_reload():
    """-R reloads every period: a limiter counting in Redis whose config did not change is kept
    (one member, its leases and heartbeat go on), not replaced by a new member each period."""
    store = {"redis": {"addr": "127.0.0.1:1", "key": "k"}, "ttl": "1s"}   # nothing is asked here
    cfg = {"climiters": [{"name": "x", "limits": ["$ 10"], "store": store}]}
    g = runtime.Gost(cfg, thread=False)
    g.start()
    kept = g.registries.climiters.get("x")
    g.reload(cfg)
    assert g.registries.climiters.get("x") is kept and kept._state == "open"
    g.reload({"climiters": [{"name": "x", "limits": ["$ 11"], "store": store}]})
    assert g.registries.climiters.get("x") is not kept and kept._state == "done"   # no lease: done at once
    g.stop(0)
    assert g.registries.climiters.get("x")._state == "done"


@pytest.mark.parametrize("kind,obj", [
    ("hops", {"name": "x", "nodes": [{"name": "n", "addr": "127.0.0.1:1"}]}),
    ("chains", {"name": "x", "hops": [{"name": "h", "nodes": [{"name": "n", "addr": "127.0.0.1:1"}]}]}),
])
def test_kinds_without_close_are_replaced_and_deleted_as_before(kind, obj):
    g = runtime.Gost({kind: [obj]}, thread=False)
    g.start()
    g.update(kind, "x", obj)
    g.delete(kind, "x")
    assert getattr(g.registries, kind).get("x") is None
    g.stop(0)
