"""Push, not poll (gostg's, beyond GOST): ``redis: {…, pubsub: true}`` re-reads a source the
moment Redis says its key changed, in every gostg instance subscribed.

Two ways a change arrives, both on one subscription per Redis server and database:
1. ``PUBLISH gostg:reload <key>`` — the operator (or the tool that edits the rules) names the
   key it changed; every source reading that key re-reads it. An empty message re-reads every
   push-enabled source on that Redis.
2. Keyspace notifications, ``__keyspace@<db>__:<key>`` — when the server has them on
   (``CONFIG SET notify-keyspace-events Kgsl$h`` or ``KA``; Redis ships with them off), a plain
   ``SADD`` is enough. gostg subscribes to these channels but never changes the server's
   config: without them on, nothing arrives there and PUBLISH is the way.

The subscriber is one greenlet per (addr, db, user): it ends with its last source. When Redis
goes away it logs once, retries with a growing pause (0.2 s to 2 s), and on reconnecting logs
the recovery and re-reads every source it serves (pushes sent while it was away are lost).
"""
import threading
import weakref

from ..policy.group import NOUNS
from . import redisconn
from .source import off_hub

CHANNEL = "gostg:reload"
RETRY_MIN, RETRY_MAX = 0.2, 2.0
#: seconds one wait for a message lasts before new subscriptions are applied
WAIT = 0.5

_subscribers = {}
_lock = threading.Lock()


def keyspace_channel(db, key):
    return f"__keyspace@{db}__:{key}"


def watch(source):
    """Subscribe ``source``'s redis fetchers to changes of their key."""
    with _lock:
        for f in _redis(source):
            sub = _subscribers.get(f.conn)
            if sub is None:
                sub = _subscribers[f.conn] = Subscriber(f.conn, f.cfg, source.log)
            sub.add(f.key, source)


def unwatch(source):
    with _lock:
        for f in _redis(source):
            sub = _subscribers.get(f.conn)
            if sub is not None and sub.remove(f.key, source):
                del _subscribers[f.conn]


def _redis(source):
    return [f for f in source.fetchers if f.kind == "redis"]


class Subscriber:
    def __init__(self, conn, cfg, log):
        import gevent

        self.conn = conn
        self.db = conn[2]
        self.cfg = cfg
        # one subscriber serves many objects: its lines name none of them (nor the first one's
        # ``ingress``/``router``/``sd`` field, which those kinds bind instead of ``name``)
        unbind = getattr(log, "try_unbind", None)
        base = unbind("kind", "name", *NOUNS.values()) if callable(unbind) else None
        self.log = base.bind(kind="loader") if hasattr(base, "bind") else log
        self.where = f"redis://{conn[0]}:{conn[1]}/{conn[2]}"
        self.watchers = {}   # key -> WeakSet of sources
        self.ready = threading.Event()   # set once subscribed (tests, and the first push)
        self._greenlet = gevent.spawn(Subscriber._run, weakref.ref(self))

    def add(self, key, source):
        self.watchers.setdefault(key, weakref.WeakSet()).add(source)

    def remove(self, key, source):
        """→ True when this subscriber has no source left (it then ends)."""
        ws = self.watchers.get(key)
        if ws is not None:
            ws.discard(source)
            if not ws:
                self.watchers.pop(key, None)
        if self.watchers:
            return False
        self._greenlet.kill(block=False)
        return True

    def _keys(self):
        return {k for k, ws in list(self.watchers.items()) if ws}

    def _notify(self, keys):
        for k in keys:
            for src in list(self.watchers.get(k) or ()):
                src.refresh_soon()

    def _on(self, msg):
        ch = msg["channel"].decode("utf-8", "replace")
        data = msg["data"]
        if ch == CHANNEL:
            name = data.decode("utf-8", "replace").strip() if isinstance(data, bytes) else ""
            self._notify([name] if name else list(self.watchers))
        elif ch.startswith(f"__keyspace@{self.db}__:"):
            self._notify([ch.split(":", 1)[1]])

    @staticmethod
    def _run(ref):
        # holds the subscriber weakly between waits: one dropped without remove() still ends
        import gevent

        pause, failing, client = RETRY_MIN, None, None
        try:
            while True:
                me = ref()
                if me is None or not me.watchers:
                    return
                if client is None:
                    client = redisconn.client(me.cfg, "redis")
                ps = client.pubsub(ignore_subscribe_messages=True)
                try:
                    keys = me._keys()
                    off_hub(ps.subscribe, CHANNEL, *[keyspace_channel(me.db, k) for k in keys])
                    if failing is not None:
                        if me.log is not None:
                            me.log.info("redis push recovered", source=me.where)
                        failing = None
                        me._notify(list(me.watchers))   # what changed while away
                    pause = RETRY_MIN
                    me.ready.set()
                    while me.watchers:
                        want = me._keys()
                        if want != keys:
                            new, gone = want - keys, keys - want
                            if new:
                                off_hub(ps.subscribe, *[keyspace_channel(me.db, k) for k in new])
                            if gone:
                                off_hub(ps.unsubscribe, *[keyspace_channel(me.db, k) for k in gone])
                            keys = want
                        me = None
                        msg = off_hub(ps.get_message, True, WAIT)
                        me = ref()
                        if me is None:
                            return
                        if msg and msg.get("type") == "message":
                            me._on(msg)
                except Exception as exc:  # Redis down or restarted: log once, retry
                    me = me or ref()
                    reason = str(exc) or type(exc).__name__
                    if reason != failing and me is not None and me.log is not None:
                        me.log.warning(f"redis push: {reason}; retrying", source=me.where)
                    failing = reason
                finally:
                    ps.close()
                me = None
                gevent.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
        finally:
            if client is not None:
                redisconn.release(client)
