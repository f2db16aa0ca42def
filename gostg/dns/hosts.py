"""Static host mappings, consulted before any resolver (GOST ``hosts`` objects).

Rules (go-gost/x hosts/hosts.go, docs concepts/hosts.md):
1. The table is the inline ``mappings`` (ip, hostname, aliases) plus the lines of ``file``,
   ``redis`` (a SET or LIST) and ``http`` in /etc/hosts format (``ip name alias…``, ``#``
   starts a comment), re-read every ``reload``.
   File lines with fewer than two fields or a bad IP are skipped; an inline bad IP is a
   config error (it is caught when the object is built).
2. Lookup: the exact name, then ``.name``, then ``.parent`` entries from the nearest parent
   upward; ``.example.com`` thus covers example.com and every name under it.
3. A name may map to several IPs (v4 and v6, duplicates dropped); ``prefer`` orders them.
"""
import ipaddress

from ..policy.source import LineSource


def parse_hosts_lines(lines):
    """/etc/hosts lines → {name: [ip, …]} (names lower-cased, trailing dot dropped)."""
    table = {}
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            ip = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            ips = table.setdefault(name.lower().rstrip("."), [])
            if ip not in ips:
                ips.append(ip)
    return table


def mapping_lines(mappings):
    """``(hostname, ip)`` pairs → /etc/hosts lines, validating each IP (ValueError if bad)."""
    out = []
    for hostname, ip in mappings:
        ipaddress.ip_address(ip)
        out.append(f"{ip} {hostname}")
    return out


def order_ips(ips, prefer="ipv4", only=""):
    """``only`` (ipv4/ipv6) filters, ``prefer`` puts that family first."""
    v4 = [ip for ip in ips if ":" not in ip]
    v6 = [ip for ip in ips if ":" in ip]
    if only in ("ipv4", "ip4"):
        return v4
    if only in ("ipv6", "ip6"):
        return v6
    return v6 + v4 if prefer in ("ipv6", "ip6") else v4 + v6


class Hosts:
    def __init__(self, name, mappings=(), file="", reload=0.0, log=None, clock=None, lines=(), sources=(),
                 push=False):
        """``mappings``: (hostname, ip) pairs, checked; ``lines``: /etc/hosts lines, as a file's;
        ``sources``: redis/http fetchers (:mod:`gostg.loader.fetch`)."""
        self.name = name
        kw = {"clock": clock} if clock is not None else {}
        self.source = LineSource(mapping_lines(mappings) + list(lines), file=file, reload=reload,
                                  parse=parse_hosts_lines, name=name, log=log, sources=sources, push=push, **kw)

    def close(self):
        self.source.close()

    def _find(self, table, h):
        ips = table.get(h)
        if ips is None:
            ips = table.get("." + h)
        parts = h.split(".")
        i = 1
        while ips is None and i < len(parts):
            ips = table.get("." + ".".join(parts[i:]))
            i += 1
        return ips or []

    def lookup(self, host, prefer="ipv4", only="", ctx=None):
        """IPs for ``host``: exact name, then ``.domain`` entries of it and its parents;
        ``only`` (ipv4/ipv6) filters, ``prefer`` orders."""
        h = (host or "").lower().rstrip(".")
        if not h:
            return []
        return order_ips(self._find(self.source.value(), h), prefer, only)
