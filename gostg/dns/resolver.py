"""Resolver objects (GOST ``resolvers``): names to addresses through a list of nameservers.

Rules (go-gost/x resolver/resolver.go, docs concepts/resolver.md):
1. An IP literal resolves to itself, asking nobody.
2. Nameservers are asked in order until one returns addresses; a failing or empty one is
   logged and the next is asked. None answering is a DialError for the connection.
3. Per nameserver: ``prefer`` ipv4 (default) asks A then AAAA, ipv6 the reverse; ``only``
   asks one type and nothing else.
4. One cache per resolver (see cache.py), keyed by nameserver too: unlike GOST, an empty
   answer cached from the first nameserver does not stop the second from being asked.
   ``ttl`` > 0 overrides record TTLs, 0 keeps them, < 0 turns caching off for that nameserver.
5. ``async``: a cached answer is served even when expired, and the name is refreshed in the
   background — one refresh per name at a time, at most ``MAX_REFRESHES`` at once.
"""
import time

import dns.exception
import dns.rdatatype
from gevent.pool import Pool

from ..errors import DialError, ProtocolError
from ..protocols.addr import is_ip
from . import wire
from .cache import Cache
from .exchange import Nameserver

__all__ = ["Nameserver", "Resolver", "query_order"]

A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA


def query_order(ns):
    """Record types to ask ``ns`` for, in order."""
    if ns.only == "ipv4":
        return (A,)
    if ns.only == "ipv6":
        return (AAAA,)
    return (AAAA, A) if ns.prefer == "ipv6" else (A, AAAA)


class Resolver:
    #: background refreshes (``async``) running at once; more are skipped, not queued
    MAX_REFRESHES = 16

    def __init__(self, name, nameservers, log=None, clock=time.monotonic):
        self.name = name
        self.nameservers = list(nameservers)
        self.log = log.bind(kind="resolver", resolver=name) if log is not None else None
        self.cache = Cache(clock)
        self._refreshing = set()
        self._pool = Pool(self.MAX_REFRESHES)

    def resolve(self, host, ctx=None):
        """→ non-empty list of IP strings, or DialError (``ctx``: for a plugin resolver)."""
        if is_ip(host):
            return [host]
        name = host.rstrip(".").lower()
        errors = []
        for ns in self.nameservers:
            try:
                ips = self._resolve_async(ns, name) if ns.async_ else self._resolve(ns, name)
            except (DialError, ProtocolError, OSError, dns.exception.DNSException) as exc:
                errors.append(f"{ns}: {exc}")
                if self.log is not None:
                    self.log.warning(f"resolve {name} via {ns}: {exc}")
                continue
            if ips:
                if self.log is not None:
                    self.log.debug(f"resolve {name} via {ns}: {ips}")
                return ips
        why = f" ({'; '.join(errors)})" if errors else ""
        raise DialError(f"resolver {self.name}: domain {name} does not exist{why}")

    def _resolve(self, ns, name):
        """Ask ``ns`` (cache first) for each type in order; the first with addresses wins."""
        last_error = None
        for rdtype in query_order(ns):
            try:
                ips = self._query(ns, name, rdtype)
            except (DialError, ProtocolError, OSError) as exc:
                last_error = exc
                continue
            if ips:
                return ips
        if last_error is not None:
            raise last_error
        return []

    def _query(self, ns, name, rdtype, fresh=False):
        key = (ns, name, rdtype)
        if ns.ttl >= 0 and not fresh:
            hit = self.cache.load(key)
            if hit is not None and hit[1] > 0:
                return hit[0]
        reply = ns.query(name, rdtype)
        ips, record_ttl = wire.answer(reply, rdtype)
        if wire.cacheable(reply):
            self.cache.store(key, ips, record_ttl, ns.ttl)
        return ips

    def _cached(self, ns, name):
        """``(ips, seconds_left)`` from the cache in ``ns``'s type order, or None."""
        found = None
        for rdtype in query_order(ns):
            hit = self.cache.load((ns, name, rdtype))
            if hit is not None:
                found = hit
                if hit[0]:
                    return hit
        return found

    def _resolve_async(self, ns, name):
        hit = self._cached(ns, name)
        if hit is None:
            return self._resolve(ns, name)
        ips, left = hit
        if left <= 0:
            self._refresh(ns, name)
        return ips

    def _refresh(self, ns, name):
        key = (ns, name)
        if key in self._refreshing or self._pool.full():
            return
        self._refreshing.add(key)

        def run():
            try:
                for rdtype in query_order(ns):
                    if self._query(ns, name, rdtype, fresh=True):
                        break
            except Exception as exc:  # a failed refresh keeps the stale answer; say why
                if self.log is not None:
                    self.log.warning(f"async refresh of {name} via {ns}: {exc}")
            finally:
                self._refreshing.discard(key)

        self._pool.spawn(run)

    def close(self):
        self._pool.kill(block=False)
