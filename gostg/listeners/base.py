import errno
import os
import time

import gevent
from gevent import getcurrent
from gevent.server import StreamServer


class AcceptServer(StreamServer):
    """gevent's ``StreamServer`` with the accept errors a busy proxy meets handled quietly.

    Out of file descriptors (EMFILE/ENFILE, or ENOBUFS/ENOMEM from the kernel), gevent would
    print a Python traceback for every failed ``accept()`` and retry after 10 ms. Here a burst
    gives one structured warning per :attr:`warn_every` seconds, accepting pauses for
    :attr:`backoff_min` seconds (doubling up to :attr:`backoff_max` while the errors last),
    and the pending clients wait in the kernel's backlog until descriptors are free again.
    A peer that resets before we accept it (ECONNABORTED, EPROTO) is skipped without a word.
    """

    #: first pause of accepting after running out of descriptors (seconds)
    backoff_min = 0.1
    #: longest pause; each failed accept in a row doubles the pause up to this
    backoff_max = 1.0
    #: at most one "backing off" warning per this many seconds
    warn_every = 1.0
    #: errnos that mean "out of a resource, try again later"
    exhausted = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
    #: errnos that concern one peer only (it went away before we took it)
    transient = (errno.ECONNABORTED, errno.EPROTO, errno.EINTR)
    #: ``on_state("failed")`` when accepting pauses, ``on_state("ready")`` when it resumes
    #: (GOST's service states around a temporary accept error); set by the service
    on_state = None

    def __init__(self, listener, handle, spawn="default", log=None):
        super().__init__(listener, handle, spawn=spawn)
        self.log = log
        self._backoff = self.backoff_min
        self._last_warn = -1e9
        self._failed = 0        # failed accepts since the last warning
        self._resumer = None    # the greenlet that resumes accepting after a pause

    def do_close(self, sock, *args):
        # gevent closes the accepted socket once the handler returns; a tunnel that went on
        # without the connection's greenlet (relay/tcp.py rule 6) still relays on it, and
        # closes it itself at its end
        if getattr(getcurrent(), "tunnel", None) is None:
            sock.close()

    def do_read(self):
        # Public override point of gevent's accept loop (BaseServer._do_read calls it once per
        # ready accept; returning None ends this round without gevent's error path).
        try:
            args = super().do_read()
        except OSError as exc:
            if exc.errno in self.exhausted:
                self._pause(exc)
                return None
            if exc.errno in self.transient:
                return None
            raise
        if args:
            self._backoff = self.backoff_min
        return args

    def _pause(self, exc):
        delay = self._backoff
        self._backoff = min(self.backoff_max, delay * 2)
        self._failed += 1
        now = time.monotonic()
        if now - self._last_warn >= self.warn_every and self.log is not None:
            name = errno.errorcode.get(exc.errno, str(exc.errno))
            reason = (exc.strerror or os.strerror(exc.errno)).lower()
            self.log.warning(f"accept: {reason} ({name}), backing off", errno=name,
                             backoff=round(delay, 3), failed_accepts=self._failed)
            self._last_warn, self._failed = now, 0
        self.stop_accepting()
        if self._resumer is None:
            self._resumer = gevent.spawn_later(delay, self._resume)
            if self.on_state is not None:
                self.on_state("failed")

    def _resume(self):
        self._resumer = None
        if self.started and not self.closed:
            self.start_accepting()
            if self.on_state is not None:
                self.on_state("ready")

    def close(self):
        if self._resumer is not None:
            self._resumer.kill(block=False)
            self._resumer = None
        super().close()


class Listener:
    """``bind()`` happens when the service is built, so a port in use is a build error and a
    replacement can be bound before the old service goes. ``wrap(sock)`` runs in the
    connection's greenlet (TLS handshake, WebSocket upgrade …) and returns the conn."""

    #: set by the config builder: a listener-level chain (rtcp/rudp bind through it), the
    #: registries to find it in, and the service's logger
    chain = None
    registries = None
    log = None
    #: accepted sockets come straight from the kernel (TCP family), so a PROXY protocol header
    #: may precede whatever the listener speaks (``proxyProtocol``)
    stream = False
    #: the network namespace the listening socket is created in (GOST's service ``netns``)
    netns = ""
    #: whether every worker of ``-workers N`` runs the service on a shared (SO_REUSEPORT) port;
    #: not by default (UDP, remote listeners): worker 0 alone runs those (gostg.workers.share)
    shareable = False

    def __init__(self, addr, md, tls=None, auth=None):
        self.addr = addr
        self.md = md
        self.tls = tls
        self.auth = auth
        self.socket = None

    def bind(self):
        raise NotImplementedError

    def adopt(self, sock):
        """Take over a predecessor's bound socket (a replacement on the same address)."""
        self.socket = sock

    def server(self, handle, pool):
        """The accept loop: ``handle(conn, address)`` runs in a ``pool`` greenlet per peer."""
        return AcceptServer(self.socket, handle, spawn=pool, log=self.log)

    def wrap(self, sock):
        return sock

    def close(self):
        if self.socket is not None:
            self.socket.close()
