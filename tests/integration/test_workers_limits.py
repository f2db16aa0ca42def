"""Limits and reloads under ``-workers``: what a user of a worker group (and of a fleet of such
groups sharing one redis-server) sees. bin/gostg processes, a real redis-server on a free loopback
port; every process checked and stopped by PID. Which worker did what is read from the log's
``worker`` field.

- with a Redis ``store``, a ``$`` connection limit and a ``$`` request rate stay whole across a
  ``-workers 2`` instance and a second instance (not split per worker, not counted per worker);
- without a store, a rate limit is split between the workers (each enforces its share);
- ``-workers auto`` starts one worker per usable core; ``-R`` re-reads a ``-C`` file for the
  whole group and every worker applies the change.
"""
import json
import os
import time

import yaml

from .helpers import Echo, Gost, free_port, wait_for, wait_port
from .peers import log_records
from .redisproc import redis_srv, socks5  # noqa: F401 (redis_srv: a fixture)
from .test_limiter_shared import at_once, attempt, conn_counts, first_tunnel, hammer, tunnel
from .test_process import children, reaper, wait_children  # noqa: F401 (reaper: a fixture)
from .test_workers import served_by_both, socks5_echo

STORE_KEY = "test:shared"   # conn_counts reads its climiter hash


def limited(tmp_path, name, workers, climits=None, rlimits=None, redis_port=None):
    """The config file of one gostg: an http proxy service ``s`` limited by climiter ``c`` and/or
    rlimiter ``r`` (shared through Redis under one key when ``redis_port`` is given)."""
    port = free_port()
    svc = {"name": "s", "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}, "listener": {"type": "tcp"}}
    cfg = {"workers": workers, "services": [svc], "log": {"level": "info"}}
    store = {"store": {"redis": {"addr": f"127.0.0.1:{redis_port}", "key": STORE_KEY}, "ttl": "2s"}} \
        if redis_port else {}
    if climits:
        svc["climiter"] = "c"
        cfg["climiters"] = [{"name": "c", "limits": climits, **store}]
    if rlimits:
        svc["rlimiter"] = "r"
        cfg["rlimiters"] = [{"name": "r", "limits": rlimits, **store}]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, port


def start(path, port, reaper, workers):
    """bin/gostg -C path, its port open and (with workers) every worker listening."""
    g = Gost("-C", path, ports=())
    g.start()
    g.port = port
    reaper.append(g.proc.pid)
    if workers > 1:
        reaper.extend(wait_children(g.proc.pid, workers, timeout=20))
    wait_port(port, proc=g.proc, timeout=20)
    if workers > 1:
        assert wait_for(lambda: "workers running" in g.log_text(), timeout=20), g.log_text()[-2000:]
    return g


def worker_of(g, s):
    """Which worker of ``g`` relays the tunnel ``s`` (its ``<->`` line names our port)."""
    client = "%s:%d" % s.getsockname()[:2]
    recs = wait_for(lambda: [e for e in log_records(g, client=client) if "<->" in str(e.get("msg"))], timeout=3)
    assert recs, f"no relay line for {client}"
    return recs[0].get("worker")


def refusing_workers(g, msg, since=0):
    """{worker} that logged ``msg`` (a limit's refusal) from log record ``since`` on."""
    return {e.get("worker") for e in log_records(g)[since:] if str(e.get("msg")).startswith(msg)}


def admitting_workers(g, since=0):
    """worker → the tunnels it relayed (``<->`` lines of service ``s``) from record ``since`` on."""
    out = {}
    for e in log_records(g)[since:]:
        if e.get("service") == "s" and "<->" in str(e.get("msg")):
            out[e.get("worker")] = out.get(e.get("worker"), 0) + 1
    return out


def settled(r):
    """No connection counted in Redis, now and 0.3 s later."""
    if sum(conn_counts(r).values()):
        return False
    time.sleep(0.3)
    return sum(conn_counts(r).values()) == 0


CONN_REFUSED = "connection limit reached"
RATE_REFUSED = "request rate limit reached"


def test_shared_conn_limit_is_whole_across_workers_and_instances(tmp_path, redis_srv, reaper):
    """``$ 3`` with a Redis store, one gostg ``-workers 2`` (A) and one with one worker (B): in
    each round B takes a tunnel, then A admits until it refuses. Every round exactly 3 are
    admitted in all (a per-worker split would stop at 2 + 1, per-worker counting at 3 per
    worker), A's further tries and B's are refused on every worker. Rounds repeat (bounded) until
    both of A's workers have admitted tunnels: the count is one across both workers."""
    pa, port_a = limited(tmp_path, "a", 2, climits=["$ 3"], redis_port=redis_srv.port)
    pb, port_b = limited(tmp_path, "b", 1, climits=["$ 3"], redis_port=redis_srv.port)
    r = redis_srv.client()
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        a, b = start(pa, port_a, reaper, 2), start(pb, port_b, reaper, 1)
        with a, b:
            a_workers, rounds = set(), 0
            while a_workers != {0, 1} and rounds < 8:
                rounds += 1
                # the port probes' (or the last round's) leases are released first; a probe
                # just accepted may not have taken its lease yet, so the count must stay at 0
                assert wait_for(lambda: settled(r), timeout=8), conn_counts(r)
                mark = len(log_records(a))
                held = [first_tunnel(b.port, target)]
                assert held[0] is not None, b.log_text()[-2000:]
                for _ in range(6):
                    s = tunnel(a.port, target)
                    if s is None:
                        break
                    held.append(s)
                try:
                    assert len(held) == 3, f"round {rounds}: {len(held)} admitted of $ 3 ({conn_counts(r)})"
                    assert sum(conn_counts(r).values()) == 3, conn_counts(r)
                    a_workers |= {worker_of(a, s) for s in held[1:]}
                    # full for everyone: both of A's workers refuse (SO_REUSEPORT spreads the
                    # tries; bounded), and B refuses
                    for _ in range(20):
                        assert tunnel(a.port, target) is None, "A admitted a 4th tunnel"
                        if refusing_workers(a, CONN_REFUSED, mark) == {0, 1}:
                            break
                    assert wait_for(lambda: refusing_workers(a, CONN_REFUSED, mark) == {0, 1}, timeout=3), \
                        refusing_workers(a, CONN_REFUSED, mark)
                    assert tunnel(b.port, target) is None, "B admitted a 4th tunnel"
                finally:
                    for s in held:
                        s.close()
            assert a_workers == {0, 1}, f"after {rounds} rounds only worker(s) {a_workers} admitted"


def test_shared_rate_limit_is_whole_across_workers_and_instances(tmp_path, redis_srv, reaper):
    """``$ 10`` requests/s with a Redis store on A (``-workers 2``) and B, hammered for 2 s from
    three threads (two on A, one on B): the fleet admits at most burst + rate × t
    (11 + 10/s × elapsed, README "Limits for the whole fleet"), and near it (≥ half the rate:
    the store answers every process), and both of A's workers admitted requests."""
    pa, port_a = limited(tmp_path, "a", 2, rlimits=["$ 10"], redis_port=redis_srv.port)
    pb, port_b = limited(tmp_path, "b", 1, rlimits=["$ 10"], redis_port=redis_srv.port)
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        a, b = start(pa, port_a, reaper, 2), start(pb, port_b, reaper, 1)
        with a, b:
            time.sleep(1.2)     # the port probes took tokens: the bucket refills (11 at 10/s)
            mark = len(log_records(a))
            accepted, tried, elapsed = hammer([a.port, a.port, b.port], target)
            total = sum(accepted)
            assert tried > 2 * total, f"too few attempts ({tried}) to test the limit"
            assert total <= 11 + 10 * elapsed, (accepted, elapsed)
            assert total >= 0.5 * 10 * 2.0, (accepted, elapsed)
            # (every admitted tunnel's line, once the workers have written them)
            assert wait_for(lambda: sum(admitting_workers(a, mark).values()) == accepted[0] + accepted[1],
                            timeout=3), (admitting_workers(a, mark), accepted)
            by_worker = admitting_workers(a, mark)
            assert set(by_worker) == {0, 1}, f"A's admissions by worker: {by_worker}"
            assert accepted[2] > 0, accepted


def test_workers_split_a_rate_limit_without_a_store(tmp_path, reaper):
    """``$ 4`` requests/s, no store, ``-workers 2``: each worker enforces its share, 2/s with
    GOST's burst int(rate) + 1 = 3. A burst of 40 fresh connections at once (10 threads) drains
    both workers' buckets (each refuses some), so each admits at most 3 + 2/s × t and the group
    at most 6 + 4/s × t (t: the burst's duration, well under 1 s here): about 6. Counting the
    whole limit in each worker would admit 5 + 4/s × t per worker, 10 or more in all."""
    path, port = limited(tmp_path, "a", 2, rlimits=["$ 4"])
    with Echo() as echo:
        target = f"127.0.0.1:{echo.port}"
        g = start(path, port, reaper, 2)
        with g:
            time.sleep(1.6)     # the port probe's token is back (3 at 2/s per worker)
            mark = len(log_records(g))
            per_thread = [[] for _ in range(10)]

            def burst(k):
                per_thread[k] = [attempt(port, target) for _ in range(4)]

            t0 = time.monotonic()
            at_once(burst, 10, timeout=15)
            elapsed = time.monotonic() - t0
            got = [x for xs in per_thread for x in xs]
            admitted = got.count(True)
            assert len(got) == 40
            assert wait_for(lambda: sum(admitting_workers(g, mark).values()) == admitted, timeout=3), \
                (admitting_workers(g, mark), admitted)
            by_worker = admitting_workers(g, mark)
            assert wait_for(lambda: refusing_workers(g, RATE_REFUSED, mark) == {0, 1}, timeout=3), \
                f"a worker's bucket never ran dry: refused by {refusing_workers(g, RATE_REFUSED, mark)}, {by_worker}"
            for w, n in by_worker.items():
                assert n <= 3 + 2 * elapsed, f"worker {w} admitted {n} in {elapsed:.2f}s: more than its share"
            assert 5 <= admitted <= 6 + 4 * elapsed, (admitted, elapsed, by_worker)


def test_workers_auto_starts_one_worker_per_usable_core(tmp_path, reaper):
    """``-workers auto``: as many workers as cores this process may run on (its CPU affinity,
    as Go's NumCPU counts them); under ``taskset -c 0`` that is one, so no worker processes."""
    cores = len(os.sched_getaffinity(0))
    with Echo() as echo:
        if cores > 1:
            port = free_port()
            g = Gost("-L", f"socks5://127.0.0.1:{port}", "-workers", "auto", ports=())
            g.start()
            reaper.append(g.proc.pid)
            with g:
                reaper.extend(wait_children(g.proc.pid, cores, timeout=20))
                wait_port(port, proc=g.proc, timeout=20)
                assert wait_for(lambda: f"{cores} workers running" in g.log_text(), timeout=20), g.log_text()
                time.sleep(0.3)
                assert len(children(g.proc.pid)) == cores
        port = free_port()
        g = Gost("-L", f"socks5://127.0.0.1:{port}", "-workers", "auto", prefix=("taskset", "-c", "0"), ports=(port,))
        g.start()
        reaper.append(g.proc.pid)
        with g:
            assert socks5_echo(port, echo.port) == b"ping"
            assert children(g.proc.pid) == [], "workers started on a single allowed core"
            assert "workers running" not in g.log_text()


def test_workers_reload_period_applies_a_file_change_in_every_worker(tmp_path, reaper):
    """``-C file -R 0.3s -workers 2``: a bypass entry added to the file is applied by both
    workers (each refuses the target, SOCKS5 "not allowed"); removing it again re-admits."""
    port = free_port()
    with Echo() as echo:
        def write(matchers):
            cfg = {"services": [{"name": "s5", "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5"},
                                 "bypass": "b"}],
                   "bypasses": [{"name": "b", "matchers": matchers}], "log": {"level": "info"}}
            path.write_text(json.dumps(cfg))

        path = tmp_path / "gost.json"
        write(["203.0.113.9"])
        g = Gost("-C", path, "-R", "0.3s", "-workers", "2", ports=())
        g.start()
        reaper.append(g.proc.pid)
        with g:
            reaper.extend(wait_children(g.proc.pid, 2, timeout=20))
            wait_port(port, proc=g.proc, timeout=20)
            assert wait_for(lambda: "workers running" in g.log_text(), timeout=20)
            served_by_both(g, port, "s5", echo.port, 30)

            write(["203.0.113.9", "127.0.0.1"])
            # the supervisor re-reads the file within a period and pushes it to both workers
            assert wait_for(lambda: socks5(port, dport=echo.port) == 2, timeout=5), g.log_text()[-3000:]
            time.sleep(0.2)     # (the other worker applies the same push at the same time)
            mark = len(log_records(g))
            # 30 connections (SO_REUSEPORT spreads them over both): every one is refused
            replies = [socks5(port, dport=echo.port) for _ in range(30)]
            assert set(replies) == {2}, replies   # 2: connection not allowed by ruleset

            def bypassed_by():
                return {e.get("worker") for e in log_records(g)[mark:] if e.get("service") == "s5"
                        and e.get("msg") == "bypass"}
            assert wait_for(lambda: bypassed_by() == {0, 1}, timeout=3), (bypassed_by(), g.log_text()[-3000:])

            write(["203.0.113.9"])
            assert wait_for(lambda: socks5(port, dport=echo.port) == 0, timeout=5), g.log_text()[-3000:]
            time.sleep(0.2)
            served_by_both(g, port, "s5", echo.port, 30)
