"""The ``tun`` handler (GOST ``x/handler/tun``): IP packets between a TUN device and a peer.

Client mode (a forwarder node is set, GOST's ``tun:///host-1`` or ``tun://:0/SERVER:8421``):
1. The node's address without a port is a host name in a routing tunnel: packets go over
   network ``ip`` through the chain, whose last node is a ``router`` connector. With a port it
   is a TUN server reached over ``udp`` (plain GOST TUN, see below).
2. The tunnel is dialled, then packets flow both ways until either side fails. A peer that
   fails is dialled again after 1 s (GOST's loop); a device that fails ends the handler (the
   listener makes a new one).
3. Each packet from the device must be IPv4 or IPv6 (else "unknown packet, discarded"); each
   packet from the peer is header-checked (gostg.protocols.ippacket) before it is written to
   the device: garbage is logged and dropped, never written.
4. A 20-byte ``GOST`` + 16-byte message from the peer is a keepalive answer, not a packet.
Server mode (no forwarder: ``tun://:8421?net=…``, GOST's UDP TUN server) is not built yet:
the handler says so and ends (see the notes of branch i16b-tun).
"""
import time

import gevent

from ..core.registry import handlers
from ..errors import DialError, ProtocolError
from ..protocols import ippacket
from .base import Handler

#: seconds between a tunnel that failed and the next dial (GOST)
REDIAL_DELAY = 1.0
KEEPALIVE_MAGIC = b"GOST"
KEEPALIVE_LEN = 20


class DeviceGone(Exception):
    """The TUN device failed or was closed: the handler ends (the listener decides what next)."""


@handlers.register("tun")
class TunHandler(Handler):

    def __init__(self, md, options):   # GOST's tun handler reads no readTimeout nor sniffing
        self.md, self.options, self.router = md, options, options.router
        self.sniffing = False

    def handle(self, conn, ctx):
        cfg = getattr(conn, "config", None)
        if cfg is None:
            ctx.log.error("tun: wrong connection type (the tun handler needs the tun listener)")
            return
        ctx.log.info(f"{ctx.src} <> {ctx.local}")
        t0 = time.monotonic()
        try:
            fw = self.options.forwarder
            node = fw.select(ctx, "") if fw is not None else None
            if node is None:
                ctx.log.error("tun: server mode (no forwarder target) is not built by gostg yet; "
                              "use the routing tunnel (tun:///HOST -F router://SERVER)")
                return
            network = "udp" if _has_port(node.addr) else "ip"
            ctx.target = node.addr
            if network == "udp":
                ctx.log.error("tun: TUN over UDP (a forwarder target with a port) is not built by gostg "
                              "yet; use the routing tunnel (tun:///HOST -F router://SERVER)", dst=node.addr)
                return
            if not cfg.nets:
                ctx.log.error("tun: invalid net IP (set net=…)")
                return
            self._client(conn, ctx, node, network)
        finally:
            ctx.log.info(f"{ctx.src} >< {ctx.local}", duration=round(time.monotonic() - t0, 6))

    def _client(self, dev, ctx, node, network):
        dst = f"{node.addr}/{network}"
        while not dev.closed:
            try:
                peer = self.router.dial(network, node.addr, ctx)
            except (DialError, OSError) as exc:
                ctx.log.error(str(exc), dst=dst)
                node.marker.mark(exc)
            else:
                node.marker.reset()
                ctx.log.debug(f"{ctx.src} >> {node.addr}", dst=dst)
                try:
                    _pump(dev, peer, ctx)
                except DeviceGone as exc:
                    ctx.log.debug(f"tun: {exc}", dst=dst)
                    return
                except (OSError, EOFError, ProtocolError) as exc:
                    ctx.log.error(f"tun: tunnel to {node.addr} ended: {exc or 'peer closed'}", dst=dst)
                finally:
                    peer.close()
            if dev.closed:
                return
            gevent.sleep(REDIAL_DELAY)


def _has_port(addr):
    """GOST: net.SplitHostPort succeeds ("h:p", "[v6]:p")."""
    if addr.startswith("["):
        return "]:" in addr
    return addr.count(":") == 1


def _up(dev, peer, ctx):
    """Device → peer (rule 3)."""
    while True:
        try:
            pkt = dev.read()
        except (OSError, EOFError) as exc:
            raise DeviceGone(f"read: {exc}") from exc
        if not pkt or pkt[0] >> 4 not in (4, 6):
            ctx.log.warning(f"unknown packet, discarded({len(pkt)})")
            continue
        peer.write_to(pkt)


def _down(dev, peer, ctx):
    """Peer → device (rules 3, 4)."""
    while True:
        data, _ = peer.read_from()
        if len(data) == KEEPALIVE_LEN and data[:4] == KEEPALIVE_MAGIC:
            ctx.log.debug("keepalive received")
            continue
        try:
            ippacket.addresses(data)
        except ProtocolError as exc:
            ctx.log.warning(str(exc))
            continue
        try:
            dev.write(data)
        except (OSError, EOFError) as exc:
            raise DeviceGone(f"write: {exc}") from exc


def _caught(fn, *args):
    """Run ``fn`` and hand back what ended it: a greenlet that raised would print a traceback."""
    try:
        fn(*args)
    except (OSError, EOFError, ProtocolError, DeviceGone) as exc:
        return exc
    return None


def _pump(dev, peer, ctx):
    """Both directions until one ends; what ended it is raised (EOFError: the peer closed)."""
    ups = gevent.spawn(_caught, _up, dev, peer, ctx)
    downs = gevent.spawn(_caught, _down, dev, peer, ctx)
    try:
        done = gevent.wait([ups, downs], count=1)
    finally:
        for g in (ups, downs):
            g.kill(block=True)
    for g in done:
        if g.value is not None:
            raise g.value
    raise EOFError("peer closed")
