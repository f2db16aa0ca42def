from gevent import socket

from ..errors import ConfigError
from ..protocols.addr import split_host_port
from ..core.registry import listeners
from .base import Listener


def bind_tcp(addr, backlog):
    """Bind ``[host]:port``; an empty host listens on every address, IPv4 and IPv6 (as Go)."""
    host, port = split_host_port(addr or ":0", 0)
    candidates = [(host, port)] if host else [("::", port), ("0.0.0.0", port)]
    last = None
    for h, p in candidates:
        family = socket.AF_INET6 if ":" in h else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and not host:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind((h, p))
            s.listen(backlog)
            return s
        except OSError as exc:
            s.close()
            last = exc
            if host:
                break
    raise ConfigError("", f"cannot listen on {addr}: {last.strerror or last}")


@listeners.register("tcp")
class TCPListener(Listener):
    #: accept backlog; the kernel caps it at net.core.somaxconn
    backlog = 1024
    stream = True

    def bind(self):
        self.socket = bind_tcp(self.addr, self.md.int("backlog", default=self.backlog))
        return self.socket

    def wrap(self, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
