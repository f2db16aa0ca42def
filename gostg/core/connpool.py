"""The pool of a service's connections: one slot per connection, greenlet or detached tunnel.

A plain-socket tunnel that has nothing to move leaves its greenlet (relay/tcp.py rule 6): a
parked greenlet holds a saved C stack and its frames, a few KiB an idle tunnel does not need.
The tunnel keeps the pool slot its greenlet had, so the service's connection limit
(``max_conns``, the accept loop's ``full()``) counts it until it ends; ``join`` waits for it and
``kill`` ends it, as they do for greenlets.
"""
import time

from gevent import Greenlet
from gevent.event import Event
from gevent.pool import Group, Pool

from .._compat import release_pool_slot


class ConnGreenlet(Greenlet):
    """A connection's greenlet. It records no spawning stack (gevent's debugging aid, on by
    default: up to 10 frame records per greenlet, ~0.7 KiB an idle tunnel would hold, and CPU
    at every accept); the process-wide gevent setting stays as the embedding app has it."""

    spawning_stack_limit = 0
    #: set by relay/tcp.py when this connection's tunnel went on without this greenlet
    tunnel = None


class ConnPool(Pool):
    def __init__(self, size):
        super().__init__(size, greenlet_class=ConnGreenlet)
        #: detached tunnels, each holding the slot its greenlet had
        self.tunnels = set()
        self._no_tunnels = Event()
        self._no_tunnels.set()

    def __len__(self):
        return len(self.greenlets) + len(self.tunnels)

    def _discard(self, greenlet):
        t = getattr(greenlet, "tunnel", None)
        if t is None or not t.keep_slot(self._tunnel_ended):
            Pool._discard(self, greenlet)
            return
        self.tunnels.add(t)
        self._no_tunnels.clear()
        Group._discard(self, greenlet)   # the slot stays taken: the tunnel gives it back

    def _tunnel_ended(self, t):
        self.tunnels.discard(t)
        release_pool_slot(self)
        if not self.tunnels:
            self._no_tunnels.set()

    def join(self, timeout=None, raise_error=False):
        deadline = None if timeout is None else time.monotonic() + timeout
        done = Pool.join(self, timeout=timeout, raise_error=raise_error)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._no_tunnels.wait(left) and done

    def kill(self, *args, **kwargs):
        Pool.kill(self, *args, **kwargs)
        for t in list(self.tunnels):
            t.kill()
