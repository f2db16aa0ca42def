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
5. Later lines win over earlier ones for the same scope (inline ``limits``, then ``file``,
   ``redis`` (a SET or LIST), ``http``).

Modules: ``common`` (scopes, tables, the line format), ``bucket`` (the token bucket),
``traffic``, ``conn``, ``rate`` (one limiter kind each). The names below are the package's API.
"""
from ..source import LineSource
from .bucket import BURST_SECONDS, MIN_BURST, TokenBucket, traffic_burst
from .common import DEFAULT, SERVICE, Table, client_ip, parse_scope
from .conn import ConnLimiter, Lease, parse_count_line, parse_counts
from .rate import RateLimiter, parse_rate_line, parse_rates
from .traffic import LimitedConn, TrafficLimiter, chunk, parse_bytes, parse_traffic, parse_traffic_line, pay

__all__ = [
    "BURST_SECONDS", "DEFAULT", "KINDS", "MIN_BURST", "SERVICE", "ConnLimiter", "Lease", "LimitedConn",
    "RateLimiter", "Table", "TokenBucket", "TrafficLimiter", "build", "chunk", "client_ip", "parse_bytes",
    "parse_count_line", "parse_counts", "parse_rate_line", "parse_rates", "parse_scope", "parse_traffic",
    "parse_traffic_line", "pay", "traffic_burst",
]

KINDS = {
    "limiters": (TrafficLimiter, parse_traffic_line, parse_traffic),
    "climiters": (ConnLimiter, parse_count_line, parse_counts),
    "rlimiters": (RateLimiter, parse_rate_line, parse_rates),
}


def build(kind, name, items=(), file="", reload=0.0, log=None, sources=(), push=False, split=True):
    """A limiter of ``kind`` from inline lines plus ``file``, ``redis``, ``http`` sources
    (re-read every ``reload``). Raises ValueError for a bad line or an unreadable file.
    ``split``: with several worker processes, each enforces its share of the limits
    (common.workers); False keeps them whole (counts shared by every worker, in Redis)."""
    cls, _, parse = KINDS[kind]
    return cls(name, LineSource(items, file=file, reload=reload, parse=parse if split else parse.whole,
                                name=name, log=log, sources=sources, push=push))
