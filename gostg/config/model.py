"""Shape of the config model: GOST's keys (x/config/config.go), in GOST's field order.

The model is plain dicts/lists so that unknown keys a newer GOST writes survive a round trip;
``canonical`` orders keys as GOST prints them, ``check`` validates shapes with a path per error.
"""
from ..errors import ConfigError

#: list-of-named-objects keys, in GOST's order
LIST_KINDS = ("services", "chains", "hops", "authers", "admissions", "bypasses", "resolvers", "hosts",
              "ingresses", "routers", "sds", "recorders", "rewriters", "caches", "limiters", "quotas",
              "climiters", "rlimiters", "observers", "loggers")
SINGLETONS = ("tls", "log", "profiling", "api", "metrics")

ORDER = {
    "service": ["name", "addr", "interface", "sockopts", "admission", "admissions", "bypass", "bypasses",
                "resolver", "hosts", "limiter", "climiter", "rlimiter", "quotas", "logger", "loggers",
                "observer", "recorders", "handler", "listener", "forwarder", "metadata", "status"],
    "handler": ["type", "auth", "auther", "authers", "chain", "chainGroup", "retries", "tls", "limiter",
                "observer", "metadata"],
    "listener": ["type", "chain", "chainGroup", "auth", "auther", "authers", "tls", "metadata"],
    "chain": ["name", "hops", "metadata"],
    "hop": ["name", "interface", "sockopts", "selector", "bypass", "bypasses", "resolver", "hosts", "nodes",
            "reload", "file", "redis", "http", "plugin", "metadata"],
    "node": ["name", "addr", "network", "bypass", "bypasses", "resolver", "hosts", "connector", "dialer",
             "interface", "netns", "sockopts", "matcher", "http", "tls", "probe", "metadata"],
    "selector": ["strategy", "maxFails", "failTimeout"],
}


def _ordered(d, order):
    out = {k: d[k] for k in order if k in d}
    out.update((k, v) for k, v in d.items() if k not in out)
    return out


def canonical(cfg):
    """A copy of ``cfg`` with GOST's top-level and per-object key order."""
    out = {}
    for k in LIST_KINDS:
        if k in cfg:
            out[k] = [_object(k, o) for o in cfg[k]]
    for k in SINGLETONS:
        if k in cfg:
            out[k] = cfg[k]
    out.update((k, v) for k, v in cfg.items() if k not in out)
    return out


def _object(kind, o):
    if not isinstance(o, dict):
        return o
    if kind == "services":
        o = _ordered(o, ORDER["service"])
        for part in ("handler", "listener"):
            if isinstance(o.get(part), dict):
                o[part] = _ordered(o[part], ORDER[part])
        fw = o.get("forwarder")
        if isinstance(fw, dict) and isinstance(fw.get("selector"), dict):
            fw["selector"] = _ordered(fw["selector"], ORDER["selector"])
        return o
    if kind == "chains":
        o = _ordered(o, ORDER["chain"])
        if isinstance(o.get("hops"), list):
            o["hops"] = [_object("hops", h) for h in o["hops"]]
        return o
    if kind == "hops":
        o = _ordered(o, ORDER["hop"])
        if isinstance(o.get("selector"), dict):
            o["selector"] = _ordered(o["selector"], ORDER["selector"])
        if isinstance(o.get("nodes"), list):
            o["nodes"] = [_ordered(n, ORDER["node"]) if isinstance(n, dict) else n for n in o["nodes"]]
        return o
    return o


def check(cfg):
    """Shape checks that need no building: top level, lists of named objects, unique names."""
    if not isinstance(cfg, dict):
        raise ConfigError("", f"config must be a mapping, not {type(cfg).__name__}")
    for kind in LIST_KINDS:
        if kind not in cfg or cfg[kind] is None:
            continue
        items = cfg[kind]
        if not isinstance(items, list):
            raise ConfigError(kind, f"must be a list, not {type(items).__name__}")
        seen = set()
        for i, o in enumerate(items):
            path = f"{kind}[{i}]"
            if not isinstance(o, dict):
                raise ConfigError(path, f"must be a mapping, not {type(o).__name__}")
            name = o.get("name")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{path}.name", "is required")
            if name in seen:
                raise ConfigError(f"{path}.name", f"duplicate name {name!r}")
            seen.add(name)
    for k in SINGLETONS:
        if cfg.get(k) is not None and not isinstance(cfg[k], dict):
            raise ConfigError(k, f"must be a mapping, not {type(cfg[k]).__name__}")
