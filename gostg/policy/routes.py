"""Router (the config object ``routers``): which gateway a destination goes through (GOST
x/router, concepts/router). The module is not ``router``: gostg/core/router.py is the Router
that dials.

Rules of one router (GOST ``localRouter``):
1. A route maps a destination — an IP address or a CIDR network — to a gateway (kept as
   written: an IP for TUN, a peer address in a routing tunnel).
2. ``get_route(dst)`` returns the first route, in source order, whose ``dst`` is ``dst`` as
   written or whose network contains it. Sources in GOST's order: inline ``routes``, then
   ``file``, ``redis`` (a HASH ``dst → gateway`` by default, a SET or a LIST of ``"dst
   gateway"`` lines), ``http``. First match, not longest prefix: an earlier route wins (GOST's
   docs call http the highest priority; its code, which gostg follows, returns the first).
3. A bad inline route is a config error; a bad line from a file, Redis or HTTP is logged
   (once per change) and skipped.
4. Fail closed (gostg): while a redis/http source has never been read the router routes
   nothing. GOST's local router also writes each CIDR route with an IP gateway into the
   system routing table (netlink ``ip route replace``); gostg does not touch the host's routes.
"""
import ipaddress

__all__ = ["Route", "Router", "parse_route", "first_match"]


class Route:
    """One route: ``net`` (an ipaddress network, None when ``dst`` is a single address),
    ``dst`` (as written), ``gateway``."""

    __slots__ = ("net", "dst", "gateway")

    def __init__(self, net, dst, gateway):
        self.net, self.dst, self.gateway = net, dst, gateway

    def __eq__(self, other):
        return isinstance(other, Route) and (self.dst, self.gateway) == (other.dst, other.gateway)

    def __hash__(self):
        return hash((self.dst, self.gateway))

    def __repr__(self):
        return f"Route({self.dst!r}, {self.gateway!r})"


def parse_route(dst, gateway):
    """``dst`` (IP or CIDR) and ``gateway`` → Route; ValueError naming what is wrong."""
    d, gw = str(dst or "").strip(), str(gateway or "").strip()
    if not d:
        raise ValueError("dst is empty")
    if not gw or any(c.isspace() for c in gw):
        raise ValueError(f"route {d!r}: bad gateway {gateway!r}")
    net = None
    if "/" in d:
        try:
            net = ipaddress.ip_network(d, strict=False)   # Go's ParseCIDR keeps host bits off
        except ValueError:
            raise ValueError(f"dst {d!r} is not a CIDR network") from None
    else:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise ValueError(f"dst {d!r} is not an IP address or a CIDR network") from None
    return Route(net, d, gw)


def parse_line(line):
    """A file/Redis/HTTP line ``dst gateway`` → Route (more fields ignored, as GOST)."""
    fields = line.split()
    if len(fields) < 2:
        raise ValueError(f"line {line!r}: want 'dst gateway'")
    return parse_route(fields[0], fields[1])


def build_table(lines, log=None, name=""):
    """Lines in source order → [Route]; bad lines logged and skipped."""
    out = []
    for line in lines:
        try:
            out.append(parse_line(line))
        except ValueError as exc:
            if log is not None:
                log.warning(f"router {name}: {exc}; skipped")
    return out


def _ip(dst):
    try:
        ip = ipaddress.ip_address(dst.strip("[]"))
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)   # Go's IPNet.Contains sees ::ffff:a.b.c.d as IPv4
    return mapped or ip


def first_match(routes, dst):
    """GOST's GetRoute over ``routes``: the first whose dst is ``dst`` or whose net holds it."""
    if not dst:
        return None
    ip = _ip(dst)
    for r in routes:
        if r.dst == dst or (ip is not None and r.net is not None and ip.version == r.net.version
                            and ip in r.net):
            return r
    return None


class Router:
    """A local router: inline routes + file/redis/http sources, re-read every ``reload``."""

    def __init__(self, name, routes=(), file="", reload=0.0, log=None, sources=(), push=False):
        from .source import LineSource

        self.name = name
        items = [f"{r.dst} {r.gateway}" for r in routes]
        self.source = LineSource(items, file=file, reload=reload, name=name, log=log, sources=sources, push=push,
                                 parse=lambda lines: build_table(lines, log, name))

    def get_route(self, dst, gateway="", id=""):
        """→ the Route for destination ``dst`` (an IP), or None. ``id`` is GOST's router ID
        (only a plugin router reads it); ``gateway`` is accepted for the shared seam and unused."""
        routes = self.source.value()
        if self.source.pending:
            return None   # a redis/http source never read: its routes are unknown (fail closed)
        return first_match(routes, dst)

    def routes(self):
        return list(self.source.value())

    def close(self):
        self.source.close()

    def __repr__(self):
        return f"Router({self.name!r})"
