"""The ``direct`` (alias ``virtual``) dialer: GOST's virtual node opens nothing itself; its
connector (gostg.connectors.direct) connects straight to the target."""
from ..core.registry import dialers
from .base import Dialer


class NoConn:
    """The placeholder conn of a direct node: nothing to read, write or close. It carries the
    node's ``sockopts`` (interface, so_mark, netns) to the connector, which opens the socket."""

    def __init__(self, sockopts=None):
        self.sockopts = sockopts

    def recv(self, n):
        return b""

    def recv_into(self, buf, nbytes=0):
        return 0

    def sendall(self, data):
        raise BrokenPipeError("a direct node's placeholder conn carries no data")

    def shutdown(self, how):
        pass

    def close(self):
        pass

    def getpeername(self):
        return ("", 0)


@dialers.register("direct", "virtual")
class DirectDialer(Dialer):
    applies_sockopts = True   # through NoConn, by the direct connector

    def dial(self, addr, timeout):
        return NoConn(self.sockopts)
