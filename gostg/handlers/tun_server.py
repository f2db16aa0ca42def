"""The ``tun`` handler's server mode (GOST ``x/handler/tun/server.go``): TUN over UDP.

Rules (GOST's):
1. A UDP socket on the listener's address; clients announce their device addresses with
   keepalives (protocols.tunkeepalive). A keepalive naming one of our own device addresses is
   ignored; with an auther, each address must authenticate as user = the address, password =
   the keepalive's key, else the keepalive is ignored. A good one is answered (the client's
   UDP source address) and maps each announced address to that UDP address (``p2p``: one
   route for every destination, the latest client).
2. A packet from the device goes to the client its destination maps to, directly or through
   the listener's router: a route for the destination whose gateway is an announced address.
   No such client: dropped ("no route for …", debug).
3. A packet from a client goes to the client its destination maps to (not with ``p2p``), else
   to the device. Garbage (not IPv4/IPv6, a bad header) is logged and dropped.
4. The UDP socket failing is logged and it is made again after 1 s; the device failing ends
   the handler (the listener makes a new device).
Where gostg differs: the listener's ``router`` names a routers[] object that must exist (a name
that does not resolve routes nothing, with an error line; GOST routes as if none was set).
"""
import gevent

from ..core import netns
from ..errors import ProtocolError
from ..policy.group import MissingReference, lookup
from ..protocols import ippacket, tunkeepalive
from ..protocols.addr import split_host_port
from ..relay.udp import MAX_DATAGRAM, _fmt, bind_udp
from .tun import device_packets, session   # (tun imports this module only when a handler is made)

RETRY_DELAY = 1.0
P2P_KEY = bytes(16)
#: distinct destinations a server warns about before it goes quiet (debug only)
WARN_LIMIT = 256
#: client device addresses a server remembers (keepalives are unauthenticated without an auther)
MAX_ROUTES = 65536


class TunServerMode:
    def __init__(self, handler):
        self.h = handler
        self.routes = {}    # 16-byte device address of a client → its UDP sockaddr

    def serve(self, dev, cfg, ctx):
        host, port = split_host_port(getattr(dev, "laddr", "") or ":0", 0)
        own = {tunkeepalive.to16(ip) for ip in cfg.ips}
        while not dev.closed:
            try:
                with netns.inside(self.h.options.netns):   # the listening socket, where the service listens
                    sock = bind_udp(host, port)
            except OSError as exc:
                ctx.log.error(f"tun: listen udp {host}:{port}: {exc}")
            else:
                ctx.log.info(f"tun: listening on udp {_fmt(sock.getsockname())}")
                try:
                    if not session(dev, ctx, lambda n: [self._from_device(dev, sock, cfg, ctx, n),
                                                        self._from_udp(dev, sock, cfg, own, ctx, n)], "tun: udp"):
                        return
                finally:
                    sock.close()
            if dev.closed:
                return
            gevent.sleep(RETRY_DELAY)

    def _find(self, dst, cfg, ctx):
        """Rule 2: the client sockaddr for destination ``dst`` (text), or None."""
        if self.h.p2p:
            return self.routes.get(P2P_KEY)
        sa = self.routes.get(tunkeepalive.to16(dst))
        if sa is not None:
            return sa
        if cfg.router:
            r = lookup(self.h.options.registries, "routers", cfg.router)   # MissingReference: routes nothing
        elif cfg.routes:
            r = cfg
        else:
            return None
        route = r.get_route(dst)
        if route is not None and route.gateway:
            try:
                return self.routes.get(tunkeepalive.to16(route.gateway))
            except ValueError:   # a host-name gateway (a routing-tunnel router): not ours
                return None
        return None

    def _route_or_log(self, src, dst, cfg, ctx, warned):
        try:
            return self._find(dst, cfg, ctx)
        except MissingReference as exc:
            if exc.name not in warned and len(warned) < WARN_LIMIT:
                warned.add(exc.name)
                ctx.log.error(f"{exc}: packets discarded")
            return None

    def _from_device(self, dev, sock, cfg, ctx, n):
        warned = set()

        def run():
            for pkt, (_, src, dst) in device_packets(dev, n, ippacket.addresses, ctx):
                sa = self._route_or_log(src, dst, cfg, ctx, warned)
                if sa is None:
                    ctx.log.debug(f"no route for {src} -> {dst}, packet discarded")
                    continue
                sock.sendto(pkt, sa)
        return run

    def _from_udp(self, dev, sock, cfg, own, ctx, count):
        buf = bytearray(MAX_DATAGRAM)
        view = memoryview(buf)
        warned = set()

        def run():
            while True:
                n, sa = sock.recvfrom_into(buf)
                if not n:
                    continue
                data = view[:n]
                ka = tunkeepalive.parse(data)
                if ka is not None:
                    self._keepalive(ka, sa, sock, own, ctx)
                    continue
                try:
                    _, src, dst = ippacket.addresses(data)
                except ProtocolError as exc:
                    ctx.log.warning(f"{exc} from {_fmt(sa)}")
                    continue
                if not self.h.p2p:
                    to = self._route_or_log(src, dst, cfg, ctx, warned)
                    if to is not None:
                        sock.sendto(data, to)
                        continue
                dev.write(data)
                count[1] += n
        return run

    def _keepalive(self, ka, sa, sock, own, ctx):
        key, ips = ka
        peer = _fmt(sa)
        if not ips or own.intersection(ips):
            return
        names = [tunkeepalive.from16(ip) for ip in ips]
        auther = self.h.options.auther
        if auther is not None:
            for name in names:
                try:
                    ok = auther.authenticate(name, key.decode("utf-8", "replace"), client=sa[0], ctx=ctx)
                except MissingReference:   # fail closed
                    ok = None
                if ok is None:
                    ctx.log.warning(f"keepalive from {peer} => {', '.join(names)}, auth FAILED")
                    return
        ctx.log.debug(f"keepalive from {peer} => {', '.join(names)}")
        try:
            sock.sendto(tunkeepalive.encode_reply(sa[0]), sa)
        except OSError as exc:
            ctx.log.warning(f"keepalive to {peer}: {exc}")
            return
        for ip in ips:
            k = P2P_KEY if self.h.p2p else ip
            old = self.routes.get(k)
            if old is None and len(self.routes) >= MAX_ROUTES:
                ctx.log.warning(f"keepalive from {peer}: {MAX_ROUTES} client addresses known, "
                                f"{tunkeepalive.from16(ip)} not added")
                continue
            if old != sa:
                self.routes[k] = sa
                ctx.log.debug(f"{'update' if old else 'new'} route: {tunkeepalive.from16(ip)} -> {peer}")
