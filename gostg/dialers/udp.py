from gevent import socket

from ..protocols.addr import split_host_port
from ..core.registry import dialers
from .base import Dialer


@dialers.register("udp")
class UDPDialer(Dialer):
    """A connected UDP socket to the node (for packet connectors such as ``ssu``)."""

    applies_sockopts = True

    def dial(self, addr, timeout):
        host, port = split_host_port(addr)
        if self.sockopts is not None:
            return self.sockopts.connect(host, port, socket.SOCK_DGRAM)
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
        fam, _, _, _, sa = min(infos, key=lambda i: i[0] != socket.AF_INET)
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.connect(sa)
        except BaseException:
            s.close()
            raise
        return s
