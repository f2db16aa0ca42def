"""Config model → live objects. Every error names its path (``services[1].handler.type``).

Nothing here starts serving: services come back bound but idle, so a caller can build a whole
config (or one replacement object) and only then swap it in.
"""
from ..auth import Auther, AutherGroup
from ..chain import Chain, Hop, Node
from ..dns.hosts import Hosts
from ..dns.resolver import Nameserver, Resolver
from ..errors import ConfigError, GostgError
from ..handlers.base import Options
from ..metadata import Metadata, parse_duration
from ..policy.bypass import Admission, Bypass
from ..registry import connectors, dialers, handlers, listeners
from ..router import Router
from ..selector import STRATEGIES, Selector
from ..service import Service


def _map(o, key, path):
    v = o.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{path}.{key}", f"must be a mapping, not {type(v).__name__}")
    return v


def _str(o, key, path, default=""):
    v = o.get(key, default)
    if v is None:
        return default
    if isinstance(v, (dict, list)):
        raise ConfigError(f"{path}.{key}", f"must be a string, not {type(v).__name__}")
    return str(v)


def _strlist(o, key, path):
    v = o.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, (str, int, float)) for x in v):
        raise ConfigError(f"{path}.{key}", "must be a list of strings")
    return [str(x) for x in v]


def _list(o, key, path):
    """A list value (or nothing); anything else is a config error at ``path.key``."""
    v = o.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(f"{path}.{key}", f"must be a list, not {type(v).__name__}")
    return v


def _maps(o, key, path):
    """``(item, item_path)`` for each entry of a list of mappings at ``path.key``."""
    for i, item in enumerate(_list(o, key, path)):
        ip = f"{path}.{key}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(ip, f"must be a mapping, not {type(item).__name__}")
        yield item, ip


def _auth(o, path):
    a = _map(o, "auth", path)
    if not a:
        return None
    return (_str(a, "username", f"{path}.auth"), _str(a, "password", f"{path}.auth"))


def build_selector(o, path, md=None):
    sel = _map(o, "selector", path)
    strategy = _str(sel, "strategy", f"{path}.selector") or "round"
    if strategy not in STRATEGIES:
        raise ConfigError(f"{path}.selector.strategy",
                          f"unknown strategy {strategy!r} (one of {', '.join(sorted(STRATEGIES))})")
    try:
        max_fails = int(sel.get("maxFails") or Selector.DEFAULT_MAX_FAILS)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}.selector.maxFails", "must be an integer") from None
    fail_timeout = parse_duration(sel.get("failTimeout"), f"{path}.selector.failTimeout") or Selector.DEFAULT_FAIL_TIMEOUT
    return Selector(strategy, max_fails, fail_timeout, hash_host=bool(md and md.str("hash") == "host"))


def _type(reg, o, path, default):
    t = _str(o, "type", path, default) or default
    cls = reg.get(t)
    if cls is None:
        raise ConfigError(f"{path}.type", f"{reg.kind} type {t!r} is not supported (supported: {', '.join(reg.names())})")
    return cls


def build_node(o, path, registries):
    addr = _str(o, "addr", path)
    cpath, dpath = f"{path}.connector", f"{path}.dialer"
    c, d = _map(o, "connector", path), _map(o, "dialer", path)
    ccls = _type(connectors, c, cpath, "http")
    dcls = _type(dialers, d, dpath, "tcp")
    if not addr:
        raise ConfigError(f"{path}.addr", "is required")
    connector = ccls(Metadata(_map(c, "metadata", cpath)), _auth(c, cpath))
    try:
        dialer = dcls(Metadata(_map(d, "metadata", dpath)), _auth(d, dpath), _map(d, "tls", dpath))
    except ConfigError as exc:
        raise ConfigError(f"{dpath}.{exc.path}", exc.msg) from None
    dialer.node_addr = addr
    return Node(o["name"] if o.get("name") else addr, addr, connector, dialer,
                Metadata(_map(o, "metadata", path)), bypass=_str(o, "bypass", path) or None,
                hosts=_str(o, "hosts", path) or None, resolver=_str(o, "resolver", path) or None)


def build_hop(o, path, registries):
    name = _str(o, "name", path)
    built = [build_node(n, np, registries) for n, np in _maps(o, "nodes", path)]
    return Hop(name, built, build_selector(o, path, Metadata(_map(o, "metadata", path))),
               bypass=_str(o, "bypass", path) or None, registries=registries,
               hosts=_str(o, "hosts", path) or None, resolver=_str(o, "resolver", path) or None)


def build_chain(o, path, registries):
    hops = o.get("hops") or []
    if not isinstance(hops, list):
        raise ConfigError(f"{path}.hops", "must be a list")
    out = []
    for i, h in enumerate(hops):
        hp = f"{path}.hops[{i}]"
        if isinstance(h, str):
            out.append(h)
        elif isinstance(h, dict):
            # A hop with neither nodes nor plugin is a reference to hops[] by name.
            out.append(build_hop(h, hp, registries) if (h.get("nodes") or h.get("plugin")) else _str(h, "name", hp))
        else:
            raise ConfigError(hp, "must be a mapping or a hop name")
    return Chain(o["name"], out, registries)


def build_forwarder(o, path, registries):
    built = []
    for n, np in _maps(o, "nodes", path):
        addr = _str(n, "addr", np)
        if not addr:
            raise ConfigError(f"{np}.addr", "is required")
        built.append(Node(_str(n, "name", np) or f"target-{len(built)}", addr, None, None,
                          Metadata(_map(n, "metadata", np)), bypass=_str(n, "bypass", np) or None))
    return Hop("", built, build_selector(o, path), registries=registries)


def _patterns(o, path):
    return _strlist(o, "matchers", path)


OBJECT_BUILDERS = {
    "authers": lambda o, p, r: Auther(o["name"], {_str(a, "username", f"{p}.auths[{i}]"): _str(a, "password", f"{p}.auths[{i}]")
                                                  for i, a in enumerate(_list(o, "auths", p)) if isinstance(a, dict)}),
    "bypasses": lambda o, p, r: Bypass(o["name"], _patterns(o, p), bool(o.get("whitelist") or o.get("reverse"))),
    "admissions": lambda o, p, r: Admission(o["name"], _patterns(o, p), bool(o.get("whitelist") or o.get("reverse"))),
    "hosts": lambda o, p, r: _build_hosts(o, p),
    "resolvers": lambda o, p, r: _build_resolver(o, p),
    "hops": build_hop,
    "chains": build_chain,
}


def _build_hosts(o, path):
    maps = []
    for m, mp in _maps(o, "mappings", path):
        ip, host = _str(m, "ip", mp), _str(m, "hostname", mp)
        for h in [host] + _strlist(m, "aliases", mp):
            maps.append((h, ip))
    try:
        return Hosts(o["name"], maps)
    except ValueError as exc:
        raise ConfigError(f"{path}.mappings", str(exc)) from None


def _build_resolver(o, path):
    ns = []
    for n, np in _maps(o, "nameservers", path):
        try:
            ns.append(Nameserver(_str(n, "addr", np), _str(n, "prefer", np), parse_duration(n.get("timeout"), f"{np}.timeout"),
                                 parse_duration(n.get("ttl"), f"{np}.ttl"), _str(n, "only", np)))
        except ConfigError as exc:
            raise ConfigError(f"{np}.addr", exc.msg) from None
        except Exception as exc:
            raise ConfigError(f"{np}.addr", str(exc)) from None
    return Resolver(o["name"], ns)


def build_object(kind, o, path, registries):
    return OBJECT_BUILDERS[kind](o, path, registries)


def _auther(part, path, registries):
    names = ([_str(part, "auther", path)] if part.get("auther") else []) + _strlist(part, "authers", path)
    if names:
        return AutherGroup(names, registries)
    auth = _auth(part, path)
    if auth is not None:
        return Auther("", {auth[0]: auth[1]})
    return None


def build_service(o, path, registries, log):
    """→ a Service, not yet bound (see ``bind_service``) nor serving."""
    h, lst = _map(o, "handler", path), _map(o, "listener", path)
    hpath, lpath = f"{path}.handler", f"{path}.listener"
    hcls = _type(handlers, h, hpath, "auto")
    lcls = _type(listeners, lst, lpath, "tcp")
    md = Metadata(_map(o, "metadata", path))
    hmd = Metadata(_map(h, "metadata", hpath))
    for k in ("preUp", "postUp", "preDown", "postDown"):
        v = md.raw(k)
        if v is not None and not isinstance(v, (list, str)):
            raise ConfigError(f"{path}.metadata.{k}", "must be a list of commands")
    retries = h.get("retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"{hpath}.retries", "must be a non-negative integer")
    chain = None if md.bool("ignoreChain") else (_str(h, "chain", hpath) or None)
    router = Router(registries, chain=chain, resolver=_str(o, "resolver", path) or None,
                    hosts=_str(o, "hosts", path) or None, bypass=_str(o, "bypass", path) or None,
                    retries=retries, dial_timeout=md.duration("dialTimeout", default=Router.DEFAULT_DIAL_TIMEOUT))
    forwarder = None
    if o.get("forwarder") is not None:
        forwarder = build_forwarder(_map(o, "forwarder", path), f"{path}.forwarder", registries)
    options = Options(router, _auther(h, hpath, registries), forwarder, o["name"], registries)
    handler = hcls(hmd, options)
    admission = None
    if o.get("admission"):
        name = _str(o, "admission", path)
        admission = _LateAdmission(name, registries)
    try:
        listener = lcls(_str(o, "addr", path), Metadata(_map(lst, "metadata", lpath)), _map(lst, "tls", lpath),
                        _auth(lst, lpath))
    except ConfigError as exc:
        raise ConfigError(f"{lpath}.{exc.path}", exc.msg) from None
    svc = Service(o["name"], listener, handler, log, md, admission=admission, registries=registries)
    svc.cfg_addr = listener.addr
    return svc


def bind_service(service, path):
    """Bind the service's listener; a port in use is a config error at ``path.addr``."""
    try:
        service.listener.bind()
    except ConfigError as exc:
        raise ConfigError(f"{path}.addr", exc.msg) from None
    except (GostgError, OSError, TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{path}.addr", f"cannot listen on {service.listener.addr!r}: {exc}") from None


class _LateAdmission:
    def __init__(self, name, registries):
        self.name, self.registries = name, registries

    def admit(self, addr):
        a = self.registries.admissions.get(self.name)
        return a is None or a.admit(addr)
