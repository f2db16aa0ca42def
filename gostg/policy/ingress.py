"""Ingress: which tunnel a hostname goes to (GOST x/ingress, concepts/ingress).

Rules of one ingress (GOST ``localIngress``):
1. A rule maps a hostname to an endpoint: a tunnel ID (a UUID, ``$``-prefixed for a private
   tunnel), kept as written. ``*.example.org`` and ``.example.org`` are the same wildcard; it
   matches example.org itself and every name under it.
2. Lookup (``get_rule``): the port is cut from the host, then the exact name, then ``.name``,
   then each parent wildcard (``abc.example.org`` → ``.abc.example.org`` → ``.example.org`` →
   ``.org``). gostg compares names case-insensitively and without a trailing dot (GOST: as
   written).
3. Sources, GOST's order: inline ``rules``, then ``file``, ``redis`` (a HASH ``hostname →
   endpoint`` by default, or a SET of ``"hostname endpoint"`` members), ``http``; for the same
   hostname a later source wins. A bad inline rule is a config error; a bad line from a file,
   Redis or HTTP is logged (once per change) and skipped.
4. Fail closed (gostg): while a redis/http source has never been read the ingress routes
   nothing (GOST routes by what it has); a source that fails later keeps its last good lines.
5. ``set_rule`` (GOST's SetRule) is refused by a local ingress (False); a plugin ingress asks
   its plugin (:class:`gostg.plugin.routing.PluginIngress`).
"""
import string

from .matcher import go_split_host_port
from .source import LineSource

__all__ = ["Ingress", "Rule", "endpoint_id", "parse_line", "rule_key"]

_HEX = frozenset(string.hexdigits)


class Rule:
    """One hostname → endpoint mapping (GOST's ingress.Rule)."""

    __slots__ = ("hostname", "endpoint")

    def __init__(self, hostname, endpoint):
        self.hostname, self.endpoint = hostname, endpoint

    def __eq__(self, other):
        return isinstance(other, Rule) and (self.hostname, self.endpoint) == (other.hostname, other.endpoint)

    def __hash__(self):
        return hash((self.hostname, self.endpoint))

    def __repr__(self):
        return f"Rule({self.hostname!r}, {self.endpoint!r})"


def _uuid_bytes(s):
    """google/uuid.Parse's four forms → 16 bytes, or None: ``xxxxxxxx-xxxx-…`` (36),
    ``{…}`` (38), ``urn:uuid:…`` (45) and 32 bare hex digits."""
    if len(s) == 45 and s[:9].lower() == "urn:uuid:":
        s = s[9:]
    elif len(s) == 38 and s[0] == "{" and s[-1] == "}":
        s = s[1:-1]
    if len(s) == 36:
        if any(s[i] != "-" for i in (8, 13, 18, 23)):
            return None
        s = s.replace("-", "")
    if len(s) != 32 or not _HEX.issuperset(s):
        return None
    return bytes.fromhex(s)


def endpoint_id(endpoint):
    """An endpoint → (16 UUID bytes, private), as GOST's tunnel handler reads it; ValueError
    when it is not a UUID (GOST would read it as the zero ID: no route)."""
    s = str(endpoint or "").strip()
    private = s.startswith("$")
    raw = _uuid_bytes(s[1:] if private else s)
    if raw is None:
        raise ValueError(f"endpoint {endpoint!r} is not a tunnel ID (a UUID, '$'-prefixed when private)")
    return raw, private


def rule_key(hostname):
    """A rule's hostname → its lookup key (``*.x`` and ``.x`` → ``.x``); ValueError when it
    cannot match anything as written (empty, a ``*`` elsewhere than a leading ``*.``)."""
    h = str(hostname or "").strip().lower().rstrip(".")
    if h.startswith("*"):
        h = h[1:]
        if not h.startswith("."):
            # GOST reads "*example.org" as the exact name example.org: say what was meant
            raise ValueError(f"hostname {hostname!r}: a wildcard is written *.example.org or .example.org")
    if not h or h == "." or "*" in h or any(c.isspace() for c in h) or ".." in h:
        raise ValueError(f"hostname {hostname!r} is not a host name or a *.wildcard")
    return h


def check_rule(hostname, endpoint):
    """→ (lookup key, Rule) or ValueError naming what is wrong."""
    key = rule_key(hostname)
    endpoint_id(endpoint)
    return key, Rule(str(hostname).strip(), str(endpoint).strip())


def parse_line(line):
    """A file/Redis/HTTP line ``hostname endpoint`` (tabs or spaces; more fields are ignored,
    as GOST) → (key, Rule); ValueError for a line that is not one."""
    fields = line.split()
    if len(fields) < 2:
        raise ValueError(f"line {line!r}: want 'hostname endpoint'")
    return check_rule(fields[0], fields[1])


def build_table(lines, log=None, name=""):
    """Lines in source order → {key: Rule}; a later line wins; bad lines logged and skipped."""
    table = {}
    for line in lines:
        try:
            key, rule = parse_line(line)
        except ValueError as exc:
            if log is not None:
                log.warning(f"ingress {name}: {exc}; skipped")
            continue
        table[key] = rule
    return table


def lookup_keys(host):
    """The keys ``get_rule`` tries for ``host``, in order (GOST's GetRule)."""
    h = str(host or "").strip()
    hp = go_split_host_port(h)
    if hp is not None and hp[0]:
        h = hp[0]
    h = h.lower().rstrip(".")
    if not h:
        return []
    keys = [h, "." + h]
    s = h
    while True:
        i = s.find(".")
        if i <= 0:
            break
        keys.append(s[i:])
        s = s[i + 1:]
    return keys


def find(table, host):
    for k in lookup_keys(host):
        rule = table.get(k)
        if rule is not None:
            return rule
    return None


class Ingress:
    """A local ingress: inline rules + file/redis/http sources, re-read every ``reload``."""

    def __init__(self, name, rules=(), file="", reload=0.0, log=None, sources=(), push=False):
        self.name = name
        self.log = log
        items = [f"{h} {e}" for h, e in rules]
        self.source = LineSource(items, file=file, reload=reload, name=name, log=log, sources=sources, push=push,
                                 parse=lambda lines: build_table(lines, log, name))

    def get_rule(self, host, service=""):
        """→ the Rule for ``host`` (``name`` or ``name:port``), or None (no route)."""
        table = self.source.value()
        if self.source.pending:
            return None   # a redis/http source never read: its rules are unknown (fail closed)
        return find(table, host)

    def set_rule(self, rule, service=""):
        """GOST's local ingress refuses SetRule: rules come from its sources."""
        return False

    def rules(self):
        """The current rules, in no particular order."""
        return list(self.source.value().values())

    def close(self):
        self.source.close()

    def __repr__(self):
        return f"Ingress({self.name!r})"
