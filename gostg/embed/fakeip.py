"""Fake-ip: name lookups answered with addresses from a reserved block, mapped back to the
name on connect, so the name travels to the chain's last node (remote resolution, like
``socks5h``) even for a library that calls ``getaddrinfo`` before ``connect`` (urllib3 2.x).
Pure: no sockets, no gevent.

Rules of a :class:`FakeIPPool`:
1. A name keeps its address while it is in use: asking again (``allocate``) or connecting to
   it (``lookup``) returns the same one and counts as a use.
2. An address is lent to one name at a time, and never to another name less than ``hold``
   seconds after its last use: a program that got it a moment ago still reaches that name.
3. New addresses are handed out in order while the block lasts; then the least recently
   used one is taken back (rule 2 allowing). When every address was used within ``hold``
   seconds, ``allocate`` raises :class:`PoolExhausted`: the caller fails the lookup (it never
   falls back to a real lookup, which would leak the name to the local resolver).
4. The block's first and last addresses are never lent (network and broadcast for IPv4).

The blocks (:data:`V4`, :data:`V6`) are both IANA "benchmarking" ranges, reserved so that no
real destination lives there: 198.18.0.0/15 (RFC 2544, what Clash-style fake-ip uses) and its
IPv6 counterpart 2001:2::/48 (RFC 5180). A unique-local block (fc00::/7) is used by real
private networks (offices, Docker, Kubernetes) and 64:ff9b:1::/48 (RFC 8215) is a NAT64
prefix that sites deploy; a fake address there could shadow a real one.
"""
import collections
import ipaddress
import threading
import time
from typing import Callable, Optional, Union

__all__ = ["FakeIP", "FakeIPPool", "PoolExhausted", "V4", "V6"]

#: default IPv4 block (RFC 2544 benchmarking, 131070 usable addresses)
V4 = "198.18.0.0/15"
#: default IPv6 block (RFC 5180 benchmarking)
V6 = "2001:2::/48"

Address = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]


class PoolExhausted(LookupError):
    """Every address of the block was used within ``hold`` seconds (rule 3)."""


class FakeIPPool:
    """Addresses of one block lent to names (rules above).

    >>> p = FakeIPPool("198.18.0.0/30", hold=0)
    >>> p.allocate("example.com"), p.lookup("198.18.0.1")
    ('198.18.0.1', 'example.com')
    """

    def __init__(self, network: str, hold: float = 600.0, clock: Callable[[], float] = time.monotonic):
        self.network = ipaddress.ip_network(network)
        if self.network.num_addresses < 3:
            raise ValueError(f"fake-ip block {network} is too small (it needs an address besides its first and last)")
        #: seconds an address stays with its name after its last use (rule 2)
        self.hold = float(hold)
        self.clock = clock
        self._first = int(self.network.network_address) + 1
        #: addresses that can be lent (rule 4)
        self.size = self.network.num_addresses - 2
        self._fresh = 0                       # offsets below this were lent at least once
        self._by_name = {}                    # name → offset
        # offset → [name, last use], least recently used first
        self._by_offset = collections.OrderedDict()
        # getaddrinfo may be called from several OS threads of an unpatched app (thread mode)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, ip: Address) -> bool:
        return self._offset(ip) is not None

    def _offset(self, ip):
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if a.version != self.network.version:
            return None
        off = int(a) - self._first
        return off if 0 <= off < self.size else None

    def _address(self, off):
        return str(ipaddress.ip_address(self._first + off))

    def allocate(self, name: str) -> str:
        """The address lent to ``name`` (the same one while it is in use, rule 1)."""
        now = self.clock()
        with self._lock:
            off = self._by_name.get(name)
            if off is not None:
                self._by_offset[off][1] = now
                self._by_offset.move_to_end(off)
                return self._address(off)
            if self._fresh < self.size:
                off = self._fresh
                self._fresh += 1
            else:
                off, (old, used) = next(iter(self._by_offset.items()))
                if now - used < self.hold:
                    raise PoolExhausted(f"fake-ip block {self.network}: all {self.size} addresses "
                                        f"used in the last {self.hold:g}s")
                del self._by_offset[off]
                del self._by_name[old]
            self._by_name[name] = off
            self._by_offset[off] = [name, now]
            return self._address(off)

    def lookup(self, ip: Address) -> Optional[str]:
        """The name ``ip`` is lent to, or None (not in the block, or not lent)."""
        off = self._offset(ip)
        if off is None:
            return None
        with self._lock:
            entry = self._by_offset.get(off)
            if entry is None:
                return None
            entry[1] = self.clock()
            self._by_offset.move_to_end(off)
            return entry[0]


class FakeIP:
    """An IPv4 and an IPv6 pool for the same names."""

    def __init__(self, v4: str = V4, v6: str = V6, hold: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.v4 = FakeIPPool(v4, hold, clock)
        self.v6 = FakeIPPool(v6, hold, clock)
        if self.v4.network.version != 4 or self.v6.network.version != 6:
            raise ValueError("fake-ip: v4 must be an IPv4 block and v6 an IPv6 block")

    def allocate(self, name: str, version: int = 4) -> str:
        """A fake address of IP ``version`` (4 or 6) for ``name``."""
        return (self.v6 if version == 6 else self.v4).allocate(name)

    def is_fake(self, ip: Address) -> bool:
        """Is ``ip`` in one of the two blocks (lent now or not)?"""
        return ip in self.v4 or ip in self.v6

    def lookup(self, ip: Address) -> Optional[str]:
        """The name behind a fake address, or None."""
        return self.v4.lookup(ip) if ip in self.v4 else self.v6.lookup(ip)
