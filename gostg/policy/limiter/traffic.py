"""Traffic limiters (``limiters``): bytes per second in and out, shaped per connection
(rules 3 and 4 of the package docstring)."""
import math
import re
import weakref

import gevent
from gevent import socket, ssl

from .bucket import TokenBucket
from .common import DEFAULT, Sourced, client_ip, split_line, table_parser

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


def parse_traffic_line(line):
    """``"$ 100MB 200MB"`` → ``("$", (in, out))``; None for a blank/comment line."""
    r = split_line(line, 2, "<scope> <in> [<out>]")
    if r is None:
        return None
    scope, vals = r
    return scope, (parse_bytes(vals[0]), parse_bytes(vals[1]) if len(vals) > 1 else 0)


def _share(scope, rates, workers):
    """``$$`` limits each connection, which lives in one worker: kept whole. ``$`` and the IP
    entries limit what many connections (on every worker) carry together: split."""
    if scope == DEFAULT:
        return rates
    return tuple(-(-r // workers) if r > 0 else r for r in rates)


parse_traffic = table_parser(parse_traffic_line, _share)

#: the sleep of shaping (a module global so tests can fake time)
_sleep = gevent.sleep


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


class TrafficLimiter(Sourced):
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
                self._service[d] = self._service_bucket(d, rate)
        for (ip, d), b in list(self._ips.items()):
            v = t.for_ip(ip)
            b.set_rate(v[d] if v else 0)

    def _service_bucket(self, d, rate):
        """The ``$`` bucket of direction ``d`` (0 in, 1 out): local here, leased from Redis in
        the shared form."""
        return TokenBucket(rate)

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

    def wrap(self, conn, host, ctx=None, scope="service"):
        """``ctx`` and ``scope`` are for a plugin limiter; this one limits by ``host`` (the
        client IP) whatever the scope (a handler ``limiter`` too)."""
        inb, outb = self.buckets(client_ip(host))
        if not inb and not outb:
            return conn
        return LimitedConn(conn, inb, outb)
