"""The ``direct`` (alias ``virtual``) connector: GOST's virtual node, which needs no server.

Rules (go-gost/x connector/direct):
1. ``connect`` ignores the conn it is given (the direct dialer's placeholder) and connects to
   the target from this host: a TCP connection, or for UDP a socket whose datagrams each go to
   their own address.
2. ``action: reject`` refuses every connection. GOST hands the client a conn that is already
   at its end (so the client first hears "connected"); gostg refuses the dial, so the client
   gets its protocol's refusal (SOCKS5 reply, HTTP 503), and the node is not marked failed:
   refusing is what it was configured to do.
"""
from ..core.registry import connectors
from ..core.router import dial_tcp
from ..errors import DialError
from ..relay.udp import UDPSocket
from .base import Connector


class Rejected(DialError):
    """A ``reject`` node refused the connection (rule 2): not a failure of the node."""

    marks = False


@connectors.register("direct", "virtual")
class DirectConnector(Connector):
    #: the chain's Route leaves a direct node out after hop 0 (gostg.core.chain rule 2c), and
    #: the config builder needs no address for it
    direct = True

    def __init__(self, md, auth=None):
        super().__init__(md, auth)
        self.reject = md.str("action").lower() == "reject"

    def connect(self, conn, network, address, ctx=None):
        if self.reject:
            raise Rejected(f"connection to {address or 'any address'} rejected (connector action: reject)")
        # the node's interface / so_mark / netns (multi-homed.md "Direct Connection Mode")
        so = getattr(conn, "sockopts", None)
        if network.startswith("udp"):
            return UDPSocket(so.packet_socket() if so is not None else None)
        return dial_tcp(address, None, so)
