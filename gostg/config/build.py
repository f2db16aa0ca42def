"""Config model → live objects. Every error names its path (``services[1].handler.type``).

Nothing here starts serving: services come back bound but idle, so a caller can build a whole
config (or one replacement object) and only then swap it in.

What only some configs have (auth, forwarder nodes' TLS and HTTP settings, hosts, resolvers)
is imported by the builder that needs it: a start pays for what its config uses.
"""
import functools

from ..core.chain import Chain, Hop, Node
from ..core.nodematch import NodeMatch
from ..core.probe import ProbeConfig
from ..errors import ConfigError, GostgError
from ..handlers.base import Options
from . import schema
from .metadata import Metadata, parse_duration
from ..policy.admission import Admission, AdmissionGroup
from ..policy.bypass import Bypass, BypassGroup
from ..policy import limiter as _limiter
from .. import builtins  # noqa: F401  (registers GOST's type names)
from ..core.registry import connectors, dialers, handlers, listeners
from ..core.router import Router
from ..core import netns
from ..core.sockopts import SockOpts
from ..core.selector import STRATEGIES, Selector
from ..core.service import Service
from ..transport.proxyproto import Receiver, version_of


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
    """``auth`` → (username, password) or None. ``auth.file`` (GOST 3.1): the first
    ``user pass`` line of the file, read once at build; inline username/password otherwise."""
    a = _map(o, "auth", path)
    if not a:
        return None
    f = _str(a, "file", f"{path}.auth")
    if f:
        from ..policy.auth import first_credentials

        creds = first_credentials(f)
        if creds is not None:
            return creds
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
    return Selector(strategy, max_fails, fail_timeout, hash_host=bool(md and md.str("hash") == "host"),
                    max_latency=parse_duration(sel.get("maxLatency"), f"{path}.selector.maxLatency"))


def _spec(kind, o, default):
    return schema.component_md(kind, _str(o, "type", kind, default) or default)


def _type(reg, o, path, default):
    t = _str(o, "type", path, default) or default
    cls = reg.get(t)
    if cls is None:
        raise ConfigError(f"{path}.type", f"{reg.kind} type {t!r} is not supported (supported: {', '.join(reg.names())})")
    return cls


def _egress(o, md, path, netns_key="netns", netns_field=False, inherit=("", 0, "")):
    """→ (interface, so_mark, netns) of a service, hop or node: the metadata key when present,
    else GOST's deprecated ``interface`` / ``sockopts.mark`` / ``netns`` field, else
    ``inherit`` (a node takes its hop's). A service's outgoing namespace is ``netns.out``."""
    mark = _map(o, "sockopts", path).get("mark")
    try:
        mark = int(mark or 0)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}.sockopts.mark", "must be an integer") from None
    field_ns = _str(o, "netns", path) if netns_field else ""
    return (md.str("interface") if md.raw("interface") is not None else _str(o, "interface", path) or inherit[0],
            md.int("so_mark") if md.raw("so_mark") is not None else mark or inherit[1],
            md.str(netns_key) if md.raw(netns_key) is not None else field_ns or inherit[2])


def _sockopts(values, path, netns_key, log=None, **fields):
    """SockOpts (or None) checked now: an unknown namespace, a refused SO_MARK or an interface
    list none of whose entries exists is an error at ``path.metadata.<key>``."""
    try:
        so = SockOpts.of(*values)
    except ValueError as exc:   # a NUL in an address
        raise ConfigError(f"{path}.metadata.interface", f"bad interface {values[0]!r}: {exc}") from None
    if so is None:
        return None
    errors, warnings = so.problems()
    for key, text in errors:
        raise ConfigError(f"{path}.metadata.{netns_key if key == 'netns' else key}", text)
    for _, text in warnings:
        if log is not None:
            log.warning(f"{path}: {text}", **fields)
    return so


def build_node(o, path, registries, inherit=("", 0, "")):
    addr = _str(o, "addr", path)
    cpath, dpath = f"{path}.connector", f"{path}.dialer"
    c, d = _map(o, "connector", path), _map(o, "dialer", path)
    ccls = _type(connectors, c, cpath, "http")
    dcls = _type(dialers, d, dpath, "tcp")
    if not addr and not getattr(ccls, "direct", False):   # a direct node needs no server
        raise ConfigError(f"{path}.addr", "is required")
    try:
        connector = ccls(Metadata(_map(c, "metadata", cpath), _spec("connector", c, "http")), _auth(c, cpath))
    except ConfigError as exc:
        raise ConfigError(f"{cpath}.{exc.path}", exc.msg) from None
    try:
        dialer = dcls(Metadata(_map(d, "metadata", dpath), _spec("dialer", d, "tcp")), _auth(d, dpath),
                      _map(d, "tls", dpath))
    except ConfigError as exc:
        raise ConfigError(f"{dpath}.{exc.path}", exc.msg) from None
    dialer.node_addr = addr
    md = Metadata(_map(o, "metadata", path), schema.component_md("node", ""))
    dialer.sockopts = _sockopts(_egress(o, md, path, netns_field=True, inherit=inherit), path, "netns",
                                getattr(registries, "log", None), node=addr)
    if dialer.sockopts is not None and not dcls.applies_sockopts:
        raise ConfigError(f"{dpath}.type", f"dialer type {_str(d, 'type', dpath)!r} cannot apply interface, "
                                           "so_mark or netns yet (tcp, tls, ws, mux, http2, h2, udp and direct can)")
    try:
        node = Node(o["name"] if o.get("name") else (addr or _str(c, "type", cpath)), addr, connector, dialer, md,
                    bypass=_bypass_group(o, path, registries),
                    hosts=_str(o, "hosts", path) or None, resolver=_str(o, "resolver", path) or None)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.path}", exc.msg) from None
    if o.get("probe"):
        node.probe = ProbeConfig.parse(_map(o, "probe", path), f"{path}.probe", parse_duration)
    return node


def build_hop(o, path, registries):
    """Inline ``nodes``; or GOST's hop ``plugin`` (a node per connection); or nodes loaded
    from ``file``/``redis``/``http`` every ``reload`` (config/hopnodes.py)."""
    name = _str(o, "name", path)
    hop_md = Metadata(_map(o, "metadata", path), schema.component_md("hop", ""))
    inherit = _egress(o, hop_md, path)
    log = getattr(registries, "log", None)
    hop_log = log.bind(kind="hop", hop=name) if log is not None else None
    hosts, resolver = _str(o, "hosts", path) or None, _str(o, "resolver", path) or None
    pp = _pp_version(hop_md, path)

    def build_one(n, np):   # a loaded or plugin-named node, built as an inline one
        node = build_node(schema.normalize(n, schema.NODE), np, registries, inherit)
        node.hosts, node.resolver = node.hosts or hosts, node.resolver or resolver
        if node.proxy_protocol is None:
            node.proxy_protocol = pp
        return node
    if o.get("plugin"):
        from .hopnodes import PluginHop
        return PluginHop(name, _map(o, "plugin", path), f"{path}.plugin", build_one, registries, hop_log)
    built = [build_node(n, np, registries, inherit) for n, np in _maps(o, "nodes", path)]
    from .hopnodes import LoadedHop, loaders_of, NodeBuilder, NodeSources
    loaders = loaders_of(o, path)
    cls = LoadedHop if loaders else Hop
    hop = cls(name, built, build_selector(o, path, hop_md),
              bypass=_bypass_group(o, path, registries), registries=registries,
              hosts=hosts, resolver=resolver, proxy_protocol=pp)
    if loaders:
        hop.sources = NodeSources(name, built, loaders, parse_duration(o.get("reload"), f"{path}.reload"),
                                  NodeBuilder(name, build_one), hop_log)
    return hop


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
            # A hop with neither nodes nor plugin is a reference to hops[] by name (GOST); gostg
            # also builds one that has a loader (GOST would read only its name and drop the loader)
            inline = any(h.get(k) for k in ("nodes", "plugin", "file", "redis", "http"))
            out.append(build_hop(h, hp, registries) if inline else _str(h, "name", hp))
        else:
            raise ConfigError(hp, "must be a mapping or a hop name")
    return Chain(o["name"], out, registries)


def _node_match(n, path):
    """``matcher`` (rule, priority) over ``filter`` (host, protocol, path) over GOST's older
    node-level ``host``/``protocol``/``path`` → NodeMatch or None. A bad rule is an error."""
    m, f = _map(n, "matcher", path), _map(n, "filter", path)
    prio = m.get("priority") or 0
    if not isinstance(prio, int) or isinstance(prio, bool):
        raise ConfigError(f"{path}.matcher.priority", "must be an integer")
    src = f or n
    try:
        return NodeMatch.build(_str(m, "rule", f"{path}.matcher"), prio,
                               *(_str(src, k, path) for k in ("host", "protocol", "path")))
    except ValueError as exc:
        raise ConfigError(f"{path}.matcher.rule", str(exc)) from None


def build_forwarder(o, path, registries):
    """A forwarder's nodes; a node without ``addr`` goes to the sniffed host (or, unsniffed,
    to whatever the chain's last node chooses)."""
    from ..handlers.nodehttp import build_node_http
    from ..handlers.nodetls import NodeTLS

    built = []
    for n, np in _maps(o, "nodes", path):
        tls = _map(n, "tls", np)
        try:
            built.append(Node(_str(n, "name", np) or f"target-{len(built)}", _str(n, "addr", np), None, None,
                              Metadata(_map(n, "metadata", np), schema.component_md("node", "")),
                              bypass=_bypass_group(n, np, registries), match=_node_match(n, np),
                              http=build_node_http(_map(n, "http", np), f"{np}.http", _map(n, "auth", np)),
                              tls=NodeTLS(tls) if n.get("tls") is not None else None))
        except ConfigError as exc:
            raise ConfigError(f"{np}.{exc.path}", exc.msg) from None
    return Hop("", built, build_selector(o, path), registries=registries)


def _patterns(o, path):
    return _strlist(o, "matchers", path)


def _plugin(kind, o, path, registries):
    """GOST: an object with ``plugin`` is the plugin alone (its own rules are not read)."""
    from ..plugin.consumers import build
    return build(kind, o, path, getattr(registries, "log", None))


def build_bypass(o, path, registries=None):
    """``matchers`` + ``file``/``reload``, ``whitelist`` (or deprecated ``reverse``), ``network``;
    or ``plugin``."""
    if o.get("plugin"):
        return _plugin("bypasses", o, path, registries)
    network = _str(o, "network", path).strip().lower()
    if network not in ("", "tcp", "udp", "tcp4", "tcp6", "udp4", "udp6"):
        raise ConfigError(f"{path}.network", f"must be tcp or udp, not {network!r}")
    file, reload, fpath = _file_source(o, path)
    log = _source_log(registries, "bypass", o["name"])
    try:
        return Bypass(o["name"], _patterns(o, path), bool(o.get("whitelist") or o.get("reverse")), network,
                      file=file, reload=reload, log=log, **net_sources("bypasses", o, path, log))
    except ValueError as exc:
        raise ConfigError(fpath, str(exc)) from None


def build_admission(o, path, registries=None):
    """``matchers`` (IP, CIDR, IP range, names resolved now) + ``file``/``reload``, ``whitelist``;
    or ``plugin``."""
    if o.get("plugin"):
        return _plugin("admissions", o, path, registries)
    file, reload, fpath = _file_source(o, path)
    log = _source_log(registries, "admission", o["name"])
    try:
        return Admission(o["name"], _patterns(o, path), bool(o.get("whitelist") or o.get("reverse")),
                         file=file, reload=reload, log=log, **net_sources("admissions", o, path, log))
    except ValueError as exc:
        raise ConfigError(fpath, str(exc)) from None


def _bypass_group(o, path, registries):
    """``bypass`` + ``bypasses`` → a late-bound BypassGroup, or None."""
    return BypassGroup.of([_str(o, "bypass", path)] + _strlist(o, "bypasses", path), registries)


OBJECT_BUILDERS = {
    "authers": lambda o, p, r: build_auther(o, p, r),
    "bypasses": lambda o, p, r: build_bypass(o, p, r),
    "admissions": lambda o, p, r: build_admission(o, p, r),
    "hosts": lambda o, p, r: _build_hosts(o, p, r),
    "resolvers": lambda o, p, r: _build_resolver(o, p, r),
    "hops": build_hop,
    "chains": build_chain,
    "recorders": lambda o, p, r: _build_recorder(o, p, r),
    "limiters": lambda o, p, r: build_limiter("limiters", o, p, r),
    "climiters": lambda o, p, r: build_limiter("climiters", o, p, r),
    "rlimiters": lambda o, p, r: build_limiter("rlimiters", o, p, r),
    "observers": lambda o, p, r: build_observer(o, p, r),
    "ingresses": lambda o, p, r: _routing().build_ingress(o, p, r),
    "routers": lambda o, p, r: _routing().build_router(o, p, r),
    "sds": lambda o, p, r: _routing().build_sd(o, p, r),
}


def _routing():
    from . import routing   # ingresses, routers, sds: imported by a config that has them
    return routing


def build_observer(o, path, registries=None):
    """``plugin: {type, addr, token, timeout, tls}`` → an Observer (idle until its first
    event): HTTP, or gRPC (GOST's default type)."""
    from ..observe import observer
    from ..observe.httppost import Target
    from .validate import observer_plugin_problem

    pp = f"{path}.plugin"
    p = _map(o, "plugin", path)
    if not p:
        raise ConfigError(pp, "is required: observers are plugins only (GOST concepts/observer)")
    err = observer_plugin_problem(_str(p, "type", pp))
    if err:
        raise ConfigError(f"{pp}.type", err)
    if _str(p, "type", pp).strip().lower() in ("", "grpc"):     # GOST's default
        from ..plugin.grpc import Transport

        return observer.GrpcObserver(o["name"], Transport(p, "observer", pp), registries,
                                     getattr(registries, "log", None))
    addr = _str(p, "addr", pp).strip()
    if not addr:
        raise ConfigError(f"{pp}.addr", "is required (e.g. http://127.0.0.1:8000/observer)")
    try:
        Target(addr)
    except ValueError as exc:
        raise ConfigError(f"{pp}.addr", str(exc)) from None
    tls = _map(p, "tls", pp)
    try:
        Target(addr, ca_file=_str(tls, "caFile", f"{pp}.tls")).check_ca()
    except ValueError as exc:
        raise ConfigError(f"{pp}.tls.caFile", str(exc)) from None
    return observer.build(o["name"], addr, _str(p, "token", pp), parse_duration(p.get("timeout"), f"{pp}.timeout"),
                          _str(tls, "serverName", f"{pp}.tls"), _str(tls, "caFile", f"{pp}.tls"),
                          registries, getattr(registries, "log", None))


def _observer_name(o, path, registries):
    """An ``observer`` reference, which must exist (a typo would silently report nothing)."""
    name = _str(o, "observer", path)
    if name and registries is not None and registries.observers.get(name) is None:
        from .refs import missing

        raise ConfigError(f"{path}.observer", *missing("observers", name, registries.observers.names()))
    return name


def _observers(o, md, h, hmd, svc, path, registries):
    """The service's ``observer`` with its metadata ``enableStats``, ``observer.period``,
    ``observer.resetTraffic``; the handler's ``observer`` (per-client stats) with its own."""
    name = _observer_name(o, path, registries)
    if name:
        svc.observer = name
        svc.enable_stats = md.bool("enableStats")
        svc.observer_period = md.duration("observer.period", "observePeriod")
        svc.observer_reset = md.bool("observer.resetTraffic")
    hname = _observer_name(h, f"{path}.handler", registries)
    if hname:
        if not hmd.declares("observer.period"):
            raise ConfigError(f"{path}.handler.observer", f"handler type {svc.handler_type!r} has no per-client "
                                                          "stats to observe (the tunnelling handlers have)")
        from ..observe.observer import ClientStats

        svc.handler.client_stats = ClientStats(hname, svc.name, hmd.duration("observer.period"),
                                               hmd.bool("observer.resetTraffic"))


def build_limiter(kind, o, path, registries=None):
    """``limits`` lines plus ``file`` (re-read every ``reload``); a bad line names its place:
    ``limiters[0].limits[2]`` or ``limiters[0].file.path``."""
    if o.get("plugin"):
        if kind != "limiters":
            raise ConfigError(f"{path}.plugin", "GOST has plugins for traffic limiters only, not for "
                                                f"{kind}")
        return _plugin(kind, o, path, registries)
    _, parse_line, _ = _limiter.KINDS[kind]
    items = _strlist(o, "limits", path)
    for i, line in enumerate(items):
        try:
            parse_line(line)
        except ValueError as exc:
            raise ConfigError(f"{path}.limits[{i}]", str(exc)) from None
    file, reload, fpath = _file_source(o, path)
    log = _source_log(registries, kind[:-1], o["name"])
    store = _map(o, "store", path)
    try:
        # a store counts for every worker at once: its limits stay whole (no per-worker split)
        lim = _limiter.build(kind, o["name"], items, file, reload, log, split=not store,
                             **net_sources(kind, o, path, log))
    except ValueError as exc:
        raise ConfigError(fpath, str(exc)) from None
    return _shared_limiter(kind, lim, store, f"{path}.store", log) if store else lim


#: gostg's ``store`` key on a limiter: what a Redis that does not answer means for it
_STORE_DOWN = {"climiters": "new connections are refused until it answers (fail closed)",
               "rlimiters": "each instance limits locally at its share of the rate until it answers",
               "limiters": "each instance shapes the service locally at its share of the rate until it answers"}


def _shared_limiter(kind, lim, store, path, log):
    """``store: {redis: {addr, db, username, password, key}, ttl}`` (gostg; GOST's quotas have a
    ``store`` of this shape) → the limiter's shared form, counting in Redis."""
    from ..loader import redisconn
    from ..policy.limiter import shared, sharedtraffic, store as _store

    rcfg = _map(store, "redis", path)
    if not rcfg:
        raise ConfigError(f"{path}.redis", "a store needs redis: {addr, key}")
    ttl = parse_duration(store.get("ttl"), f"{path}.ttl") if store.get("ttl") is not None else 10.0
    if ttl <= 0:
        raise ConfigError(f"{path}.ttl", "must be a positive duration")
    prefix = _str(rcfg, "key", f"{path}.redis") or f"gostg:{kind[:-1]}:{lim.name}"
    st = _store.Store(redisconn.client(rcfg, f"{path}.redis", timeout=1.0), prefix, ttl, log, _STORE_DOWN[kind])
    cls = {"climiters": shared.SharedConnLimiter, "rlimiters": shared.SharedRateLimiter,
           "limiters": sharedtraffic.SharedTrafficLimiter}[kind]
    return cls(lim.name, lim.source, st)


def _file_source(o, path):
    """``file`` (``{path: …}`` as GOST, or a bare string) and ``reload`` → (file, seconds, key path)."""
    f = o.get("file")
    if isinstance(f, dict):
        return _str(f, "path", f"{path}.file"), parse_duration(o.get("reload"), f"{path}.reload"), f"{path}.file.path"
    return _str(o, "file", path), parse_duration(o.get("reload"), f"{path}.reload"), f"{path}.file"


def net_sources(kind, o, path, log):
    """``redis`` and ``http`` of a loader-capable object → {sources: [fetchers], push: bool}
    (:mod:`gostg.loader.build`); nothing is imported for an object without them."""
    if o.get("redis") is None and o.get("http") is None:
        return {}
    from ..loader.build import sources

    return sources(kind, o, path, log)


def _source_log(registries, kind, name):
    log = getattr(registries, "log", None)
    return log.bind(kind=kind, name=name) if log is not None else None


def build_auther(o, path, registries):
    """Inline ``auths`` (entries without a username are skipped, as GOST) plus ``file``; or
    ``plugin``."""
    if o.get("plugin"):
        return _plugin("authers", o, path, registries)
    from ..policy.auth import Auther

    users = {}
    for a, ap in _maps(o, "auths", path):
        user = _str(a, "username", ap)
        if user:
            users[user] = _str(a, "password", ap)
    file, reload, fpath = _file_source(o, path)
    log = _source_log(registries, "auther", o["name"])
    try:
        return Auther(o["name"], users, file=file, reload=reload, log=log, **net_sources("authers", o, path, log))
    except ValueError as exc:
        raise ConfigError(fpath, str(exc)) from None


def _build_hosts(o, path, registries=None):
    if o.get("plugin"):
        return _plugin("hosts", o, path, registries)
    from ..dns.hosts import Hosts, mapping_lines

    maps = []
    for m, mp in _maps(o, "mappings", path):
        ip, host = _str(m, "ip", mp), _str(m, "hostname", mp)
        for h in [host] + _strlist(m, "aliases", mp):
            if h:
                maps.append((h, ip))
        try:
            mapping_lines([(host, ip)])
        except ValueError:
            raise ConfigError(f"{mp}.ip", f"bad IP address {ip!r}") from None
    file, reload, fpath = _file_source(o, path)
    log = _source_log(registries, "hosts", o["name"])
    try:
        return Hosts(o["name"], maps, file=file, reload=reload, log=log, **net_sources("hosts", o, path, log))
    except ValueError as exc:
        raise ConfigError(fpath, str(exc)) from None


def _build_resolver(o, path, registries=None):
    if o.get("plugin"):
        return _plugin("resolvers", o, path, registries)
    # dnspython and the DNS client load only for a config that has resolvers
    from ..dns.resolver import Nameserver, Resolver

    ns = []
    for n, np in _maps(o, "nameservers", path):
        if not _str(n, "addr", np).strip():
            continue  # GOST skips nameservers without an address
        try:
            ns.append(Nameserver(
                _str(n, "addr", np), prefer=_str(n, "prefer", np),
                timeout=parse_duration(n.get("timeout"), f"{np}.timeout"),
                ttl=parse_duration(n.get("ttl"), f"{np}.ttl"), only=_str(n, "only", np),
                chain=_str(n, "chain", np), hostname=_str(n, "hostname", np),
                client_ip=_str(n, "clientIP", np), async_=bool(n.get("async")), registries=registries))
        except ConfigError as exc:
            raise ConfigError(exc.path if exc.path.startswith(np) else f"{np}.addr", exc.msg) from None
        except Exception as exc:
            raise ConfigError(f"{np}.addr", str(exc)) from None
    return Resolver(o["name"], ns, log=getattr(registries, "log", None))


def _build_recorder(o, path, registries):
    from ..observe.recorder import build_recorder   # loaded only by a config with recorders
    return build_recorder(o, path, registries)


def build_object(kind, o, path, registries):
    return OBJECT_BUILDERS[kind](schema.normalize(o, schema.TOP[kind].item), path, registries)


def _auther(part, path, registries, md=None):
    """``auther``/``authers`` (a group, late-bound) win over a single ``auth``; an ``auth``
    without a username means none (GOST). ``skipauth`` in the handler metadata wraps it."""
    names = ([_str(part, "auther", path)] if part.get("auther") else []) + _strlist(part, "authers", path)
    auth = None if names else _auth(part, path)
    if not names and not (auth and auth[0]):
        return None
    from ..policy.auth import Auther, AutherGroup, SkipAuth

    auther = AutherGroup(names, registries) if names else Auther("", {auth[0]: auth[1]})
    # only handler types whose schema has skipauth (not api, forward …) read it
    skip = md.list("skipauth") if md is not None and md.declares("skipauth") else []
    return SkipAuth(auther, skip) if skip else auther


def _pp_version(md, path):
    try:
        return version_of(md)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.path}", exc.msg) from None


def _proxy_receiver(md, listener, path, log, name):
    """The service's PROXY header reader: ``proxyProtocol`` on the service (GOST) or on the
    listener (where GOST's docs put it)."""
    on = _pp_version(md, path)
    if listener.md.declares("proxyProtocol"):
        on = on or _pp_version(listener.md, f"{path}.listener")
    if not on:
        return None
    if not listener.stream:
        log.warning(f"{path}: proxyProtocol is not read by listener type {listener.type_name} "
                    "(GOST reads it on TCP-based listeners only)", service=name)
        return None
    try:
        return Receiver(md.list("proxyProtocol.trusted"), md.duration("proxyProtocol.timeout"))
    except ValueError as exc:
        raise ConfigError(f"{path}.metadata.proxyProtocol.trusted", str(exc)) from None


def _handler_md(h, hpath):
    """The handler's metadata; ``handler.dns`` (where GOST's dns reference page puts the
    upstreams) becomes ``metadata.dns`` of a dns handler, and is an error on any other."""
    m = _map(h, "metadata", hpath)
    if h.get("dns") is None:
        return m
    if _str(h, "type", hpath) != "dns":
        raise ConfigError(f"{hpath}.dns", "only the dns handler has upstreams")
    if any(str(k).lower() == "dns" for k in m):
        raise ConfigError(f"{hpath}.dns", "set either handler.dns or handler.metadata.dns, not both")
    return {**m, "dns": _strlist(h, "dns", hpath)}


def build_service(o, path, registries, log):
    """→ a Service, not yet bound (see ``bind_service``) nor serving."""
    o = schema.normalize(o, schema.SERVICE)
    if o.get("logger") or o.get("loggers"):   # GOST's per-service loggers (a group when several)
        from ..observe.loggers import for_service
        log = for_service(o, path, getattr(registries, "loggers", None) or {}, log)
    h, lst = _map(o, "handler", path), _map(o, "listener", path)
    hpath, lpath = f"{path}.handler", f"{path}.listener"
    hcls = _type(handlers, h, hpath, "auto")
    lcls = _type(listeners, lst, lpath, "tcp")
    md = Metadata(_map(o, "metadata", path), schema.component_md("service", ""))
    hmd = Metadata(_handler_md(h, hpath), _spec("handler", h, "auto"))
    for k in ("preUp", "postUp", "preDown", "postDown"):
        v = md.raw(k)
        if v is not None and not isinstance(v, (list, str)):
            raise ConfigError(f"{path}.metadata.{k}", "must be a list of commands")
    retries = h.get("retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"{hpath}.retries", "must be a non-negative integer")
    chain = None if md.bool("ignoreChain") else (_str(h, "chain", hpath) or None)
    sockopts = _sockopts(_egress(o, md, path, "netns.out"), path, "netns.out", log, service=o["name"])
    listen_ns = md.str("netns")
    if listen_ns:
        try:
            netns.check(listen_ns)
        except OSError as exc:
            raise ConfigError(f"{path}.metadata.netns", exc.strerror or str(exc)) from None
    router = Router(registries, chain=chain, resolver=_str(o, "resolver", path) or None,
                    hosts=_str(o, "hosts", path) or None, bypass=_bypass_group(o, path, registries),
                    retries=retries, dial_timeout=md.duration("dialTimeout", default=Router.DEFAULT_DIAL_TIMEOUT),
                    sockopts=sockopts)
    forwarder = None
    if o.get("forwarder") is not None:
        forwarder = build_forwarder(_map(o, "forwarder", path), f"{path}.forwarder", registries)
    options = Options(router, _auther(h, hpath, registries, hmd), forwarder, o["name"], registries,
                      auth=_auth(h, hpath), netns=listen_ns)
    try:
        handler = hcls(hmd, options)
    except ConfigError as exc:
        # the dns handler checks its forwarder's nodes: a path of the service, not the handler
        raise ConfigError(f"{path if exc.path.startswith('forwarder.') else hpath}.{exc.path}", exc.msg) from None
    admission = AdmissionGroup.of([_str(o, "admission", path)] + _strlist(o, "admissions", path), registries)
    try:
        listener = lcls(_str(o, "addr", path), Metadata(_map(lst, "metadata", lpath), _spec("listener", lst, "tcp")),
                        _map(lst, "tls", lpath),
                        _auth(lst, lpath))
    except ConfigError as exc:
        raise ConfigError(f"{lpath}.{exc.path}", exc.msg) from None
    listener.chain, listener.registries = _str(lst, "chain", lpath) or None, registries
    listener.netns = listen_ns
    if any(lst.get(k) for k in ("auth", "auther", "authers")):
        # GOST reads listener auth only in its ssh listeners; saying so beats a silent no-op
        log.warning(f"{lpath}: listener auth is not used by listener type "
                    f"{_str(lst, 'type', lpath) or 'tcp'}; set auth on the handler", service=o["name"])
    if lst.get("chain") and not getattr(listener, "uses_chain", False) and not h.get("chain"):
        # GOST's docs show server-side forwarding with the chain here, where only rtcp/rudp
        # listeners read it; say so rather than let the handler refuse without a hint
        log.warning(f"{lpath}.chain: listener type {_str(lst, 'type', lpath) or 'tcp'} does not use a chain; "
                    f"set handler.chain to forward through it", service=o["name"])
    # log and status show the type as configured ("udp", not the shared forward class's name)
    handler.type_name, listener.type_name = _str(h, "type", hpath) or "auto", _str(lst, "type", lpath) or "tcp"
    # GOST's handler limiter: a limiters[] name (late-bound), per client after auth
    handler.limiter = _str(h, "limiter", hpath) or None
    svc = Service(o["name"], listener, handler, log, md, admission=admission, registries=registries)
    svc.proxy_protocol = _proxy_receiver(md, listener, path, log, o["name"])
    # late-bound by name, as bypass: a replaced limiter applies from the next connection
    svc.limiter, svc.climiter, svc.rlimiter = (_str(o, k, path) or None for k in ("limiter", "climiter", "rlimiter"))
    _observers(o, md, h, hmd, svc, path, registries)
    if svc.proxy_protocol is not None and not svc.proxy_protocol.trusted:
        decides = [k for k in ("admission", "admissions", "climiter", "rlimiter", "limiter") if o.get(k)]
        if hmd.declares("skipauth") and hmd.list("skipauth"):
            decides.append("skipauth")
        if decides:
            # GOST believes any peer's header: a client reaching the port directly can claim any address
            log.warning(f"{path}: proxyProtocol without proxyProtocol.trusted: any peer may claim any client "
                        f"address, and {', '.join(decides)} decide(s) by it", service=o["name"])
    if o.get("recorders"):
        from ..observe.records import RecordedContext, service_recorders
        svc.recorders = service_recorders(o["recorders"], path, registries)
        if svc.recorders.dial or svc.recorders.handler:
            router.recorders = svc.recorders
        if svc.recorders.handler:
            svc.ctx_class = functools.partial(RecordedContext, svc.recorders)
    svc.cfg_addr = listener.addr
    return svc


def bind_service(service, path):
    """Bind the service's listener; a port in use is a config error at ``path.addr``."""
    try:
        with netns.inside(service.listener.netns):   # the listening socket is made there
            service.listener.bind()
    except ConfigError as exc:
        raise ConfigError(f"{path}.addr", exc.msg) from None
    except (GostgError, OSError, TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(f"{path}.addr", f"cannot listen on {service.listener.addr!r}: {exc}") from None
