"""The ``tun`` handler (GOST ``x/handler/tun``): IP packets between a TUN device and peers.

Client mode (a forwarder node is set: ``tun:///host-1``, ``tun://:8421/SERVER:8421``):
1. The node's address without a port is a host name in a routing tunnel: packets go over
   network ``ip`` through the chain, whose last node is a ``router`` connector. With a port it
   is a TUN server reached over ``udp`` (directly or through the chain).
2. The tunnel is dialled, then packets flow both ways until either side fails. A peer that
   fails is dialled again after 1 s (GOST's loop); a device that fails ends the handler (the
   listener makes a new one).
3. Each packet from the device must be IPv4 or IPv6 (else "unknown packet, discarded"); each
   packet from the peer is header-checked (gostg.protocols.ippacket) before it is written to
   the device: garbage is logged and dropped, never written.
4. Over udp the client announces its device addresses with a keepalive (protocols.tunkeepalive)
   when it connects, and with ``keepalive`` every ``ttl`` (default 10 s); then a peer silent
   about keepalives for 3 ``ttl`` is dialled again. The server's 20-byte answer is not a packet.
Server mode (no forwarder: ``tun://:8421?net=…``) is in :mod:`gostg.handlers.tun_server`.
"""
import time

import gevent

from ..core.registry import handlers
from ..errors import DialError, ProtocolError
from ..listeners.tundev import DeviceGone
from ..protocols import ippacket, tunkeepalive
from ..relay.udp import UDPSocket
from .base import Handler

#: seconds between a tunnel that failed and the next dial (GOST)
REDIAL_DELAY = 1.0
DEFAULT_TTL = 10.0


class KeepaliveLost(OSError):
    """No keepalive answer for 3 ``ttl`` (GOST's read deadline): the peer is dialled again."""


@handlers.register("tun")
class TunHandler(Handler):

    def __init__(self, md, options):   # GOST's tun handler reads no readTimeout nor sniffing
        self.md, self.options, self.router = md, options, options.router
        self.sniffing = False
        self.ttl = 0.0
        if md.bool("keepalive", "tun.keepalive"):
            self.ttl = md.duration("ttl", "tun.ttl") or DEFAULT_TTL
        self.passphrase = md.str("passphrase", "token", "tun.token")
        self.p2p = md.bool("p2p", "tun.p2p")
        self.server = None
        if options.forwarder is None:
            from .tun_server import TunServerMode
            self.server = TunServerMode(self)

    def handle(self, conn, ctx):
        cfg = getattr(conn, "config", None)
        if cfg is None:
            ctx.log.error("tun: wrong connection type (the tun handler needs the tun listener)")
            return
        ctx.log.info(f"{ctx.src} <> {ctx.local}")
        t0 = time.monotonic()
        try:
            if self.server is not None:
                return self.server.serve(conn, cfg, ctx)
            node = self.options.forwarder.select(ctx, "")
            if node is None:
                ctx.log.error("tun: no forwarder target available")
                return
            if not cfg.nets:
                ctx.log.error("tun: invalid net IP (set net=…)")
                return
            self._client(conn, cfg, ctx, node, "udp" if _has_port(node.addr) else "ip")
        finally:
            ctx.log.info(f"{ctx.src} >< {ctx.local}", duration=round(time.monotonic() - t0, 6))

    def _client(self, dev, cfg, ctx, node, network):
        dst = f"{node.addr}/{network}"
        ctx.target = dst
        while not dev.closed:
            try:
                peer = self.router.dial(network, node.addr, ctx)
            except (DialError, OSError) as exc:
                ctx.log.error(str(exc), dst=dst)
                node.marker.mark(exc)
            else:
                node.marker.reset()
                ctx.log.debug(f"{ctx.src} >> {node.addr}", dst=dst)
                jobs = self._udp_jobs if network == "udp" else self._ip_jobs
                try:
                    if not session(dev, ctx, lambda n: jobs(dev, cfg, peer, node.addr, ctx, n),
                                   f"tun: tunnel to {node.addr} ended", dst):
                        return
                finally:
                    peer.close()
            if dev.closed:
                return
            gevent.sleep(REDIAL_DELAY)

    @staticmethod
    def _ip_jobs(dev, cfg, peer, addr, ctx, n):
        """A routing tunnel: the router connector's frames carry the packets as they are."""
        return [_up(dev, peer.write_to, ctx, n), _down(dev, peer, ctx, n)]

    def _udp_jobs(self, dev, cfg, peer, addr, ctx, n):
        """TUN over UDP: the keepalive first (rule 4), then packets to the server's address."""
        if isinstance(peer, UDPSocket):   # direct: take datagrams from the server only (Go dials)
            peer.connect(addr)
        hello = tunkeepalive.encode(self.passphrase, cfg.ips)
        peer.write_to(hello, addr)
        deadline = [time.monotonic() + 3 * self.ttl] if self.ttl > 0 else None
        jobs = [_up(dev, lambda p: peer.write_to(p, addr), ctx, n), _down(dev, peer, ctx, n, deadline, self.ttl)]
        if self.ttl > 0:
            jobs.append(_keepalive(peer, addr, hello, self.ttl, ctx))
        return jobs


def _has_port(addr):
    """GOST: net.SplitHostPort succeeds ("h:p", "[v6]:p")."""
    if addr.startswith("["):
        return "]:" in addr
    return addr.count(":") == 1


def _up(dev, send, ctx, n):
    """Device → peer (rule 3); ``n[0]`` counts the bytes."""
    def run():
        while True:
            pkt = dev.read()   # DeviceGone ends the handler
            if not pkt or pkt[0] >> 4 not in (4, 6):
                ctx.log.warning(f"unknown packet, discarded({len(pkt)})")
                continue
            n[0] += len(pkt)
            send(pkt)
    return run


def _down(dev, peer, ctx, n, deadline=None, ttl=0.0):
    """Peer → device (rules 3, 4); ``n[1]`` counts the bytes; ``deadline`` ([monotonic time]):
    3 ttl after the last keepalive answer."""
    def read():
        if deadline is None:
            return peer.read_from()
        left = deadline[0] - time.monotonic()
        try:
            with gevent.Timeout(max(left, 0.001)):
                return peer.read_from()
        except gevent.Timeout:
            raise KeepaliveLost(f"no keepalive answer in {3 * ttl:g}s") from None

    def run():
        while True:
            data, _ = read()
            if tunkeepalive.is_reply(data):
                ctx.log.debug(f"keepalive received at {tunkeepalive.from16(data[4:])}")
                if deadline is not None:
                    deadline[0] = time.monotonic() + 3 * ttl
                continue
            try:
                ippacket.check(data)
            except ProtocolError as exc:
                ctx.log.warning(str(exc))
                continue
            dev.write(data)
            n[1] += len(data)
    return run


def device_packets(dev, n, parse, ctx):
    """The device's packets with what ``parse`` reads of them (a server's switching fields),
    counted in ``n[0]``; one that does not parse is logged and skipped. DeviceGone passes."""
    while True:
        pkt = dev.read()
        n[0] += len(pkt)
        try:
            fields = parse(pkt)
        except ProtocolError as exc:
            ctx.log.warning(str(exc))
            continue
        yield pkt, fields


def _keepalive(peer, addr, hello, ttl, ctx):
    def run():
        while True:
            gevent.sleep(ttl)
            peer.write_to(hello, addr)
            ctx.log.debug("keepalive sent")
    return run


def _caught(fn):
    """Run ``fn`` and hand back what ended it: a greenlet that raised would print a traceback."""
    try:
        fn()
    except (OSError, EOFError, ProtocolError, DeviceGone) as exc:
        return exc
    return None


def session(dev, ctx, start, what, dst=None):
    """One peer session: ``start(counts)`` sets it up and returns its jobs, which then run
    (:func:`pump`); its bytes go to the service's stats. → False when the device is gone (the
    handler ends), True when the peer side failed (logged: the caller tries again)."""
    n = [0, 0]   # bytes read from the device, written to it
    try:
        pump(dev, *start(n))
    except DeviceGone as exc:
        ctx.log.debug(f"tun: {exc}", dst=dst)
        return False
    except (OSError, EOFError, ProtocolError) as exc:
        ctx.log.error(f"{what}: {exc or 'peer closed'}", dst=dst)
    finally:
        ctx.stats_bytes(*n)
    return True


def pump(dev, *jobs):
    """Run ``jobs`` (loops over the device and a peer) until one ends; what ended it is raised
    (EOFError: the peer closed). The others are stopped."""
    gs = [gevent.spawn(_caught, j) for j in jobs]
    try:
        done = gevent.wait(gs, count=1)
    finally:
        for g in gs:
            g.kill(block=True)
    for g in done:
        if g.value is not None:
            raise g.value
    raise EOFError("peer closed")
