"""Chain → Hop → Node, and the Route that connects hop by hop.

Rules (spec §1.4):
1. ``chain.route`` asks each hop for a node; a hop that gives none (bypass, no node) ends the
   route before it, so a bypass on hop 0 means a direct connection.
2. ``Route.dial``: hop 0's dialer opens the only real socket; each later node is reached by the
   previous node's connector, and that node's dialer only *handshakes* over the stream; the last
   connector connects to the target.
2a. A multiplexing node after hop 0 (mtls, mws, mwss, http2 …) restarts the route: its dialer
   keeps one session, made through the hops before it, shared by every route through it.
2b. A parallel hop (selector ``parallel``) restarts the route too: each of its nodes is reached
   on a route of its own (the hops before it, then that node) at once; the first there wins.
2c. A ``direct``/``virtual`` node connects from where the route is: at hop 0 from this host, so
   after hop 0 it adds nothing and is left out (GOST would ask the previous node to connect to
   the direct node's address, which it does not have).
3. Any failure marks the node it happened at; success resets every node of the route.
4. Fail closed: a hop, bypass, hosts or resolver name that does not resolve raises
   MissingReference (the dial fails, no node is marked); a missing hop, or one with no nodes,
   never shortens the route, which would reach the target from an earlier hop, or directly.
"""
import time

import gevent
from gevent import socket

from ..errors import DialError, ProtocolError
from ..observe import metrics
from ..config.metadata import Metadata
from ..policy.bypass import bypass_hit
from ..policy.group import MissingReference, lookup
from ..protocols.addr import join_host_port, split_host_port
from .nodematch import pick
from .race import Race, first
from .router import dial_tcp
from .selector import Marker, Selector
from ..transport.proxyproto import send_header, version_of


class Node:
    __slots__ = ("name", "addr", "connector", "dialer", "marker", "backup", "weight",
                 "max_fails", "fail_timeout", "bypass", "hosts", "resolver", "latency", "probe",
                 "proxy_protocol", "match", "http", "tls")

    def __init__(self, name, addr, connector, dialer, md=None, bypass=None, hosts=None, resolver=None,
                 match=None, http=None, tls=None):
        self.name = name
        self.match = match            # NodeMatch (forwarder nodes: filter/matcher) or None
        self.http = http              # forwarder node HTTP rewrite settings or None
        self.tls = tls                # forwarder node TLS origination settings or None
        self.addr = addr
        self.connector = connector
        self.dialer = dialer
        self.marker = Marker()
        #: seconds of the last probe (gostg.core.probe): None never probed, inf it failed
        self.latency = None
        self.probe = None             # its ProbeConfig, or None
        self.bypass = bypass
        self.hosts = hosts            # names; the hop's when the node has none
        self.resolver = resolver
        md = md if md is not None else Metadata()
        self.backup = md.bool("backup")
        self.weight = md.int("weight", default=1)
        # per-node overrides of the hop selector's maxFails/failTimeout
        self.max_fails = md.int("maxFails", "max_fails") if md.raw("maxFails", "max_fails") is not None else None
        self.fail_timeout = (md.duration("failTimeout", "fail_timeout")
                             if md.raw("failTimeout", "fail_timeout") is not None else None)
        #: PROXY header version sent on dialling this node (None: the hop's; 0: none)
        self.proxy_protocol = version_of(md) if md.raw("proxyProtocol") is not None else None

    def __repr__(self):
        return f"{self.name}@{self.addr}"


def resolve_node_addr(node, registries):
    """A node's address through its (or its hop's) hosts and resolver, as GOST does."""
    if registries is None or not (node.hosts or node.resolver) or not node.addr:   # a direct node has none
        return node.addr
    host, port = split_host_port(node.addr)
    if node.hosts:
        ips = lookup(registries, "hosts", node.hosts).lookup(host)
        if ips:
            return join_host_port(ips[0], port)
    if node.resolver:
        return join_host_port(lookup(registries, "resolvers", node.resolver).resolve(host)[0], port)
    return node.addr


class Hop:
    def __init__(self, name, nodes, selector=None, bypass=None, registries=None, hosts=None, resolver=None,
                 proxy_protocol=None):
        self.name = name
        self.hosts, self.resolver, self.proxy_protocol = hosts, resolver, proxy_protocol
        self.nodes = [self.adopt(n) for n in nodes]
        self.selector = selector or Selector()
        self.bypass = bypass          # BypassGroup of late-bound names (or a name), or None
        self.registries = registries

    def adopt(self, n):
        """A node of this hop takes the hop's hosts, resolver and PROXY version it has none of."""
        n.hosts = n.hosts or self.hosts
        n.resolver = n.resolver or self.resolver
        if n.proxy_protocol is None:
            n.proxy_protocol = self.proxy_protocol
        return n

    def select(self, ctx=None, target="", network="tcp", req=None, skip=()):
        """A node for ``target``, or None: the hop's bypass cuts the chain before it, a node's
        own bypass leaves that node out. With node filters or matchers (a forwarder), ``req``
        (a sniffed :class:`gostg.policy.rules.Request`) chooses among the nodes. Nodes named in
        ``skip`` (already tried for this connection) are left out."""
        if bypass_hit(self.bypass, self.registries, network, target, ctx):
            return None
        nodes = [n for n in self.nodes
                 if n.name not in skip and not bypass_hit(n.bypass, self.registries, network, target, ctx)]
        if self.matching:
            return pick(self.selector, nodes, ctx, target, req)
        return self.selector.select(nodes, ctx, target)

    @property
    def matching(self):
        return any(n.match is not None for n in self.nodes)


class Route:
    __slots__ = ("nodes", "registries", "chain")

    def __init__(self, nodes, registries=None, chain=""):
        # rule 2c
        self.nodes = [n for i, n in enumerate(nodes) if not i or not getattr(n.connector, "direct", False)]
        self.registries = registries
        #: the chain's name (its metrics' ``chain`` label); "" for a route of no chain
        self.chain = chain

    def __str__(self):
        return " > ".join(f"{n.name}@{n.addr}" for n in self.nodes)

    def dial(self, network, address, ctx, timeout):
        return self._through(lambda node, conn: node.connector.connect(conn, network, address, ctx), ctx, timeout)

    def bind(self, network, address, ctx, timeout):
        """Ask the last node to listen on ``address`` (remote port forwarding) → what its
        connector's ``bind`` returns: a stream session (tcp) or a packet conn (udp)."""
        def last(node, conn):
            bind = getattr(node.connector, "bind", None)
            if bind is None:
                raise DialError(f"{node.name}: connector {type(node.connector).__name__} cannot bind")
            return bind(conn, network, address, ctx)
        return self._through(last, ctx, timeout)

    def _dial_first(self, node, ctx, timeout):
        """Hop 0's socket; with ``proxyProtocol`` a PROXY header naming the client goes first on
        it, before any TLS (GOST's dialers). A multiplexing dialer's session carries the header
        of the client that made the session (GOST's mtls/mws/h2 dialers do the same)."""
        addr = resolve_node_addr(node, self.registries)
        if not node.proxy_protocol or ctx is None:
            return node.dialer.dial(addr, timeout)

        def with_header(conn):
            if getattr(conn, "type", None) == socket.SOCK_STREAM:   # GOST: no UDP
                send_header(conn, node.proxy_protocol, ctx)
            return conn
        if node.dialer.multiplex:
            return node.dialer.dial_through(lambda: with_header(dial_tcp(addr, timeout)), timeout)
        return with_header(node.dialer.dial(addr, timeout))

    def _through(self, final, ctx, timeout):
        """Reach the last node hop by hop (rules 2, 2a, 2b, 3), then ``final(last_node, conn)``."""
        nodes = self.nodes
        # rule 2a: the route restarts at the last multiplexing node, whose dialer keeps one
        # session made through the hops before it (GOST's chain.Route does the same);
        # rule 2b: or at the last parallel hop, each of whose nodes is reached on its own route
        m = max((i for i, n in enumerate(nodes) if i and getattr(n.dialer, "multiplex", False)), default=0)
        r = max((i for i, n in enumerate(nodes) if isinstance(n, Race)), default=-1)
        start = max(m, r)
        node = nodes[start]
        conn = None
        try:
            if start == r:
                race = node
                node, conn = self._race(race, ctx, timeout)
                if ctx is not None and race.name in ctx.route:   # the registry names the winner
                    ctx.route[ctx.route.index(race.name)] = node.name
            else:
                # GOST's node connect duration: hop 0's dial and handshake
                t0 = time.monotonic() if not start and self.chain and metrics.enabled() else None
                if start:
                    head = Route(nodes[:start], self.registries, self.chain)
                    addr = resolve_node_addr(node, self.registries)
                    conn = node.dialer.dial_through(
                        lambda: head._through(lambda n, c: n.connector.connect(c, "tcp", addr, ctx), ctx, timeout),
                        timeout)
                else:
                    conn = self._dial_first(node, ctx, timeout)
                conn = node.dialer.handshake(conn)
                conn = node.connector.handshake(conn)
                if t0 is not None:
                    metrics.node_connect(self.chain, node.name, time.monotonic() - t0)
            for nxt in nodes[start + 1:]:
                conn = node.connector.connect(conn, "tcp", resolve_node_addr(nxt, self.registries), ctx)
                node = nxt
                conn = node.dialer.handshake(conn)
                conn = node.connector.handshake(conn)
            conn = final(node, conn)
        except MissingReference:   # our config, not the node's fault: nothing to mark
            _close(conn)
            raise
        except (OSError, DialError, ProtocolError, EOFError, gevent.Timeout) as exc:
            if getattr(exc, "node", None) is None and getattr(exc, "marks", True):
                node.marker.mark(exc)   # (an inner route already marked its node)
                if self.chain:
                    metrics.chain_error(self.chain, node.name)
            _close(conn)
            if isinstance(exc, gevent.Timeout):
                raise
            if isinstance(exc, DialError) and getattr(exc, "node", None) is not None:
                raise
            raise DialError(f"{node.name}@{node.addr}: {exc}", node=node, cause=exc) from exc
        except BaseException:   # killed (a lost race, service stop): close what is open
            _close(conn)
            raise
        for n in nodes:
            n.marker.reset()
        return conn

    def _race(self, race, ctx, timeout):
        """→ (winner, conn): each node of ``race`` reached on its own route (the hops before the
        race, then that node), at once; the first to get there wins (gostg.core.race)."""
        head = self.nodes[:self.nodes.index(race)]

        def attempt(node):   # → (the route's last node, which 2c may have left out, conn)
            return lambda: Route(head + [node], self.registries, self.chain)._through(lambda n, c: (n, c), ctx,
                                                                                    timeout)
        return first([attempt(n) for n in race.nodes], lambda won: _close(won[1]), node=race)[1]


def _close(conn):
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


class Chain:
    def __init__(self, name, hops, registries):
        self.name = name
        self.hops = hops              # Hop objects, or hop names resolved at use time
        self.registries = registries

    def route(self, network, address, ctx=None):
        nodes = []
        for h in self.hops:
            hop = lookup(self.registries, "hops", h) if isinstance(h, str) else h
            refresh = getattr(hop, "refresh", None)   # a hop with node loaders (config/hopnodes.py)
            if refresh is not None:
                refresh()
            if not hop.nodes and not getattr(hop, "dynamic", False):   # rule 4: an empty hop is not "no hop"
                raise DialError(f"hop {hop.name!r} has no nodes")
            node = hop.select(ctx, address, network)
            if node is None:   # a plugin hop never answers None (gostg.config.hopnodes)
                break
            nodes.append(node)
        return Route(nodes, self.registries, self.name)
