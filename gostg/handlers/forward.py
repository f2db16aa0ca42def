"""Port forwarding (GOST ``x/handler/forward/local`` and ``remote``): tcp, udp, rtcp, rudp.

Rules:
1. The target is a forwarder node. With ``sniffing=true`` (TCP) the client's first message is
   peeked (:mod:`gostg.handlers.sniffing`): its TLS SNI or HTTP Host/path choose among nodes
   with ``filter``/``matcher`` (:mod:`gostg.core.nodematch`), the service bypass is applied to
   that host (refused: closed with a log line), and a node without ``addr`` goes to the
   sniffed host (port 443 for TLS, 80 for HTTP). Sniffed HTTP is served request by request
   (:mod:`gostg.handlers.revproxy`), so each request of a kept-alive connection is routed
   and rewritten (node ``http``) on its own.
2. No forwarder at all (``-L tcp://:2222 -F relay://server:8420``): server-side forwarding.
   Every connection goes through the chain to the empty address ":0" and the last node's
   server picks the target (a relay or forward+tls server with its own forwarder); a sniffed
   host is asked for instead of ":0". Without a chain the connection is refused with a log
   line (fail closed), sniffed host or not.
3. Unlike GOST, which drops the connection when the chosen target fails, the next candidate is
   tried for the same connection (each once), so failover loses no client.
4. A udp listener's session is forwarded datagram by datagram over a packet conn.
5. ``proxyProtocol`` (handler metadata, or a target's own) sends a PROXY header naming the
   client ahead of a TCP stream (GOST: no UDP), before any TLS to the node.
"""
from ..errors import BypassError, DialError
from ..policy.group import MissingReference, lookup, refused
from ..policy.rules import Request
from ..protocols import sniff as sp
from ..core.race import Race, first
from ..core.registry import handlers
from ..core.router import MissingTarget
from . import revproxy, sniffing
from .sniffing import sniffed_target
from ..transport.buffered import HostAddr, HostConn
from ..transport.proxyproto import send_header, version_of
from .base import Handler
from .http import _is_self
from .nodetls import wrap_node_tls

#: the address a forwarder without a target dials: the chain's last node chooses (GOST: ":0")
CHAIN_CHOOSES = ":0"


@handlers.register("tcp", "udp", "forward", "rtcp", "rudp")
class ForwardHandler(Handler):

    def __init__(self, md, options):
        super().__init__(md, options)
        self.proxy_protocol = version_of(md)

    def handle(self, conn, ctx):
        network = "udp" if getattr(conn, "is_packet", False) else "tcp"
        found = sp.UNKNOWN
        if type(conn) is HostConn:   # through a reverse tunnel: the host the visitor asked for
            found = sp.Sniffed(host=conn.host)
        elif network == "udp" and type(getattr(conn, "addr", None)) is HostAddr and conn.addr.host:
            found = sp.Sniffed(host=conn.addr.host)
        if self.sniffing and network == "tcp":
            conn, sniffed = sniffing.peek(conn, ctx, self.sniffing_timeout)
            found = sniffed if sniffed.host or found is sp.UNKNOWN else found
            if found.proto == sp.PROTO_HTTP:
                return revproxy.serve(self, conn, ctx)
            if sniffing.bypassed(self.router, found, ctx):
                return
        opened = self.open(ctx, network, found, client=conn)
        if opened is None:
            return
        node, addr, upstream = opened
        shown = "(chosen by the chain's last node)" if addr == CHAIN_CHOOSES else addr
        if network == "udp":
            return self.relay_udp(conn, upstream, ctx, shown, target=addr)
        return self.relay(conn, upstream, ctx, shown, detach=True)

    def request(self, found, ctx, network="tcp"):
        """What the node matchers see: the sniffed request, the client, the network."""
        reg = self.options.registries

        def live(kind, name):
            try:
                return lookup(reg, kind, name)
            except MissingReference:
                return None
        return Request(found.host, found.proto, found.method, found.path, found.query, found.headers,
                       client_ip=ctx.client_ip, network=network, lookup=live)

    def open(self, ctx, network, found, check=None, client=None):
        """Choose a node (rules 1–3), dial it (a PROXY header, then TLS to it, when the node
        says so). → ``(node, addr, upstream)``, or None once the reason is logged.
        ``check(node)`` may veto a node before it is dialled (False: give up, the caller has
        answered the client); ``client`` is the client's conn (for the PROXY header)."""
        hop = self.options.forwarder
        if hop is None or not hop.nodes:
            return self._unrouted(ctx, network, found, client)
        req = self.request(found, ctx, network)
        tried = set()
        last = None
        for _ in range(len(hop.nodes)):
            try:
                node = hop.select(ctx, "", network, req, skip=tried)
            except DialError as exc:   # the selector's maxLatency left no target
                last = exc
                break
            if node is None:
                break
            members = getattr(node, "nodes", [node])   # a Race (selector parallel): all at once
            tried.update(n.name for n in members)
            if check is not None and not all(check(n) for n in members):
                return None
            try:
                node, addr, upstream = self._connect(node, network, ctx, found, client)
            except DialError as exc:
                if isinstance(exc, (MissingReference, MissingTarget, BypassError)):
                    self._refused(exc, ctx, ctx.target)
                    return None
                last = exc
                ctx.log.warning(f"forward: target {node.name}@{ctx.target} failed: {exc}", dst=ctx.target,
                                node=node.name)
                continue
            return node, addr, upstream
        if not tried:
            what = f"{found.proto} host {found.host}" if found.host else (found.proto or "the connection")
            ctx.log.error(f"forward: no node matches {what}: closed", dst=found.host)
        else:
            ctx.log.error(f"forward: no target reachable: {last}", dst=ctx.target)
        return None

    def _connect(self, node, network, ctx, found, client=None):
        """→ ``(node, addr, upstream)``; a failed target is marked, a reached one reset. A
        :class:`Race` dials each of its targets at once and keeps the first to connect. A
        node without ``addr`` goes to the sniffed host (or, unsniffed, to the chain's choice)."""
        if isinstance(node, Race):
            return first([lambda n=n: self._connect(n, network, ctx, found, client) for n in node.nodes],
                         lambda won: won[2].close(), node=node)[1]
        addr = node.addr or sniffed_target(found) or CHAIN_CHOOSES
        try:
            upstream = self._dial(network, addr, ctx)
            self._proxy_header(upstream, node.proxy_protocol, network, ctx, client, addr)
            if node.tls is not None and network == "tcp":
                upstream = self._tls(upstream, node, addr)
        except DialError as exc:
            if not isinstance(exc, (MissingReference, MissingTarget, BypassError)):
                node.marker.mark(exc)
            raise
        node.marker.reset()
        return node, addr, upstream

    def _proxy_header(self, upstream, version, network, ctx, client, addr):
        """``proxyProtocol`` (the target's own, else the handler's): a PROXY header naming the
        client goes first on a TCP upstream (GOST: none on UDP)."""
        version = version if version is not None else self.proxy_protocol
        if not version or network != "tcp":
            return
        try:
            send_header(upstream, version, ctx, client)
        except OSError as exc:
            upstream.close()
            raise DialError(f"PROXY header to {addr}: {exc}") from exc

    def _tls(self, upstream, node, addr):
        try:
            return wrap_node_tls(upstream, node.tls, addr, self.read_timeout)
        except OSError as exc:
            upstream.close()
            raise DialError(f"TLS to {addr}: {exc}") from exc

    def _unrouted(self, ctx, network, found, client=None):
        """Rule 2. With a sniffed host the chain takes the client there (GOST would also dial
        the host directly without a chain: an open proxy nobody configured; refused here)."""
        target = sniffed_target(found)
        if not self.router.chain:
            ctx.log.error("forward: no target configured and no chain whose last node could choose one: "
                          "closed (give -L a target, or -F a chain)", dst=target or None)
            return None
        if target and _is_self(target, ctx.local):
            ctx.log.warning(f"forward: sniffed host {target} is this service: closed (loop)", dst=target)
            return None
        addr = target or CHAIN_CHOOSES
        try:
            upstream = self._dial(network, addr, ctx)
            self._proxy_header(upstream, None, network, ctx, client, addr)
            return None, addr, upstream
        except DialError as exc:
            self._refused(exc, ctx, addr)
            return None

    def _dial(self, network, addr, ctx):
        ctx.target = addr
        return self.router.dial(network, addr, ctx)

    @staticmethod
    def _refused(exc, ctx, addr):
        if isinstance(exc, BypassError):
            ctx.log.info(f"bypass: {addr}: closed", dst=addr)
        elif isinstance(exc, MissingReference):
            refused(ctx.log, exc, service=ctx.service, client=ctx.client_ip, dst=addr)
        else:
            ctx.log.error(f"forward: {exc}", dst=addr)
