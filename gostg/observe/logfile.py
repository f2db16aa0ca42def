"""A log file as GOST writes it (``log.output: <path>`` with optional ``rotation``), written off
the gevent hub.

Why a writer thread: a ``write`` to a regular file is usually a copy into the page cache, but
under writeback pressure (a slow disk, NFS, a full dirty-page budget) the kernel blocks the
writer for as long as it takes — and on the hub that would stall every connection. So the hub
only appends the rendered line to a deque; one native (not gevent) thread per file does the
``write``, the rotation, the gzip and the pruning. The first line after a quiet spell wakes the
writer (one native lock release); while lines keep coming the writer collects them every
:data:`BATCH_INTERVAL` without being woken, so a line costs the hub a deque append and a flag
test, and the writer one ``write`` per batch. If the writer cannot keep up
(the disk is stuck), at most :data:`MAX_PENDING` lines wait and the rest are dropped and
counted; the next line written says how many.

Rotation is the stdlib's :class:`logging.handlers.RotatingFileHandler`: its ``doRollover``
closes and reopens the file, its ``namer`` names the backup as GOST's lumberjack does
(``gost-2006-01-02T15-04-05.000.log``, UTC unless ``localTime``, ``.gz`` when ``compress``),
its ``rotator`` moves (or gzips) the file there and then prunes backups beyond ``maxBackups``
or older than ``maxAge`` days (by the time in their name, as lumberjack). Lines never go
through ``logging``'s records: they are rendered already, so the handler's stream is written
directly and the size is counted as the lines go (one ``tell`` per batch, not per line).

One sink per path in the process (:func:`sink`): two loggers naming the same file share it,
so they never rotate it under each other. :func:`reopen_all` (SIGHUP, ``-R``, a reload) makes
every sink close and reopen its path — after logrotate moved the file, new lines land in a
new file at the path.
"""
import atexit
import collections
import gzip
import logging.handlers
import os
import re
import shutil
import sys
import time

try:   # the real thread and lock, also when gevent patched the process
    from gevent.monkey import get_original
    _start_thread, _allocate_lock = get_original("_thread", ["start_new_thread", "allocate_lock"])
except ImportError:   # pragma: no cover - gevent is a dependency
    from _thread import allocate_lock as _allocate_lock, start_new_thread as _start_thread

#: lines waiting for a stuck disk before new ones are dropped (about 30 MB of JSON lines)
MAX_PENDING = 100_000
#: while lines keep coming, the writer writes them in batches this often (seconds)
BATCH_INTERVAL = 0.05
#: GOST's (lumberjack's) default maxSize when ``rotation`` is given without one, in MB
DEFAULT_MAX_SIZE = 100
#: lumberjack's backup time stamp (``2006-01-02T15-04-05.000``)
_STAMP = "%Y-%m-%dT%H-%M-%S"
_REOPEN = object()   # queued: close and reopen the file at this point of the stream


def backup_name(path, when, local=False):
    """``/var/log/gost.log`` → ``/var/log/gost-2026-12-06T17-42-07.123.log`` (lumberjack's)."""
    d, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    sec, ms = divmod(round(when * 1000), 1000)
    t = time.localtime(sec) if local else time.gmtime(sec)
    return os.path.join(d, f"{stem}-{time.strftime(_STAMP, t)}.{ms:03d}{ext}")


def backups(path, local=False):
    """The backups of ``path`` on disk → [(time, file)], newest first (time from the name)."""
    d, base = os.path.split(path)
    stem, ext = os.path.splitext(base)
    pat = re.compile(re.escape(stem) + r"-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d)\.(\d{3})" + re.escape(ext) + r"(\.gz)?")
    found = []
    try:
        names = os.listdir(d or ".")
    except OSError:
        return found
    for n in names:
        m = pat.fullmatch(n)
        if not m:
            continue
        try:
            st = time.strptime(m.group(1), _STAMP)
        except ValueError:
            continue
        secs = time.mktime(st) if local else _timegm(st)
        found.append((secs + int(m.group(2)) / 1000, os.path.join(d, n)))
    found.sort(reverse=True)
    return found


def _timegm(st):
    import calendar
    return calendar.timegm(st)


def prune(path, max_backups=0, max_age_days=0, local=False, now=None):
    """Delete the backups beyond the ``max_backups`` newest and those older than ``max_age_days``
    (0: no limit), as lumberjack does after each rotation → the files deleted."""
    now = time.time() if now is None else now
    gone = []
    for i, (when, f) in enumerate(backups(path, local)):
        if (max_backups > 0 and i >= max_backups) or (max_age_days > 0 and when < now - max_age_days * 86400):
            try:
                os.remove(f)
                gone.append(f)
            except OSError:
                pass
    return gone


class _Rotating(logging.handlers.RotatingFileHandler):
    """The stdlib's rotating handler with lumberjack's backup names, gzip and pruning."""

    def __init__(self, path, rotation):
        # backupCount 1 makes doRollover call rotate(); the names are the namer's, and how
        # many are kept is prune()'s (maxBackups 0 keeps all, as lumberjack)
        super().__init__(path, mode="a", maxBytes=0, backupCount=1, encoding="utf-8")
        # BaseRotatingHandler sets both to None on the instance: the hooks are set after it
        self.namer, self.rotator = self._namer, self._rotator
        self.configure(rotation)

    def configure(self, rotation):
        """``rotation`` (GOST's keys; None: the file is never rotated). The newest config of a
        path wins: a reload that changes it applies to the open file."""
        from ..config.metadata import Metadata
        from ..config.schema import ROTATION

        r = Metadata(rotation, {k.lower(): v for k, v in ROTATION.items()})
        size = r.float("maxSize", default=DEFAULT_MAX_SIZE) or DEFAULT_MAX_SIZE
        self.maxBytes = int(size * 1024 * 1024) if rotation is not None else 0
        self.max_backups = r.int("maxBackups")
        self.max_age = r.float("maxAge")
        self.local = r.bool("localTime")
        self.compress = r.bool("compress")

    def _namer(self, default):
        now = time.time()
        for i in range(1000):   # two rotations in one millisecond must not overwrite a backup
            name = backup_name(self.baseFilename, now + i / 1000, self.local) + (".gz" if self.compress else "")
            if not os.path.exists(name):
                break
        return name

    def _rotator(self, source, dest):
        if dest.endswith(".gz"):
            with open(source, "rb") as src, gzip.open(dest, "wb", compresslevel=6) as out:   # Go's default
                shutil.copyfileobj(src, out, 1 << 20)
            os.remove(source)
        else:
            os.rename(source, dest)
        prune(self.baseFilename, self.max_backups, self.max_age, self.local)


#: path → its sink, for the life of the process (its writer thread keeps it alive anyway)
_sinks = {}


def sink(path, rotation=None):
    """The one :class:`FileSink` of ``path`` in this process (``rotation`` updated in place)."""
    key = os.path.abspath(path)
    s = _sinks.get(key)
    if s is None:
        s = _sinks[key] = FileSink(key, rotation)
    else:
        s.handler.configure(rotation)
    return s


def reopen_all():
    """Every open log file: close and reopen its path (SIGHUP, ``-R``, reload)."""
    for s in list(_sinks.values()):
        s.reopen()


class FileSink:
    """``emit(line)`` from the hub; a native thread writes, rotates and reopens. Opening the
    file happens here, at once, so a path that cannot be opened is a config error."""

    def __init__(self, path, rotation=None):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path = path
        self.handler = _Rotating(path, rotation)
        self.dropped = 0          # lines refused because the writer was MAX_PENDING behind
        self.errors = 0           # writes that failed (disk full …): the lines are lost
        self._failing = False     # the last write failed (said once on stderr)
        self._q = collections.deque()
        self._wake = _allocate_lock()
        self._wake.acquire()
        self._partial = ""        # text written without its newline yet (write())
        self._idle = True         # the writer sleeps until woken (else it polls every BATCH_INTERVAL)
        self._closing = False
        self._done = _allocate_lock()
        self._done.acquire()
        _start_thread(self._run, ())

    def emit(self, line):
        q = self._q
        if len(q) >= MAX_PENDING:
            self.dropped += 1
            return
        q.append(line)
        if self._idle:   # the first line after a quiet spell wakes the writer; the rest wait for its poll
            self._wake_writer()

    def _put(self, item):
        """A control item (reopen, sync, close): the writer is woken at once."""
        self._q.append(item)
        self._wake_writer()

    def _wake_writer(self):
        self._idle = False
        try:
            self._wake.release()
        except RuntimeError:   # already woken (two wakers raced): nothing to do
            pass

    def write(self, s):
        """The file-object face: structlog's PrintLogger (the text format) prints the line and
        its newline in two writes; they are queued as one line, so a rotation never splits it."""
        if s.endswith("\n"):
            self.emit(self._partial + s if self._partial else s)
            self._partial = ""
        else:
            self._partial += s

    def flush(self):
        pass

    def reopen(self):
        self._put(_REOPEN)

    def sync(self, timeout=5.0):
        """Wait (blocking, up to ``timeout``) until every line emitted so far is in the file."""
        done = _allocate_lock()
        done.acquire()
        self._put(done)
        return done.acquire(timeout=timeout)

    def close(self, timeout=5.0):
        """Write what is queued, close the file, end the thread (waits up to ``timeout``)."""
        if self._closing:
            return
        self._closing = True
        self._put(_REOPEN)   # wakes the writer
        self._done.acquire(timeout=timeout)

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self):
        q = self._q
        while True:
            # busy: a batch every BATCH_INTERVAL, no wake-up per line (a wake-up per line costs
            # the hub a futex call and a GIL hand-over each); quiet: sleep until a line comes
            self._wake.acquire(timeout=-1 if self._idle else BATCH_INTERVAL)
            if not q:
                self._idle = True
                if not q:   # a line that came before the flag was set is not left waiting
                    continue
                self._idle = False
            batch = []
            while q:
                item = q.popleft()
                if type(item) is str:
                    batch.append(item)
                    continue
                self._write(batch)
                batch = []
                if item is _REOPEN:
                    self._reopen()
                else:   # sync(): a lock to release once what came before it is written
                    item.release()
            self._write(batch)
            if self._closing and not q:
                self._close_stream()
                self._done.release()
                return

    def _write(self, lines):
        if not lines:
            return
        h = self.handler
        if self.dropped:
            n, self.dropped = self.dropped, 0
            from .log import _now   # the line looks like every other one
            lines.insert(0, '{"level": "error", "time": "%s", "msg": "log: %d lines dropped: the log file '
                            'was not writable fast enough"}\n' % (_now(), n))
        try:
            if h.stream is None:
                h.stream = h._open()
            pos = h.stream.tell()
            start = 0
            if h.maxBytes:
                for i, line in enumerate(lines):
                    n = len(line)
                    if pos > 0 and pos + n > h.maxBytes:
                        h.stream.write("".join(lines[start:i]))
                        h.doRollover()   # closes, rotate() → our rotator, reopens at the path
                        start, pos = i, 0
                    pos += n
            h.stream.write("".join(lines[start:]))
            h.stream.flush()
        except Exception as exc:   # noqa: BLE001 - a lost line must never end the writer
            self._failed(exc)
            self._close_stream()
        else:
            self._failing = False

    def _failed(self, exc):
        """Count a failed write; the first of a run of failures is said on stderr (the log
        itself is what fails): the disk is full, the directory went away …"""
        self.errors += 1
        if not self._failing:
            self._failing = True
            try:
                sys.stderr.write(f"gostg: warning: log file {self.path}: {exc}; lines are lost until it "
                                 f"is writable again\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    def _reopen(self):
        self._close_stream()
        if not self._closing:
            try:
                self.handler.stream = self.handler._open()
            except OSError as exc:
                self._failed(exc)

    def _close_stream(self):
        h = self.handler
        if h.stream is not None:
            try:
                h.stream.close()
            except Exception:   # noqa: BLE001
                pass
            h.stream = None


@atexit.register
def _drain():
    """At exit every queued line reaches its file (before logging's own shutdown flushes)."""
    for s in list(_sinks.values()):
        s.close(timeout=2.0)
