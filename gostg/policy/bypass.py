"""Bypass matching (first cut): exact domains, ``.domain``, ``*.glob``, IPs and CIDRs.

Blacklist (default): a match bypasses. Whitelist: no match bypasses. Names are never resolved
to match networks.
"""
import fnmatch
import ipaddress

from ..protocols.addr import split_host_port


class Matcher:
    def __init__(self, patterns):
        self.domains = set()
        self.suffixes = []
        self.globs = []
        self.nets = []
        for p in patterns:
            p = p.strip().lower()
            if not p:
                continue
            try:
                self.nets.append(ipaddress.ip_network(p, strict=False))
                continue
            except ValueError:
                pass
            if "*" in p or "?" in p:
                self.globs.append(p)
            elif p.startswith("."):
                self.suffixes.append(p)
            else:
                self.domains.add(p)

    def match(self, host):
        host = host.lower().rstrip(".")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None:
            return any(ip in n for n in self.nets) or host in self.domains
        if host in self.domains:
            return True
        for s in self.suffixes:
            if host == s[1:] or host.endswith(s):
                return True
        return any(fnmatch.fnmatchcase(host, g) for g in self.globs)


class Bypass:
    def __init__(self, name, patterns, whitelist=False):
        self.name = name
        self.whitelist = whitelist
        self.matcher = Matcher(patterns)

    def contains(self, address):
        try:
            host, _ = split_host_port(address, 0)
        except Exception:
            host = address
        hit = self.matcher.match(host)
        return not hit if self.whitelist else hit


class Admission:
    """Client-address filter: blacklist denies matches, whitelist admits only matches."""

    def __init__(self, name, patterns, whitelist=False):
        self.name = name
        self.whitelist = whitelist
        self.matcher = Matcher(patterns)

    def admit(self, address):
        host, _ = split_host_port(address, 0)
        hit = self.matcher.match(host)
        return hit if self.whitelist else not hit
