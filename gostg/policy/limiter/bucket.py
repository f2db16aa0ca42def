"""The token bucket under traffic shaping and request rates (the reservation model of
golang.org/x/time/rate), and how big a traffic bucket's burst is."""
import math
import time

#: a traffic bucket holds this many seconds of its rate: small enough that a download measures
#: its limit (GOST's one-second burst lets a 3 s download run 50 % fast), large enough that a
#: shaped connection sleeps a few times a second, not hundreds
BURST_SECONDS = 0.1
#: … but never less than this many bytes (or one second of a slower rate), so slow limits still
#: move whole packets
MIN_BURST = 4096


#: the clock of every bucket made without one (a module global so tests can fake time)
_now = time.monotonic


def traffic_burst(rate):
    return max(int(rate * BURST_SECONDS), min(int(rate), MIN_BURST), 1)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``. ``take`` may go into debt and says how long
    to sleep until the debt is paid (golang.org/x/time/rate's reservation model), so N
    concurrent takers queue fairly and each sleeps once. ``rate`` <= 0 is unlimited."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "clock", "__weakref__")

    def __init__(self, rate, burst=None, clock=None):
        self.clock = clock or _now
        self.rate = rate
        self.burst = burst if burst is not None else traffic_burst(rate)
        self.tokens = float(self.burst)
        self.stamp = self.clock()

    def set_rate(self, rate, burst=None):
        """Change the rate in place: connections holding this bucket follow it."""
        self._advance()
        self.rate = rate
        if rate > 0:
            self.burst = burst if burst is not None else traffic_burst(rate)
            self.tokens = min(self.tokens, self.burst)

    def _advance(self):
        now = self.clock()
        if self.rate > 0 and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n):
        """Spend ``n`` tokens (callers keep n <= burst) → seconds to wait before using them."""
        if self.rate <= 0:
            return 0.0
        self._advance()
        self.tokens -= n
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def available(self):
        if self.rate <= 0:
            return math.inf
        self._advance()
        return self.tokens

    def full(self):
        return self.available() >= self.burst
