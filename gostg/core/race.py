"""GOST's ``parallel`` selector strategy: dial several nodes at once, keep the first to connect.

Rules (go-gost/x selector/parallel.go):
1. Every candidate is dialled in a greenlet of its own; the first to succeed wins. The others
   are killed at once, and whatever they opened is closed: a late success is closed, never
   kept nor leaked.
2. A candidate that fails before a winner is found is marked failed as any dial failure is (its
   own route does that); one cancelled because another won is not marked.
3. When every candidate fails, the race fails with one error naming each node's.
4. Unlike GOST, which races only the dialers' connects and then handshakes the winner, gostg
   races the handshakes too (TLS, WebSocket …): a node that accepts TCP but stalls in its
   handshake loses the race instead of winning it and then failing.
"""
import gevent
from gevent.queue import Queue

from ..errors import DialError


class _NoMarker:
    """A race has no failure state of its own: its candidates carry theirs."""

    fails = 0

    def mark(self, error=None):
        pass

    def reset(self):
        pass


class Race:
    """What the ``parallel`` strategy selects: the candidate nodes of one hop."""

    backup = False
    weight = 1
    latency = None
    connector = dialer = None
    marker = _NoMarker()

    def __init__(self, nodes):
        self.nodes = list(nodes)
        self.name = "parallel(" + ",".join(n.name for n in self.nodes) + ")"
        self.addr = ",".join(n.addr for n in self.nodes)

    def __repr__(self):
        return self.name


#: how long killed candidates get to close what they opened
KILL_TIMEOUT = 1.0


def first(attempts, close, node=None):
    """Run each callable of ``attempts`` in its own greenlet → (index, result) of the first to
    return. The others are killed; a result that arrives anyway is given to ``close``. When all
    raise, DialError lists their errors (rule 3), blaming ``node`` (so nothing is marked twice).
    The caller bounds the wait (its deadline)."""
    results = Queue()

    def run(i, attempt):
        try:
            results.put((i, attempt(), None))
        except gevent.GreenletExit:
            raise
        except BaseException as exc:   # its own timeout too: reported, not printed by the hub
            results.put((i, None, exc))

    greenlets = [gevent.spawn(run, i, a) for i, a in enumerate(attempts)]
    errors, won = {}, None
    try:
        while len(errors) < len(greenlets):
            i, result, exc = results.get()
            if exc is None:
                won = (i, result)
                return won
            errors[i] = exc
        raise DialError("parallel: every node failed: " + "; ".join(str(errors[i]) for i in sorted(errors)),
                        node=node)
    finally:
        gevent.killall(greenlets, block=True, timeout=KILL_TIMEOUT)
        while not results.empty():   # successes that came in after the winner (rule 1)
            i, result, exc = results.get()
            if exc is None and (won is None or i != won[0]):
                close(result)
