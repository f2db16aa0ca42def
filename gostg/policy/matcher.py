"""One address matcher for bypasses and admissions, with GOST's rule syntax (x/internal/matcher).

Rules, classified in GOST's order (x/bypass ``classifyPatterns``):
1. ``a.b.c.d/n``, ``v6/n``          CIDR, any port (CIDRs take no port)
2. contains ``*`` or ``?``         glob over the host, optional ``:port`` / ``:lo-hi``;
                                    ``*`` also crosses dots (gobwas/glob without separators)
3. ``ip`` or ``ip-ip``              single IP or IP range, any port
4. anything else                    ``host[:port|:lo-hi]``: ``example.com`` (exactly that name),
                                    ``.example.com`` (the name and every subdomain), an IP with
                                    a port (``1.2.3.4:80``, ``[::1]:443``)

Lookups follow GOST: the host is lower-cased, an address without a port has port 0 (so
``example.com:80`` does not match a bare ``example.com`` but ``:0-65535`` does), a port that
does not parse makes a rule port-less. Names are never resolved: a name never matches a CIDR.
Beyond GOST, and harmless: trailing dots are dropped, ``[v6]`` brackets and ``%zone`` suffixes
are stripped, IPv6 is compared in canonical form and an IPv4-mapped IPv6 address also matches
IPv4 rules.

Cost is independent of the rule count for everything but general globs: IPs/ranges/CIDRs are
merged sorted intervals searched with bisect, names are one dict probe per label
(``a.b.c`` → ``a.b.c``, ``.a.b.c``, ``.b.c``, ``.c``), ``*.suffix`` globs are a second such dict,
and only the other globs go through regexes (compiled once, in chunks of alternatives).
"""
import bisect
import re

from gevent import socket

#: a rule matching every port (stored instead of a list of ranges)
ANY_PORT = True
_GLOB_CHARS = frozenset("*?[]{}\\")
_REGEX_CHUNK = 500


def go_split_host_port(s):
    """Go's ``net.SplitHostPort``: → ``(host, port)`` or ``None`` when ``s`` is not host:port
    (no port, too many colons, stray brackets). The port is not checked."""
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or end + 1 == len(s) or s[end + 1] != ":":
            return None
        host, port = s[1:end], s[end + 2:]
        if "[" in host or "]" in s[end + 1:]:
            return None
        return host, port
    i = s.rfind(":")
    if i < 0:
        return None
    host = s[:i]
    if ":" in host or "[" in host or "]" in host:
        return None
    return host, s[i + 1:]


def parse_port_range(s):
    """GOST's PortRange.Parse: ``'80'`` → (80, 80), ``'1000-2000'`` → (1000, 2000), else None."""
    parts = s.split("-")
    try:
        if len(parts) == 1:
            p = int(s)
            return (p, p) if 0 <= p <= 65535 else None
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    return None


def parse_ip(s):
    """``'10.0.0.1'`` / ``'::1'`` / ``'[::1]'`` / ``'fe80::1%eth0'`` → (family 4|6, int), else None.
    IPv4-mapped IPv6 stays IPv6 here (see ``_unmap``)."""
    if not s:
        return None
    if s[0] == "[" and s[-1] == "]":
        s = s[1:-1]
    if ":" in s:
        s = s.split("%", 1)[0]
        try:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, s), "big")
        except (OSError, ValueError):
            return None
    if not (s[-1:].isascii() and s[-1:].isdigit()):
        return None
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, s), "big")
    except (OSError, ValueError):
        return None


_MAPPED = 0xFFFF << 32


def _unmap(fam, n):
    """::ffff:a.b.c.d → (4, a.b.c.d) so IPv4 rules see IPv4 clients on dual-stack sockets."""
    if fam == 6 and n >> 32 == 0xFFFF:
        return 4, n - _MAPPED
    return None


def _canon(fam, n):
    if fam == 4:
        return socket.inet_ntop(socket.AF_INET, n.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, n.to_bytes(16, "big"))


def parse_cidr(s):
    """``'10.0.0.0/8'`` → (family, first, last) (host bits ignored, like Go), else None."""
    ip, sep, bits = s.partition("/")
    if not sep or not (bits.isascii() and bits.isdigit()):
        return None
    a = parse_ip(ip) if not ip.startswith("[") else None
    if a is None:
        return None
    fam, n = a
    width = 32 if fam == 4 else 128
    b = int(bits)
    if b > width:
        return None
    host = (1 << (width - b)) - 1
    return fam, n & ~host, (n & ~host) | host


def parse_ip_range(s):
    """GOST's IPRange.Parse: ``'ip'`` or ``'ip-ip'`` → (family, lo, hi), else None.
    A range across families or reversed is kept but matches nothing sensible, as in GOST."""
    parts = s.split("-")
    if len(parts) == 1:
        a = parse_ip(s.strip())
        return (a[0], a[1], a[1]) if a and not s.startswith("[") else None
    if len(parts) == 2:
        lo, hi = parse_ip(parts[0].strip()), parse_ip(parts[1].strip())
        if lo and hi and lo[0] == hi[0] and "[" not in s:
            return lo[0], lo[1], hi[1]
    return None


def is_ip_rule(pattern):
    """True for the rules an admission takes as addresses (CIDR, IP, IP range)."""
    p = pattern.strip()
    return bool(parse_cidr(p) or parse_ip_range(p))


def glob_to_regex(g):
    """gobwas/glob syntax (no separators) → regex source: ``*`` any run, ``?`` one char,
    ``[abc]``/``[a-z]``/``[!…]`` classes, ``{a,b}`` alternatives, ``\\`` escapes.
    Unbalanced brackets raise ValueError (GOST then treats the rule as a plain address)."""
    out, i, depth, n = [], 0, 0, len(g)
    while i < n:
        c = g[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("trailing backslash")
            out.append(re.escape(g[i + 1]))
            i += 2
            continue
        if c == "*":
            while i + 1 < n and g[i + 1] == "*":
                i += 1
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = g.find("]", i + 2 if g[i + 1:i + 2] in ("!", "^") else i + 1)
            if j < 0:
                raise ValueError("unclosed [")
            body = g[i + 1:j]
            neg = body[:1] in ("!", "^")
            if neg:
                body = body[1:]
            if not body:
                raise ValueError("empty class")
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\").replace("^", "\\^") + "]")
            i = j
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c in "]}":
            raise ValueError(f"unbalanced {c}")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise ValueError("unclosed {")
    src = "".join(out)
    if "[" in g:  # only a class can still be invalid regex (a reversed range)
        re.compile(src)
    return src


def _port_ok(spec, port):
    if spec is ANY_PORT:
        return True
    for lo, hi in spec:
        if lo <= port <= hi:
            return True
    return False


def _add_port(table, key, pr):
    """Merge a rule's port range into ``table[key]``: ANY_PORT absorbs everything."""
    cur = table.get(key)
    if pr is None or cur is ANY_PORT:
        table[key] = ANY_PORT
    elif cur is None:
        table[key] = [pr]
    else:
        cur.append(pr)


class _Intervals:
    """Disjoint sorted [lo, hi] integer intervals; ``in`` is one bisect."""

    __slots__ = ("starts", "ends")

    def __init__(self, spans):
        spans.sort()
        starts, ends = [], []
        for lo, hi in spans:
            if lo > hi:
                continue
            if ends and lo <= ends[-1] + 1:
                if hi > ends[-1]:
                    ends[-1] = hi
            else:
                starts.append(lo)
                ends.append(hi)
        self.starts, self.ends = starts, ends

    def __contains__(self, n):
        i = bisect.bisect_right(self.starts, n) - 1
        return i >= 0 and n <= self.ends[i]

    def __len__(self):
        return len(self.starts)


def _norm_host(h):
    h = h.lower()
    if h[:1] == "[" and h[-1:] == "]":
        h = h[1:-1]
    return h.rstrip(".") if h.endswith(".") and h != "." else h


class Matcher:
    """A set of GOST rules; ``match(host, port)`` / ``match_address("host:port")`` → bool."""

    def __init__(self, patterns=()):
        spans = {4: [], 6: []}
        self._names = {}       # exact host / ".suffix" / canonical IP → port spec
        self._wild = {}        # "*.suffix" rules by ".suffix" → port spec
        self._star = None      # the rule "*" (every host) → port spec
        globs = {}             # port-spec key → [regex source]
        self.count = 0
        for raw in patterns:
            p = str(raw).strip()
            if not p:
                continue
            self.count += 1
            cidr = parse_cidr(p) if "/" in p else None
            if cidr is not None:
                spans[cidr[0]].append(cidr[1:])
                continue
            if "*" in p or "?" in p:
                if self._add_glob(p, globs):
                    continue
            r = parse_ip_range(p)
            if r is not None:
                spans[r[0]].append(r[1:])
                continue
            self._add_name(p)
        self._v4 = _Intervals(spans[4])
        self._v6 = _Intervals(spans[6])
        self._globs = []
        for key, sources in globs.items():
            spec = ANY_PORT if key is None else list(key)
            for i in range(0, len(sources), _REGEX_CHUNK):
                rx = re.compile("|".join(f"(?:{s})" for s in sources[i:i + _REGEX_CHUNK]), re.S)
                self._globs.append((rx, spec))

    def __len__(self):
        return self.count

    def _add_glob(self, p, globs):
        hp = go_split_host_port(p)
        host, port = hp if hp is not None else (p, "")
        host = _norm_host(host)
        pr = parse_port_range(port) if hp is not None else None
        if set(host) == {"*"}:
            if self._star is None:
                self._star = ANY_PORT if pr is None else [pr]
            elif self._star is not ANY_PORT:
                self._star = ANY_PORT if pr is None else self._star + [pr]
            return True
        if host.startswith("*.") and not (_GLOB_CHARS & set(host[1:])):
            _add_port(self._wild, host[1:], pr)
            return True
        try:
            src = glob_to_regex(host)
        except (ValueError, re.error):
            return False
        globs.setdefault(None if pr is None else (pr,), []).append(src)
        return True

    def _add_name(self, p):
        hp = go_split_host_port(p)
        if hp is None:
            host, pr = p, None
        else:
            host, pr = hp[0], parse_port_range(hp[1])
        host = _norm_host(host)
        ip = parse_ip(host)
        if ip is not None:
            m = _unmap(*ip)
            host = _canon(*(m or ip))
        _add_port(self._names, host, pr)

    def _ip_hit(self, host):
        a = parse_ip(host)
        if a is None:
            return None, False
        fam, n = a
        if n in (self._v4 if fam == 4 else self._v6):
            return a, True
        m = _unmap(fam, n)
        if m is not None and m[1] in self._v4:
            return a, True
        return m or a, False

    def match(self, host, port=None):
        """Does any rule match ``host`` (a name or IP literal) at ``port`` (None → 0)?"""
        if not host:
            return False
        port = port or 0
        h = _norm_host(host)
        ip, hit = self._ip_hit(h)
        if hit:
            return True
        names = self._names
        if ip is not None:
            spec = names.get(_canon(*ip))
            if spec is not None and _port_ok(spec, port):
                return True
        elif names:
            spec = names.get(h)
            if spec is not None and _port_ok(spec, port):
                return True
            # ".example.com" rules: the name itself, then each parent domain
            spec = names.get("." + h)
            if spec is not None and _port_ok(spec, port):
                return True
            i = h.find(".", 1)
            while i > 0:
                spec = names.get(h[i:])
                if spec is not None and _port_ok(spec, port):
                    return True
                i = h.find(".", i + 1)
        return self._glob_hit(h, port)

    def _glob_hit(self, h, port):
        if self._star is not None and _port_ok(self._star, port):
            return True
        wild = self._wild
        if wild:
            i = h.find(".")
            while i >= 0:
                spec = wild.get(h[i:])
                if spec is not None and _port_ok(spec, port):
                    return True
                i = h.find(".", i + 1)
        for rx, spec in self._globs:
            if _port_ok(spec, port) and rx.fullmatch(h):
                return True
        return False

    def match_address(self, address):
        """``'host:port'``, ``'[v6]:port'``, ``'host'`` or a bare IPv6 → bool, split as GOST
        splits (a bad port counts as 0)."""
        if not address:
            return False
        hp = go_split_host_port(address)
        if hp is None or not hp[0]:
            return self.match(address, 0)
        host, sp = hp
        port = int(sp) if sp.isascii() and sp.isdigit() and len(sp) <= 5 else 0
        return self.match(host, port)
