"""Forwarder node routing rules (GOST's ``matcher.rule``, Traefik's rule language).

Sans-IO: :func:`parse` turns a rule string into a matcher tree; :meth:`Rule.match` judges one
:class:`Request` (what sniffing found). A rule that does not parse, or names an unknown
matcher, a bad regexp or a bad IP, is a ValueError: the config is refused rather than a node
that silently never (or always) matches.

Grammar (GOST parses with vulcand/predicate, i.e. Go expression syntax):
    expr  := and ('||' and)*            ('&&' binds tighter than '||')
    and   := unary ('&&' unary)*
    unary := '!' unary | '(' expr ')' | call
    call  := NAME '(' [arg (',' arg)*] ')'
    arg   := `raw string` | "string with Go escapes"
Matcher names are accepted as written, all lower, all upper or capitalised (``PathPrefix``,
``pathprefix``, ``PATHPREFIX``, ``Pathprefix``), as GOST registers them. No argument may be
empty. ``!`` over ``&&``/``||`` is pushed to the leaves (De Morgan), as GOST does.

Semantics of each matcher follow ``x/routing/matcher.go``: Host (``*.x.com``/``.x.com`` match
x.com and its subdomains, as GOST's docs say; GOST's code leaves out x.com itself), HostRegexp, Method, Path,
PathPrefix, PathRegexp, Query/QueryRegexp, Header/HeaderRegexp (with GOST 3.3's numeric
``gt ge lt le eq ne`` third argument), ClientIP (IP or CIDR), Proto, Network (prefix),
Bypass (the named bypass lets the host through) and Admission (the named admission admits the
client). BodyRegexp/BodyJSON need the request body and are not built: refused at parse.
"""
import ipaddress
import re

MAX_RULE = 4096      # a rule is config, not data; bounds the parser's work
MAX_DEPTH = 64       # nesting of '(' and '!'


class Request:
    """What a matcher may look at. ``headers`` has ``get_all(name)`` (protocols.http.Headers);
    ``query`` maps a name to its list of values; ``lookup(kind, name)`` finds a live bypass or
    admission (None when it does not exist)."""

    __slots__ = ("host", "proto", "method", "path", "query", "headers", "client_ip", "network", "lookup")

    def __init__(self, host="", proto="", method="", path="", query=None, headers=None, client_ip="",
                 network="tcp", lookup=None):
        self.host, self.proto, self.method, self.path = host, proto, method, path
        self.query = query or {}
        self.headers = headers
        self.client_ip = client_ip
        self.network = network
        self.lookup = lookup


# ---------------------------------------------------------------------------------------------
# tokens

_TOKEN = re.compile(r"""\s*(?:(?P<op>&&|\|\||[!(),])|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|`(?P<raw>[^`]*)`|"(?P<str>(?:[^"\\\n]|\\.)*)")""")
_GO_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}


def _unquote(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = s[i + 1]
        if e in _GO_ESC:
            out.append(_GO_ESC[e])
            i += 2
        elif e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            h = s[i + 2:i + 2 + n]
            if len(h) != n or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise ValueError(f"bad escape \\{e}{h} in string")
            out.append(chr(int(h, 16)))
            i += 2 + n
        else:
            raise ValueError(f"unknown escape \\{e} in string")
    return "".join(out)


def _tokens(rule):
    pos, out = 0, []
    end = len(rule.rstrip())
    while pos < end:
        m = _TOKEN.match(rule, pos)
        if m is None:
            raise ValueError(f"unexpected {rule[pos:pos + 20].strip()!r} at offset {pos}")
        pos = m.end()
        if m.group("op"):
            out.append(("op", m.group("op")))
        elif m.group("name"):
            out.append(("name", m.group("name")))
        elif m.group("raw") is not None:
            out.append(("str", m.group("raw")))
        else:
            out.append(("str", _unquote(m.group("str"))))
    return out


# ---------------------------------------------------------------------------------------------
# the tree: ("and"|"or", left, right) or ("leaf", not, name, args, fn)

_WANT = {"name": "a matcher such as Host(`example.com`)", "str": "a `quoted` argument"}


class _Parser:
    def __init__(self, toks):
        self.toks, self.i = toks, 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, kind=None, value=None):
        t = self.peek()
        if t[0] is None or (kind and t[0] != kind) or (value and t[1] != value):
            want = repr(value) if value else _WANT.get(kind, "more")
            got = "the end of the rule" if t[0] is None else repr(t[1])
            raise ValueError(f"expected {want}, got {got}")
        self.i += 1
        return t

    def expr(self, depth):
        node = self.conj(depth)
        while self.peek() == ("op", "||"):
            self.i += 1
            node = ("or", node, self.conj(depth))
        return node

    def conj(self, depth):
        node = self.unary(depth)
        while self.peek() == ("op", "&&"):
            self.i += 1
            node = ("and", node, self.unary(depth))
        return node

    def unary(self, depth):
        if depth > MAX_DEPTH:
            raise ValueError(f"rule nested deeper than {MAX_DEPTH}")
        t = self.peek()
        if t == ("op", "!"):
            self.i += 1
            return _invert(self.unary(depth + 1))
        if t == ("op", "("):
            self.i += 1
            node = self.expr(depth + 1)
            self.take("op", ")")
            return node
        _, name = self.take("name")
        self.take("op", "(")
        args = []
        if self.peek() != ("op", ")"):
            args.append(self.take("str")[1])
            while self.peek() == ("op", ","):
                self.i += 1
                args.append(self.take("str")[1])
        self.take("op", ")")
        return _leaf(name, args)


def _invert(t):
    if t[0] == "and":
        return ("or", _invert(t[1]), _invert(t[2]))
    if t[0] == "or":
        return ("and", _invert(t[1]), _invert(t[2]))
    return ("leaf", not t[1]) + t[2:]


def _leaf(name, args):
    canon = _NAMES.get(name)
    if canon is None:
        raise ValueError(f"unknown matcher {name}()")
    if canon in _UNBUILT:
        raise ValueError(f"{canon}() is not built yet in gostg (it needs the request body)")
    counts, build = _MATCHERS[canon]
    if len(args) not in counts:
        raise ValueError(f"{canon}() takes {' or '.join(map(str, counts))} argument(s), got {len(args)}")
    if any(a == "" for a in args):
        raise ValueError(f"{canon}() has an empty argument")
    return ("leaf", False, canon, tuple(args), build(*args))


def _eval(t, req):
    if t[0] == "and":
        return _eval(t[1], req) and _eval(t[2], req)
    if t[0] == "or":
        return _eval(t[1], req) or _eval(t[2], req)
    return t[4](req) != t[1]


class Rule:
    """A parsed rule. ``str(rule)`` is the source; ``priority`` GOST's default (its length)."""

    __slots__ = ("source", "tree")

    def __init__(self, source, tree):
        self.source, self.tree = source, tree

    def match(self, req):
        return _eval(self.tree, req)

    def __str__(self):
        return self.source


def parse(rule):
    """→ Rule, or ValueError naming what is wrong."""
    if not isinstance(rule, str):
        raise ValueError("a rule must be a string")
    if len(rule) > MAX_RULE:
        raise ValueError(f"rule longer than {MAX_RULE} characters")
    toks = _tokens(rule)
    if not toks:
        raise ValueError("empty rule")
    p = _Parser(toks)
    tree = p.expr(0)
    if p.i != len(toks):
        raise ValueError(f"unexpected {p.toks[p.i][1]!r} after a complete rule")
    return Rule(rule, tree)


# ---------------------------------------------------------------------------------------------
# matchers

def _regexp(pattern, what):
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what}: bad regexp {pattern!r}: {exc}") from None


def host_of(addr):
    """``name``, ``name:port``, ``[v6]:port`` or ``v6`` → the host part (GOST's parseHost)."""
    if ":" not in addr:
        return addr
    if addr.startswith("["):
        end = addr.find("]")
        return addr[1:end] if end > 0 else addr
    if addr.count(":") == 1:
        return addr.split(":", 1)[0]
    return addr    # a bare IPv6 address


def host_pattern(pattern):
    """GOST's wildcard: ``*.x.com`` and ``*x.com`` become ``.x.com``: any subdomain of x.com."""
    p = pattern.strip().lower()
    if p.startswith("*"):
        p = p[1:]
        if not p.startswith("."):
            p = "." + p
    return p


def host_matches(pattern, host):
    """``pattern`` from :func:`host_pattern` against a request host (port ignored)."""
    h = host_of(host.strip()).lower()
    if not h or not pattern:
        return False
    return h == pattern or (pattern[0] == "." and (h.endswith(pattern) or h == pattern[1:]))


def _host(h):
    if not h.isascii():
        raise ValueError(f"Host(): non-ASCII host {h!r}")
    p = host_pattern(h)
    return lambda req: host_matches(p, req.host)


def _host_regexp(pattern):
    if not pattern.isascii():
        raise ValueError(f"HostRegexp(): non-ASCII pattern {pattern!r}")
    r = _regexp(pattern, "HostRegexp()")
    return lambda req: r.search(host_of(req.host.strip()).lower()) is not None


def _path(p):
    if not p.startswith("/"):
        raise ValueError(f"Path(): {p!r} does not start with '/'")
    return lambda req: req.path == p


def _path_prefix(p):
    if not p.startswith("/"):
        raise ValueError(f"PathPrefix(): {p!r} does not start with '/'")
    return lambda req: req.path.startswith(p)


def _path_regexp(pattern):
    r = _regexp(pattern, "PathRegexp()")
    return lambda req: r.search(req.path) is not None


_OPS = {"gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}


def _numbers(values):
    for v in values:
        try:
            yield float(v)
        except ValueError:
            continue


def _values_matcher(what, get, key, value=None, limit=None):
    """Header()/Query(): key present; key with value; key with a numeric comparison."""
    if limit is not None:
        op = _OPS.get(value)
        if op is None:
            raise ValueError(f"{what}(): unknown comparison {value!r} (one of {', '.join(_OPS)})")
        try:
            n = float(limit)
        except ValueError:
            raise ValueError(f"{what}(): bad number {limit!r}") from None
        return lambda req: any(op(f, n) for f in _numbers(get(req, key)))
    if value is None:
        return lambda req: bool(get(req, key))
    return lambda req: value in get(req, key)


def _header_values(req, key):
    return req.headers.get_all(key) if req.headers is not None else []


def _query_values(req, key):
    return req.query.get(key, [])


def _regexp_values(what, get, key, pattern=None):
    if pattern is None:
        return _values_matcher(what.replace("Regexp", ""), get, key)
    r = _regexp(pattern, f"{what}()")
    return lambda req: any(r.search(v) is not None for v in get(req, key))


def _client_ip(spec):
    try:
        net = ipaddress.ip_network(spec, strict=False) if "/" in spec else None
        ip = None if net else ipaddress.ip_address(spec)
    except ValueError:
        raise ValueError(f"ClientIP(): {spec!r} is not an IP address or CIDR") from None

    def match(req):
        try:
            addr = ipaddress.ip_address(req.client_ip)
        except ValueError:
            return False
        if getattr(addr, "ipv4_mapped", None):
            addr = addr.ipv4_mapped
        return addr == ip if net is None else addr in net
    return match


def _live(req, kind, name):
    return req.lookup(kind, name) if req.lookup is not None else None


def _bypass(name):
    # the named bypass lets the host through; a bypass that does not exist matches nothing
    def match(req):
        bp = _live(req, "bypasses", name)
        return bp is not None and not bp.contains("tcp", req.host)
    return match


def _admission(name):
    def match(req):
        adm = _live(req, "admissions", name)
        return adm is not None and bool(req.client_ip) and adm.admit(req.client_ip)
    return match


_MATCHERS = {
    "ClientIP": ((1,), _client_ip),
    "Network": ((1,), lambda n: (lambda req, n=n.lower(): req.network.startswith(n))),
    "Proto": ((1,), lambda p: (lambda req, p=p.lower(): req.proto == p)),
    "Host": ((1,), _host),
    "HostRegexp": ((1,), _host_regexp),
    "Method": ((1,), lambda m: (lambda req, m=m.upper(): req.method == m)),
    "Path": ((1,), _path),
    "PathRegexp": ((1,), _path_regexp),
    "PathPrefix": ((1,), _path_prefix),
    "Header": ((1, 2, 3), lambda *a: _values_matcher("Header", _header_values, *a)),
    "HeaderRegexp": ((1, 2), lambda *a: _regexp_values("HeaderRegexp", _header_values, *a)),
    "Query": ((1, 2, 3), lambda *a: _values_matcher("Query", _query_values, *a)),
    "QueryRegexp": ((1, 2), lambda *a: _regexp_values("QueryRegexp", _query_values, *a)),
    "Bypass": ((1,), _bypass),
    "Admission": ((1,), _admission),
    "BodyRegexp": ((1,), None),
    "BodyJSON": ((2, 3), None),
}
_UNBUILT = frozenset({"BodyRegexp", "BodyJSON"})
_NAMES = {}
for _n in _MATCHERS:
    for _v in (_n, _n.lower(), _n.upper(), _n.capitalize()):
        _NAMES[_v] = _n
