"""The ``router`` handler (GOST ``x/handler/router``): the server of a routing tunnel.

Clients (``router`` connector) associate as a host name in a routing namespace; IP packets
each sends are routed by destination to the client connected as the route's gateway host.

GOST's rules, kept:
1. The request is relay v1; features: UserAuth, Addr (the first is the client's source, the
   second its host name: ``host-1``), Tunnel (the router id: a UUID naming the routers[]
   object of the client's namespace; zero when the client sets none), Network (default ip).
   A bad version or malformed features close the connection without an answer; credentials
   refused answer Unauthorized; a command other than ASSOCIATE answers BadRequest.
2. With ``ingress``, the rule for the host must name the client's router id (its endpoint is
   that UUID), else HostUnreachable and "no route to host".
3. OK carries a Tunnel feature with a new connector id (a random UUID); then
   ``LEN(2, BE) + packet`` frames both ways.
4. A packet's destination address is looked up in the router named by the client's router id
   (its UUID string), else in the handler's ``router``; the route's gateway names the host
   whose connection gets the packet, in the same namespace. Several connections as one host:
   one is picked at random. Packets with no route or no such host are dropped.
Differences (where gostg is stricter, see the branch notes): a ``router`` or ``ingress`` name
that does not resolve refuses (GOST ignores it); drops are logged (a warning once per
destination per connection, then debug; multicast and link-local ones at debug) where GOST is
silent; the request must arrive within ``readTimeout`` (default 15 s; GOST: no limit); the
mesh between router nodes (``entrypoint``, ``sd``) is not built.
"""
import ipaddress
import random
import time
import uuid

import gevent
from gevent.queue import Full, Queue

from ..core.registry import handlers
from ..errors import ProtocolError
from ..policy.group import MissingReference, lookup, refused
from ..protocols import ippacket, relay as rp
from ..relay.udp import LengthConn
from ..transport.buffered import Stream
from .base import Handler
from .relay import reply

ZERO_ID = bytes(16)
#: distinct destinations a connection warns about before it goes quiet (debug only)
WARN_LIMIT = 256


def router_id_text(rid):
    """The 16-byte id as GOST prints it (and names routers by): the UUID's text form."""
    return str(uuid.UUID(bytes=rid))


def parse_router_id(text):
    """An ingress endpoint → 16-byte id; not a UUID: the zero id (GOST)."""
    try:
        return uuid.UUID(text).bytes
    except (ValueError, TypeError, AttributeError):
        return ZERO_ID


class Connector:
    """One associated client connection: the host it serves, and a bounded queue of packets
    for it with a writer greenlet of its own. Packets come from the greenlets of every other
    client of its namespace; a client that does not read fills only its own queue and loses
    only its own packets (IP may drop), instead of stalling its senders, as a blocking write
    under a lock (GOST's lockWriter) would."""

    __slots__ = ("cid", "host", "pc", "queue", "writer", "dropped", "out")

    #: packets waiting for one slow client before more are dropped
    QUEUE = 512

    def __init__(self, cid, host, pc):
        self.cid, self.host, self.pc = cid, host, pc
        self.queue = Queue(self.QUEUE)
        self.dropped = self.out = 0   # out: bytes written to the client, for the service stats
        self.writer = gevent.spawn(self._write)

    def send(self, packet):
        """→ False when the client's queue is full (the packet is dropped)."""
        try:
            self.queue.put_nowait(packet)
            return True
        except Full:
            self.dropped += 1
            return False

    def _write(self):
        write = self.pc.write_to
        try:
            while True:
                pkt = self.queue.get()
                write(pkt)
                self.out += len(pkt)
        except OSError:
            self.pc.close()   # its reader ends the association

    def close(self):
        self.writer.kill(block=False)
        self.pc.close()


class ConnectorPool:
    """router id → host → [Connector] (GOST's ConnectorPool and Router, weights all equal)."""

    def __init__(self):
        self.routers = {}

    def add(self, rid, c):
        self.routers.setdefault(rid, {}).setdefault(c.host, []).append(c)

    def get(self, rid, host):
        cs = self.routers.get(rid, {}).get(host)
        if not cs:
            return None
        return cs[0] if len(cs) == 1 else random.choice(cs)

    def delete(self, rid, c):
        hosts = self.routers.get(rid)
        cs = hosts.get(c.host) if hosts else None
        if cs and c in cs:
            cs.remove(c)
            if not cs:
                del hosts[c.host]
            if not hosts:
                del self.routers[rid]

    def close(self):
        for hosts in self.routers.values():
            for cs in hosts.values():
                for c in cs:
                    c.close()
        self.routers.clear()


@handlers.register("router")
class RouterHandler(Handler):
    #: its clients reach each other through this process's pool: with ``-workers``, worker 0
    #: alone serves it (clients spread over workers could not be routed to each other)
    shareable = False

    def __init__(self, md, options):
        super().__init__(md, options)
        self.router_name = md.str("router")
        self.ingress_name = md.str("ingress")
        self.cache = md.bool("router.cache")
        self.cache_ttl = md.duration("router.cache.expiration") or 1.0
        self._routes = {}   # (router id, dst) → (expiry, Route or None), with router.cache
        self.pool = ConnectorPool()

    def close(self):
        self.pool.close()

    _reply = staticmethod(reply)

    def handle(self, conn, ctx):
        s = Stream(conn)
        with self.handshake_deadline():
            req = s.read(rp.parse_request)   # ProtocolError/EOFError: closed without answer (GOST)
        user = password = ""
        src = dst = ""
        network = "ip"
        rid = ZERO_ID
        for f in req.features:   # in order: the first Addr is the source, a later one the host
            if isinstance(f, rp.UserAuth):
                user, password = f.user, f.password
            elif isinstance(f, rp.Addr):
                if src:
                    dst = f.host
                else:
                    src = f.host or "-"
            elif isinstance(f, rp.Tunnel):
                rid = bytes(f.raw[:16])
            elif isinstance(f, rp.Network):
                network = f.name
        if not self.authenticate(ctx, user, password):
            self._reply(conn, rp.STATUS_UNAUTHORIZED)
            return
        if self.limiter is not None:   # GOST's per-client traffic limiter: not built here
            ctx.log.error("router: the handler limiter is not built by gostg yet: connection refused")
            self._reply(conn, rp.STATUS_SERVICE_UNAVAILABLE)
            return
        if req.command != rp.CMD_ASSOCIATE:
            ctx.log.warning(f"router: unknown command {req.command}")
            self._reply(conn, rp.STATUS_BAD_REQUEST)
            return
        self._associate(conn, s, ctx, network, dst, rid)

    def _associate(self, conn, s, ctx, network, host, rid):
        rtext = router_id_text(rid)
        ctx.target = f"{host}/{network}"
        log = ctx.log.bind(dst=ctx.target, cmd="associate", router=rtext, host=host)
        if self.ingress_name and host:
            try:   # fail closed: a missing ingress, or a plugin one that cannot answer, refuses
                rule = lookup(self.options.registries, "ingresses", self.ingress_name).get_rule(
                    host, service=ctx.service)
            except MissingReference as exc:
                refused(log, exc, service=ctx.service, client=ctx.client_ip)
                self._reply(conn, rp.STATUS_HOST_UNREACHABLE)
                return
            if (parse_router_id(rule.endpoint) if rule is not None else ZERO_ID) != rid:
                self._reply(conn, rp.STATUS_HOST_UNREACHABLE)
                log.error(f"no route to host {host}")
                return
        cid = uuid.uuid4().bytes
        self._reply(conn, rp.STATUS_OK, [rp.Tunnel(cid + bytes(4))])
        c = Connector(cid, host, LengthConn(conn, host, stream=s))
        self.pool.add(rid, c)
        log.debug(f"{host}/{network}: router={rtext}, connector={uuid.UUID(bytes=cid)} established")
        t0 = time.monotonic()
        warned = set()
        inp = 0
        try:
            while True:
                try:
                    data, _ = c.pc.read_from()
                except EOFError:
                    return
                inp += len(data)
                self._route(data, rid, rtext, log, warned)
        finally:
            self.pool.delete(rid, c)
            c.writer.kill(block=False)
            ctx.stats_bytes(inp, c.out)
            log.info(f"{ctx.src} >< {host}", duration=round(time.monotonic() - t0, 6))

    def _route(self, data, rid, rtext, log, warned):
        try:
            _, src, dst = ippacket.addresses(data)
        except ProtocolError as exc:
            self._drop(log, warned, "garbage", f"{exc}")
            return
        try:
            route = self._get_route(rid, rtext, dst)
        except MissingReference as exc:   # fail closed: a named router that is gone routes nothing
            self._drop(log, warned, ("missing", exc.name), f"{exc}: packet to {dst} discarded")
            return
        if route is None or not route.gateway:
            msg = f"no route to host {dst}, packet from {src} discarded"
            ip = ipaddress.ip_address(dst)   # (only on this path)
            if ip.is_multicast or ip.is_link_local:   # a host's own chatter (IPv6 RS, MLD): never routed
                log.debug(msg)
            else:
                self._drop(log, warned, dst, msg)
            return
        c = self.pool.get(rid, route.gateway)
        if c is None:
            self._drop(log, warned, ("gw", route.gateway),
                       f"route {route.dst} -> {route.gateway}: host {route.gateway} is not connected, "
                       f"packet to {dst} discarded")
            return
        if not c.send(data):
            self._drop(log, warned, ("full", route.gateway),
                       f"host {route.gateway} is not reading: packet to {dst} discarded")

    @staticmethod
    def _drop(log, warned, key, msg):
        if key in warned or len(warned) >= WARN_LIMIT:
            log.debug(msg)
            return
        warned.add(key)
        log.warning(msg)

    def _get_route(self, rid, rtext, dst):
        """Rule 4 (with ``router.cache``: remembered for ``router.cache.expiration``)."""
        if self.cache:
            hit = self._routes.get((rid, dst))
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        regs = self.options.registries
        r = regs.routers.get(rtext) if regs is not None else None
        route = r.get_route(dst, id=rtext) if r is not None else None
        if route is None and self.router_name:   # GOST passes the client's router id to either
            route = lookup(regs, "routers", self.router_name).get_route(dst, id=rtext)
        if self.cache:
            if len(self._routes) > 65536:
                self._routes.clear()
            self._routes[(rid, dst)] = (time.monotonic() + self.cache_ttl, route)
        return route
