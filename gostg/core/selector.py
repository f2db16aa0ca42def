"""Node selection: GOST's filters (fail, backup, maxLatency) then a strategy (round, rand, fifo,
hash, lowestlatency, parallel).

Rules (go-gost/x hop.go, selector/):
1. Nodes whose own bypass refuses the target are out.
2. Failed nodes (fails ≥ maxFails within failTimeout) are out, unless that leaves none:
   then every remaining node is a candidate again (the "last resort").
3. Backup nodes (metadata ``backup: true``) are used only when no primary is left.
4. ``maxLatency``: nodes whose last probe failed or measured more are out; nodes never probed
   stay. Unlike GOST (whose hop then selects nothing, so the chain ends there and the target
   is dialled from the hop before it, or directly), no node left is a dial error: fail closed.
5. The strategy picks one of what remains. ``lowestlatency`` takes the lowest latency of the
   last successful probe; nodes without one come after, in their order. ``parallel`` picks them
   all: a :class:`~gostg.core.race.Race` the route dials at once, keeping the first to connect.
"""
import random
import time
import zlib

from ..errors import DialError
from .race import Race

INF = float("inf")


class Marker:
    """Failure count, time and text of the last failure of one node (shared across
    selections). The text stays after a reset: the status page shows it as "last error"."""

    __slots__ = ("fails", "last", "error")

    def __init__(self):
        self.fails = 0
        self.last = 0.0
        self.error = ""

    def mark(self, error=None):
        self.fails += 1
        self.last = time.monotonic()
        if error is not None:   # a string now, not the exception: that would keep its frames
            self.error = str(error) or type(error).__name__

    def reset(self):
        self.fails = 0

    def failed(self, max_fails, fail_timeout):
        return (max_fails > 0 and self.fails >= max_fails
                and time.monotonic() - self.last < fail_timeout)


def _round(sel, nodes, ctx, target):
    sel.counter += 1
    return nodes[(sel.counter - 1) % len(nodes)]


def _rand(sel, nodes, ctx, target):
    weights = [max(n.weight, 1) for n in nodes]
    return random.choices(nodes, weights=weights)[0]


def _fifo(sel, nodes, ctx, target):
    return nodes[0]


def _hash(sel, nodes, ctx, target):
    key = ""
    if ctx is not None:
        key = target if sel.hash_host else (ctx.client_id or ctx.client_ip)
    return nodes[zlib.crc32(key.encode()) % len(nodes)]


def _lowest_latency(sel, nodes, ctx, target):
    # a node's ``latency``: None never probed, inf its last probe failed (both come last)
    measured = [n for n in nodes if getattr(n, "latency", None) is not None and n.latency != INF]
    return min(measured, key=lambda n: n.latency) if measured else nodes[0]


def _parallel(sel, nodes, ctx, target):
    return nodes[0] if len(nodes) == 1 else Race(nodes)


STRATEGIES = {"round": _round, "rr": _round, "rand": _rand, "random": _rand,
              "fifo": _fifo, "ha": _fifo, "hash": _hash,
              "lowestlatency": _lowest_latency, "lowest": _lowest_latency, "ll": _lowest_latency,
              "parallel": _parallel}


class Selector:
    """``strategy``/``maxFails``/``failTimeout``/``maxLatency`` as GOST's selector config."""

    #: GOST defaults (selector.md): round robin, one failure, ten seconds
    DEFAULT_MAX_FAILS = 1
    DEFAULT_FAIL_TIMEOUT = 10.0

    def __init__(self, strategy="round", max_fails=DEFAULT_MAX_FAILS,
                 fail_timeout=DEFAULT_FAIL_TIMEOUT, hash_host=False, max_latency=0.0):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown selector strategy {strategy!r}")
        self.strategy = STRATEGIES[strategy]
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout
        self.hash_host = hash_host
        self.max_latency = max_latency   # seconds; 0: no latency filter
        self.counter = 0

    def failed(self, n):
        """Is node ``n`` marked failed (its own maxFails/failTimeout, else the selector's)?"""
        return n.marker.failed(n.max_fails if n.max_fails is not None else self.max_fails,
                               n.fail_timeout if n.fail_timeout is not None else self.fail_timeout)

    def select(self, nodes, ctx=None, target=""):
        if not nodes:
            return None
        if len(nodes) > 1:
            alive = [n for n in nodes if not self.failed(n)]
            nodes = alive or nodes
            primaries = [n for n in nodes if not n.backup]
            nodes = primaries or nodes
            if self.max_latency > 0:
                nodes = [n for n in nodes if getattr(n, "latency", None) is None
                         or n.latency <= self.max_latency]
                if not nodes:   # rule 4
                    raise DialError(f"no node within maxLatency {self.max_latency:g}s")
        return self.strategy(self, nodes, ctx, target)
