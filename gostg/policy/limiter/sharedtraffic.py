"""A traffic limiter whose ``$`` (whole service) rate holds across processes and instances:
the service's byte buckets live in Redis (``store.redis``), and each process leases a tenth of a
second of the rate at a time, so Redis is asked once per lease, not per chunk. ``$$`` and IP
scopes stay per process (each connection / client IP is served by one process).

Tolerance: over W seconds the fleet moves at most ``rate × W`` plus one burst in Redis plus one
unused lease per process (each 0.1 s of the rate). Redis down: each process shapes locally at its
share (rate ÷ instances last seen alive), logged once, until Redis answers again.
"""
from .bucket import TokenBucket, traffic_burst
from .store import StoreDown
from .traffic import TrafficLimiter

#: seconds of the rate one lease takes from Redis
LEASE_SECONDS = 0.1


class LeasedBucket(TokenBucket):
    """A ``$`` bucket whose tokens come from the shared Redis bucket ``key`` in leases. ``take``
    spends leased tokens locally; when they run out it reserves a new lease (one round trip in
    the caller's greenlet, which pay() then sleeps for as long as Redis says the debt needs)."""

    __slots__ = ("store", "key", "peers", "local")

    def __init__(self, rate, store, key):
        self.store, self.key, self.peers = store, key, 1
        self.local = None
        super().__init__(rate)
        self.tokens = 0.0   # nothing leased yet

    def set_rate(self, rate, burst=None):
        self.rate = rate
        if rate > 0:
            self.burst = burst if burst is not None else traffic_burst(rate)
        self.local = None

    def take(self, n):
        if self.rate <= 0:
            return 0.0
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        lease = max(n - self.tokens, self.rate * LEASE_SECONDS)
        try:
            wait_ms, peers = self.store.run("lease", [self.key], [repr(float(self.rate)), self.burst, repr(lease)])
        except StoreDown:
            return self._fallback().take(n)
        self.peers = max(1, int(peers))
        self.tokens += lease - n
        return int(wait_ms) / 1000.0

    def _fallback(self):
        share = self.rate / self.peers
        if self.local is None or self.local.rate != share:
            self.local = TokenBucket(share)
        return self.local

    def available(self):
        return self.tokens

    def full(self):
        return False


class SharedTrafficLimiter(TrafficLimiter):
    """A ``limiters`` entry with ``store``: TrafficLimiter with the ``$`` buckets leased from
    Redis (every other scope as before)."""

    def __init__(self, name, source, store):
        self.store = store
        super().__init__(name, source)

    def close(self):
        """No counts of its own live in Redis (the ``$`` buckets are shared state every member
        refills): the source stops and the Redis client is released. The connections of a
        replaced limiter still paying through its buckets shape locally at their share."""
        super().close()
        self.store.close()

    def _service_bucket(self, d, rate):
        return LeasedBucket(rate, self.store, self.store.key("traffic", "$") + (":out" if d else ":in"))
