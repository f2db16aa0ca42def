"""Bypass: does a target skip this service / hop / node? (GOST x/bypass, spec §6.1)

Rules of one bypass (GOST ``localBypass.decide``):
1. an empty address never bypasses;
2. ``network`` set and not the connection's network → the bypass is inactive (no bypass);
3. no rules at all → blacklist with a ``network`` bypasses that whole network, anything else
   bypasses nothing (an empty whitelist does not bypass everything: GOST keeps it inert);
4. otherwise blacklist: a match bypasses; whitelist: *no* match bypasses.

A group (``bypasses: [...]``, or ``bypass`` plus ``bypasses``) bypasses when it has whitelist
members and every one of them bypasses (AND); failing that, when any blacklist member bypasses
(OR). What "bypass" means is the caller's: the service refuses, a hop cuts the chain before
itself (hop 0 → direct), a node is left out of selection.

Rules come from ``matchers`` plus an optional ``file`` re-read every ``reload`` (LineSource,
lazily, on use) and ``redis`` (a SET) / ``http`` sources (:mod:`gostg.loader.source`); the
matcher is rebuilt only when the items changed. A redis/http source that has never been read
(down since start) makes the bypass raise UnreadSource (a MissingReference): its rules are
unknown, so the connection is refused — a hop's bypass does not send it direct. A ``plugin``
bypass is :class:`gostg.plugin.consumers.PluginBypass`.
"""
from .group import LateGroup, UnreadSource, lookup
from .matcher import Matcher
from .source import LineSource

__all__ = ["Bypass", "BypassGroup", "Matcher", "bypass_hit", "group_contains", "norm_network"]

_NETWORKS = {"tcp4": "tcp", "tcp6": "tcp", "udp4": "udp", "udp6": "udp"}


def norm_network(network):
    n = (network or "").strip().lower()
    return _NETWORKS.get(n, n)


def _matcher(lines):
    return Matcher(lines) if lines else None


class Bypass:
    def __init__(self, name, patterns=(), whitelist=False, network="", file="", reload=0.0, log=None,
                 sources=(), push=False):
        self.name = name
        self.whitelist = bool(whitelist)
        self.network = norm_network(network)
        self.source = LineSource([str(p).strip() for p in patterns if str(p).strip()], file=file,
                                 reload=reload, parse=_matcher, name=name, log=log, sources=sources, push=push)

    def close(self):
        self.source.close()

    @property
    def matcher(self):
        """The current rules (None when there are none); re-read from ``file`` when due."""
        return self.source.value()

    def contains(self, network, address=None, ctx=None):
        """``contains(network, address)`` as GOST; ``contains(address)`` means network tcp.
        ``ctx`` (the connection's Context) is for a plugin bypass; rules do not need it."""
        if address is None:
            network, address = "tcp", network
        if not address:
            return False
        if self.network and self.network != norm_network(network):
            return False
        m = self.source.value()
        if self.source.pending:
            raise UnreadSource("bypasses", self.name)   # rules unknown: refuse, never go direct
        if m is None:
            return bool(self.network) and not self.whitelist
        return m.match_address(address) != self.whitelist

    def __repr__(self):
        return f"Bypass({self.name!r}, whitelist={self.whitelist}, network={self.network!r})"


def group_contains(members, network, address, ctx=None):
    """GOST's bypassGroup: all whitelist members bypass (AND), else any blacklist one (OR)."""
    whites = [b for b in members if b.whitelist]
    if whites and all(b.contains(network, address, ctx) for b in whites):
        return True
    return any(b.contains(network, address, ctx) for b in members if not b.whitelist)


class BypassGroup(LateGroup):
    """``bypass`` + ``bypasses`` of a service, hop or node (GOST's AND/OR rule below)."""

    kind = "bypasses"
    whitelist = False

    def contains(self, network, address=None, ctx=None):
        if address is None:
            network, address = "tcp", network
        live = self._live()
        if len(live) == 1:
            return live[0].contains(network, address, ctx)
        return group_contains(live, network, address, ctx)


def bypass_hit(bypass, registries, network, address, ctx=None):
    """The check callers make: ``bypass`` is a BypassGroup, a Bypass, a bypass name (looked
    up now) or None (no bypass). A name that does not resolve raises MissingReference."""
    if not bypass:
        return False
    if isinstance(bypass, str):
        bypass = lookup(registries, "bypasses", bypass)   # missing: MissingReference, never "no bypass"
    elif not address and isinstance(bypass, LateGroup):
        bypass.check()    # no address to judge (a forwarder's pick, an association): names must still resolve
    if not address:
        return False
    return bypass.contains(network, address, ctx)
