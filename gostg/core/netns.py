"""Linux network namespaces: make a socket inside a named namespace (GOST's ``netns``).

A socket belongs for life to the namespace it was created in: bind, listen, connect and
SO_BINDTODEVICE on it act there, whatever namespace the thread is in later. So gostg enters a
namespace only around socket creation (a listener's ``bind()``), and leaves at once.

Rules, because setns(2) switches the calling OS *thread* and gevent runs every greenlet on one
thread (a greenlet that ran while we were inside would open its sockets in the wrong place):

1. Inside the window only non-blocking calls are made (socket(), setsockopt, bind, listen):
   no greenlet switch can happen there.
2. The way back is in a ``finally``: an error inside never leaves the thread switched.
3. Belt and braces for rule 1: while the window is open a greenlet trace function puts the
   thread back in its home namespace whenever another greenlet is about to run, and re-enters
   the target when ours resumes; so a switch that should not happen still cannot leak.
4. No thread is started inside the window (a new thread inherits the namespace), and names are
   not resolved there (gevent resolves on worker threads, which stay in the home namespace).

Python 3.12 has ``os.setns``; on 3.11 we call libc's setns through ctypes.
"""
import errno
import os

import greenlet

CLONE_NEWNET = 0x40000000
#: where ``ip netns add NAME`` pins a namespace (vishvananda/netns, which GOST uses, looks here)
NETNS_DIR = "/var/run/netns"

_libc = None
_home = None   # fd of the namespace the process started in (opened once, kept)


def _setns(fd):
    setns = getattr(os, "setns", None)
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    import ctypes   # only here: a config without netns does not load it

    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def path_of(name):
    """GOST: a value starting with ``/`` is a path (``/run/netns/ns2``, ``/proc/PID/ns/net``),
    anything else a name under /var/run/netns."""
    return name if name.startswith("/") else os.path.join(NETNS_DIR, name)


def _open(name):
    # O_NONBLOCK: a FIFO or device named by mistake (the value may come from the Web API)
    # must not block the one thread every greenlet runs on; setns then says EINVAL
    try:
        return os.open(path_of(name), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"network namespace {name!r} not found ({path_of(name)} does not exist)") from None
    except OSError as exc:
        raise OSError(exc.errno, f"network namespace {name!r}: {exc.strerror}") from None
    except ValueError:   # a NUL in it
        raise OSError(errno.EINVAL, f"network namespace {name!r}: not a name or path") from None


def _home_fd():
    global _home
    if _home is None:
        # the thread's own namespace, not the thread group leader's (/proc/self)
        _home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    return _home


class inside:
    """``with inside(name): sock = socket.socket(…)`` — the socket is made in namespace
    ``name`` (see the module rules). An empty name is a no-op, so callers need no branch."""

    __slots__ = ("name", "fd", "me", "prev")

    def __init__(self, name):
        self.name = name
        self.fd = None

    def __enter__(self):
        if not self.name:
            return self
        _home_fd()
        self.fd = _open(self.name)
        try:
            _setns(self.fd)
        except OSError as exc:
            os.close(self.fd)
            self.fd = None
            hint = " (needs root: CAP_SYS_ADMIN)" if exc.errno == errno.EPERM else ""
            if exc.errno == errno.EINVAL:
                hint = " (not a network namespace)"
            raise OSError(exc.errno, f"network namespace {self.name!r}: {exc.strerror}{hint}") from None
        self.me = greenlet.getcurrent()
        self.prev = greenlet.settrace(self._trace)
        return self

    def _trace(self, event, args):
        origin, target = args
        if origin is self.me:
            _setns(_home)          # rule 3: someone else runs, in the home namespace
        elif target is self.me:
            _setns(self.fd)
        if self.prev is not None:
            self.prev(event, args)

    def __exit__(self, *exc):
        if self.fd is None:
            return False
        try:
            greenlet.settrace(self.prev)
            _setns(_home)
        finally:
            os.close(self.fd)
            self.fd = None
        return False


def check(name):
    """Raise OSError with a clear message unless namespace ``name`` can be entered now."""
    with inside(name):
        pass
