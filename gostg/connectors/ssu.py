"""The Shadowsocks UDP client (GOST's ``ssu`` connector): ``-F ssu://method:pass@host:port``.

Over the ``udp`` dialer (the CLI default for ssu) each datagram is one ss UDP packet to the
server; over a stream dialer it is ss TCP carrying UDP-TUN frames, as GOST. Only UDP can be
carried."""
from ..relay import udp
from ..errors import DialError
from ..core.registry import connectors
from ..transport.ss import SSConn
from ..transport.ssu import SSUClient
from .ss import SSConnector


@connectors.register("ssu")
class SSUConnector(SSConnector):

    def connect(self, conn, network, address, ctx=None):
        if network != "udp":
            raise DialError(f"ssu connector: network {network} is not supported")
        if getattr(conn, "type", None) == udp.socket.SOCK_DGRAM:
            return SSUClient(conn, self.cipher, target=address)
        return udp.TunConn(SSConn(conn, self.cipher) if self.cipher else conn, target=address)
