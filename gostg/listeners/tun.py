"""The ``tun`` listener (GOST ``x/listener/tun``): a TUN device is its one "connection".

GOST's rules, kept:
1. Metadata (each also as ``tun.<key>``): ``name`` (device name; empty: the kernel picks
   tunN), ``net`` (comma list of CIDR addresses for the device), ``mtu`` (default 1420),
   ``gw`` (the gateway of routes that name none), ``route`` (comma list of networks, via
   ``gw`` or else the device), ``routes`` (list of "CIDR [gateway]"), ``router`` (a routers[]
   name the tun handler's server mode routes by; without one, ``route``/``routes`` make an
   internal router, which adds no system routes), ``dns`` (server IPs set for the device with
   ``resolvectl dns`` after the routes; its failure fails the device), ``peer`` (macOS only;
   GOST ignores it on Linux, and so do we).
2. The device is created (and configured) when the service starts; the handler gets it as
   the connection, with the listener's settings as ``conn.config``. When the handler returns
   (the tunnel's device failed) and the service is still up, a new device is made after 1 s
   (GOST); one that cannot be made is retried with back-off (1 s doubling to 30 s; GOST: 1 s).
3. The listener's address is the UDP address the handler's server mode listens on (a routing
   client, ``tun:///host-1``, has none).
Differences from GOST (stricter, never silently misread): a ``net``, route or ``dns`` entry that
does not parse is a config error (GOST skips it); ``guid`` (Windows) is not built. The device is
created in the service's ``netns`` when one is set.
"""
import ipaddress
from dataclasses import dataclass, field

import gevent
from gevent.event import Event

from ..core import netns
from ..core.registry import listeners
from ..errors import ConfigError
from ..policy.routes import Route, first_match
from . import tundev
from .base import Listener

DEFAULT_MTU = 1420
#: seconds between a device that failed and the next one (GOST's listenLoop); a device that
#: cannot be made at all is retried after 1, 2, 4 … up to RETRY_MAX seconds
RETRY_DELAY = 1.0
RETRY_MAX = 30.0


@dataclass
class TunConfig:
    """What the tun handler reads off the device conn (GOST's tun_util.Config)."""
    name: str = ""
    nets: list = field(default_factory=list)       # ipaddress interfaces
    mtu: int = DEFAULT_MTU
    gateway: str = ""
    routes: list = field(default_factory=list)     # Route
    router: str = ""                                # routers[] name, or "" (then ``routes``)
    dns: list = field(default_factory=list)         # DNS server IPs (text) set on the device

    @property
    def ips(self):
        return [n.ip for n in self.nets]

    def get_route(self, dst, gateway=""):
        """The internal router (GOST's, made from ``route``/``routes``): first match wins."""
        return first_match(self.routes, dst)


def _network(s, path):
    try:
        return ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise ConfigError(path, f"bad network {s!r}") from None


def _ip(s, path, msg):
    """``s`` → the address's text form; ConfigError(path, msg) when it is not an IP."""
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        raise ConfigError(path, msg) from None


def parse_config(md):
    """→ TunConfig from the listener's metadata (ConfigError on a value that does not parse)."""
    mtu = md.int("mtu", "tun.mtu")
    cfg = TunConfig(name=md.str("name", "tun.name"), mtu=mtu if mtu > 0 else DEFAULT_MTU,
                    router=md.str("router", "tun.router"))
    gw = md.str("gw", "tun.gw").strip()
    if gw:
        cfg.gateway = _ip(gw, "metadata.gw", f"bad gateway address {gw!r}")
    for s in md.list("net", "tun.net"):
        try:
            cfg.nets.append(ipaddress.ip_interface(s))
        except ValueError:
            raise ConfigError("metadata.net", f"bad address {s!r} (CIDR form, e.g. 192.168.123.1/24)") from None
    for s in md.list("route", "tun.route"):
        net = _network(s, "metadata.route")
        cfg.routes.append(Route(net, s, cfg.gateway))
    for s in md.list("routes", "tun.routes"):
        cidr, _, rgw = s.strip().partition(" ")
        net = _network(cidr, "metadata.routes")
        rgw = rgw.strip()
        if rgw:
            rgw = _ip(rgw, "metadata.routes", f"bad gateway {rgw!r} in route {s!r}")
        cfg.routes.append(Route(net, str(net), rgw or cfg.gateway))
    for s in md.list("dns", "tun.dns"):
        cfg.dns.append(_ip(s, "metadata.dns", f"bad DNS server address {s!r} (an IP, no port)"))
    if len(cfg.name.encode()) >= tundev.IFNAMSIZ:
        raise ConfigError("metadata.name", f"device name {cfg.name!r} is longer than 15 bytes")
    return cfg


def parse_tap_config(md):
    """The ``tap`` listener's keys (GOST x/listener/tap: no ``tap.`` aliases, ``net`` is one
    CIDR address, a ``routes`` entry needs its gateway)."""
    mtu = md.int("mtu")
    cfg = TunConfig(name=md.str("name"), mtu=mtu if mtu > 0 else DEFAULT_MTU)
    gw = md.str("gw").strip()
    if gw:
        cfg.gateway = _ip(gw, "metadata.gw", f"bad gateway address {gw!r}")
    net = md.str("net").strip()
    if net:
        try:
            cfg.nets.append(ipaddress.ip_interface(net))
        except ValueError:
            raise ConfigError("metadata.net", f"bad address {net!r} (one CIDR address, e.g. 192.168.123.1/24)") from None
    for s in md.list("route"):
        cfg.routes.append(Route(_network(s, "metadata.route"), s, cfg.gateway))
    for s in md.list("routes"):
        cidr, _, rgw = s.strip().partition(" ")
        rgw = _ip(rgw.strip(), "metadata.routes", f"route {s!r}: 'CIDR gateway' expected")
        net = _network(cidr, "metadata.routes")
        cfg.routes.append(Route(net, str(net), rgw))
    if len(cfg.name.encode()) >= tundev.IFNAMSIZ:
        raise ConfigError("metadata.name", f"device name {cfg.name!r} is longer than 15 bytes")
    return cfg


class TunServer:
    """Keeps one configured TUN device handed to the handler while the service runs."""

    def __init__(self, listener, handle, pool):
        self.listener = listener
        self.handle = handle
        self.pool = pool
        self.log = listener.log
        self._stop_event = Event()
        self._greenlet = None

    def start(self):
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self):
        ln = self.listener
        delay = RETRY_DELAY
        while not self._stop_event.is_set():
            try:
                dev = ln.make_device()
            except OSError as exc:
                self.log.error(f"tun: {exc}; retrying in {delay:g}s")
                wait, delay = delay, min(delay * 2, RETRY_MAX)   # a lasting cause: fewer lines
            else:
                # GOST: the conn's remote address is the device's first IP
                peer = (str(ln.config.nets[0].ip), 0) if ln.config.nets else dev.name
                self.pool.spawn(self.handle, dev, peer).join()
                ln.drop_device(dev)
                wait = delay = RETRY_DELAY
            if self._stop_event.wait(wait):
                return

    def stop_accepting(self):
        self._stop_event.set()
        if self._greenlet is not None and self._greenlet is not gevent.getcurrent():
            self._greenlet.kill(block=False)
        self.listener.close()

    close = stop_accepting


@listeners.register("tun")
class TunListener(Listener):
    #: no PROXY header, no -workers sharing: one device, in worker 0
    stream = False
    shareable = False

    #: TAP: Ethernet frames (the ``tap`` listener below)
    tap = False

    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        self.config = parse_tap_config(md) if self.tap else parse_config(md)
        self.device = None

    def bind(self):
        """Nothing to bind: the device is made at start (so a replacement named the same
        can take the name once its predecessor has gone)."""

    def make_device(self):
        """A new device, opened in the service's namespace and configured (rules 1, 2)."""
        cfg = self.config
        with netns.inside(self.netns):   # gostg.core.netns rule 1: open + ioctl only
            fd, name = tundev.open_tun(cfg.name, self.tap)
        dev = tundev.TunDevice(fd, name, cfg.mtu)
        dev.config = cfg
        dev.laddr = self.addr
        self.device = dev
        try:
            tundev.configure(name, cfg.nets, cfg.mtu,
                             [(r.net, r.gateway) for r in cfg.routes if r.net is not None],
                             self.netns, self.log, cfg.dns)
        except OSError:
            self.drop_device(dev)
            raise
        self.log.info(f"name: {name}, net: {', '.join(str(n) for n in cfg.nets) or '-'}, mtu: {cfg.mtu}",
                      **{"tap" if self.tap else "tun": name})
        return dev

    def drop_device(self, dev):
        dev.close()
        if self.device is dev:
            self.device = None

    def server(self, handle, pool):
        return TunServer(self, handle, pool)

    def close(self):
        if self.device is not None:
            self.drop_device(self.device)


@listeners.register("tap")
class TapListener(TunListener):
    """GOST's ``tap`` listener: the same device life, Ethernet frames (IFF_TAP)."""
    tap = True
