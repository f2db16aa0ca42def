from ..errors import DialError
from ..core.registry import connectors
from .base import Connector


@connectors.register("forward", "tcp")
class ForwardConnector(Connector):
    """The node is itself a port forwarder: the channel is the data path, nothing to say."""

    def connect(self, conn, network, address, ctx=None):
        if network == "udp" and not hasattr(conn, "read_from"):
            # a stream keeps no datagram boundaries (GOST would mangle them): refuse, clearly
            raise DialError("forward connector over a stream cannot carry udp datagrams "
                            "(use a relay node, or a udp dialer)")
        return conn
