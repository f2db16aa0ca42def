"""Concurrent-connection limiters (``climiters``): a Lease per admitted connection."""
from .common import SERVICE, Sourced, applicable, number_line, table_parser


def parse_count_line(line):
    """``"$$ 10"`` → ``("$$", 10)`` (concurrent connections); <= 0 means no limit (None)."""
    r = number_line(line, "<scope> <connections>", int, "connections must be an integer")
    if r is None:
        return None
    scope, n = r
    return scope, (n if n > 0 else None)


def _share(scope, n, workers):
    """One worker's part of a connection count, rounded up (a limit never becomes 0: 3
    connections over 2 workers allow 2 each, 4 in all)."""
    return -(-n // workers)


parse_counts = table_parser(parse_count_line, _share)


class Lease:
    """One admitted connection; ``release`` (idempotent) gives its slots back."""

    __slots__ = ("limiter", "keys")

    def __init__(self, limiter, keys):
        self.limiter, self.keys = limiter, keys

    def release(self):
        keys, self.keys = self.keys, ()
        if keys:
            self.limiter._release(keys)


class ConnLimiter(Sourced):
    """A named ``climiters`` entry: ``$`` caps the service's concurrent connections, ``$$`` (or
    a matching IP/CIDR entry instead) each client IP's. Counts survive file reloads."""

    def __init__(self, name, source):
        self.name = name
        self.source = source
        self._counts = {}

    def acquire(self, host):
        """→ a Lease, or None when a limit is reached (the caller closes the connection)."""
        wanted = applicable(self.source.value(), host)
        for key, limit in wanted:
            if self._counts.get(key, 0) >= limit:
                return None
        keys = tuple(k for k, _ in wanted)
        for k in keys:
            self._counts[k] = self._counts.get(k, 0) + 1
        return Lease(self, keys)

    def _release(self, keys):
        for k in keys:
            n = self._counts.get(k, 0) - 1
            if n > 0:
                self._counts[k] = n
            else:
                self._counts.pop(k, None)

    def count(self, key=SERVICE):
        return self._counts.get(key, 0)
