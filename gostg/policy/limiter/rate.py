"""Request-rate limiters (``rlimiters``): requests per second, checked at handler start."""
import math

from .bucket import TokenBucket
from .common import Sourced, client_ip, number_line, table_parser


def parse_rate_line(line):
    """``"$ 2.5"`` → ``("$", 2.5)`` (requests per second); <= 0 means no limit (None)."""
    r = number_line(line, "<scope> <requests per second>", float, "the rate must be a number")
    if r is None:
        return None
    scope, v = r
    if math.isnan(v) or (math.isinf(v) and v > 0):
        raise ValueError(f"bad limit {line!r}: the rate must be finite")
    return scope, (v if v > 0 else None)


def _share(scope, rate, workers):
    return rate / workers   # requests per second: divides exactly


parse_rates = table_parser(parse_rate_line, _share)


def _rate_bucket(r, clock):
    return TokenBucket(r, int(r) + 1, clock)   # GOST's burst: one second of requests, plus one


class RateLimiter(Sourced):
    """A named ``rlimiters`` entry: requests per second for the service (``$``) and per client
    IP (``$$``, or a matching IP/CIDR entry instead). ``allow`` is checked at handler start; a
    refused request spends nothing."""

    #: per-IP buckets kept before idle (full) ones are dropped
    MAX_IPS = 4096

    def __init__(self, name, source, clock=None):
        self.name = name
        self.source = source
        self.clock = clock
        self._table = None
        self._service = None
        self._ips = {}

    def allow(self, host):
        t = self.source.value()
        if t is not self._table:
            self._table = t
            self._service = _rate_bucket(t.service, self.clock) if t.service else None
            self._ips = {}
        ip = client_ip(host)
        key = ip if ip is not None else host
        buckets = []
        if self._service is not None:
            buckets.append(self._service)
        b = self._ips.get(key)
        if b is None:
            r = t.for_ip(ip)
            if r is None:
                r = t.default
            if r is not None:
                if len(self._ips) >= self.MAX_IPS:
                    self._prune()
                b = self._ips[key] = _rate_bucket(r, self.clock)
        if b is not None:
            buckets.append(b)
        if any(x.available() < 1 for x in buckets):
            return False
        for x in buckets:
            x.take(1)
        return True

    def _prune(self):
        # a full bucket is the same as a fresh one: forgetting it changes nothing
        self._ips = {k: b for k, b in self._ips.items() if not b.full()}
