"""Whole-config validation against the declared schema (:mod:`gostg.config.schema`): every
problem at once, as data.

Startup, ``-O``, ``--check``, reload (SIGHUP, ``-R``, ``POST /config/reload``) and every Web API
write go through :func:`validate` (or :func:`check`, which raises on the first error).

Rules:
1. A key the schema does not know is a warning with its path and a did-you-mean; it is kept
   (``-O`` and the API's save print it back), never acted on.
2. A missing required key, a value of the wrong shape, an unknown type or strategy is an error.
3. A GOST feature gostg does not build yet is an error when it decides who gets in or where
   traffic goes, a warning ("not active") when it only observes. The schema says which.
4. Metadata of a service is checked against the union of what its service, handler and
   listener understand (GOST's command line copies every query key into all three); the same
   for a node and its connector and dialer.
"""
import difflib

from ..errors import ConfigError
from . import schema as S
from .metadata import parse_duration

ERROR, WARNING = "error", "warning"

#: keys whose absence means a default that changes who gets in or where traffic goes: a
#: misspelling of one of them (while it is not set) is an error, not a warning
DECISIVE = frozenset({"type", "handler", "listener", "connector", "dialer", "tls", "resolver", "hosts",
                      "chain", "hops", "nodes", "auth", "auther", "authers",
                      "admission", "admissions", "bypass", "bypasses", "forwarder", "addr", "whitelist",
                      "matchers", "auths", "limits", "limiter", "climiter", "rlimiter", "users", "username",
                      "password"})


class Problem:
    """One finding. ``level`` is ``"error"`` (refuse the config) or ``"warning"`` (run, but say so)."""

    __slots__ = ("level", "path", "message", "suggestion")

    def __init__(self, level, path, message, suggestion=None):
        self.level, self.path, self.message, self.suggestion = level, path, message, suggestion

    def __str__(self):
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self):
        return f"Problem({self.level!r}, {str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, Problem) and (self.level, self.path, self.message) == (
            other.level, other.path, other.message)

    def __hash__(self):
        return hash((self.level, self.path, self.message))

    def as_error(self):
        return ConfigError(self.path, self.message, self.suggestion)


def suggest(word, candidates):
    """The closest candidate name (case-insensitive), or None."""
    by_lower = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    m = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[m[0]] if m else None


def _dym(s):
    """A did-you-mean suffix for a message, or nothing."""
    return f" (did you mean {s!r}?)" if s else ""


def _join(path, key):
    return f"{path}.{key}" if path else key


class _Walker:
    def __init__(self):
        self.problems = []

    def add(self, level, path, msg, suggestion=None):
        self.problems.append(Problem(level, path, msg, suggestion))

    # -- generic ------------------------------------------------------------------------------
    def unbuilt(self, key, path):
        where = S.docs_url(key.docs)
        if key.status == S.UNBUILT_ERROR:
            self.add(ERROR, path, f"{key.meaning or key.name} is not built by gostg yet, and running without it "
                                  f"would change who gets in or where traffic goes (GOST docs: {where})")
        elif key.status == S.UNBUILT_WARN:
            self.add(WARNING, path, f"{key.meaning or key.name} is not built by gostg yet: not active "
                                    f"(GOST docs: {where})")

    def value(self, key, v, path):
        """Shape check of one value; → True when it may be walked further."""
        if v is None:
            return False
        k = key.kind
        if k == S.STR:
            if isinstance(v, (dict, list)):
                return self.add(ERROR, path, f"must be a string, not {_tname(v)}")
            if str(v).lower() in {c.lower() for c in key.unbuilt_choices}:
                return self.add(ERROR, path, f"{key.name} {v!r} is not built by gostg yet, and running without it "
                                             f"would change who gets in or where traffic goes (GOST docs: "
                                             f"{S.docs_url(key.docs)}; built: {', '.join(c for c in key.choices if c)})")
            if key.choices is not None and str(v).lower() not in {c.lower() for c in key.choices}:
                shown = ", ".join(c for c in key.choices if c)
                return self.add(ERROR, path, f"unknown value {v!r}{_dym(suggest(v, key.choices))} (one of: {shown})",
                                suggest(v, key.choices))
        elif k == S.INT:
            if isinstance(v, bool) or not _intlike(v):
                return self.add(ERROR, path, f"must be an integer, not {v!r}")
        elif k == S.FLOAT:
            if isinstance(v, bool) or not _numlike(v) or float(v) < 0:
                return self.add(ERROR, path, f"must be a non-negative number, not {v!r}")
        elif k == S.BOOL:
            if not (isinstance(v, bool) or (isinstance(v, (int, float)) and not isinstance(v, bool))
                    or str(v).strip().lower() in _BOOLS):
                return self.add(ERROR, path, f"must be true or false, not {v!r}")
        elif k == S.DURATION:
            try:
                parse_duration(v, path)
            except ConfigError:
                return self.add(ERROR, path, f"bad duration {v!r} (e.g. 10s, 1m30s, 500ms)")
        elif k == S.STRLIST:
            if isinstance(v, str):
                return True  # GOST's metadata lists come as comma-separated strings from the command line
            if not isinstance(v, list) or not all(isinstance(x, (str, int, float)) for x in v):
                return self.add(ERROR, path, "must be a list of strings")
        elif k == S.MAP:
            if not isinstance(v, dict):
                return self.add(ERROR, path, f"must be a mapping, not {_tname(v)}")
        elif k == S.LIST:
            if not isinstance(v, list):
                return self.add(ERROR, path, f"must be a list, not {_tname(v)}")
        return True

    def obj(self, o, spec, path):
        """Walk a mapping against ``spec``: unknown keys, unbuilt features, shapes, required keys."""
        if not isinstance(o, dict):
            self.add(ERROR, path, f"must be a mapping, not {_tname(o)}")
            return
        index = _index(spec)
        for raw_key, v in o.items():
            kp = _join(path, raw_key)
            key = index.get(str(raw_key).lower())
            if key is None:
                s = suggest(raw_key, spec)
                if s in DECISIVE and not any(str(k).lower() == s.lower() for k in o):
                    # ``typ: socks5`` would otherwise run the default (an ``auto`` handler, no
                    # chain, no auth): a misspelt key that decides who gets in or where traffic
                    # goes fails closed
                    self.add(ERROR, kp, f"unknown key{_dym(s)}; {s!r} decides who gets in or where traffic "
                                        f"goes and is not set, so this is refused rather than run with its default", s)
                else:
                    self.add(WARNING, kp, f"unknown key{_dym(s)}", s)
                continue
            if key.status in (S.UNBUILT_ERROR, S.UNBUILT_WARN):
                if v not in (None, "", [], {}, False, 0):
                    self.unbuilt(key, kp)
                continue
            if key.status == S.IGNORED:
                continue
            if not self.value(key, v, kp):
                continue
            if key.fields is not None and isinstance(v, dict):
                self.obj(v, key.fields, kp)
            elif key.item is not None and isinstance(v, list):
                for i, item in enumerate(v):
                    if isinstance(item, str) and key.item is S.CHAIN_HOP:
                        continue  # a chain's hop given by name: a reference to hops[]
                    self.obj(item, key.item, f"{kp}[{i}]")
        for key in spec.values():
            if key.required and _get(o, key) in (None, ""):
                self.add(ERROR, _join(path, key.name), "is required")

    def metadata(self, parts, specs, names, produced=frozenset()):
        """``parts``: [(metadata dict or None, path)] sharing one union ``specs`` of metadata keys.
        ``produced``: the (lowercased) fields the owning objects have set, for the query keys the
        command line turns into fields (``meaning="cmdline:<field>"``)."""
        union = {}
        for spec in specs:
            for lname, key in spec.items():
                cur = union.get(lname)
                if cur is None or (cur.status != S.BUILT and key.status == S.BUILT):
                    union[lname] = key
        seen = set()
        for md, path in parts:
            if md is None:
                continue
            if not isinstance(md, dict):
                self.add(ERROR, path, f"must be a mapping, not {_tname(md)}")
                continue
            for raw_key, v in md.items():
                lk = str(raw_key).lower()
                # GOST's command line copies each query key into every part: say it once
                if (lk, repr(v)) in seen:
                    continue
                seen.add((lk, repr(v)))
                kp = _join(path, raw_key)
                key = union.get(lk)
                if key is None:
                    # the indexes over every component are built on the first key not declared here
                    owners, declared = S.md_owners(), S.md_declared()
                    if lk in owners:
                        self.add(WARNING, kp, f"metadata key not used here (it is read by: {', '.join(owners[lk])})")
                    elif lk in declared:
                        self.add(WARNING, kp, f"metadata key not used here (GOST reads it on: {', '.join(declared[lk])}"
                                              f"; gostg does not build it there)")
                    else:
                        s = suggest(raw_key, names)
                        self.add(WARNING, kp, f"unknown metadata key{_dym(s)}", s)
                elif key.status in (S.UNBUILT_ERROR, S.UNBUILT_WARN):
                    if v not in (None, "", [], {}, False, 0, "false", "0"):
                        self.unbuilt(key, kp)
                elif key.status == S.IGNORED:
                    field = key.meaning[len("cmdline:"):] if key.meaning.startswith("cmdline:") else ""
                    if field and field.lower() not in produced and v not in (None, "", [], {}):
                        self.add(WARNING, kp, f"has no effect in metadata: the command line turns this query key "
                                              f"into {field!r}; in a config file set {field!r} itself")
                else:
                    self.value(key, v, kp)

    def type_name(self, kind, t, path, default):
        """→ the type name if gostg builds it, else None (after an error)."""
        from .. import builtins  # noqa: F401  (the table of built types; imports no implementation)
        from ..core.registry import by_kind
        t = default if t in (None, "") else t
        if not isinstance(t, str):
            self.add(ERROR, path, f"must be a string, not {_tname(t)}")
            return None
        built = by_kind(kind).names()
        if t in built:
            return t
        if t in S.GOST_TYPES[kind]:
            self.add(ERROR, path, f"{kind} type {t!r} is not built by gostg yet (GOST docs: {S.type_docs(kind, t)}; "
                                  f"built: {', '.join(built)})")
        else:
            s = suggest(t, built)
            self.add(ERROR, path, f"unknown {kind} {t!r}{_dym(s)} (known: {', '.join(built)})", s)
        return None

    # -- objects ------------------------------------------------------------------------------
    def log_rotation(self, lc, path):
        """``rotation`` rotates a file: with stderr, stdout, none or logging it does nothing."""
        rot, out = _get(lc, S.LOG["rotation"]), _get(lc, S.LOG["output"])
        if rot and str(out or "stderr").lower() in ("stderr", "stdout", "none", "null", "logging"):
            self.add(WARNING, f"{path}.rotation", f"has no effect: output is {out or 'stderr'!r} (rotation "
                                                  f"applies to a file output)")

    def service(self, o, path):
        if not isinstance(o, dict):
            return
        (h, ht), (lst, lt) = self.parts(o, path, ("handler", "auto"), ("listener", "tcp"))
        if lt not in S.ADDRLESS_LISTENERS and _get(o, S.SERVICE["addr"]) in (None, ""):
            self.add(ERROR, f"{path}.addr", "is required")
        specs = [S.component_md("service", "")]
        specs += [S.component_md("handler", ht)] if ht else []
        specs += [S.component_md("listener", lt)] if lt else []
        if not ht or not lt:
            # an unknown type already failed: do not pile unknown-key warnings on top
            return
        produced = {str(k).lower() for k in o} | {str(k).lower() for k in h}
        self.metadata([(o.get("metadata"), f"{path}.metadata"), (h.get("metadata"), f"{path}.handler.metadata"),
                       (lst.get("metadata"), f"{path}.listener.metadata")], specs, S.all_md_names(), produced)
        fw = o.get("forwarder")
        if isinstance(fw, dict) and isinstance(fw.get("nodes"), list):
            for i, n in enumerate(fw["nodes"]):
                if isinstance(n, dict):
                    self.metadata([(n.get("metadata"), f"{path}.forwarder.nodes[{i}].metadata")],
                                  [S.component_md("node", "")], S.all_md_names())

    def hop(self, h, path):
        """A hop's metadata and its nodes' (node, connector, dialer) form one group: GOST's
        command line copies each ``-F`` query key into all four."""
        if not isinstance(h, dict):
            return
        parts, specs = [(h.get("metadata"), f"{path}.metadata")], [S.component_md("hop", "")]
        produced = set()
        for i, n in enumerate(h.get("nodes") if isinstance(h.get("nodes"), list) else []):
            types = self.node(n, f"{path}.nodes[{i}]")
            if types is None:
                return
            for part in ("connector", "dialer"):
                if isinstance(n.get(part), dict):
                    produced |= {str(k).lower() for k in n[part]}
            np = f"{path}.nodes[{i}]"
            parts += [(n.get("metadata"), f"{np}.metadata"), (n["connector"].get("metadata") if isinstance(
                n.get("connector"), dict) else None, f"{np}.connector.metadata"), (n["dialer"].get("metadata") if
                isinstance(n.get("dialer"), dict) else None, f"{np}.dialer.metadata")]
            specs += [S.component_md("node", ""), S.component_md("connector", types[0]),
                      S.component_md("dialer", types[1])]
        self.metadata(parts, specs, S.all_md_names(), produced)

    def node(self, n, path):
        """Types and address of a node; → (connector type, dialer type) or None."""
        if not isinstance(n, dict):
            return None
        (_, ct), (_, dt) = self.parts(n, path, ("connector", "http"), ("dialer", "tcp"))
        if ct not in S.ADDRLESS_CONNECTORS and _get(n, S.NODE["addr"]) in (None, ""):
            self.add(ERROR, f"{path}.addr", "is required")
        return (ct, dt) if ct and dt else None

    def parts(self, o, path, *kinds):
        """Check ``o``'s address and the type of each part (handler+listener, connector+dialer);
        → [(part mapping, type name or None)] in the order of ``kinds``."""
        addr = o.get("addr")
        if isinstance(addr, (str, int)) and str(addr) != "":
            err = addr_problem(str(addr))
            if err:
                self.add(ERROR, f"{path}.addr", err)
        out = []
        for kind, default in kinds:
            part = o.get(kind) if isinstance(o.get(kind), dict) else {}
            out.append((part, self.type_name(kind, part.get("type"), f"{path}.{kind}.type", default)))
        return out


_BOOLS = ("true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "")


def _tname(v):
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(v), type(v).__name__)


def _numlike(v):
    try:
        f = float(str(v).strip())
    except ValueError:
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def _intlike(v):
    if isinstance(v, int):
        return True
    try:
        f = float(str(v).strip())
    except ValueError:
        return False
    return f == int(f)


def _index(spec):
    out = {}
    for key in spec.values():
        for n in key.names():
            out.setdefault(n.lower(), key)
    return out


def _get(o, key):
    names = {n.lower() for n in key.names()}
    for k, v in o.items():
        if str(k).lower() in names:
            return v
    return None


def addr_problem(addr):
    """Why a listen/node address cannot be used (no port, bad port), or None."""
    a = addr.strip()
    if a.startswith(("unix://", "/", "@")):
        return None
    host, sep, port = a.rpartition(":")
    if not sep or (host.startswith("[") and not host.endswith("]")) or (":" in host and not host.startswith("[")):
        return f"address {addr!r} has no port (e.g. {a or '127.0.0.1'}:1080 or :1080)"
    lo, _, hi = port.partition("-")
    for p in (lo, hi) if hi else (lo,):
        if not (p.isascii() and p.isdigit()) or not 0 <= int(p) <= 65535:
            return f"bad port {port!r} in address {addr!r}"
    return None


def observer_plugin_problem(t):
    """Why an observer plugin ``type`` cannot run (GOST's default, when unset, is grpc), or None."""
    from ..plugin import type_problem
    return type_problem({"type": t})


#: objects whose ``plugin`` gostg builds (the hop's: checked with the hops)
PLUGIN_KINDS = ("authers", "admissions", "bypasses", "hosts", "resolvers", "limiters", "ingresses", "routers",
                "sds")


#: what an object with ``plugin`` does not read (GOST builds the plugin alone)
PLUGIN_REPLACES = ("auths", "matchers", "whitelist", "reverse", "network", "mappings", "nameservers", "limits",
                   "nodes", "selector", "bypass", "bypasses", "file", "redis", "http", "reload", "rules", "routes")


def _plugin_type(w, o, path):
    """A ``plugin`` whose type this gostg cannot build (gRPC, GOST's default, when gostg has
    no gRPC transport) is an error, never quietly another transport; the object's own rules
    next to a plugin are not read (GOST's), which is said."""
    if isinstance(o, dict) and isinstance(o.get("plugin"), dict):
        from ..plugin import plugin_type, type_problem
        err = type_problem(o["plugin"])
        if err and plugin_type(o["plugin"]) in ("http", "grpc"):   # an unknown type: the schema says it
            w.add(ERROR, f"{path}.plugin.type", err)
        for k in PLUGIN_REPLACES:
            if o.get(k) not in (None, "", [], {}, False):
                w.add(WARNING, f"{path}.{k}", "not used: the plugin decides instead (GOST reads only the plugin)")


def validate(cfg):
    """→ list of :class:`Problem` for the config model ``cfg`` (errors and warnings)."""
    w = _Walker()
    if not isinstance(cfg, dict):
        w.add(ERROR, "", f"config must be a mapping, not {_tname(cfg)}")
        return w.problems
    w.obj(cfg, S.TOP, "")
    for kind in ("services", "chains", "hops", "authers", "admissions", "bypasses", "resolvers", "hosts",
                 "limiters", "climiters", "rlimiters", "ingresses", "routers", "sds", "recorders", "observers",
                 "loggers"):
        items = cfg.get(kind)
        if not isinstance(items, list):
            continue
        seen = set()
        for i, o in enumerate(items):
            path = f"{kind}[{i}]"
            if not isinstance(o, dict):
                continue
            name = o.get("name")
            if name is not None and not isinstance(name, (str, dict, list)):   # shapes: the walk said so
                # a name is a key of the model (and of the Web API's paths): a string, as GOST's
                w.add(ERROR, f"{path}.name", f"must be a string, not {_tname(name)}")
            elif isinstance(name, str) and name:
                if name in seen:
                    w.add(ERROR, f"{path}.name", f"duplicate name {name!r}")
                seen.add(name)
            if kind == "services":
                w.service(o, path)
            elif kind == "observers" and isinstance(o.get("plugin"), dict):
                err = observer_plugin_problem(o["plugin"].get("type"))
                if err:
                    w.add(ERROR, f"{path}.plugin.type", err)
            elif kind == "hops":
                w.hop(o, path)
                _plugin_type(w, o, path)
            elif kind == "chains" and isinstance(o.get("hops"), list):
                for j, h in enumerate(o["hops"]):
                    w.hop(h, f"{path}.hops[{j}]")
                    _plugin_type(w, h, f"{path}.hops[{j}]")
            elif kind in PLUGIN_KINDS:
                _plugin_type(w, o, path)
    logs = [("log", cfg.get("log"))] + [(f"loggers[{i}].log", o.get("log")) for i, o in
                                       enumerate(cfg.get("loggers") if isinstance(cfg.get("loggers"), list) else [])
                                       if isinstance(o, dict)]
    for path, lc in logs:
        if isinstance(lc, dict):
            w.log_rotation(lc, path)
    for single in ("api", "metrics"):
        addr = cfg.get(single).get("addr") if isinstance(cfg.get(single), dict) else None
        if isinstance(addr, (str, int)) and str(addr) and not str(addr).startswith("unix://"):
            err = addr_problem(str(addr))
            if err:
                w.add(ERROR, f"{single}.addr", err)
    if cfg.get("workers") is not None:
        from ..workers import count
        try:
            count(cfg["workers"])
        except ConfigError as exc:
            w.add(ERROR, exc.path, exc.msg)
    return w.problems


def check(cfg, log=None):
    """Raise ConfigError for the first error; log each warning on ``log``; → the warnings."""
    problems = validate(cfg)
    for p in problems:
        if p.level == ERROR:
            raise p.as_error()
    if log is not None:
        for p in problems:
            log.warning(f"config: {p}")
    return problems
