"""Findings about a config model's references and exposure, as data (``validate.Problem``).

- :func:`dangling_refs`: every name that points at an object the config does not have — a
  service's chain, authers, admissions, bypasses, resolver, hosts and limiters, a chain's hops,
  a hop's or node's bypasses/resolver/hosts, a nameserver's chain, the Web API's auther. Each is
  a *warning*, not an error: GOST allows forward references (a service may name a chain created
  later through the Web API), and at connection time a reference that still does not resolve
  refuses the connection (see ``policy.group.MissingReference``), never goes direct.
- :func:`open_proxies`: services that proxy for anyone who can reach them (listening beyond
  loopback, no auth, no admission), and a Web API that lets anyone change the config.

Both read the model only (no registries, no building), so startup, ``--check``, reload and the
Web API give the same verdict for the same config.
"""
import ipaddress

from .metadata import Metadata
from .schema import component_md
from .validate import Problem
from ..policy.group import NOUNS

#: what a missing object of each use means for traffic, appended to the warning
REFUSED = "connections will be refused until it is created"

#: handler types that take the target from the client: without auth they serve anyone
PROXY_HANDLERS = frozenset({"auto", "http", "http2", "socks", "socks4", "socks4a", "socks5", "relay", "sni"})
#: of those, the ones a forwarder turns into a fixed-target forward
FORWARDABLE = frozenset({"relay", "sni"})
#: listener types that bind on a remote node, not here
REMOTE_LISTENERS = frozenset({"rtcp", "rudp"})


def _names(v):
    """A name or a list of names → the non-empty string names (other shapes: nothing)."""
    if isinstance(v, str):
        return [v] if v else []
    if isinstance(v, list):
        return [x for x in v if isinstance(x, str) and x]
    return []


def _d(o, key):
    v = o.get(key) if isinstance(o, dict) else None
    return v if isinstance(v, dict) else {}


#: reference keys whose value is a list of names (the others name one object)
LIST_KEYS = frozenset({"authers", "admissions", "bypasses"})


def _refs_of(o, path, keys):
    """(path, kind, name) for each ``key`` of ``o`` in ``keys`` ({key: kind}); list-valued
    keys (``bypasses``) give ``path.key[i]``."""
    for key, kind in keys.items():
        v = o.get(key) if isinstance(o, dict) else None
        if key not in LIST_KEYS:
            if isinstance(v, str) and v:
                yield f"{path}.{key}", kind, v
        elif isinstance(v, list):
            for i, n in enumerate(v):
                if isinstance(n, str) and n:
                    yield f"{path}.{key}[{i}]", kind, n


_POLICY = {"bypass": "bypasses", "bypasses": "bypasses", "resolver": "resolvers", "hosts": "hosts"}
_SERVICE = {"admission": "admissions", "admissions": "admissions", "bypass": "bypasses",
            "bypasses": "bypasses", "resolver": "resolvers", "hosts": "hosts", "limiter": "limiters",
            "climiter": "climiters", "rlimiter": "rlimiters"}
_AUTH = {"auther": "authers", "authers": "authers"}


def _hop_refs(h, path):
    yield from _refs_of(h, path, _POLICY)
    nodes = h.get("nodes") if isinstance(h, dict) else None
    for k, n in enumerate(nodes if isinstance(nodes, list) else []):
        yield from _refs_of(n, f"{path}.nodes[{k}]", _POLICY)


def _chain_group(part, path):
    g = _d(part, "chainGroup")
    chains = g.get("chains")
    for j, n in enumerate(chains if isinstance(chains, list) else []):
        if isinstance(n, str) and n:
            yield f"{path}.chainGroup.chains[{j}]", "chains", n


def references(cfg):
    """Every named reference of the model: (path, kind, name), in config order."""
    for i, s in enumerate(_list(cfg, "services")):
        p = f"services[{i}]"
        h, ln = _d(s, "handler"), _d(s, "listener")
        if not Metadata(_d(s, "metadata"), component_md("service", "")).bool("ignoreChain"):
            yield from _refs_of(h, f"{p}.handler", {"chain": "chains"})
            yield from _chain_group(h, f"{p}.handler")
        yield from _refs_of(h, f"{p}.handler", {**_AUTH, "limiter": "limiters"})
        yield from _refs_of(ln, f"{p}.listener", {"chain": "chains", **_AUTH})
        yield from _chain_group(ln, f"{p}.listener")
        yield from _refs_of(s, p, _SERVICE)
        fw = _d(s, "forwarder")
        nodes = fw.get("nodes")
        for k, n in enumerate(nodes if isinstance(nodes, list) else []):
            yield from _refs_of(n, f"{p}.forwarder.nodes[{k}]", {"bypass": "bypasses", "bypasses": "bypasses"})
    for i, c in enumerate(_list(cfg, "chains")):
        hops = c.get("hops")
        for j, h in enumerate(hops if isinstance(hops, list) else []):
            hp = f"chains[{i}].hops[{j}]"
            if isinstance(h, str):
                if h:
                    yield hp, "hops", h
            elif isinstance(h, dict):
                if h.get("nodes") or h.get("plugin"):
                    yield from _hop_refs(h, hp)
                elif isinstance(h.get("name"), str) and h["name"]:
                    yield hp, "hops", h["name"]   # a hop by name: a reference to hops[]
    for i, h in enumerate(_list(cfg, "hops")):
        yield from _hop_refs(h, f"hops[{i}]")
    for i, r in enumerate(_list(cfg, "resolvers")):
        ns = r.get("nameservers")
        for j, n in enumerate(ns if isinstance(ns, list) else []):
            yield from _refs_of(n, f"resolvers[{i}].nameservers[{j}]", {"chain": "chains"})
    yield from _refs_of(_d(cfg, "api"), "api", _AUTH)


def _list(cfg, kind):
    v = cfg.get(kind) if isinstance(cfg, dict) else None
    return [o for o in v if isinstance(o, dict)] if isinstance(v, list) else []


def _defined(cfg):
    return {kind: {o.get("name") for o in _list(cfg, kind)} for kind in set(NOUNS)}


def dangling_tuples(cfg):
    """(path, kind, name) of each reference whose object ``cfg`` does not define."""
    have = _defined(cfg)
    return [(p, k, n) for p, k, n in references(cfg) if n not in have.get(k, ())]


def _message(path, kind, name):
    if path.startswith("api."):
        tail = "Web API requests will be refused until it is created"
    elif ".nameservers[" in path:
        tail = "queries to this nameserver will fail until it is created"
    elif ".listener.chain" in path:
        tail = "the remote listener will not bind until it is created"
    else:
        tail = REFUSED
    return f"{NOUNS.get(kind, kind)} {name!r} does not exist ({tail})"


def dangling_refs(cfg, prefix=None):
    """→ a warning :class:`Problem` per reference of ``cfg`` that does not resolve, e.g.
    ``services[0].handler.chain: chain 'nope' does not exist (connections will be refused
    until it is created)``. With ``prefix`` (``"services[2]"``) only those under it."""
    out = []
    for path, kind, name in dangling_tuples(cfg):
        if prefix is None or path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
            out.append(Problem("warning", path, _message(path, kind, name)))
    return out


def dangling_to(cfg, kind, name):
    """→ warnings for the references to ``kind`` ``name`` (after it was deleted)."""
    return [Problem("warning", p, _message(p, k, n)) for p, k, n in dangling_tuples(cfg) if (k, n) == (kind, name)]


# -- open proxies ---------------------------------------------------------------------------

def beyond_loopback(addr):
    """Does listening on ``addr`` ("host:port", ":port", "[v6]:port") reach beyond this host?
    Empty host, wildcard, any non-loopback IP and any name but ``localhost`` do."""
    if not isinstance(addr, str):
        return False
    host = addr.rsplit(":", 1)[0] if ":" in addr else addr
    host = host.strip().strip("[]").split("%", 1)[0]
    if not host:
        return True
    if host.lower() == "localhost":
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True
    mapped = getattr(ip, "ipv4_mapped", None)
    return not (mapped or ip).is_loopback


def _has_auth(part):
    auth = _d(part, "auth")
    return bool(_names(part.get("auther")) or _names(part.get("authers")) or auth.get("username")
                or auth.get("file"))


def open_proxies(cfg):
    """→ a warning :class:`Problem` per service anyone who can reach may use as a proxy:
    listening beyond loopback, a handler that takes its target from the client, no handler
    auth/auther/authers, no admission, no client certificate (listener ``tls.caFile``). Port
    forwarders with a fixed target, remote (rtcp/rudp) listeners and ss/ssu (keyed) are not
    proxies for anyone. An ``api`` handler, or the ``api`` section, without auth is warned too.

    Listener ``auth`` does not count: no gostg listener type reads it (build warns so)."""
    out = []
    for i, s in enumerate(_list(cfg, "services")):
        h, ln = _d(s, "handler"), _d(s, "listener")
        htype = h.get("type") or "auto"
        ltype = ln.get("type") or "tcp"
        addr = s.get("addr")
        if not isinstance(htype, str) or ltype in REMOTE_LISTENERS or not beyond_loopback(addr):
            continue
        if _has_auth(h) or _names(s.get("admission")) or _names(s.get("admissions")) \
                or _d(ln, "tls").get("caFile"):
            continue
        name = s.get("name")
        if htype == "api":
            out.append(Problem("warning", f"services[{i}]", f"open Web API on {addr}: anyone who can reach "
                               f"it can change the config (service {name!r}; set auth or an auther)"))
            continue
        fw = _d(s, "forwarder")
        if htype not in PROXY_HANDLERS or (htype in FORWARDABLE and fw.get("nodes")):
            continue
        out.append(Problem("warning", f"services[{i}]", f"open proxy on {addr}: anyone who can reach it can "
                           f"use it (service {name!r}; set auth, an auther or an admission, or listen on "
                           f"127.0.0.1)"))
    api = _d(cfg, "api")
    if api.get("addr") and beyond_loopback(api["addr"]) and not _has_auth(api):
        out.append(Problem("warning", "api", f"open Web API on {api['addr']}: anyone who can reach it can "
                           f"change the config (set api.auth or api.auther)"))
    return out


def config_warnings(cfg):
    """Both of the above, in that order: what startup and reload log."""
    return dangling_refs(cfg) + open_proxies(cfg)


#: validate() calls this name
dangling = dangling_refs

__all__ = ["beyond_loopback", "config_warnings", "dangling", "dangling_refs", "dangling_to", "dangling_tuples",
           "open_proxies", "references"]
