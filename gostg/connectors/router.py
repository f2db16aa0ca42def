"""The ``router`` connector (GOST ``x/connector/router``): joins a routing tunnel.

The request, byte for byte as GOST sends it: relay v1, CMD ASSOCIATE, features UserAuth (when
the node has credentials), Network (udp or ip), Addr (the source: the client's address, for a
TUN device its own IP, port 0), Addr (the destination: the host name this client registers as,
e.g. ``host-1``, port 0), and Tunnel (``router.id``, a UUID, in a 20-byte id) when set. After
an OK response (its Tunnel feature carries the server's connector id, unused here) IP packets
go both ways as ``LEN(2, BE) + packet`` frames.
"""
import uuid

import gevent

from ..core.registry import connectors
from ..errors import ConfigError, DialError, ProtocolError
from ..protocols import relay as rp
from ..protocols.addr import join_host_port
from ..relay.udp import LengthConn
from ..transport.buffered import Stream
from .base import Connector

#: GOST's TunnelID is the 16-byte UUID, a flag byte, 2 reserved bytes and a weight byte
TUNNEL_ID_WIRE_LEN = 20


def tunnel_id(text, path="metadata.router.id"):
    """``router.id`` (a UUID) → the 20 bytes GOST's Tunnel feature carries."""
    try:
        return uuid.UUID(text.strip()).bytes + bytes(TUNNEL_ID_WIRE_LEN - 16)
    except ValueError:
        raise ConfigError(path, f"router: invalid router ID {text!r} (a UUID)") from None


@connectors.register("router")
class RouterConnector(Connector):

    def __init__(self, md, auth=None):
        super().__init__(md, auth)
        rid = md.str("router.id")
        self.router_id = tunnel_id(rid) if rid else None
        self.connect_timeout = md.duration("connectTimeout")

    def connect(self, conn, network, address, ctx=None):
        if network not in ("udp", "ip"):
            raise DialError(f"router: network {network} is unsupported")
        features = [rp.UserAuth(*self.auth)] if self.auth else []
        features.append(rp.Network(rp.NETWORK_UDP if network == "udp" else rp.NETWORK_IP))
        src = ctx.src if ctx is not None and ctx.src else _peer(conn)
        features += [rp.addr_from_text(src), rp.addr_from_text(address)]
        if self.router_id is not None:
            features.append(rp.Tunnel(self.router_id))
        try:
            header = rp.encode_request(rp.Request(rp.CMD_ASSOCIATE, tuple(features)))
        except ProtocolError as exc:
            raise DialError(f"router: cannot encode request for {address}: {exc}") from exc
        s = Stream(conn)
        try:
            with gevent.Timeout(self.connect_timeout or None,
                                DialError(f"router: no answer in {self.connect_timeout:g}s")):
                conn.sendall(header)
                resp = s.read(rp.parse_response)
        except EOFError:
            raise DialError(f"router: server closed before answering ({address})") from None
        except ProtocolError as exc:
            raise DialError(f"router: {exc}") from exc
        if resp.status != rp.STATUS_OK:
            raise DialError(f"router: {resp.status} {rp.STATUS_TEXT.get(resp.status, 'unknown')}")
        return LengthConn(conn, address, stream=s)


def _peer(conn):
    try:
        host, port = conn.getpeername()[:2]
    except (OSError, AttributeError):
        return ""
    return join_host_port(host, port)
