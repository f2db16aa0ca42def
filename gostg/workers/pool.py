"""The supervisor's side of the workers: start them, restart the ones that die (with backoff),
hand them every config change, ask them for their stats, stop them.

Ordering: a config is sent to the running workers and to a worker being (re)started under one
lock, so every worker sees the configs in the order they were made, and one that starts after a
change starts with it. Answers are waited for outside the lock."""
import itertools
import os
import signal
import sys
import time

import gevent
from gevent import socket
from gevent import subprocess
from gevent.event import AsyncResult
from gevent.lock import RLock

from . import ENV_FD, ENV_INDEX, ENV_SUPERVISOR, channel

_GONE = {"ok": False, "error": "the worker exited"}


class Worker:
    """One worker slot: its index, and its current process and control socket."""

    def __init__(self, index):
        self.index = index
        self.proc = None
        self.sock = None
        self.pid = None
        self.ready = None      # AsyncResult: the worker's first message (ready / failed)
        self.pending = {}      # request id → AsyncResult
        self.started_at = 0.0

    @property
    def serving(self):
        return self.sock is not None and self.ready is not None and self.ready.ready() \
            and self.ready.value.get("op") == "ready"


class Pool:
    #: restart delays: doubled from ``backoff_min`` up to ``backoff_max`` while workers keep
    #: dying young; a worker that ran ``stable`` seconds restarts after ``backoff_min`` again
    backoff_min, backoff_max, stable = 0.2, 5.0, 10.0
    #: how long a starting worker may take to listen, and a worker to answer a request
    ready_timeout, request_timeout, apply_timeout = 60.0, 5.0, 30.0

    def __init__(self, n, init, log):
        """``init(index)`` → the init message's fields for worker ``index`` (its config …)."""
        self.workers = [Worker(i) for i in range(n)]
        self.init = init
        self.log = log
        self.stopping = False
        self._lock = RLock()
        self._ids = itertools.count(1)
        self._watchers = []

    def __len__(self):
        return len(self.workers)

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, w):
        with self._lock:
            mine, theirs = socket.socketpair()
            pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            env = dict(os.environ, **{ENV_INDEX: str(w.index), ENV_FD: str(theirs.fileno()),
                                      ENV_SUPERVISOR: str(os.getpid())})
            env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            try:
                proc = subprocess.Popen([sys.executable, "-m", "gostg.workers.worker"], env=env,
                                        stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
            finally:
                theirs.close()
            w.proc, w.sock, w.pid, w.started_at = proc, mine, proc.pid, time.monotonic()
            w.ready, w.pending = AsyncResult(), {}
            gevent.spawn(self._read, w, mine, proc)
            try:
                channel.send(mine, {"op": "init", **self.init(w.index)})
            except OSError:
                pass   # it died at once: _watch sees it exit
        return proc

    def _read(self, w, sock, proc):
        """Answers and the first message of one worker process, until its socket ends. A
        worker whose socket ends or talks garbage while it runs can no longer be told of
        changes: it is killed, and restarted (with the newest config) as any worker that dies."""
        ready, pending = w.ready, w.pending
        try:
            while True:
                msg = channel.recv(sock)
                if msg.get("op") in ("ready", "failed"):
                    ready.set(msg)
                    continue
                res = pending.pop(msg.get("id"), None)
                if res is not None:
                    res.set(msg)
        except channel.ChannelClosed:
            pass
        finally:
            if not ready.ready():
                ready.set({"op": "failed", "path": "", "msg": "the worker exited before it listened"})
            for res in list(pending.values()):
                res.set(_GONE)
            pending.clear()
            if w.sock is sock:
                w.sock = None
            sock.close()
            if not self.stopping and _still_running(proc, 2.0):   # (a worker that died: it ends too)
                self.log.error("worker control socket lost: ending the worker", worker=w.index, pid=proc.pid)
                _end(proc)

    def start(self):
        """Start every worker and wait until each listens; → None, or the first failure
        ``(path, msg)`` (every worker is stopped then)."""
        for w in self.workers:
            self._spawn(w)
        failure = None
        for w in self.workers:
            try:
                msg = w.ready.get(timeout=self.ready_timeout)
            except gevent.Timeout:
                msg = {"op": "failed", "path": "", "msg": f"worker {w.index} did not listen within "
                                                         f"{self.ready_timeout:g}s"}
            if msg.get("op") != "ready" and failure is None:
                failure = (msg.get("path") or "", msg.get("msg") or "worker failed")
        if self.stopping:
            return None   # asked to stop (SIGTERM) while starting: not a failure
        if failure is not None:
            self.stop(0)
            return failure
        for w in self.workers:
            self.log.debug(f"worker {w.index} listening", worker=w.index, pid=w.pid)
            self._watchers.append(gevent.spawn(self._watch, w))
        return None

    def _watch(self, w):
        """Restart worker ``w`` whenever it exits, until the pool stops."""
        delay = self.backoff_min
        while True:
            proc = w.proc
            code = proc.wait()
            if self.stopping:
                return
            if time.monotonic() - w.started_at >= self.stable:
                delay = self.backoff_min   # it ran a while: a crash now and then is no loop
            how = f"killed by signal {-code}" if code < 0 else f"with status {code}"
            self.log.error(f"worker exited ({how}): restarting in {delay:g}s", worker=w.index, pid=proc.pid,
                           code=code)
            gevent.sleep(delay)
            delay = min(self.backoff_max, delay * 2)
            if self.stopping:
                return
            try:
                self._spawn(w)
            except OSError as exc:
                self.log.error(f"worker cannot be started: {exc}", worker=w.index)
                w.proc = _Exited()
                continue
            try:   # (the reader sets it at the latest when the process ends)
                msg = w.ready.get(timeout=self.ready_timeout)
            except gevent.Timeout:
                msg = {"op": "failed", "msg": f"did not listen within {self.ready_timeout:g}s"}
            if msg.get("op") == "ready":
                self.log.info("worker restarted", worker=w.index, pid=w.pid)
            else:
                where = f"{msg['path']}: " if msg.get("path") else ""
                self.log.error(f"worker could not start: {where}{msg.get('msg')}", worker=w.index, pid=w.pid)
                _end(w.proc)

    def stop(self, timeout=2.0):
        """SIGTERM to every worker (each stops as gostg stops: ``timeout`` for open
        connections); one still running ``timeout`` + 3 s later is killed. No process is left."""
        self.stopping = True
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + timeout + 3.0
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _end(p)
        gevent.killall(self._watchers, block=False)

    # -- requests --------------------------------------------------------------------------------

    def _ask(self, w, msg, starting=False):
        """Send ``msg`` to worker ``w`` → an AsyncResult of its answer (an error answer at once
        when the worker is not serving; with ``starting``, a worker still starting is asked
        too: it answers once it listens, in order after its init)."""
        res = AsyncResult()
        if not (w.serving or (starting and w.sock is not None and not w.ready.ready())):
            res.set(_GONE)
            return res
        i = next(self._ids)
        w.pending[i] = res
        try:
            channel.send(w.sock, {**msg, "id": i})
        except OSError:
            w.pending.pop(i, None)
            res.set(_GONE)
        return res

    def _wait(self, res, timeout):
        try:
            return res.get(timeout=timeout)
        except gevent.Timeout:
            return None

    def push(self, message):
        """Hand every serving worker its config (``message(index)``: the fields of the
        ``config`` message) and wait for them to apply it → the problems, one text per worker
        that did not. A worker that does not answer within ``apply_timeout`` is restarted (it
        starts with the newest config)."""
        with self._lock:
            # a worker still starting got an older config in its init: this one follows it
            asked = [(w, self._ask(w, {"op": "config", **message(w.index)}, starting=True))
                     for w in self.workers]
        problems = []
        deadline = time.monotonic() + self.apply_timeout
        for w, res in asked:
            msg = self._wait(res, max(0.0, deadline - time.monotonic()))
            if msg is _GONE:
                continue   # not running: it starts with the newest config
            if msg is None:
                problems.append(f"worker {w.index}: no answer within {self.apply_timeout:g}s: restarted")
                _end(w.proc)
            elif not msg.get("ok"):
                problems.append(f"worker {w.index}: {msg.get('error')}")
        for p in problems:
            self.log.error(f"config change not applied: {p}", kind="api")
        return problems

    def ask_all(self, op, **fields):
        """``op`` to every serving worker → their answers (only the ones that answered)."""
        asked = [self._ask(w, {"op": op, **fields}) for w in self.workers]
        deadline = time.monotonic() + self.request_timeout
        out = []
        for res in asked:
            msg = self._wait(res, max(0.0, deadline - time.monotonic()))
            if msg is not None and msg.get("ok"):
                out.append(msg)
        return out

    def pids(self):
        return [w.pid for w in self.workers if w.proc is not None and w.proc.poll() is None]


class _Exited:
    """A process slot whose start failed: waits a moment and reports a failure."""

    pid = None

    def wait(self):
        gevent.sleep(0)
        return 1

    def poll(self):
        return 1


def _still_running(proc, grace):
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        return True
    return False


def _end(proc):
    try:
        proc.kill()
        proc.wait()
    except (OSError, AttributeError):
        pass
