"""The ``dns`` handler: a DNS proxy (go-gost/x handler/dns, docs tutorials/dns.md).

Per query, in GOST's order:
1. ``clientIP`` set: an EDNS Client Subnet option for it goes into the query.
2. The service's ``bypass`` (class IN only) refuses the name: an empty NOERROR answer.
3. The service's ``hosts`` answers A/AAAA for a mapped name itself (TTL 3600, as GOST).
4. The cache (one question only): a fresh entry is the answer; an expired one with ``async``
   is answered at once (TTL 1) while one background query refreshes it.
5. An upstream is picked from the forwarder's nodes (a node's bypass leaves it out for the
   name), else from metadata ``dns``, else /etc/resolv.conf, else ``udp://127.0.0.1:53``,
   and asked through the service's chain (``-F``), hosts and resolver. The answer is cached:
   ``ttl`` > 0 overrides record TTLs, 0 keeps them (60 s for an answer without any), < 0
   turns the cache off; only NOERROR and NXDOMAIN are cached.
Where gostg differs, and why:
- An upstream gostg cannot use (``quic://``, a bad address) is a config error naming its
  path; GOST logs it and silently uses the rest, or the system's resolver.
- An upstream that fails gives the client SERVFAIL at once, and its node is marked failed for
  the selector; GOST sends nothing, so the client waits for its own timeout.
- A query is sent upstream with a fresh random id (the client's is put back on the reply,
  which otherwise goes on as the upstream sent it), and a UDP reply larger than the client's
  EDNS size is truncated with TC set.
- Garbage, responses (QR set) and queries larger than ``bufferSize`` get no answer, with a
  log line; a message without a question gets FORMERR.
"""
import ipaddress
import random
import time

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from gevent.pool import Pool

from ..core.chain import Hop, Node
from ..core.registry import handlers
from ..core.router import Router
from ..core.selector import Selector
from ..dns import wire
from ..dns.cache import Cache
from ..dns.exchange import Nameserver
from ..errors import ConfigError, DialError, ProtocolError
from ..policy.bypass import bypass_hit
from ..policy.group import MissingReference, lookup, refused
from .base import Handler

#: GOST's last resort when no upstream is configured and /etc/resolv.conf names none
DEFAULT_NAMESERVER = "udp://127.0.0.1:53"
RESOLV_CONF = "/etc/resolv.conf"
#: TTL of answers made from the service's hosts (GOST's, from miekg/dns's default)
HOSTS_TTL = 3600
A, AAAA, IN = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdataclass.IN


def system_nameservers(path=RESOLV_CONF):
    """``nameserver`` IPs of a resolv.conf, as ``udp://ip:53`` addresses (GOST's fallback)."""
    out = []
    try:
        with open(path) as f:
            lines = f.read(1 << 16).splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                ip = ipaddress.ip_address(fields[1].split("%", 1)[0])
            except ValueError:
                continue
            out.append(f"udp://[{ip}]:53" if ip.version == 6 else f"udp://{ip}:53")
    return out


class CachedReply:
    """A cached upstream reply (never changed itself) and its latest rendering: queries in
    the same second, for the same name spelling, EDNS and size, reuse those bytes (but the
    id), so a busy name costs one rendering per second, not one per query."""

    __slots__ = ("msg", "memo", "rendered")

    def __init__(self, msg):
        self.msg, self.memo, self.rendered = msg, None, b""

    def render(self, q, ttl, limit):
        """Reply bytes for ``q``: the stored flags, rcode and records, answer TTLs ``ttl``
        (counting down, at least 1, as GOST)."""
        memo = (ttl, q.question[0].name.to_text(), q.edns, limit)
        if memo != self.memo:
            stored = self.msg
            r = dns.message.make_response(q)
            r.flags = stored.flags
            r.set_rcode(stored.rcode())
            for rrset in stored.answer:
                rs = rrset.copy()
                rs.ttl = ttl
                r.answer.append(rs)
            r.authority = list(stored.authority)
            r.additional = list(stored.additional)
            self.memo, self.rendered = memo, wire.reply_wire(r, limit)
        return self.rendered


@handlers.register("dns")
class DNSHandler(Handler):
    #: background refreshes (``async``) running at once; more are skipped, not queued
    MAX_REFRESHES = 16

    def __init__(self, md, options):
        super().__init__(md, options)
        self.ttl = md.duration("ttl")
        self.timeout = md.duration("timeout") or Nameserver.DEFAULT_TIMEOUT
        self.buffer_size = md.int("bufferSize") or 4096
        self.async_ = md.bool("async") and self.ttl >= 0
        self.client_ip = md.str("clientIP")
        if self.client_ip:
            try:
                self.client_ip = str(ipaddress.ip_address(self.client_ip))
            except ValueError:
                raise ConfigError("metadata.clientIP", f"{self.client_ip!r} is not an IP address") from None
        r = self.router
        # upstream dials: the service's chain, hosts and resolver; its bypass is for the
        # query names (step 2), not for the upstream's address
        self.upstream_router = Router(r.registries, chain=r.chain, resolver=r.resolver, hosts=r.hosts,
                                      retries=r.retries, dial_timeout=self.timeout, log=r.log)
        self.hop, self.nameservers = self._upstreams(md, options)
        self.cache = Cache()
        self._refreshing = set()
        self._pool = Pool(self.MAX_REFRESHES)

    def _upstreams(self, md, options):
        """→ (hop, {node: Nameserver}); every address is checked now (fail closed)."""
        fw = options.forwarder
        if fw is not None and fw.nodes:
            hop, where = fw, "forwarder.nodes[{}].addr"
        else:
            addrs = md.list("dns")
            where = "metadata.dns[{}]"
            if not addrs:
                addrs, where = system_nameservers() or [DEFAULT_NAMESERVER], "nameserver {}"
            # GOST: the first upstream that a bypass leaves in; fifo adds failover
            hop = Hop("", [Node(f"target-{i}", a, None, None) for i, a in enumerate(addrs)],
                      Selector("fifo"), registries=options.registries)
        nameservers = {}
        for i, node in enumerate(hop.nodes):
            try:
                nameservers[node] = Nameserver(node.addr.strip(), timeout=self.timeout, router=self.upstream_router)
            except ConfigError as exc:
                raise ConfigError(where.format(i), exc.msg) from None
        return hop, nameservers

    # -- serving -------------------------------------------------------------------------------
    def handle(self, conn, ctx):
        while True:
            data = conn.read_message()
            if data is None:
                return
            reply = self.answer(data, conn, ctx)
            if reply is None:
                conn.reject(400)
                return
            conn.write_message(reply)

    def answer(self, data, conn, ctx):
        """Query bytes → reply bytes, or None when the query gets no answer (logged)."""
        if len(data) > self.buffer_size:
            ctx.log.warning(f"dns: query of {len(data)} bytes is larger than bufferSize {self.buffer_size}: dropped")
            return None
        try:
            q = wire.parse_message(data)
        except ProtocolError as exc:
            ctx.log.warning(f"dns: {exc}: dropped")
            return None
        if not wire.is_query(q):
            ctx.log.warning("dns: a response where a query was expected: dropped")
            return None
        limit = conn.max_size or max(512, q.payload if q.edns >= 0 else 512)
        if not q.question:
            return wire.reply_wire(self._response(q, dns.rcode.FORMERR), limit)
        r, raw = self._resolve(q, ctx, limit)
        if raw is not None and len(raw) <= limit:
            return wire.with_id(raw, q.id)   # bytes made for an earlier query: no re-rendering
        return wire.reply_wire(r, limit)

    @staticmethod
    def _response(q, rcode=dns.rcode.NOERROR):
        r = dns.message.make_response(q)
        r.set_rcode(rcode)
        return r

    def _resolve(self, q, ctx, limit):
        """→ ``(reply, None)``, or ``(reply or None, bytes)`` when bytes made already (the
        upstream's own, or a cache entry's rendering) answer it but for the id."""
        question = q.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        qtype, qclass = question.rdtype, question.rdclass
        ctx.target = name
        log = ctx.log.bind(dst=name, type=dns.rdatatype.to_text(qtype))
        if self.client_ip:
            wire.set_client_subnet(q, self.client_ip)
        try:
            if qclass == IN and bypass_hit(self.router.bypass, self.router.registries, "udp", name):
                log.debug("dns: bypass: empty answer")
                return self._response(q), None
            r = self._from_hosts(q, name, qtype, qclass, log)
            if r is not None:
                return r, None
        except MissingReference as exc:
            refused(log, exc, service=ctx.service, client=ctx.client_ip)
            return self._response(q, dns.rcode.REFUSED), None
        key = (name, qclass, qtype) if len(q.question) == 1 and self.ttl >= 0 else None
        if key is not None:
            hit = self.cache.load(key)
            if hit is not None and (hit[1] > 0 or self.async_):
                if hit[1] <= 0:
                    self._refresh(q, name, key, log)
                log.debug("dns: cached answer", ttl=max(1, int(hit[1])))
                return None, hit[0].render(q, max(1, int(hit[1])), limit)
        return self._exchange(q, name, key, log, ctx)

    def _from_hosts(self, q, name, qtype, qclass, log):
        if not self.router.hosts or qclass != IN or qtype not in (A, AAAA):
            return None
        hosts = lookup(self.router.registries, "hosts", self.router.hosts)
        ips = hosts.lookup(name, only="ipv4" if qtype == A else "ipv6")
        if not ips:
            return None
        log.debug(f"dns: hosts: {name} -> {ips}")
        r = self._response(q)
        r.answer.append(dns.rrset.from_text_list(q.question[0].name, HOSTS_TTL, IN, qtype, ips))
        return r


    def _ask(self, q, name, key, ctx, log):
        """Ask the upstream picked for ``name``; → ``(reply, reply_bytes)`` (cached when it
        may be), or raises DialError/ProtocolError/MissingReference."""
        node = self.hop.select(ctx, name, "udp")
        if node is None:
            raise DialError(f"no upstream for {name}: every upstream's bypass leaves it out")
        ns = self.nameservers[node]
        qid, q.id = q.id, random.randrange(65536)
        t0 = time.monotonic()
        try:
            r, raw = ns.exchange_wire(q, ctx)
        except (DialError, ProtocolError, OSError) as exc:
            node.marker.mark(exc)
            raise
        finally:
            q.id = qid
        node.marker.reset()
        r.id = qid
        log.debug(f"dns: answer from {ns.addr}", rcode=dns.rcode.to_text(r.rcode()),
                  duration=round(time.monotonic() - t0, 6))
        if key is not None and wire.cacheable(r):
            self.cache.store(key, CachedReply(r), wire.message_ttl(r), self.ttl)
        return r, raw

    def _exchange(self, q, name, key, log, ctx):
        try:
            return self._ask(q, name, key, ctx, log)
        except MissingReference as exc:
            refused(log, exc, service=ctx.service, client=ctx.client_ip)
            return self._response(q, dns.rcode.REFUSED), None
        except (DialError, ProtocolError, OSError) as exc:
            log.error(f"dns: upstream failed: {exc}")
            return self._response(q, dns.rcode.SERVFAIL), None

    def _refresh(self, q, name, key, log):
        """``async``: one background query per name at a time, at most MAX_REFRESHES."""
        if key in self._refreshing or self._pool.full():
            return
        self._refreshing.add(key)
        q = dns.message.from_wire(q.to_wire())   # the caller goes on with its own copy

        def run():
            try:
                self._ask(q, name, key, None, log)
            except Exception as exc:  # a failed refresh keeps the stale answer; say why
                log.warning(f"dns: async refresh failed: {exc}")
            finally:
                self._refreshing.discard(key)

        self._pool.spawn(run)

    def close(self):
        self._pool.kill(block=False)
