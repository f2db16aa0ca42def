"""Config → ingresses, routers and sds (the objects the tunnel, router and tun handlers look up
by name). Every bad key is a ConfigError at its path; nothing here is imported by a config
without these objects."""
from ..errors import ConfigError
from ..policy.group import NOUNS
from .build import _file_source, _maps, _str, net_sources


def _log(registries, kind, name):
    log = getattr(registries, "log", None)
    return log.bind(kind=kind, **{kind: name}) if log is not None else None


def _plugin(kind, o, path, registries):
    from ..plugin.routing import CLASSES

    return CLASSES[kind](o["name"], o["plugin"], f"{path}.plugin", getattr(registries, "log", None))


def build_ingress(o, path, registries=None):
    """Inline ``rules`` (each checked: a host name or wildcard, a UUID endpoint) + ``file`` /
    ``redis`` (hash or set) / ``http`` + ``reload``; or ``plugin``."""
    if o.get("plugin"):
        return _plugin("ingresses", o, path, registries)
    from ..policy.ingress import Ingress, check_rule

    rules = []
    for r, rp in _maps(o, "rules", path):
        host, endpoint = _str(r, "hostname", rp), _str(r, "endpoint", rp)
        if not host.strip() and not endpoint.strip():
            continue   # GOST skips an empty rule
        for key, value in (("hostname", host), ("endpoint", endpoint)):
            if not value.strip():
                raise ConfigError(f"{rp}.{key}", "is required")
        try:
            check_rule(host, endpoint)
        except ValueError as exc:
            bad = "endpoint" if str(exc).startswith("endpoint") else "hostname"
            raise ConfigError(f"{rp}.{bad}", str(exc)) from None
        rules.append((host.strip(), endpoint.strip()))
    return _local(Ingress, "ingresses", o, path, registries, rules)


def _local(cls, kind, o, path, registries, items):
    """A local ingress or router: ``items`` + ``file`` / ``redis`` / ``http`` + ``reload``."""
    file, reload, fpath = _file_source(o, path)
    log = _log(registries, NOUNS[kind], o["name"])
    try:
        return cls(o["name"], items, file=file, reload=reload, log=log, **net_sources(kind, o, path, log))
    except ValueError as exc:
        raise ConfigError(fpath, str(exc)) from None


def build_router(o, path, registries=None):
    """Inline ``routes`` (``dst``, or its deprecated name ``net``, and ``gateway``) + ``file`` /
    ``redis`` (hash, set or list) / ``http`` + ``reload``; or ``plugin``."""
    if o.get("plugin"):
        return _plugin("routers", o, path, registries)
    from ..policy.routes import Router, parse_route

    routes = []
    for r, rp in _maps(o, "routes", path):
        net, dst, gw = _str(r, "net", rp).strip(), _str(r, "dst", rp).strip(), _str(r, "gateway", rp).strip()
        if net and dst and net != dst:
            # GOST then keeps net's network with dst's text: a route that says two things
            raise ConfigError(f"{rp}.net", f"set dst only (net is its deprecated name), not both {net!r} and {dst!r}")
        d = dst or net
        if not d:
            raise ConfigError(f"{rp}.dst", "is required (an IP address or a CIDR network)")
        if not gw or any(c.isspace() for c in gw):
            raise ConfigError(f"{rp}.gateway", "is required" if not gw else f"bad gateway {gw!r}")
        try:
            route = parse_route(d, gw)
        except ValueError as exc:
            raise ConfigError(f"{rp}.{'dst' if dst else 'net'}", str(exc)) from None
        if not dst and route.net is not None:
            route.dst = str(route.net)   # GOST: dst = ipNet.String() for a net-only route
        routes.append(route)
    return _local(Router, "routers", o, path, registries, routes)


def build_sd(o, path, registries=None):
    """``plugin`` (the only kind of sd GOST has)."""
    if not o.get("plugin"):
        raise ConfigError(f"{path}.plugin", "is required: service discovery is a plugin (http or grpc)")
    return _plugin("sds", o, path, registries)
