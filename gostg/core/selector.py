"""Node selection: GOST's filters (fail, backup) then a strategy (round, rand, fifo, hash).

Rules (go-gost/x hop.go, selector/):
1. Nodes whose own bypass refuses the target are out.
2. Failed nodes (fails ≥ maxFails within failTimeout) are out, unless that leaves none:
   then every remaining node is a candidate again (the "last resort").
3. Backup nodes (metadata ``backup: true``) are used only when no primary is left.
4. The strategy picks one of what remains.
"""
import random
import time
import zlib


class Marker:
    """Failure count and time of the last failure of one node (shared across selections)."""

    __slots__ = ("fails", "last")

    def __init__(self):
        self.fails = 0
        self.last = 0.0

    def mark(self):
        self.fails += 1
        self.last = time.monotonic()

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


STRATEGIES = {"round": _round, "rr": _round, "rand": _rand, "random": _rand,
              "fifo": _fifo, "ha": _fifo, "hash": _hash}


class Selector:
    """``strategy``/``maxFails``/``failTimeout`` as GOST's selector config."""

    #: GOST defaults (selector.md): round robin, one failure, ten seconds
    DEFAULT_MAX_FAILS = 1
    DEFAULT_FAIL_TIMEOUT = 10.0

    def __init__(self, strategy="round", max_fails=DEFAULT_MAX_FAILS,
                 fail_timeout=DEFAULT_FAIL_TIMEOUT, hash_host=False):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown selector strategy {strategy!r}")
        self.strategy = STRATEGIES[strategy]
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout
        self.hash_host = hash_host
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
        return self.strategy(self, nodes, ctx, target)
