from ..errors import DialError
from ..core.race import Race, first
from ..core.registry import handlers
from .base import Handler


@handlers.register("tcp", "udp", "forward", "rtcp", "rudp")
class ForwardHandler(Handler):
    """Port forwarding to the forwarder's targets.

    Unlike GOST, which drops the connection when the chosen target fails, the next target is
    tried for the same connection (each target once), so failover loses no client.
    A udp listener's session is forwarded datagram by datagram over a packet conn.
    """

    def handle(self, conn, ctx):
        hop = self.options.forwarder
        if hop is None or not hop.nodes:
            ctx.log.error("forward: no target configured")
            return
        tried = set()
        last = None
        for _ in range(len(hop.nodes)):
            try:
                node = hop.select(ctx, "")
            except DialError as exc:   # the selector's maxLatency left no target
                last = exc
                break
            if isinstance(node, Race):   # selector parallel: the untried targets, at once
                node = Race([n for n in node.nodes if n.name not in tried]) if any(
                    n.name not in tried for n in node.nodes) else None
            if node is None or node.name in tried:
                # the selector keeps offering a node already tried: pick an untried one
                node = next((n for n in hop.nodes if n.name not in tried), None)
                if node is None:
                    break
            tried.update(n.name for n in getattr(node, "nodes", [node]))
            ctx.target = node.addr
            network = "udp" if getattr(conn, "is_packet", False) else "tcp"
            try:
                node, upstream = self._dial(node, network, ctx)
            except DialError as exc:
                last = exc
                ctx.log.warning(f"forward: target {node.name}@{node.addr} failed: {exc}", dst=node.addr)
                continue
            ctx.target = node.addr
            if network == "udp":
                return self.relay_udp(conn, upstream, ctx, node.addr, target=node.addr)
            return self.relay(conn, upstream, ctx, node.addr)
        ctx.log.error(f"forward: no target reachable: {last}", dst=ctx.target)

    def _dial(self, node, network, ctx):
        """→ (target node, upstream conn); a failed target is marked, a reached one reset. A
        :class:`Race` dials each of its targets at once and keeps the first to connect."""
        if isinstance(node, Race):
            return first([lambda n=n: self._dial(n, network, ctx) for n in node.nodes],
                         lambda won: won[1].close(), node=node)[1]
        try:
            upstream = self.router.dial(network, node.addr, ctx)
        except DialError:
            node.marker.mark()
            raise
        node.marker.reset()
        return node, upstream
