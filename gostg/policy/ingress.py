"""Ingresses (GOST ``ingresses``): host name → endpoint rules.

STAND-IN on branch i16b-tun: inline ``rules`` only. The ``objects`` helper owns this module;
the merge keeps theirs. Seam: ``get_rule(host)`` → Rule (``.hostname``, ``.endpoint``) or None,
GOST's lookup: the exact name, then ``.parent`` wildcards walking up (``.example.com`` matches
``a.example.com`` and ``a.b.example.com``; ``*.example.com`` is read as ``.example.com``).
"""
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Rule:
    hostname: str
    endpoint: str


class Ingress:
    def __init__(self, name, rules):
        self.name = name
        self.rules = {}
        for r in rules:
            host = r.hostname[1:] if r.hostname.startswith("*.") else r.hostname
            self.rules.setdefault(host.lower(), r)

    def get_rule(self, host, service=""):
        if not host:
            return None
        host = host.lower()
        r = self.rules.get(host)
        if r is not None:
            return r
        parts = host.split(".")
        for i in range(1, len(parts)):
            r = self.rules.get("." + ".".join(parts[i:]))
            if r is not None:
                return r
        return None

    def set_rule(self, rule, service=""):
        return False

    def close(self):
        pass


def build_ingress(o, path, registries=None):
    rules = []
    for i, r in enumerate(o.get("rules") or []):
        if not isinstance(r, dict):
            raise ConfigError(f"{path}.rules[{i}]", "must be a mapping (hostname, endpoint)")
        host, ep = str(r.get("hostname") or "").strip(), str(r.get("endpoint") or "").strip()
        if host and ep:
            rules.append(Rule(host, ep))
    return Ingress(o.get("name", ""), rules)
