from ..core.registry import dialers
from ..core.router import dial_tcp
from .base import Dialer


@dialers.register("tcp")
class TCPDialer(Dialer):
    applies_sockopts = True

    def dial(self, addr, timeout):
        return dial_tcp(addr, timeout, self.sockopts)
