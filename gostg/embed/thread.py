"""Thread mode: gostg's own gevent hub in a background thread, for apps that never patch.

gevent hubs are per native thread, and gostg's code uses ``gevent.socket`` explicitly, so in a
process that did not monkey-patch, a thread of gostg's runs a hub of its own: the services
listen and serve there, and the app's blocking threads never notice it.

Rules:
1. Everything gevent of gostg is made, used and closed in the hub thread: gevent sockets and
   watchers belong to the loop of the thread that made them. The app's threads reach the hub
   only through ``call`` (``loop.run_callback_threadsafe`` wakes the loop, the callback spawns
   a greenlet, a lock released by the hub hands the outcome back) — never by touching a
   gevent object themselves.
2. A socket crosses as a file descriptor: the hub detaches it from gevent (its watchers go) and
   the calling thread wraps it in a stdlib blocking socket. Nothing gevent is left holding it.
3. A call has a deadline on both sides: the hub bounds the function with ``gevent.Timeout``;
   the caller waits a little longer (a busy hub) and then gives up. A result that arrives after
   the caller gave up is discarded where it is (a socket is closed), never leaked.
4. Stopping: the caller's stop runs the teardown in the hub (Gost's: services, relays), then the
   hub thread ends: calls still pending fail with HubStopped, their greenlets are killed,
   gevent's resolver threads are ended and the hub is destroyed with its loop (its epoll and
   wake-up descriptors), and the caller joins the thread. No descriptor and no thread stay
   behind (gevent's optional monitor thread, GEVENT_MONITOR_THREAD_ENABLE, ends on its next
   tick, ~0.1 s later).
5. No signal handlers: the hub thread is not the main thread (gevent's loop there is not the
   default one and installs none), and gostg's library code installs none anywhere.
"""
import atexit
import os
import socket
import threading
from typing import Any, Callable, Optional, TypeVar

from gevent import monkey

from ..errors import HubStopped

T = TypeVar("T")

#: seconds the calling thread waits past a call's own timeout for the hub to answer (rule 3)
GRACE = 1.0

#: stdlib socket class, even if some later code patches the socket module
_std_socket = monkey.get_original("socket", "socket")


class _Call:
    """One call crossing into the hub: its outcome, and whether the caller gave up (rule 3).
    ``done`` is a lock taken at creation and released once the outcome is in (the cheapest
    one-shot signal between native threads); ``lock`` orders "outcome in" against "caller gave
    up"."""

    __slots__ = ("done", "lock", "answered", "abandoned", "value", "error", "discard")

    def __init__(self, discard):
        self.done = threading.Lock()
        self.done.acquire()
        self.lock = threading.Lock()
        self.answered = self.abandoned = False
        self.value = self.error = None
        self.discard = discard

    def deliver(self, result):
        """Hub side: hand ``result`` over, or discard it when nobody waits any more."""
        with self.lock:
            if not self.abandoned and not self.answered:
                self.value, self.answered = result, True
                self.done.release()
                return
        if self.discard is not None:
            self.discard(result)

    def fail(self, exc):
        with self.lock:
            if not self.answered:
                self.error, self.answered = exc, True
                self.done.release()

    def wait(self, timeout):
        """Caller side: True once the outcome is in; False when ``timeout`` ran out first."""
        return self.done.acquire(timeout=-1 if timeout is None else timeout)

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.value

    def give_up(self):
        """Caller side, after its wait ran out: a result that made it is discarded here."""
        with self.lock:
            self.abandoned = True
            late = self.answered and self.error is None
        if late and self.discard is not None:
            self.discard(self.value)


class HubThread:
    """A gevent hub of gostg's own, running in a daemon native thread (a forgotten ``stop()``
    does not keep the app alive: at exit the thread is ended and joined, services not drained)."""

    #: seconds a stop waits for the hub thread to end after its teardown (and a failed start
    #: for it to end after the error)
    join_timeout = 5.0

    def __init__(self, name: str = "gostg-hub"):
        self.name = name
        self.thread = None
        self._ident = None
        self._loop = None           # the hub's loop while calls may be scheduled on it
        self._lock = threading.Lock()
        self._calls = set()         # _Call not yet answered
        self._greenlets = None      # gevent Group: the calls' greenlets
        self._exit = None           # gevent Event: set → the hub thread ends
        self._wake = None           # async watcher: keeps the loop alive, sets _exit (any thread)
        self._exiting = False       # an end was asked for (stop, exit)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, setup: Callable[[], Any]) -> None:
        """Start the thread and run ``setup()`` in its hub; return once it returned, or raise
        what it raised (the thread has then ended)."""
        ready = _Call(None)
        self.thread = threading.Thread(target=self._run, args=(setup, ready), name=self.name, daemon=True)
        self.thread.start()
        atexit.register(self._end_at_exit)    # from here: even a Ctrl-C during setup
        ready.wait(None)
        try:
            ready.outcome()
        except BaseException:
            atexit.unregister(self._end_at_exit)
            self.thread.join(self.join_timeout)
            raise

    def _end_at_exit(self):
        """A forgotten ``stop()``: end the hub thread before the interpreter finalizes. A daemon
        thread still inside gevent's loop then is frozen mid-way while the modules it runs are
        torn down, which crashed about one exit in twenty (SIGSEGV) in the test of this."""
        self._request_exit()
        if self.thread is not None and not self.is_current():
            self.thread.join(self.join_timeout)

    @property
    def running(self) -> bool:
        return self._loop is not None

    def is_current(self) -> bool:
        """True in the hub thread itself."""
        return threading.get_ident() == self._ident

    def _run(self, setup, ready):
        import gevent
        from gevent.event import Event
        from gevent.pool import Group

        hub = gevent.get_hub()
        self._ident = threading.get_ident()
        self._greenlets = Group()
        self._exit = Event()
        # a ref'd watcher keeps the loop running with no service at all (a Gost used only to
        # dial); ``send()`` on it is the one thread-safe way in that needs no callback object
        self._wake = hub.loop.async_()
        self._wake.start(self._exit.set)
        try:
            try:
                setup()
            except BaseException as exc:
                ready.fail(exc)
                return
            with self._lock:
                self._loop = hub.loop
                exiting = self._exiting     # asked to end while setting up (a Ctrl-C, exit)
            ready.deliver(None)
            if not exiting:
                self._exit.wait()
        finally:
            self._shutdown(hub)

    def _shutdown(self, hub):
        """Rule 4, in the hub thread's main greenlet."""
        import gevent

        with self._lock:
            self._loop = None           # no call is scheduled from now on
        gevent.sleep(0)                 # callbacks already scheduled spawn their greenlets
        self._greenlets.kill(block=True, timeout=1.0)
        with self._lock:
            calls, self._calls = self._calls, set()
        for c in calls:
            c.fail(HubStopped("gostg stopped before the call finished"))
        self._wake.close()
        # also ends gevent's resolver threads (getaddrinfo), waiting until they deregister
        hub.destroy(destroy_loop=True)

    def stop(self, teardown: Callable[[], Any], timeout: Optional[float] = None) -> bool:
        """Run ``teardown()`` in the hub (bounded by ``timeout``), end the hub thread and join
        it. From the hub thread itself the thread only ends after the current call returns.
        → True when the thread has ended."""
        atexit.unregister(self._end_at_exit)
        try:
            if self.running:
                self.call(teardown, timeout=timeout)
        finally:
            self._request_exit()
            if not self.is_current() and self.thread is not None:
                self.thread.join(self.join_timeout)
        return self.thread is not None and not self.thread.is_alive()

    def _request_exit(self):
        with self._lock:
            self._exiting = True
            if self._loop is not None:
                self._wake.send()

    # -- calls ----------------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, timeout: Optional[float] = None,
             discard: Optional[Callable[[T], None]] = None, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a new greenlet in the hub and return its result (or
        raise its exception) in the calling thread. ``timeout`` bounds it (TimeoutError);
        ``discard(result)`` disposes of a result nobody waits for any more (rule 3)."""
        if self.is_current():
            return _bounded(fn, args, kwargs, timeout)
        c = _Call(discard)
        with self._lock:
            if self._loop is None:
                raise HubStopped("gostg is not running in thread mode (start() it first; stop() ends it)")
            self._calls.add(c)
            self._loop.run_callback_threadsafe(self._spawn, c, fn, args, kwargs, timeout)
        try:
            done = c.wait(None if timeout is None else timeout + GRACE)
        except BaseException:       # KeyboardInterrupt while waiting
            c.give_up()
            raise
        finally:
            with self._lock:
                self._calls.discard(c)
        if not done:
            c.give_up()
            raise TimeoutError(f"gostg: no answer from the hub thread within {timeout + GRACE:g}s")
        return c.outcome()

    def _spawn(self, c, fn, args, kwargs, timeout):
        """In the hub's callback phase: must not block, so the work gets a greenlet."""
        self._greenlets.spawn(self._run_call, c, fn, args, kwargs, timeout)

    @staticmethod
    def _run_call(c, fn, args, kwargs, timeout):
        import gevent

        try:
            result = _bounded(fn, args, kwargs, timeout)
        except gevent.GreenletExit:
            c.fail(HubStopped("gostg stopped before the call finished"))
            raise
        except BaseException as exc:
            c.fail(exc)
        else:
            c.deliver(result)

    def open_socket(self, dial: Callable[[], Any], timeout: Optional[float] = None) -> socket.socket:
        """``dial()`` runs in the hub and returns a connected TCP socket (a gevent socket, or
        a stdlib ``_socket.socket``: ``embed.dial.to_socket`` of a routed conn); → the same
        connection as a stdlib blocking socket in the calling thread (rule 2), with
        ``settimeout(timeout)`` as ``socket.create_connection`` leaves it. ``timeout`` also
        bounds the dial."""
        fd, family, proto = self.call(_detached, dial, timeout=timeout, discard=_close_fd)
        s = _std_socket(family, socket.SOCK_STREAM, proto, fileno=fd)
        s.settimeout(timeout)   # also clears O_NONBLOCK, which gevent had set
        return s


def _bounded(fn, args, kwargs, timeout):
    if timeout is None:
        return fn(*args, **kwargs)
    import gevent

    with gevent.Timeout(timeout, TimeoutError(f"gostg: call did not finish within {timeout:g}s")):
        return fn(*args, **kwargs)


def _detached(dial):
    """In the hub: dial, then take the socket's fd away from gevent (its watchers go)."""
    s = dial()
    family, proto = s.family, s.proto
    return s.detach(), family, proto


def _close_fd(result):
    os.close(result[0])

