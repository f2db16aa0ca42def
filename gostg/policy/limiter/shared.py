"""Connection and request-rate limiters whose counts live in Redis (``store.redis``), so a limit
holds across every worker process and every gostg instance configured with the same key.

Connection limits (climiters) are exact while every instance reaches Redis: admission is one
atomic check-and-increment. An instance that dies (kill -9, power loss) stops its heartbeat; its
open-connection counts stop counting within ``store.ttl``. Redis down: new connections are
refused (fail closed: the limit decides who gets in); open ones keep running, their releases are
queued and the counts re-asserted when Redis answers again.

Request rates (rlimiters) are one token bucket in Redis per scope (the local bucket's rate and
burst): over any window of W seconds at most ``burst + rate × W`` requests pass across all
instances. Redis down: each instance falls back to a local bucket at its share of the limit (the
rate divided by the instances Redis last reported alive), so the total stays near the limit
instead of refusing everyone (an outage of the counter store must not take the proxy down) or
letting everyone through.
"""
import gevent
from gevent.event import Event

from .common import SERVICE, Table, applicable
from .conn import Lease
from .rate import RateLimiter
from .store import StoreDown


class SharedConnLimiter:
    """A ``climiters`` entry with ``store``: the same ``$``/``$$``/IP scopes as ConnLimiter,
    counted in Redis. ``acquire`` runs in the connection's greenlet (one round trip); releases
    and the heartbeat go through one greenlet that runs only while this process holds leases."""

    #: seconds a release waits for others to share its trip to Redis
    BATCH = 0.005

    def __init__(self, name, source, store):
        self.name = name
        self.source = source
        self.store = store
        self._held = {}        # redis key → this process's open leases on it
        self._leases = 0       # admitted leases not yet released
        self._pending = []     # released keys not yet told to Redis
        self._dirty = set()    # keys whose Redis count may be wrong (an answer was lost)
        self._resync = False   # re-assert the counts under a new member at the next sync
        self._wake = Event()
        self._syncer = None
        #: "open"; "closing" (replaced: its leases' releases still go out, then the store
        #: closes); "done" (retired, or the last lease of a replaced one is out)
        self._state = "open"

    def acquire(self, host):
        """→ a Lease, or None when a limit is reached or Redis cannot answer (fail closed)."""
        wanted = applicable(self.source.value(), host)
        if not wanted:
            return Lease(self, ())
        keys = tuple(self.store.key("conn", s) for s, _ in wanted)
        # counted here before Redis answers: a heartbeat meanwhile over-counts, never under
        self._add(keys, 1)
        try:
            r = int(self.store.run("acquire", keys, [n for _, n in wanted]))
        except StoreDown:
            self._add(keys, -1)
            self._lost(keys)
            return None
        if r & 2 and self._leases:   # our heartbeat had run out: others may have deleted our counts
            self._lost(())
        if not r & 1:
            self._add(keys, -1)
            if self._resync:
                self._start()
            return None
        self._leases += 1
        self._start()
        return Lease(self, keys)

    def _add(self, keys, d):
        for k in keys:
            n = self._held.get(k, 0) + d
            if n > 0:
                self._held[k] = n
            else:
                self._held.pop(k, None)

    def _lost(self, keys):
        self._dirty.update(keys)
        self._resync = True

    def _release(self, keys):
        # no I/O here: a lease may end in a hub callback (a detached tunnel's end)
        self._add(keys, -1)
        self._leases -= 1
        self._pending.extend(keys)
        self._start()
        self._wake.set()

    def _start(self):
        if self._syncer is None and self._state != "done":
            self._syncer = gevent.spawn(self._sync_loop)

    def _sync_loop(self):
        try:
            ok = True
            while True:
                # at once when there is news; else (the acquire that started us said "alive", or
                # Redis did not answer) at the heartbeat period or a release, whichever comes first
                if not ok or not (self._pending or self._resync):
                    if self._wake.wait(self.store.ttl / 3):
                        gevent.sleep(self.BATCH)   # the releases of a busy moment go in one trip
                    self._wake.clear()
                if self._state == "done":
                    return
                ok = self._sync()
                if not (self._held or self._pending or self._resync):
                    return
        finally:
            self._syncer = None
            if self._state == "closing" and not (self._held or self._pending):
                self._done()   # a replaced limiter's last lease is out

    def _sync(self):
        """Tell Redis the releases since the last sync and that this member is alive; after a
        lost answer or a lapsed heartbeat, re-assert this process's counts under a new member."""
        if self._resync:
            return self._reassert()
        pending, self._pending = self._pending, []
        held = sorted(self._held)
        try:
            lapsed = int(self.store.run("sync", [*pending, *held], [len(pending), "", *(self._held[k] for k in held)]))
        except StoreDown:
            self._lost(pending)
            return False
        if lapsed:   # others may have deleted our counts: nothing was applied
            self._lost(pending)
        return True

    def _reassert(self):
        old = self.store.renew()
        # the pending releases are already out of the counts written here
        keys = sorted(set(self._held) | set(self._pending) | self._dirty)
        self._pending, self._resync = [], False
        try:
            self.store.run("sync", keys, [0, old, *(self._held.get(k, 0) for k in keys)])
        except StoreDown:
            self._lost(keys)
            return False
        self._dirty.clear()
        return True

    def close(self):
        """Replaced (an API update, a reload): its source stops, and its open connections keep
        their leases. They count, and are heartbeated, until they end, so the replacement (a
        new member under the same key) admits against the true total; the last release goes
        out, then the Redis client is released. ``retire`` when gostg stops or the limiter is
        deleted: then the counts leave Redis at once."""
        self.source.close()
        if self._state != "open":
            return
        self._state = "closing"
        if self._syncer is None and not (self._held or self._pending):
            self._done()

    def _done(self):
        self._state = "done"
        self.store.close()

    def retire(self, timeout=1.0):
        """gostg stops, or the limiter is deleted: the syncer ends, and this member's counts
        leave Redis now (the connections they count are about to go with the process, or no
        longer count against a limiter that is gone) instead of after the ttl."""
        self.source.close()
        if self._state == "done":
            return
        self._state = "done"
        g = self._syncer
        if g is not None:
            self._wake.set()
            g.join(timeout)
            if not g.dead:
                g.kill(block=False)
        keys = sorted(set(self._held) | set(self._pending) | self._dirty)
        if keys:
            try:
                self.store.run("sync", keys, [0, self.store.renew(), *(0 for _ in keys)])
            except StoreDown:
                pass   # they stop counting when the heartbeat runs out
        self.store.close()

    def count(self, key=SERVICE):
        """This process's open leases on ``key`` (a scope)."""
        return self._held.get(self.store.key("conn", key), 0)


class _Share:
    """The rate table at this instance's share (each rate ÷ ``peers``): the source of the local
    fallback bucket while Redis is down."""

    def __init__(self, source, peers):
        self.source = source
        self.peers = peers
        self._cache = (None, 0, None)

    def value(self):
        t, n = self.source.value(), max(1, self.peers())
        if self._cache[0] is not t or self._cache[1] != n:
            s = Table()
            s.service = t.service / n if t.service else t.service
            s.default = t.default / n if t.default else t.default
            s.ips = {k: (v / n if v else v) for k, v in t.ips.items()}
            s.nets = [(k, (v / n if v else v)) for k, v in t.nets]
            self._cache = (t, n, s)
        return self._cache[2]


class SharedRateLimiter:
    """An ``rlimiters`` entry with ``store``: the same scopes and buckets as RateLimiter, kept
    in Redis. ``allow`` is one round trip in the connection's greenlet."""

    def __init__(self, name, source, store):
        self.name = name
        self.source = source
        self.store = store
        self.peers = 1   # instances alive at the last answer (the fallback's divisor)
        self.local = RateLimiter(name, _Share(source, lambda: self.peers))

    def allow(self, host):
        wanted = applicable(self.source.value(), host)
        if not wanted:
            return True
        args = []
        for _, r in wanted:
            args += [repr(float(r)), int(r) + 1]   # GOST's burst: one second of requests, plus one
        try:
            ok, peers = self.store.run("rate", [self.store.key("rate", s) for s, _ in wanted], args)
        except StoreDown:
            return self.local.allow(host)
        self.peers = max(1, int(peers))
        return bool(int(ok))

    def close(self):
        """Replaced, deleted or stopped: no counts of its own live in Redis (its buckets are
        shared state that every member refills), so there is nothing to retire."""
        self.source.close()
        self.store.close()
