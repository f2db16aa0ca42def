"""The server side of GOST's relay protocol (``x/handler/relay``): TCP CONNECT and forward mode.

What GOST does and we do too: a bad version or malformed features end the connection without a
reply; credentials come from the UserAuth feature and a refusal answers Unauthorized (2); with a
forwarder the requested address is ignored and a forwarder target is dialled (no target:
ServiceUnavailable, dial failure: HostUnreachable); CONNECT without an address is BadRequest,
a bypassed one Forbidden, a failed dial NetworkUnreachable; an unknown command is BadRequest.

UDP: CONNECT with the UDP flag or Network feature relays ``LEN(2) + payload`` frames to the
target; BIND (``bind=true``) is in :mod:`gostg.handlers.relay_bind`. Other networks (unix,
serial, ip) answer BadRequest. The OK response is sent as
soon as the target is connected rather than held back for the first write back to the client:
the bytes on the wire are the same, and the conn stays a plain socket that relay may splice.
"""
from ..relay import udp
from ..transport.buffered import Stream
from ..errors import DialError
from ..protocols import relay as rp
from ..protocols.addr import join_host_port
from ..core.registry import handlers
from . import relay_bind
from .base import Handler


def reply(conn, status, features=()):
    """A relay response (the relay, tunnel and router handlers'); a client already gone is not
    an error worth more than the log line its request gets."""
    try:
        conn.sendall(rp.encode_response(rp.Response(status, tuple(features))))
    except OSError:
        pass


@handlers.register("relay")
class RelayHandler(Handler):
    _reply = staticmethod(reply)

    def handle(self, conn, ctx, stream=None):
        s = stream or Stream(conn)
        with self.handshake_deadline():
            req = s.read(rp.parse_request)  # ProtocolError/EOFError: no reply, as GOST

        auth = req.find(rp.UserAuth)
        user, password = (auth.user, auth.password) if auth else ("", "")
        if not self.authenticate(ctx, user, password):
            self._reply(conn, rp.STATUS_UNAUTHORIZED)
            return

        net = req.find(rp.Network)
        network = net.name if net else "tcp"
        if req.cmd & rp.FLAG_UDP:
            network = "udp"
        addr = req.find(rp.Addr)
        address = join_host_port(addr.host, addr.port) if addr else ""

        if network not in ("tcp", "udp"):
            return self._unsupported(conn, ctx, f"relay: network {network} not supported")
        if req.command == rp.CMD_BIND:
            return relay_bind.serve(self, conn, s, ctx, network, addr)
        if self.options.forwarder is not None:
            return self._forward(conn, s, ctx, network)

        if req.command not in (0, rp.CMD_CONNECT):
            return self._unsupported(conn, ctx, f"relay: command {req.command} not supported")
        if not address:
            return self._unsupported(conn, ctx, "relay: target not specified")

        ctx.target = address
        upstream = self.dial(address, ctx, lambda why: self._reply(conn, rp.STATUS_FORBIDDEN if why == "bypass"
                                                                   else rp.STATUS_NETWORK_UNREACHABLE),
                             network=network)
        if upstream is None:
            return
        self._ok_and_relay(conn, s, upstream, ctx, address, network)

    def _unsupported(self, conn, ctx, why):
        ctx.log.warning(why)
        self._reply(conn, rp.STATUS_BAD_REQUEST)

    def _forward(self, conn, s, ctx, network="tcp"):
        node = self.options.forwarder.select(ctx, "")
        if node is None:
            ctx.log.error("relay: no forward target available")
            self._reply(conn, rp.STATUS_SERVICE_UNAVAILABLE)
            return
        ctx.target = node.addr
        try:
            upstream = self.router.dial(network, node.addr, ctx)
        except DialError as exc:
            node.marker.mark(exc)
            ctx.log.error(str(exc), dst=node.addr)
            self._reply(conn, rp.STATUS_HOST_UNREACHABLE)
            return
        node.marker.reset()
        self._ok_and_relay(conn, s, upstream, ctx, node.addr, network)

    def _ok_and_relay(self, conn, s, upstream, ctx, target, network="tcp"):
        try:
            conn.sendall(rp.encode_response(rp.Response(rp.STATUS_OK)))
        except OSError:
            upstream.close()
            raise
        if network == "udp":   # datagrams as LEN(2) + payload frames, all to the one target
            return self.relay_udp(udp.LengthConn(conn, target, stream=s), upstream, ctx, target, target=target)
        self.tunnel(s.conn_with_rest(), upstream, ctx, target)
