"""Resolver objects: dnspython builds and parses the messages; the queries go over gevent
sockets so a lookup never blocks the hub, whether or not the host app monkey-patched."""
import random
import time

import dns.message
import dns.rdatatype
from gevent import socket

from ..errors import ConfigError, DialError
from ..protocols.addr import split_host_port


class Nameserver:
    def __init__(self, addr, prefer="ipv4", timeout=5.0, ttl=0.0, only=""):
        proto = "udp"
        if "://" in addr:
            proto, addr = addr.split("://", 1)
        if proto not in ("udp", "tcp"):
            raise ConfigError("", f"nameserver protocol {proto!r} is not supported yet (udp, tcp)")
        self.proto = proto
        self.host, self.port = split_host_port(addr.rstrip("/"), 53)
        self.prefer = prefer or "ipv4"
        self.only = only
        self.timeout = timeout or 5.0
        self.ttl = ttl

    def _exchange(self, q):
        wire = q.to_wire()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if self.proto == "udp":
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                s.settimeout(self.timeout)
                s.sendto(wire, (self.host, self.port))
                while True:
                    data, _ = s.recvfrom(65535)
                    r = dns.message.from_wire(data)
                    if r.id == q.id:
                        return r
            finally:
                s.close()
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            s.sendall(len(wire).to_bytes(2, "big") + wire)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + int.from_bytes(buf[:2], "big"):
                chunk = s.recv(65535)
                if not chunk:
                    raise DialError("nameserver closed the TCP connection")
                buf += chunk
            return dns.message.from_wire(buf[2:2 + int.from_bytes(buf[:2], "big")])
        finally:
            s.close()

    def query(self, host, rdtype):
        q = dns.message.make_query(host, rdtype)
        q.id = random.randrange(65536)
        r = self._exchange(q)
        ips, ttl = [], None
        for rrset in r.answer:
            if rrset.rdtype == rdtype:
                ips.extend(rd.address for rd in rrset)
                ttl = rrset.ttl if ttl is None else min(ttl, rrset.ttl)
        return ips, (ttl or 0)


class Resolver:
    """Tries each nameserver in order until one returns addresses; caches answers per TTL
    (``ttl`` overrides the record TTL; a negative ``ttl`` disables the cache)."""

    def __init__(self, name, nameservers):
        self.name = name
        self.nameservers = nameservers
        self._cache = {}

    def resolve(self, host):
        now = time.monotonic()
        hit = self._cache.get(host)
        if hit and hit[1] > now:
            return hit[0]
        last = None
        for ns in self.nameservers:
            order = ["ipv6", "ipv4"] if ns.prefer == "ipv6" else ["ipv4", "ipv6"]
            if ns.only in ("ipv4", "ipv6"):
                order = [ns.only]
            for fam in order:
                try:
                    ips, ttl = ns.query(host, dns.rdatatype.AAAA if fam == "ipv6" else dns.rdatatype.A)
                except (OSError, dns.exception.DNSException) as exc:
                    last = exc
                    break
                if ips:
                    if ns.ttl >= 0:
                        keep = ns.ttl if ns.ttl > 0 else ttl
                        self._cache[host] = (ips, now + keep)
                    return ips
        raise DialError(f"resolver {self.name}: no address for {host}" + (f" ({last})" if last else ""))
