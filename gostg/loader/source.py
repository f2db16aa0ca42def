"""An object's items from every source GOST reads, combined as GOST combines them.

``value()`` is ``parse(inline items + file lines + redis lines + http lines)``: GOST's order
(x/bypass, x/auth, x/hosts, x/limiter load the file, then redis, then http, after the inline
items), so for keyed items (auth users, limit scopes) a later source wins.

Reading:
1. A file-only object reloads lazily, as before: the first use after ``reload`` stats the file
   and re-reads it only when its mtime or size changed. No greenlet exists, so nothing leaks.
2. An object with a ``redis`` or ``http`` source reads it once while being built (short
   timeouts), then, with ``reload``, re-reads every source in one poller greenlet. ``value()``
   never waits for the network: it returns the value the last read built.
3. Each source keeps its last good lines: one that fails (down, timeout, wrong Redis key type,
   an HTTP error) keeps serving them, logged once when it starts failing and once when it
   recovers, and is retried less often while it fails (1 s, 2 s, 4 s, then every 5 s; a push
   retries at once). A combined result that does not parse keeps the whole last good value.
4. A redis/http source that has never been read (down since start) makes the source
   ``pending``: objects that decide who gets in use that to fail closed.
5. ``refresh()`` re-reads now (the Redis push, :mod:`gostg.loader.push`, calls it);
   ``close()`` stops the poller and the push subscription and releases the Redis client.
"""
import time
import weakref

from .fetch import FileFetcher


#: the shortest poll period of redis/http sources (GOST raises anything under 1 s to 1 s; gostg
#: allows sub-second polling but not a busy loop)
MIN_PERIOD = 0.1
#: a failing redis/http source is retried after max(reload, 1 s), then twice as long each time,
#: up to 5 s (a Redis that is down is not hammered by every object at every period)
RETRY_MIN, RETRY_MAX = 1.0, 5.0


def off_hub(fn, *args):
    """``fn(*args)`` without stalling the hub: directly where sockets are gevent's (bin/gostg,
    a patched host app); in a worker thread of gevent's pool where they are not (an unpatched
    app's gostg hub thread), since redis-py and urllib would otherwise block every connection."""
    from ..config.remote import _gevent_sockets

    if _gevent_sockets():
        return fn(*args)
    import gevent

    ok, v = gevent.get_hub().threadpool.apply(_caught, (fn, args))
    if not ok:
        raise v
    return v


def _caught(fn, args):
    # the worker thread never raises: a read cut short by close() (its greenlet gone) would
    # otherwise print a traceback from gevent's pool
    try:
        return True, fn(*args)
    except Exception as exc:
        return False, exc


def _reason(exc):
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class LineSource:
    def __init__(self, items=(), file="", reload=0.0, parse=list, name="", log=None,
                 clock=time.monotonic, raw=False, sources=(), push=False):
        self.items = list(items)
        self.file = file or ""
        self.reload = float(reload or 0)
        self.parse = parse
        self.name = name
        self.log = log
        self._clock = clock
        self.fetchers = ([FileFetcher(self.file, raw)] if self.file else []) + list(sources)
        self._lines = [None] * len(self.fetchers)     # last good lines per source
        self._failing = [None] * len(self.fetchers)   # the reason last logged, while failing
        self._delay = [0.0] * len(self.fetchers)      # seconds between retries, while failing
        self._retry_at = [0.0] * len(self.fetchers)
        self.networked = any(f.kind != "file" for f in self.fetchers)
        self._busy = self._again = self._closed = False
        self._poller = None
        self._pushed = False
        try:
            for i, f in enumerate(self.fetchers):
                if f.kind == "file":
                    try:
                        self._lines[i] = f.fetch()
                    except OSError as exc:
                        raise ValueError(f"cannot read {f.path}: {exc.strerror or exc}") from None
                else:
                    self._read(i)
            self._value = self._initial_value()
        except BaseException:   # a config error: the Redis clients made for it are released
            for f in self.fetchers:
                f.close()
            raise
        #: True while a redis/http source has never been read: its items are unknown. A plain
        #: attribute: objects that decide who gets in look at it on every connection.
        self.pending = any(ls is None for ls in self._lines)
        self._next = clock() + self.reload
        if self.networked and self.reload > 0:
            import gevent

            self._poller = gevent.spawn(LineSource._poll_loop, weakref.ref(self), max(self.reload, MIN_PERIOD))
        if push and self.networked:
            from . import push as _push

            _push.watch(self)
            self._pushed = True

    def _combined(self):
        out = list(self.items)
        for lines in self._lines:
            out.extend(lines or ())
        return out

    def _initial_value(self):
        try:
            return self.parse(self._combined())
        except ValueError:
            if not self.networked:
                raise   # a bad inline item or file line is a config error, as before
        # a bad line from Redis/HTTP: no last good value yet, so those sources count as unread
        # (pending), and the object starts from its inline items and file
        for i, f in enumerate(self.fetchers):
            if f.kind != "file" and self._lines[i] is not None:
                self._warn(i, "has lines that do not parse; not used until they do")
                self._lines[i] = None
        return self.parse(self._combined())

    def value(self):
        if not self.networked and self.reload > 0 and self.file:
            now = self._clock()
            if now >= self._next:
                self._next = now + self.reload
                self.refresh(force=False)
        return self._value

    # -- reading ------------------------------------------------------------------------------

    def _warn(self, i, reason):
        f = self.fetchers[i]
        if self._failing[i] == reason or self._closed:   # closing cuts a read short: not news
            return
        self._failing[i] = reason
        if self.log is not None:
            self.log.warning(f"{f.kind} loader: {reason}; keeping the last good value",
                             loader=f.kind, source=f.where)

    def _read(self, i, force=True):
        """Re-read source ``i`` → True when its lines changed. A failure is logged once."""
        f = self.fetchers[i]
        if not force and self._lines[i] is not None and not f.changed():
            return False
        if not force and self._failing[i] is not None and self._clock() < self._retry_at[i]:
            return False   # a failing redis/http source is polled less and less often
        try:
            lines = f.fetch() if f.kind == "file" else off_hub(f.fetch)
        except Exception as exc:  # any failure: that source keeps its last good lines
            self._warn(i, _reason(exc))
            self._delay[i] = min(RETRY_MAX, self._delay[i] * 2 if self._delay[i] else max(self.reload, RETRY_MIN))
            self._retry_at[i] = self._clock() + self._delay[i]
            return False
        self._delay[i] = 0.0
        if self._failing[i] is not None:
            self._failing[i] = None
            if self.log is not None:
                self.log.info(f"{f.kind} loader recovered", loader=f.kind, source=f.where)
        if lines == self._lines[i]:
            return False
        self._lines[i] = lines
        return True

    def _reread(self, force):
        changed = False
        for i in range(len(self.fetchers)):
            if self._closed:
                return
            changed = self._read(i, force) or changed
        if not changed:
            return
        try:
            value = self.parse(self._combined())
        except Exception as exc:  # any parse failure: keep serving with the last good value
            # (the bad lines stay read: unchanged, they are not parsed or logged again)
            if self.log is not None:
                self.log.warning(f"reload failed, keeping the last good value: {exc}",
                                 kind="source", name=self.name)
            return
        self._value = value
        self.pending = any(ls is None for ls in self._lines)
        if self.log is not None:
            self.log.info("reloaded", kind="source", name=self.name,
                          **({"file": self.file} if self.file and not self.networked else {}))

    def refresh(self, force=True):
        """Re-read every source now, in the calling greenlet. When a read is already under way,
        it is asked to go once more (so a change pushed mid-read is not lost) and this returns."""
        if self._busy:
            self._again = True
            return
        self._busy = True
        try:
            for _ in range(10):   # bounded: a storm of pushes is served by a few reads
                self._again = False
                self._reread(force)
                if not self._again or self._closed:
                    break
        finally:
            self._busy = False

    def refresh_soon(self):
        """``refresh()`` in a new greenlet (the push subscriber must not wait for reads)."""
        if self._closed:
            return
        if self._busy:
            self._again = True
            return
        import gevent

        gevent.spawn(self.refresh)

    @staticmethod
    def _poll_loop(ref, period):
        # holds the source weakly: an object dropped without close() still ends its poller
        import gevent

        while True:
            gevent.sleep(period)
            src = ref()
            if src is None or src._closed:
                return
            src.refresh(force=False)
            del src

    def close(self):
        """Stop polling and pushes, release the sources' connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pushed:
            from . import push as _push

            _push.unwatch(self)
        if self._poller is not None:
            self._poller.kill(block=False)
            self._poller = None
        for f in self.fetchers:
            f.close()


def read_lines(path):
    """Non-empty lines of ``path`` with ``#`` comments removed."""
    return FileFetcher(str(path)).fetch()
