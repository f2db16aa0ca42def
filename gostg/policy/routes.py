"""Routers (GOST ``routers``): destination IP → gateway host, for routing tunnels.

STAND-IN on branch i16b-tun: inline ``routes`` only. The ``objects`` helper owns this module
(file/redis/http loaders, plugin, reload, Web API); the merge keeps theirs. The interface the
router handler consumes is the seam both agree on: ``get_route(dst, gateway="")``.

GOST's rules (x/router/router.go, x/config/parsing/router): a route is ``dst`` (a CIDR or a
plain address) or ``net`` (a CIDR) with a ``gateway``; one without either is skipped. The
first route whose ``dst`` equals the address, or whose network contains it, wins.
"""
import ipaddress
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Route:
    net: object       # ipaddress network, or None (dst is a plain address)
    dst: str
    gateway: str


def _cidr(s):
    if "/" not in s:
        return None
    try:
        return ipaddress.ip_network(s, strict=False)
    except ValueError:
        return None


class Router:
    def __init__(self, name, routes):
        self.name = name
        self.routes = tuple(routes)

    def get_route(self, dst, gateway="", id=""):   # noqa: A002 (the seam's name; plugins get it)
        if not dst:
            return None
        try:
            ip = ipaddress.ip_address(dst)
        except ValueError:
            ip = None
        for r in self.routes:
            if r.dst == dst or (ip is not None and r.net is not None and ip.version == r.net.version
                                and ip in r.net):
                return r
        return None

    def close(self):
        pass


def build_router(o, path, registries=None):
    routes = []
    for i, r in enumerate(o.get("routes") or []):
        if not isinstance(r, dict):
            raise ConfigError(f"{path}.routes[{i}]", "must be a mapping (dst, gateway)")
        dst, net, gw = (str(r.get(k) or "").strip() for k in ("dst", "net", "gateway"))
        network = _cidr(dst) or _cidr(net)
        if dst:
            try:   # a plain address is matched as written: normalise it as the lookup will
                dst = str(ipaddress.ip_address(dst))
            except ValueError:
                pass
        elif network is not None:
            dst = str(network)
        if not dst or not gw:
            continue   # GOST skips these
        routes.append(Route(network, dst, gw))
    return Router(o.get("name", ""), routes)
