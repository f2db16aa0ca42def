"""The resolver cache (go-gost/x internal/util/resolver/cache.go, in our words).

Rules:
1. A resolver keys it by (nameserver, name, record type), the ``dns`` handler by (name, class,
   type); one cache per resolver or handler object, so one replaced through the Web API starts
   cold. Values are kept as given (IP lists, reply bytes): callers store values nobody mutates.
2. ``store(key, value, record_ttl, ttl)``: ``ttl`` > 0 overrides the record TTL; ``ttl`` == 0
   uses the record TTL (the smallest in the answer), or 60 s when the answer carries none;
   ``ttl`` < 0 stores nothing (the cache is off for that nameserver).
3. ``load`` returns the IPs with the seconds left; an expired entry is still returned (with
   seconds left ≤ 0) so an ``async`` nameserver can serve it stale while it refreshes.
4. The cache is bounded: when full, expired entries go first, then the oldest.
"""
import time


class Cache:
    #: GOST's TTL for answers that carry none
    DEFAULT_TTL = 60.0
    #: entries kept at most (a proxy resolving arbitrary client names must not grow unbounded)
    MAX_ENTRIES = 4096

    def __init__(self, clock=time.monotonic, max_entries=MAX_ENTRIES):
        self._clock = clock
        self.max_entries = max_entries
        self._items = {}   # key → (value, stored_at, ttl)

    def __len__(self):
        return len(self._items)

    def load(self, key):
        """→ ``(value, seconds_left)`` or None on a miss."""
        item = self._items.get(key)
        if item is None:
            return None
        ips, at, ttl = item
        return ips, ttl - (self._clock() - at)

    def store(self, key, value, record_ttl=0, ttl=0):
        if ttl < 0:
            return
        keep = ttl if ttl > 0 else (record_ttl if record_ttl > 0 else self.DEFAULT_TTL)
        now = self._clock()
        if key not in self._items and len(self._items) >= self.max_entries:
            self._evict(now)
        self._items[key] = (value, now, float(keep))

    def _evict(self, now):
        expired = [k for k, (_, at, ttl) in self._items.items() if now - at > ttl]
        for k in expired:
            del self._items[k]
        if len(self._items) >= self.max_entries:
            oldest = min(self._items, key=lambda k: self._items[k][1])
            del self._items[oldest]
