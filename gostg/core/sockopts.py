"""Where an outgoing socket leaves from: GOST's ``interface``, ``so_mark`` and ``netns``
(tutorials/multi-homed, tutorials/netns), for a service's direct dials and a node's dialer.

``interface`` is a comma-separated list tried in order; each entry is
- an IP address: the socket's source address (bind before connect); an entry of the other
  address family than the target is skipped, as GOST skips it;
- an interface name: SO_BINDTODEVICE (the kernel then picks a source address of that device).
  As GOST, the device is not forced for a target that is not a global unicast address
  (loopback, link-local, multicast): such a target is never reached through a device;
- with a trailing ``!`` (strict): when it fails, the later entries are not tried.

Fail closed, where GOST logs a warning and sends anyway: a refused SO_MARK or
SO_BINDTODEVICE (no CAP_NET_ADMIN / CAP_NET_RAW), an unknown device, an address that is not
ours, a namespace that cannot be entered fail the dial; nothing leaves from another address.

A target given as a name is resolved in the home namespace (gevent's resolver threads stay
there); GOST resolves it inside the ``netns``. Only dials that carry a :class:`SockOpts` come
here: the common path (none set) stays ``router.dial_tcp``'s plain socket.
"""
import errno
import ipaddress

from gevent import socket

from ..protocols.addr import ip_family
from . import netns

#: gevent's ``socket.connect`` as gostg found it when it loaded. gostg's own dials call this one,
#: so an embedding app's ``gostg.patch_socket`` (gostg/embed), which replaces
#: ``socket.socket.connect`` for the app, never routes them a second time: a chain's hops are
#: reached from here, and an in-process service keeps its own routes.
own_connect = socket.socket.connect

SO_MARK = getattr(socket, "SO_MARK", 36)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def global_unicast(ip):
    """Go's ``IP.IsGlobalUnicast`` (private ranges count): the targets GOST binds a device for."""
    a = ipaddress.ip_address(ip.split("%", 1)[0])
    return not (a.is_unspecified or a.is_loopback or a.is_link_local or a.is_multicast
                or a == ipaddress.IPv4Address("255.255.255.255"))


class Entry:
    """One item of an ``interface`` list."""

    __slots__ = ("value", "family", "strict")

    def __init__(self, text):
        self.strict = text.endswith("!")
        self.value = text[:-1] if self.strict else text
        self.family = ip_family(self.value)   # None: an interface name

    def fits(self, family):
        return self.family is None or self.family == family

    def apply(self, sock, dst_ip):
        try:
            if self.family is not None:
                sock.bind((self.value, 0))
            elif dst_ip is None or global_unicast(dst_ip):
                sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.value.encode())
        except OSError as exc:
            raise OSError(exc.errno, f"interface {self.value}: {exc.strerror or exc}") from None

    def __str__(self):
        return self.value + ("!" if self.strict else "")


class SockOpts:
    """Immutable outgoing-socket settings; build with :meth:`of` (None when nothing is set)."""

    __slots__ = ("interface", "entries", "mark", "netns")

    def __init__(self, interface="", mark=0, netns_name=""):
        self.interface = interface
        self.entries = tuple(Entry(x.strip()) for x in interface.split(",") if x.strip())
        self.mark = mark
        self.netns = netns_name

    @classmethod
    def of(cls, interface="", mark=0, netns_name=""):
        interface = str(interface or "").strip()
        mark = int(mark or 0)
        if not (interface or mark or netns_name):
            return None
        return cls(interface, mark, netns_name or "")

    def __repr__(self):
        parts = [f"interface={self.interface}"] if self.interface else []
        parts += [f"so_mark={self.mark}"] if self.mark else []
        parts += [f"netns={self.netns}"] if self.netns else []
        return "SockOpts(" + ", ".join(parts) + ")"

    # --- sockets ------------------------------------------------------------------------
    def new_socket(self, family, kind):
        """A socket in the namespace, marked (not yet bound to an interface)."""
        with netns.inside(self.netns):
            s = socket.socket(family, kind)
        if self.mark:
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_MARK, self.mark)
            except OSError as exc:
                s.close()
                hint = " (needs root: CAP_NET_ADMIN or CAP_NET_RAW)" if exc.errno == errno.EPERM else ""
                raise OSError(exc.errno, f"so_mark {self.mark}: {exc.strerror}{hint}") from None
        return s

    def _first(self, candidates, kind, none_fits):
        """The first socket that works of ``(entry, family, dst_ip, finish)`` candidates: made,
        marked, tied to the entry, then ``finish(sock)``; a strict entry's failure ends it."""
        last = None
        for entry, fam, dst, finish in candidates:
            s = self.new_socket(fam, kind)
            try:
                if entry is not None:
                    entry.apply(s, dst)
                finish(s)
                return s
            except OSError as exc:
                s.close()
                last = exc
                if entry is not None and entry.strict:
                    raise
        raise last if last is not None else OSError(errno.EAFNOSUPPORT, none_fits)

    def connect(self, host, port, kind=socket.SOCK_STREAM):
        """→ a socket connected to ``host:port`` from the first interface entry that works.
        Names are resolved here (in the home namespace: gevent's resolver threads stay there)."""
        fam = ip_family(host)
        if fam is not None:
            targets = [(fam, (host, port))]
        else:
            targets = [(i[0], i[4]) for i in socket.getaddrinfo(host, port, 0, kind)]
        return self._first(((e, fam, sa[0], lambda s, sa=sa: own_connect(s, sa))
                            for e in self.entries or (None,) for fam, sa in targets if e is None or e.fits(fam)),
                           kind, f"interface {self.interface}: no entry of the address family of {host}")

    def packet_socket(self):
        """An unconnected UDP socket (a direct UDP association) from the first entry that
        binds; dual-stack unless the entry is an IP address."""
        def dual_stack(s):
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))

        return self._first(((e, e.family if e is not None and e.family else socket.AF_INET6, None,
                             dual_stack if e is None or e.family is None else lambda s: None)
                            for e in self.entries or (None,)), socket.SOCK_DGRAM, "no usable interface")

    # --- start-up check -------------------------------------------------------------------
    def problems(self):
        """→ (errors, warnings), lists of (key, text), checked now: the namespace can be
        entered, SO_MARK is allowed, each interface entry exists there. A missing entry is an
        error when none exists, else a warning (a device may come up later: the list is tried
        again at each dial, as GOST does)."""
        try:
            netns.check(self.netns)
            self.new_socket(socket.AF_INET, socket.SOCK_DGRAM).close()
        except OSError as exc:
            return [("netns" if str(exc.strerror).startswith("network namespace") else "so_mark",
                     exc.strerror or str(exc))], []
        bad = []
        for entry in self.entries:
            try:
                with netns.inside(self.netns):
                    if entry.family is None:
                        socket.if_nametoindex(entry.value)
                    else:
                        probe = socket.socket(entry.family, socket.SOCK_DGRAM)
                if entry.family is not None:
                    try:
                        probe.bind((entry.value, 0))
                    finally:
                        probe.close()
            except (OSError, ValueError) as exc:
                what = "no such network interface" if entry.family is None else "not an address of this host"
                where = f" in network namespace {self.netns!r}" if self.netns else ""
                bad.append(("interface", f"interface {entry.value!r}: {what}{where} "
                                         f"({getattr(exc, 'strerror', None) or exc})"))
        if bad and len(bad) == len(self.entries):
            return bad, []
        return [], bad
