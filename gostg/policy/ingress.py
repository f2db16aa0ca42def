"""Ingress: host name → service endpoint (GOST x/ingress), the inline-rules part only.

Stand-in at the seam the ``objects`` helper owns (its module replaces this one): the tunnel
handler builds one from its ``tunnel`` metadata shorthand and calls ``get_rule``/``set_rule``.

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
    def __init__(self, rules=(), name="@internal"):
        self.name = name
        self.rules = {}
        for r in rules:
            if not r.hostname or not r.endpoint:
                continue
            host = r.hostname[1:] if r.hostname.startswith("*") else r.hostname
            self.rules[host] = r

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


def from_shorthand(text):
    """The handler's ``tunnel`` metadata: ``host:endpoint,host:endpoint`` (GOST splits each at
    its first ``:``; items without one are skipped) → an Ingress, or None when no rule."""
    rules = []
    for item in (text or "").split(","):
        host, sep, endpoint = item.partition(":")
        if sep:
            rules.append(Rule(host, endpoint))
    return Ingress(rules) if rules else None
