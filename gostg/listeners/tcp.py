import os

from gevent import socket

from ..errors import ConfigError
from ..protocols.addr import split_host_port
from ..core.registry import listeners
from .base import AcceptServer, Listener


#: set in a worker process of ``-workers N`` (gostg.workers.worker): every TCP listening socket
#: joins the port's SO_REUSEPORT group, and the kernel spreads new connections over the workers
reuse_port = False
#: set while a worker starts (gostg.workers.worker): its sockets are bound but not listening
#: until every service is bound (listen_deferred). A worker whose later bind fails then never
#: had a connection queued on its earlier sockets: a port's group only hands new connections
#: to listening sockets, so closing a bound one drops nothing.
defer_listen = False
_deferred = []


def bind_tcp(addr, backlog, probe=False):
    """Bind ``[host]:port``; an empty host listens on every address, IPv4 and IPv6 (as Go).
    ``probe``: bind without SO_REUSEPORT and without listening, then close (→ None): raises
    as a listener would when the port is taken, by anyone (a ``-workers`` supervisor checks a
    new address so before its workers join the port's group)."""
    host, port = split_host_port(addr or ":0", 0)
    candidates = [(host, port)] if host else [("::", port), ("0.0.0.0", port)]
    last = None
    for h, p in candidates:
        family = socket.AF_INET6 if ":" in h else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port and not probe:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and not host:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((h, p))
            if probe:
                s.close()
                return None
            if defer_listen and reuse_port:
                _deferred.append((s, backlog))
                return s
            s.listen(backlog)
            return s
        except OSError as exc:
            s.close()
            last = exc
            if host:
                break
    raise ConfigError("", f"cannot listen on {addr}: {last.strerror or last}")


def listen_deferred():
    """Start listening on every socket bound while ``defer_listen`` was set (the ones closed
    meanwhile are skipped); from now on sockets listen as they are bound."""
    global defer_listen
    defer_listen = False
    pending, _deferred[:] = list(_deferred), []
    for s, backlog in pending:
        if s.fileno() != -1:
            s.listen(backlog)


@listeners.register("tcp")
class TCPListener(Listener):
    #: accept backlog; the kernel caps it at net.core.somaxconn
    backlog = 1024
    stream = True
    #: the listening socket can be one of several processes' sockets on the port (SO_REUSEPORT,
    #: ``-workers``): every worker runs the service. False: only worker 0 runs it
    shareable = True

    def bind(self):
        self.socket = bind_tcp(self.addr, self.md.int("backlog", default=self.backlog))
        return self.socket

    def wrap(self, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


class _UnixServer(AcceptServer):
    """Closing the server (what a service's close does) removes the socket file, as Go's."""

    path = None

    def close(self):
        super().close()
        if self.path:
            _unlink(self.path)


class UnixListener(TCPListener):
    """A Unix stream socket at the path ``addr`` (the global metrics endpoint's
    ``unix:///path``). As Go's: an existing file at the path is an error ("address already in
    use"), and closing the listener (or its server) removes the file."""

    type_name = "unix"
    shareable = False   # one path, one socket

    def bind(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.bind(self.addr)
            s.listen(self.md.int("backlog", default=self.backlog))
        except OSError as exc:
            s.close()
            raise ConfigError("", f"cannot listen on unix://{self.addr}: {exc.strerror or exc}") from None
        self.socket = s
        return s

    def server(self, handle, pool):
        srv = _UnixServer(self.socket, handle, spawn=pool, log=self.log)
        srv.path = self.addr
        return srv

    def wrap(self, sock):
        return sock

    def close(self):
        if self.socket is not None:
            _unlink(self.addr)
        super().close()
