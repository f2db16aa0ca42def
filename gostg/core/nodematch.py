"""Which forwarder nodes may take a request (GOST hop.go: node filter, matcher, priority).

Rules:
1. A node with a ``matcher.rule`` is a candidate when the rule matches; its ``filter`` is then
   ignored (the rule takes precedence). Its priority is ``matcher.priority``, or the rule's
   length when that is 0, so the more specific rule wins.
2. Otherwise a node with a ``filter`` is a candidate when every part that is set matches:
   ``host`` (wildcards ``*.x.com``/``.x.com`` cover x.com and its subdomains; an unsniffed
   connection has no host, so such a node is never chosen for it), ``protocol`` (``http``,
   ``tls``, ``ssh`` as sniffed) and ``path`` (a prefix of the HTTP path). Priority 1, so a
   matching filter node wins over the fallbacks (GOST gives it 0 and round-robins between
   them, against its docs).
3. A node with neither is a candidate for everything: the fallback.
4. Among candidates (failed nodes left out unless all failed), one with a priority above all
   others wins outright unless it is a backup; otherwise each priority tier, highest first,
   goes to the hop's selector.
"""
from ..policy.rules import Request, host_matches, host_pattern, parse


class NodeMatch:
    __slots__ = ("rule", "host", "protocol", "path", "priority")

    def __init__(self, rule=None, host="", protocol="", path="", priority=0):
        self.rule = rule
        self.host = host_pattern(host) if host else ""
        self.protocol = protocol.lower()
        self.path = path
        self.priority = priority

    @classmethod
    def build(cls, rule="", priority=0, host="", protocol="", path=""):
        """→ NodeMatch or None (nothing to match on); ValueError for a bad rule."""
        rule = (rule or "").strip()
        if rule:
            return cls(parse(rule), priority=priority or len(rule))
        if host or protocol or path:
            # GOST ranks a filter node 0, like a node without one, and then round-robins a
            # request between the node whose filter it matched and the fallbacks; 1 lets the
            # match win, which is what the docs describe
            return cls(host=host, protocol=protocol, path=path, priority=priority or 1)
        return None

    def matches(self, req):
        if self.rule is not None:
            return self.rule.match(req)
        if self.host and not host_matches(self.host, req.host):
            return False
        if self.protocol and self.protocol != req.proto:
            return False
        return not self.path or req.path.startswith(self.path)


def priority(node):
    m = node.match
    return m.priority if m is not None else 0


def pick(selector, nodes, ctx, target, req):
    """Rule 1–4 over ``nodes`` (already past their bypasses) → a node or None."""
    if req is None:
        req = Request()
    cands = [n for n in nodes if n.match is None or n.match.matches(req)]
    if len(cands) <= 1:
        return cands[0] if cands else None
    alive = [n for n in cands if not selector.failed(n)]
    cands = alive or cands
    prios = sorted({priority(n) for n in cands}, reverse=True)
    if len(prios) == 1:
        return selector.select(cands, ctx, target)
    top = [n for n in cands if priority(n) == prios[0]]
    if prios[0] > 0 and len(top) == 1 and not top[0].backup:
        return top[0]
    has_primary = any(not n.backup for n in cands)
    for p in prios:
        tier = [n for n in cands if priority(n) == p]
        if has_primary and all(n.backup for n in tier):
            continue
        node = selector.select(tier, ctx, target)
        if node is not None:
            return node
    return None
