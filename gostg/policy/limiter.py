"""Limiters: traffic (``limiters``), concurrent connections (``climiters``) and request rate
(``rlimiters``), in GOST's line format ``<scope> <value> [<value>]``.

Rules:
1. Scopes: ``$`` is the whole service, ``$$`` each connection (traffic) or each client IP
   (conn, rate), and an IP or CIDR gives each matching client IP its own limit. A CIDR does not
   pool its addresses: ``10.0.0.0/8 1MB`` is 1 MB/s for every IP in it, as in GOST.
2. Traffic limits combine (a byte must pass ``$``, ``$$`` and its IP's limit). For conn and rate
   limits an IP/CIDR entry replaces ``$$`` for the IPs it matches; ``$`` always applies.
3. In = bytes the service receives from the client, out = bytes it sends to the client, per
   second, with B/KB/MB/GB/TB (binary, as GOST: 1KB = 1024 B). A value <= 0 is unlimited.
4. Shaping pays after reading and before writing, never more than one burst at a time, and
   sleeps once for exactly the debt it ran into. A connection no limit applies to is never
   wrapped, so unlimited tunnels keep relay's plain-socket fast path.
5. Later lines win over earlier ones for the same scope (the file comes after inline ``limits``).
"""
import ipaddress
import math
import re
import time
import weakref

import gevent
from gevent import socket, ssl

from .source import LineSource

SERVICE, DEFAULT = "$", "$$"

_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgtpe", 1):
    for _suffix in ("", "b", "ib"):
        _UNITS[_p + _suffix] = 1024 ** _i
_SIZE = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+) *([a-z]*)")


def parse_bytes(s):
    """``"512KB"`` → 524288; ``"1.5MB"``, ``"100"`` (bytes), ``"0"``, ``"-1"`` (unlimited → 0)."""
    m = _SIZE.fullmatch(str(s).strip().lower())
    if m is None or m.group(3) not in _UNITS:
        raise ValueError(f"bad rate {s!r}: want a number with B, KB, MB, GB or TB")
    v = float(m.group(2)) * _UNITS[m.group(3)]
    if not math.isfinite(v):
        raise ValueError(f"bad rate {s!r}: too large")
    return 0 if m.group(1) == "-" else int(v)


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


def _split(line, nvalues, shape):
    parts = str(line).split("#", 1)[0].split()
    if not parts:
        return None
    if not 2 <= len(parts) <= 1 + nvalues:
        raise ValueError(f"bad limit {line!r}: want '{shape}'")
    return parse_scope(parts[0]), parts[1:]


def parse_traffic_line(line):
    """``"$ 100MB 200MB"`` → ``("$", (in, out))``; None for a blank/comment line."""
    r = _split(line, 2, "<scope> <in> [<out>]")
    if r is None:
        return None
    scope, vals = r
    return scope, (parse_bytes(vals[0]), parse_bytes(vals[1]) if len(vals) > 1 else 0)


def parse_count_line(line):
    """``"$$ 10"`` → ``("$$", 10)`` (concurrent connections); <= 0 means no limit (None)."""
    r = _split(line, 1, "<scope> <connections>")
    if r is None:
        return None
    scope, vals = r
    try:
        n = int(vals[0])
    except ValueError:
        raise ValueError(f"bad limit {line!r}: connections must be an integer") from None
    return scope, (n if n > 0 else None)


def parse_rate_line(line):
    """``"$ 2.5"`` → ``("$", 2.5)`` (requests per second); <= 0 means no limit (None)."""
    r = _split(line, 1, "<scope> <requests per second>")
    if r is None:
        return None
    scope, vals = r
    try:
        v = float(vals[0])
    except ValueError:
        raise ValueError(f"bad limit {line!r}: the rate must be a number") from None
    if math.isnan(v) or (math.isinf(v) and v > 0):
        raise ValueError(f"bad limit {line!r}: the rate must be finite")
    return scope, (v if v > 0 else None)


def _table(parse_line):
    def parse(lines):
        # "no limit" entries are kept: a later line (the file) may lift an earlier limit
        return Table(e for e in map(parse_line, lines) if e is not None)
    return parse


parse_traffic = _table(parse_traffic_line)
parse_counts = _table(parse_count_line)
parse_rates = _table(parse_rate_line)


# -- token bucket --------------------------------------------------------------------------------

#: a traffic bucket holds this many seconds of its rate: small enough that a download measures
#: its limit (GOST's one-second burst lets a 3 s download run 50 % fast), large enough that a
#: shaped connection sleeps a few times a second, not hundreds
BURST_SECONDS = 0.1
#: … but never less than this many bytes (or one second of a slower rate), so slow limits still
#: move whole packets
MIN_BURST = 4096


#: the clock and the sleep of shaping (module globals so tests can fake time)
_now = time.monotonic
_sleep = gevent.sleep


def traffic_burst(rate):
    return max(int(rate * BURST_SECONDS), min(int(rate), MIN_BURST), 1)


class TokenBucket:
    """``rate`` tokens per second up to ``burst``. ``take`` may go into debt and says how long
    to sleep until the debt is paid (golang.org/x/time/rate's reservation model), so N
    concurrent takers queue fairly and each sleeps once. ``rate`` <= 0 is unlimited."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "clock", "__weakref__")

    def __init__(self, rate, burst=None, clock=None):
        self.clock = clock or _now
        self.rate = rate
        self.burst = burst if burst is not None else traffic_burst(rate)
        self.tokens = float(self.burst)
        self.stamp = self.clock()

    def set_rate(self, rate, burst=None):
        """Change the rate in place: connections holding this bucket follow it."""
        self._advance()
        self.rate = rate
        if rate > 0:
            self.burst = burst if burst is not None else traffic_burst(rate)
            self.tokens = min(self.tokens, self.burst)

    def _advance(self):
        now = self.clock()
        if self.rate > 0 and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n):
        """Spend ``n`` tokens (callers keep n <= burst) → seconds to wait before using them."""
        if self.rate <= 0:
            return 0.0
        self._advance()
        self.tokens -= n
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def available(self):
        if self.rate <= 0:
            return math.inf
        self._advance()
        return self.tokens

    def full(self):
        return self.available() >= self.burst


def chunk(buckets, n):
    """The most a conn may move at once through ``buckets``: one burst of the tightest."""
    for b in buckets:
        if 0 < b.rate and b.burst < n:
            n = b.burst
    return n


def pay(buckets, n):
    """Spend ``n`` tokens from every bucket and sleep once, as long as the worst debt needs."""
    delay = 0.0
    for b in buckets:
        d = b.take(n)
        if d > delay:
            delay = d
    if delay > 0:
        _sleep(delay)


# -- traffic ---------------------------------------------------------------------------------------

class LimitedConn:
    """A client conn shaped by traffic buckets: reads pay ``inb``, writes pay ``outb``. Not a
    plain socket, so relay moves it with its generic pump."""

    __slots__ = ("sock", "inb", "outb")

    def __init__(self, sock, inb, outb):
        self.sock = sock
        self.inb = inb
        self.outb = outb

    def recv(self, n):
        if not self.inb:
            return self.sock.recv(n)
        data = self.sock.recv(chunk(self.inb, n))
        if data:
            pay(self.inb, len(data))
        return data

    def recv_into(self, buf, nbytes=0):
        size = nbytes or len(buf)
        if not self.inb:
            return self.sock.recv_into(buf, nbytes) if nbytes else self.sock.recv_into(buf)
        n = self.sock.recv_into(buf, chunk(self.inb, size))
        if n:
            pay(self.inb, n)
        return n

    def sendall(self, data):
        if not self.outb:
            return self.sock.sendall(data)
        mv = memoryview(data).cast("B")
        while len(mv):
            k = chunk(self.outb, len(mv))
            pay(self.outb, k)
            self.sock.sendall(mv[:k])
            mv = mv[k:]
        return None

    def send(self, data):
        if not self.outb:
            return self.sock.send(data)
        mv = memoryview(data).cast("B")
        k = chunk(self.outb, len(mv))
        pay(self.outb, k)
        return self.sock.send(mv[:k])

    def shutdown(self, how):
        # SSLSocket.shutdown drops the TLS layer the other direction still needs (see relay)
        if how == socket.SHUT_WR and isinstance(self.sock, ssl.SSLSocket):
            return
        self.sock.shutdown(how)

    def __getattr__(self, name):  # close, getpeername, settimeout, …
        return getattr(self.sock, name)


class TrafficLimiter:
    """A named ``limiters`` entry. ``wrap(conn, client_ip)`` returns the conn itself when no
    limit applies, else a LimitedConn holding this connection's buckets: the shared ``$``
    bucket, a fresh ``$$`` bucket, and the client IP's bucket (shared by that IP's
    connections while any is open). A reloaded file re-rates the shared buckets in place;
    ``$$`` changes apply to the next connection."""

    def __init__(self, name, source):
        self.name = name
        self.source = source
        self._table = None
        self._service = [None, None]
        self._ips = weakref.WeakValueDictionary()   # (ip, 0 in | 1 out) → bucket

    @property
    def table(self):
        t = self.source.value()
        if t is not self._table:
            self._retune(t)
        return t

    def _retune(self, t):
        self._table = t
        for d in (0, 1):
            rate = t.service[d] if t.service else 0
            b = self._service[d]
            if b is not None:
                b.set_rate(rate)
            if rate <= 0:
                self._service[d] = None
            elif b is None:
                self._service[d] = TokenBucket(rate)
        for (ip, d), b in list(self._ips.items()):
            v = t.for_ip(ip)
            b.set_rate(v[d] if v else 0)

    def buckets(self, ip):
        """→ (in buckets, out buckets) for a new connection from ``ip`` (an ip_address)."""
        t = self.table
        v = t.for_ip(ip)
        out = ([], [])
        for d in (0, 1):
            if self._service[d] is not None:
                out[d].append(self._service[d])
            if t.default and t.default[d] > 0:
                out[d].append(TokenBucket(t.default[d]))
            if v and v[d] > 0:
                b = self._ips.get((ip, d))
                if b is None:
                    b = self._ips[(ip, d)] = TokenBucket(v[d])
                out[d].append(b)
        return tuple(out[0]), tuple(out[1])

    def wrap(self, conn, host):
        inb, outb = self.buckets(client_ip(host))
        if not inb and not outb:
            return conn
        return LimitedConn(conn, inb, outb)


# -- concurrent connections -------------------------------------------------------------------------

class Lease:
    """One admitted connection; ``release`` (idempotent) gives its slots back."""

    __slots__ = ("limiter", "keys")

    def __init__(self, limiter, keys):
        self.limiter, self.keys = limiter, keys

    def release(self):
        keys, self.keys = self.keys, ()
        if keys:
            self.limiter._release(keys)


class ConnLimiter:
    """A named ``climiters`` entry: ``$`` caps the service's concurrent connections, ``$$`` (or
    a matching IP/CIDR entry instead) each client IP's. Counts survive file reloads."""

    def __init__(self, name, source):
        self.name = name
        self.source = source
        self._counts = {}

    def acquire(self, host):
        """→ a Lease, or None when a limit is reached (the caller closes the connection)."""
        t = self.source.value()
        ip = client_ip(host)
        wanted = []
        if t.service is not None:
            wanted.append((SERVICE, t.service))
        per_ip = t.for_ip(ip)
        if per_ip is None:
            per_ip = t.default
        if per_ip is not None:
            wanted.append((ip if ip is not None else host, per_ip))
        for key, limit in wanted:
            if self._counts.get(key, 0) >= limit:
                return None
        keys = tuple(k for k, _ in wanted)
        for k in keys:
            self._counts[k] = self._counts.get(k, 0) + 1
        return Lease(self, keys)

    def _release(self, keys):
        for k in keys:
            n = self._counts.get(k, 0) - 1
            if n > 0:
                self._counts[k] = n
            else:
                self._counts.pop(k, None)

    def count(self, key=SERVICE):
        return self._counts.get(key, 0)


# -- request rate ----------------------------------------------------------------------------------

def _rate_bucket(r, clock):
    return TokenBucket(r, int(r) + 1, clock)   # GOST's burst: one second of requests, plus one


class RateLimiter:
    """A named ``rlimiters`` entry: requests per second for the service (``$``) and per client
    IP (``$$``, or a matching IP/CIDR entry instead). ``allow`` is checked at handler start; a
    refused request spends nothing."""

    #: per-IP buckets kept before idle (full) ones are dropped
    MAX_IPS = 4096

    def __init__(self, name, source, clock=None):
        self.name = name
        self.source = source
        self.clock = clock
        self._table = None
        self._service = None
        self._ips = {}

    def allow(self, host):
        t = self.source.value()
        if t is not self._table:
            self._table = t
            self._service = _rate_bucket(t.service, self.clock) if t.service else None
            self._ips = {}
        ip = client_ip(host)
        key = ip if ip is not None else host
        buckets = []
        if self._service is not None:
            buckets.append(self._service)
        b = self._ips.get(key)
        if b is None:
            r = t.for_ip(ip)
            if r is None:
                r = t.default
            if r is not None:
                if len(self._ips) >= self.MAX_IPS:
                    self._prune()
                b = self._ips[key] = _rate_bucket(r, self.clock)
        if b is not None:
            buckets.append(b)
        if any(x.available() < 1 for x in buckets):
            return False
        for x in buckets:
            x.take(1)
        return True

    def _prune(self):
        # a full bucket is the same as a fresh one: forgetting it changes nothing
        self._ips = {k: b for k, b in self._ips.items() if not b.full()}


# -- building ----------------------------------------------------------------------------------------

KINDS = {
    "limiters": (TrafficLimiter, parse_traffic_line, parse_traffic),
    "climiters": (ConnLimiter, parse_count_line, parse_counts),
    "rlimiters": (RateLimiter, parse_rate_line, parse_rates),
}


def build(kind, name, items=(), file="", reload=0.0, log=None):
    """A limiter of ``kind`` from inline lines plus ``file`` (re-read every ``reload``
    seconds when it changed). Raises ValueError for a bad line or an unreadable file."""
    cls, _, parse = KINDS[kind]
    return cls(name, LineSource(items, file=file, reload=reload, parse=parse, name=name, log=log))
