"""Limiters shared through Redis (``store.redis``): three bin/gostg processes and one real
redis-server started here on a free loopback port (stopped by PID). A connection limit holds
across all three, a request rate is summed across all three, a killed instance's connections stop
counting within the store's ttl, and a Redis that stops answering means what the README says:
connection limits refuse (fail closed), rate limits fall back to a local share, both recover."""
import signal
import threading
import time

import pytest
import yaml

from .helpers import Echo, Gost, free_port, wait_for
from .redisproc import RedisServer
from .peers import Api, wait_log
from .test_limiter import TOLERANCE, MiB, echo_ok, timed_curl, tunnel as _tunnel

TTL = 1.0


@pytest.fixture
def redis_server(tmp_path):
    r = RedisServer(tmp_path).start()
    try:
        yield r
    finally:
        r.stop()


def instance(tmp_path, i, redis_port, climits=None, rlimits=None, ttl=TTL, limits=None, extra=()):
    """A gostg with one http proxy service on a free port, limited by a shared climiter and/or
    rlimiter named "c"/"r" under the same Redis key in every instance."""
    port = free_port()
    store = {"redis": {"addr": f"127.0.0.1:{redis_port}", "key": "test:shared"}, "ttl": f"{ttl}s"}
    svc = {"name": "s", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}, "listener": {"type": "tcp"}}
    cfg = {"services": [svc], "log": {"level": "info"}}
    if climits:
        svc["climiter"] = "c"
        cfg["climiters"] = [{"name": "c", "limits": climits, "store": store}]
    if rlimits:
        svc["rlimiter"] = "r"
        cfg["rlimiters"] = [{"name": "r", "limits": rlimits, "store": store}]
    if limits:
        svc["limiter"] = "t"
        cfg["limiters"] = [{"name": "t", "limits": limits, "store": store}]
    path = tmp_path / f"gost{i}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    g = Gost("-C", path, *extra, ports=[port])
    g.port = port
    return g


def tunnel(port, target, timeout=5):
    """A CONNECT tunnel through gostg → the socket (echo checked), or None when gostg closed it."""
    try:
        s = _tunnel(port, target, timeout)
    except BrokenPipeError:   # closed before the request was written
        return None
    if s is not None and not echo_ok(s):
        s.close()
        return None
    return s


def first_tunnel(port, target, timeout=8.0):
    """A tunnel as soon as one is admitted (a probe's lease may still be releasing)."""
    return wait_for(lambda: tunnel(port, target), timeout=timeout)


def conn_counts(r):
    """Redis's view of the service-wide climiter: member → open connections."""
    return {k: int(v) for k, v in r.hgetall("test:shared:conn:$").items()}


def test_shared_conn_limit_holds_across_three_instances(tmp_path, redis_server):
    """``$ 3`` shared by three gostg processes: three tunnels spread over them, then a fourth is
    refused by every one of them; one closes → a new one is admitted (in another instance)."""
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        gs = [instance(tmp_path, i, redis_server.port, climits=["$ 3"]) for i in range(3)]
        with gs[0], gs[1], gs[2]:
            held = [first_tunnel(g.port, target) for g in gs]
            assert all(s is not None for s in held), (conn_counts(redis_server.client()),
                                                      [[l for l in g.log_text().splitlines() if "Redis" in l or "limit" in l] for g in gs])
            for g in gs:
                assert tunnel(g.port, target) is None, "a fourth tunnel was admitted"
                assert wait_log(g, "connection limit reached")
            assert sum(conn_counts(redis_server.client()).values()) == 3
            held[0].close()
            again = first_tunnel(gs[2].port, target)
            assert again is not None
            assert tunnel(gs[1].port, target) is None
            for s in held[1:] + [again]:
                s.close()
            # every release reaches Redis: the counts go back to nothing
            assert wait_for(lambda: sum(conn_counts(redis_server.client()).values()) == 0, timeout=5)


def test_shared_per_ip_conn_limit(tmp_path, redis_server):
    """``$$ 1``: one tunnel per client IP across both instances; another IP has its own slot."""
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        gs = [instance(tmp_path, i, redis_server.port, climits=["$$ 1"]) for i in range(2)]
        with gs[0], gs[1]:
            a = first_tunnel(gs[0].port, target)
            assert a is not None
            assert tunnel(gs[1].port, target) is None
            assert redis_server.client().exists("test:shared:conn:ip:127.0.0.1")
            a.close()
            b = first_tunnel(gs[1].port, target)
            assert b is not None and tunnel(gs[0].port, target) is None
            b.close()


def at_once(fn, n, timeout):
    """``fn(0)`` … ``fn(n - 1)`` in threads at once; back when all ended (or ``timeout`` each)."""
    threads = [threading.Thread(target=fn, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)


def attempt(port, target):
    """One request through gostg's rate limiter → True when it was admitted."""
    s = tunnel(port, target, timeout=3)
    if s is None:
        return False
    s.close()
    return True


def hammer(ports, target, seconds=2.0):
    """One thread per port, each trying requests through it for ``seconds`` → (admitted per
    port, attempts in all, seconds it took)."""
    accepted, tried = [0] * len(ports), [0]
    t0 = time.monotonic()
    stop = t0 + seconds

    def one(k):
        while time.monotonic() < stop:
            tried[0] += 1
            if attempt(ports[k], target):
                accepted[k] += 1

    at_once(one, len(ports), timeout=seconds + 8)
    return accepted, tried[0], time.monotonic() - t0


def test_shared_rate_limit_sums_three_instances(tmp_path, redis_server):
    """``$ 10`` per second shared by three gostg processes hammered from three threads for 2 s:
    the accepted requests of all three together stay within the token bucket's bound
    (burst 11 + 10/s × elapsed) and near the rate (≥ 70 % of it)."""
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        gs = [instance(tmp_path, i, redis_server.port, rlimits=["$ 10"]) for i in range(3)]
        with gs[0], gs[1], gs[2]:
            time.sleep(1.2)    # the ports' probe connections took tokens: the bucket refills
            accepted, tried, elapsed = hammer([g.port for g in gs], target)
        total = sum(accepted)
        assert tried > 2 * total, f"too few attempts ({tried}) to test the limit"
        assert total <= 11 + 10 * elapsed, (accepted, elapsed)
        assert total >= 0.7 * 10 * 2.0, (accepted, elapsed)   # near the rate (a busy box gets fewer tries in)
        assert sum(1 for a in accepted if a) >= 2, f"the rate was not shared: {accepted}"


def test_killed_instance_stops_counting_within_the_ttl(tmp_path, redis_server):
    """Instance A holds both slots of ``$ 2`` and is killed with SIGKILL (no release ever goes
    out): B admits again once A's heartbeat has run out, within the ttl (1 s) plus a sync."""
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        a, b = (instance(tmp_path, i, redis_server.port, climits=["$ 2"]) for i in range(2))
        with a, b:
            held = [first_tunnel(a.port, target), first_tunnel(a.port, target)]
            assert all(held) and tunnel(b.port, target) is None
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=5)
            killed = time.monotonic()
            c = first_tunnel(b.port, target, timeout=5)
            took = time.monotonic() - killed
            assert c is not None, "the dead instance's connections still count"
            assert took <= TTL + 1.0, f"took {took:.2f}s"
            # A's stale field is deleted by the admission that found it dead
            assert len(conn_counts(redis_server.client())) == 1
            # a graceful stop tells Redis at once (the count would otherwise live ttl × 3)
            b.stop()
            assert wait_for(lambda: conn_counts(redis_server.client()) == {}, timeout=1.0)
            for s in held + [c]:
                s.close()


def test_redis_down_conn_limit_fails_closed_rate_limit_falls_back_and_both_recover(tmp_path, redis_server):
    """Redis stops: the shared climiter refuses new tunnels (open ones keep working), the shared
    rlimiter limits locally at its share, each logs once. Redis comes back (empty): both answer
    again, logged, and the open tunnel's count is written back."""
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        c = instance(tmp_path, 0, redis_server.port, climits=["$ 5"])
        r = instance(tmp_path, 1, redis_server.port, rlimits=["$ 2"])
        with c, r:
            held = first_tunnel(c.port, target)
            assert held is not None
            redis_server.stop()
            assert tunnel(c.port, target) is None
            assert wait_log(c, "Redis did not answer.*new connections are refused")
            held.sendall(b"still")
            assert held.recv(5) == b"still"
            time.sleep(1.1)     # a full local bucket of 2/s: 3 pass (burst), the rest are refused
            t0 = time.monotonic()
            got = [attempt(r.port, target) for _ in range(8)]
            # this instance's share (the whole 2/s: it was the only one alive): burst 3 + refill
            assert 2 <= got.count(True) <= 3 + 2 * (time.monotonic() - t0) + 1 and not all(got), got
            assert wait_log(r, "Redis did not answer.*limits locally")
            redis_server.start()
            again = wait_for(lambda: tunnel(c.port, target), timeout=5)
            assert again is not None
            assert wait_log(c, "Redis answers again")
            time.sleep(1.1)     # the fallback's retry period: the next request asks Redis again
            assert attempt(r.port, target)
            assert wait_log(r, "Redis answers again")
            assert wait_for(lambda: sum(conn_counts(redis_server.client()).values()) == 2, timeout=3), \
                conn_counts(redis_server.client())
            for s in (held, again):
                s.close()
            logs = c.log_text()
            assert logs.count("Redis did not answer") == 1 and logs.count("Redis answers again") == 1, logs


def test_garbage_in_redis_fails_closed_with_one_log_line(tmp_path, redis_server):
    """Another program wrote a string where the climiter keeps its hash: Redis refuses the
    script (WRONGTYPE), so gostg refuses connections and says why, once."""
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        g = instance(tmp_path, 0, redis_server.port, climits=["$ 5"])
        with g:
            redis_server.client().set("test:shared:conn:$", "not a hash")
            assert [tunnel(g.port, target) for _ in range(3)] == [None, None, None]
            assert wait_log(g, "Redis did not answer .*WRONGTYPE.*refused")
            redis_server.client().delete("test:shared:conn:$")
            s = wait_for(lambda: tunnel(g.port, target), timeout=5)
            assert s is not None
            s.close()
            logs = g.log_text()
            assert logs.count("Redis did not answer") == 1 and logs.count("Redis answers again") == 1, logs


def test_shared_traffic_limit_splits_the_service_rate_between_instances(tmp_path, redis_server):
    """``$ 0 1MB`` (out) shared by two instances: two 1 MiB downloads at once, one through each,
    share 1 MiB/s (each alone would take ~1 s; together they take ~2 s)."""
    from .peers import FastOrigin, cached_body

    with FastOrigin() as origin:
        gs = [instance(tmp_path, i, redis_server.port, limits=["$ 0 1MB"]) for i in range(2)]
        with gs[0], gs[1]:
            t0 = time.monotonic()
            results = [None, None]

            def get(k):
                results[k] = timed_curl("-x", f"http://127.0.0.1:{gs[k].port}", f"{origin.url}/bytes/{MiB}")

            at_once(get, 2, timeout=20)
            elapsed = time.monotonic() - t0
            assert all(r is not None and r[0] == cached_body(MiB)[0] for r in results)
            rate = 2 * MiB / elapsed
            assert abs(rate - MiB) <= TOLERANCE * MiB + 0.1 * MiB, f"{rate / MiB:.2f} MiB/s for the fleet"
            assert redis_server.client().exists("test:shared:traffic:$:out")


def test_an_api_replace_keeps_the_old_leases_and_a_delete_retires_them(tmp_path, redis_server):
    """A shared climiter replaced through the Web API (``$ 2`` → ``$ 3``, same key): the tunnel
    the old one admitted still counts in Redis (heartbeated past the ttl) until it closes, so
    the new one admits 2 more, not 3; its close reaches Redis. A delete retires this instance's
    counts at once, and every Redis client the limiters held is released."""
    r = redis_server.client()
    api_port = free_port()
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        g = instance(tmp_path, 0, redis_server.port, climits=["$ 2"], extra=("-api", f"127.0.0.1:{api_port}"))
        with g:
            api = Api(api_port)
            old = first_tunnel(g.port, target)
            # (the start-up port probe's lease may still be releasing: wait for it to go)
            assert old is not None and wait_for(lambda: sum(conn_counts(r).values()) == 1, timeout=3), conn_counts(r)
            store = {"redis": {"addr": f"127.0.0.1:{redis_server.port}", "key": "test:shared"}, "ttl": f"{TTL}s"}
            api.put("climiters", "c", {"name": "c", "limits": ["$ 3"], "store": store})
            time.sleep(TTL * 1.5)   # past the ttl: the replaced member still heartbeats its lease
            new = [first_tunnel(g.port, target), first_tunnel(g.port, target)]
            assert all(new) and sum(conn_counts(r).values()) == 3, conn_counts(r)
            assert tunnel(g.port, target) is None, "the replaced limiter's lease stopped counting"
            assert len(conn_counts(r)) == 2   # two members: the replaced one and its successor
            old.close()
            assert wait_for(lambda: conn_counts(r) and sum(conn_counts(r).values()) == 2, timeout=3), conn_counts(r)
            assert wait_for(lambda: len(conn_counts(r)) == 1, timeout=3), conn_counts(r)
            api.delete("climiters", "c")
            # retired at once (not after the ttl), while its two tunnels are still open
            assert wait_for(lambda: conn_counts(r) == {}, timeout=0.5), conn_counts(r)
            assert wait_for(lambda: len(r.client_list()) == 1, timeout=3), r.client_list()   # only ours
            for s in new:
                s.close()
