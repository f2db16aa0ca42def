"""What the three limiter kinds share: GOST's line format ``<scope> <value> [<value>]`` parsed
into a Table, and the client-IP lookup (rules 1, 2 and 5 of the package docstring)."""
import ipaddress

SERVICE, DEFAULT = "$", "$$"

#: the worker processes one service's connections are spread over (``-workers N``; a worker
#: sets it before building anything, gostg.workers.worker). Without shared (Redis) counters each
#: worker enforces its share of every limit that counts what several workers see, so the group
#: keeps the configured total (gostg.workers.share documents the rounding)
workers = 1


class Sourced:
    """A limiter reading its table from ``self.source`` (a LineSource): closing it (replaced,
    deleted, gostg stops: runtime calls close()) stops the source's poller and subscription."""

    def close(self):
        self.source.close()


def parse_scope(s):
    """``$`` / ``$$`` / an ip_address / an ip_network."""
    if s in (SERVICE, DEFAULT):
        return s
    try:
        return _norm(ipaddress.ip_address(s))
    except ValueError:
        pass
    try:
        return ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise ValueError(f"bad scope {s!r}: want $, $$, an IP address or a CIDR") from None


def _norm(ip):
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def client_ip(host):
    """An ip_address for a client host string (``[::1]``, ``::ffff:1.2.3.4`` …), else None."""
    try:
        return _norm(ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def applicable(t, host):
    """[(scope, limit)] of Table ``t`` for a client ``host``: ``$`` first, then the client's own
    entry (its IP/CIDR line, else ``$$``) keyed by its IP (or the host string if not an IP)."""
    ip = client_ip(host)
    wanted = []
    if t.service is not None:
        wanted.append((SERVICE, t.service))
    v = t.for_ip(ip)
    if v is None:
        v = t.default
    if v is not None:
        wanted.append((ip if ip is not None else host, v))
    return wanted


class Table:
    """Parsed limit lines. ``service`` and ``default`` are the ``$``/``$$`` values (or None);
    ``for_ip`` finds an exact IP entry, else the most specific CIDR containing the IP."""

    __slots__ = ("service", "default", "ips", "nets")

    def __init__(self, entries=()):
        self.service = self.default = None
        self.ips = {}
        nets = {}
        for scope, value in entries:
            if scope == SERVICE:
                self.service = value
            elif scope == DEFAULT:
                self.default = value
            elif isinstance(scope, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                nets[scope] = value
            else:
                self.ips[scope] = value
        self.nets = sorted(nets.items(), key=lambda kv: -kv[0].prefixlen)

    def for_ip(self, ip):
        if ip is None:
            return None
        v = self.ips.get(ip)
        if v is not None:
            return v
        for net, value in self.nets:
            if ip.version == net.version and ip in net:
                return value
        return None

    def __eq__(self, other):
        return isinstance(other, Table) and (self.service, self.default, self.ips, self.nets) == (
            other.service, other.default, other.ips, other.nets)

    def __repr__(self):
        return f"Table(service={self.service}, default={self.default}, ips={self.ips}, nets={self.nets})"


def split_line(line, nvalues, shape):
    """``(scope, [values])`` of a limit line with 1..``nvalues`` values; None when blank."""
    parts = str(line).split("#", 1)[0].split()
    if not parts:
        return None
    if not 2 <= len(parts) <= 1 + nvalues:
        raise ValueError(f"bad limit {line!r}: want '{shape}'")
    return parse_scope(parts[0]), parts[1:]


def number_line(line, shape, convert, what):
    """``(scope, convert(value))`` of a one-value line; None when blank. ``what`` says what
    the value must be when ``convert`` refuses it."""
    r = split_line(line, 1, shape)
    if r is None:
        return None
    scope, vals = r
    try:
        return scope, convert(vals[0])
    except ValueError:
        raise ValueError(f"bad limit {line!r}: {what}") from None


def table_parser(parse_line, share=None):
    """lines → Table, with ``parse_line`` for each line; with several workers, ``share(scope,
    value, workers)`` gives one worker's part of each limit."""
    def whole(lines):
        # "no limit" entries are kept: a later line (the file) may lift an earlier limit
        return Table(e for e in map(parse_line, lines) if e is not None)

    def parse(lines):
        n = workers
        if n == 1 or share is None:
            return whole(lines)
        entries = [e for e in map(parse_line, lines) if e is not None]
        return Table((scope, None if v is None else share(scope, v, n)) for scope, v in entries)
    #: the limits as written, for counts every worker shares (a Redis-backed limiter)
    parse.whole = whole
    return parse
