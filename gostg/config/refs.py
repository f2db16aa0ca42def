"""Findings about a config model's references and exposure, as data (``validate.Problem``).

- :func:`dangling_refs`: every name that points at an object the config does not have — a
  service's chain, authers, admissions, bypasses, resolver, hosts and limiters, a chain's hops,
  a hop's or node's bypasses/resolver/hosts, a nameserver's chain, the Web API's auther. Each is
  a *warning*, not an error: GOST allows forward references (a service may name a chain created
  later through the Web API), and at connection time a reference that still does not resolve
  refuses the connection (see ``policy.group.MissingReference``), never goes direct. A
  service's recorder is the exception, an error: its records would go nowhere without a word.
- :func:`open_proxies`: services that proxy for anyone who can reach them (listening beyond
  loopback, no auth, no admission), and a Web API that lets anyone change the config.

Both read the model only (no registries, no building), so startup, ``--check``, reload and the
Web API give the same verdict for the same config.
"""
import ipaddress

from . import schema as S
from .metadata import Metadata
from .validate import Problem, _dym, suggest
from ..policy.group import NOUNS

#: what a missing object of each use means for traffic, appended to the warning
REFUSED = "connections will be refused until it is created"
#: kinds whose missing object is an error, not a warning: nothing would refuse a connection
#: to show the typo, the events would just never go anywhere
REQUIRED = frozenset({"observers"})

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


def _hop_reference(h):
    """The hop name a chain's hop entry refers to, or None when the entry defines a hop (a hop
    with neither nodes nor a plugin is a reference to ``hops[]`` by name, as GOST reads it; one
    with a loader, file, redis or http, is a hop of its own in gostg)."""
    if isinstance(h, str):
        return h or None
    if isinstance(h, dict) and not any(h.get(k) for k in ("nodes", "plugin", "file", "redis", "http")):
        name = h.get("name")
        return name if isinstance(name, str) and name else None
    return None


def _walk(o, spec, path, ignore_chain=False):
    """(path, kind, name) for every key the schema marks as a reference (``meaning="ref:…"``):
    the references of an object's parts first (a service's handler and listener), then its
    own, each in config order. Keys gostg does not build are skipped: they are errors of their
    own. ``ignore_chain``: a service's ``ignoreChain`` metadata drops its handler chain."""
    if not isinstance(o, dict):
        return
    index = {n.lower(): k for k in spec.values() for n in k.names()}
    if spec is S.SERVICE:
        ignore_chain = Metadata(_d(o, "metadata"), S.component_md("service", "")).bool("ignoreChain")
    keys = [(raw, v, index.get(str(raw).lower())) for raw, v in o.items()]
    keys = [(f"{path}.{raw}" if path else str(raw), v, k) for raw, v, k in keys if k is not None and k.status == S.BUILT]
    for kp, v, key in keys:   # the parts
        if key.fields is not None and isinstance(v, dict):
            yield from _walk(v, key.fields, kp, ignore_chain)
        elif key.item is not None and isinstance(v, list):
            for i, x in enumerate(v):
                hop = _hop_reference(x) if key.item is S.CHAIN_HOP else None
                if hop is not None:
                    yield f"{kp}[{i}]", "hops", hop
                else:
                    yield from _walk(x, key.item, f"{kp}[{i}]")
    for kp, v, key in keys:   # its own references
        if not key.meaning.startswith("ref:"):
            continue
        kind = key.meaning[4:]
        if ignore_chain and kind == "chains" and spec is S.HANDLER:
            continue
        if key.kind == S.STRLIST:
            for i, n in enumerate(v if isinstance(v, list) else []):
                if isinstance(n, str) and n:
                    yield f"{kp}[{i}]", kind, n
        elif isinstance(v, str) and v:
            yield kp, kind, v


def references(cfg):
    """Every named reference of the model: (path, kind, name), in config order. Which keys are
    references is the schema's to say (``meaning="ref:<kind>"``)."""
    yield from _walk(cfg, S.TOP, "")


def _list(cfg, kind):
    v = cfg.get(kind) if isinstance(cfg, dict) else None
    return [o for o in v if isinstance(o, dict)] if isinstance(v, list) else []


def _defined(cfg):
    return {kind: {o.get("name") for o in _list(cfg, kind)} for kind in set(NOUNS)}


def dangling_tuples(cfg):
    """(path, kind, name) of each reference whose object ``cfg`` does not define."""
    have = _defined(cfg)
    return [(p, k, n) for p, k, n in references(cfg) if n not in have.get(k, ())]


def missing(kind, name, known):
    """The error for a reference to a ``REQUIRED`` kind that does not resolve (build says the
    same for an object created through the Web API)."""
    s = suggest(name, known)
    return (f"{NOUNS.get(kind, kind)} {name!r} does not exist"
            + (f" (did you mean {s!r}?)" if s else f" ({kind}: {', '.join(sorted(known)) or 'none'})")), s


def _message(path, kind, name):
    if path.startswith("api."):
        tail = "Web API requests will be refused until it is created"
    elif path.startswith("metrics."):
        tail = "scrapes will be refused until it is created"
    elif ".nameservers[" in path:
        tail = "queries to this nameserver will fail until it is created"
    elif ".listener.chain" in path:
        tail = "the remote listener will not bind until it is created"
    elif ".recorders[" in path:
        tail = "its records are dropped until it is created"
    else:
        tail = REFUSED
    return f"{NOUNS.get(kind, kind)} {name!r} does not exist ({tail})"


def dangling_refs(cfg, prefix=None):
    """→ a warning :class:`Problem` per reference of ``cfg`` that does not resolve, e.g.
    ``services[0].handler.chain: chain 'nope' does not exist (connections will be refused
    until it is created)``. With ``prefix`` (``"services[2]"``) only those under it."""
    out = []
    have = None
    for path, kind, name in dangling_tuples(cfg):
        if prefix is None or path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
            if kind == "recorders":
                # not a forward reference: building the service refuses it (the same verdict
                # for -O and --check as for serving)
                s = suggest(name, [o.get("name") for o in _list(cfg, "recorders") if isinstance(o.get("name"), str)])
                out.append(Problem("error", path, f"recorder {name!r} not found{_dym(s)}", s))
            elif kind in REQUIRED:
                have = have or _defined(cfg)
                out.append(Problem("error", path, *missing(kind, name, [n for n in have[kind] if isinstance(n, str)])))
            else:
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
    proxies for anyone. An ``api`` handler, or the ``api`` section, without auth is warned too,
    and so is a ``dns`` handler without an admission (an open resolver).

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
        if htype == "dns":
            out.append(Problem("warning", f"services[{i}]", f"open proxy (DNS) on {addr}: anyone who can reach "
                               f"it can resolve names through it, and use it to amplify attacks (service "
                               f"{name!r}; set an admission, or listen on 127.0.0.1)"))
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


#: a short name for dangling_refs
dangling = dangling_refs

__all__ = ["beyond_loopback", "config_warnings", "dangling", "dangling_refs", "dangling_to", "dangling_tuples",
           "open_proxies", "references"]
