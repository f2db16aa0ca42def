"""Ingress: host name → service endpoint (GOST x/ingress), the inline-rules part only.

Stand-in at the seam the ``objects`` helper owns (its module replaces this one; same
constructor ``Ingress(name, rules=[(hostname, endpoint), …])`` and calls): the tunnel handler
builds one from its ``tunnel`` metadata shorthand and calls ``get_rule``/``set_rule``.

Rules (GOST's localIngress):
1. A rule's hostname ``*.x.y`` is stored as ``.x.y``; rules without hostname or endpoint are
   dropped; a later rule for the same hostname wins.
2. ``get_rule(host)`` strips a port, then tries the exact name, ``.``+name, then each parent
   suffix ``.y.z``, ``.z`` in turn: ``.example.com`` covers example.com and every subdomain.
3. ``set_rule`` is refused (False) by a local ingress, as GOST's.
"""
from collections import namedtuple

from ..protocols.addr import split_host_port

Rule = namedtuple("Rule", "hostname endpoint")


class Ingress:
    def __init__(self, name, rules=(), log=None, **_sources):
        self.name = name
        self.rules = {}
        for hostname, endpoint in rules:
            if not hostname or not endpoint:
                continue
            host = hostname[1:] if hostname.startswith("*") else hostname
            self.rules[host] = Rule(hostname, endpoint)

    def get_rule(self, host):
        if not host:
            return None
        try:
            name, _ = split_host_port(host, 0)
        except Exception:
            name = host
        name = name or host
        rule = self.rules.get(name) or self.rules.get("." + name)
        s = name
        while rule is None:
            i = s.find(".")
            if i <= 0:
                break
            rule = self.rules.get(s[i:])
            s = s[i + 1:]
        return rule

    def set_rule(self, rule):
        return False

    def close(self):
        pass

