"""Loopback stand-ins for nodes that are slow, stalled or gone, shared by the unit and the
integration tests of selectors and probes. They work on plain and on gevent sockets alike."""
import socket


class Stalled:
    """A listener that never accepts, its one-slot accept queue filled: a connect to it hangs
    (the kernel drops the SYNs), as to a node that is up but does not answer."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.fillers = []
        for _ in range(2):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(f)

    def close(self):
        for s in self.fillers + [self.sock]:
            s.close()


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pipe(a, b):
    """Copy ``a`` to ``b`` until EOF, then half-close ``b``."""
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def read_head(sock, limit=65536):
    """Bytes up to and including the blank line ending an HTTP head, or None at EOF."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data or len(head) > limit:
            return None
        head += data
    return head
