"""The Router: the one place that decides how a handler reaches a target.

For ``retries + 1`` attempts, each bounded by ``dial_timeout``:
hosts mapping → resolver → (else keep the name: the last hop resolves it) → chain route
(late-bound by name) → direct dial when the route is empty.

Fail closed: a chain, hop, bypass, resolver or hosts name that does not resolve fails the dial
with MissingReference (no retries: waiting does not create it); it never means "direct" or
"no bypass". A chain whose hops all bypass the target is still direct, as in GOST.
"""
import errno
import os
import time

import gevent
from gevent import socket

from .._compat import raw_socket
from ..errors import BypassError, DialError
from ..policy.bypass import bypass_hit
from ..policy.group import MissingReference, lookup
from ..protocols.addr import ip_family, join_host_port, split_host_port
from ..relay.udp import UDPSocket
from .sockopts import own_connect


def dial_tcp(addr, timeout, sockopts=None):
    """Open a TCP connection with Nagle off (GOST's Go sockets have TCP_NODELAY).
    IP literals skip getaddrinfo, which gevent runs on a thread pool. The caller bounds the
    whole dial (Router.dial's deadline), so no per-socket timeout is set here.
    ``sockopts`` (interface, so_mark, netns: :mod:`.sockopts`) is None on the common path."""
    host, port = split_host_port(addr)
    if not host:   # ":8000": Go dials the local system
        host = "127.0.0.1"
    if sockopts is not None:
        s = sockopts.connect(host, port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    family = ip_family(host)
    if family is None:
        s = connect_tcp(host, port, timeout)
        s.settimeout(None)
    else:
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            _connect(s, (host, port))
        except BaseException:
            s.close()
            raise
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def connect_tcp(host, port, timeout):
    """``socket.create_connection((host, port), timeout)`` through gostg's own connect
    (``own_connect``): the socket keeps ``timeout``. Each address getaddrinfo gives is tried
    in turn; the last error is raised."""
    last = None
    for family, kind, proto, _, sa in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        s = socket.socket(family, kind, proto)
        try:
            s.settimeout(timeout)
            own_connect(s, sa)
            return s
        except OSError as exc:
            s.close()
            last = exc
    raise last if last is not None else OSError(f"getaddrinfo {host!r}: no address")


def _connect(s, sa):
    """``s.connect(sa)`` without the trip through the hub when the kernel has finished the
    handshake by the time the non-blocking connect returns (loopback, a host on this machine:
    the SYN-ACK is processed before the syscall returns): a second ``connect_ex`` says so.
    Otherwise gevent waits for writability as usual (bounded by the caller's deadline)."""
    raw = raw_socket(s)
    err = raw.connect_ex(sa)
    if err == errno.EINPROGRESS:
        err = raw.connect_ex(sa)
    if err in (0, errno.EISCONN):
        return
    if err not in (errno.EALREADY, errno.EINPROGRESS, errno.EWOULDBLOCK):   # what gevent waits on
        raise OSError(err, os.strerror(err))
    own_connect(s, sa)


class MissingTarget(DialError):
    """A dial without a target host reached no chain node to choose one (fail closed)."""


class Router:
    #: GOST's default per-attempt dial timeout
    DEFAULT_DIAL_TIMEOUT = 15.0
    #: the service's recorders (observe.records.ServiceRecorders) when it records dials
    recorders = None

    def __init__(self, registries, chain=None, resolver=None, hosts=None, bypass=None,
                 retries=0, dial_timeout=DEFAULT_DIAL_TIMEOUT, log=None, sockopts=None):
        self.registries = registries
        self.chain = chain            # names: looked up at each dial (late binding)
        self.resolver = resolver
        self.hosts = hosts
        self.bypass = bypass
        self.retries = max(0, retries)
        self.dial_timeout = dial_timeout or self.DEFAULT_DIAL_TIMEOUT
        self.log = log
        #: interface / so_mark / netns.out of the service: its direct dials only (as GOST;
        #: through a chain, hop 0's node settings apply)
        self.sockopts = sockopts

    def _map(self, host, ctx=None):
        """``ctx`` (the connection's) goes to a hosts or resolver plugin (its client ID)."""
        if self.hosts:
            ips = lookup(self.registries, "hosts", self.hosts).lookup(host, ctx=ctx)
            if ips:
                return ips[0]
        if self.resolver:
            return lookup(self.registries, "resolvers", self.resolver).resolve(host, ctx=ctx)[0]
        return host

    def _map_name(self, host):
        """A name through hosts and resolver, or None (direct UDP then asks the system).
        Per datagram: a failure is an OSError, which ends the association."""
        try:
            ip = self._map(host)
        except DialError as exc:
            raise OSError(str(exc)) from exc
        return ip if ip != host else None

    def check(self):
        """Raise MissingReference for the first name of this router that does not resolve
        (the chain, its hops, the bypasses, resolver, hosts)."""
        if self.hosts:
            lookup(self.registries, "hosts", self.hosts)
        if self.resolver:
            lookup(self.registries, "resolvers", self.resolver)
        bypass_hit(self.bypass, self.registries, "tcp", "")   # no address: only resolves the names
        if self.chain:
            self._chain()

    def _chain(self):
        return lookup(self.registries, "chains", self.chain)

    def bypassed(self, address, network="tcp"):
        """Does the service's bypass (group) refuse ``address`` for ``network``? A bypass
        that does not resolve refuses (per UDP datagram: dropped)."""
        try:
            return bypass_hit(self.bypass, self.registries, network, address)
        except MissingReference:
            return True

    def dial(self, network, address, ctx=None):
        """→ connected conn to ``address`` ("host:port"), or raises DialError.

        ``network="udp"`` returns a packet conn (gostg.udp); with an empty ``address`` it is
        an association whose datagrams each carry their own address (SOCKS5 UDP)."""
        rec = self.recorders
        if rec is None:
            return self._dial(network, address, ctx)
        route = [None]
        try:
            conn = self._dial(network, address, ctx, route)
        except BypassError:   # not dialled: GOST's handlers check bypass before the router
            raise
        except BaseException as exc:
            rec.dialed(address, ctx, exc, route[0], None, network)
            raise
        rec.dialed(address, ctx, None, route[0], conn, network)
        return conn

    def _dial_ip(self, address, ctx):
        """IP packets to ``address``, a host name a routing tunnel knows (``host-1``): only a
        chain's last node can take them (the router connector); no hosts, resolver or bypass
        apply to such a name, and there is no direct way (GOST's net.Dial("ip", …) fails too)."""
        with gevent.Timeout(self.dial_timeout, DialError(f"dial {address}/ip: timeout after {self.dial_timeout:g}s")):
            route = self._chain().route("ip", address, ctx) if self.chain else None
            if route is None or not route.nodes:
                raise DialError(f"dial {address}/ip: IP packets need a chain whose last node is a router",
                                target=address)
            if ctx is not None:
                ctx.route = [n.name for n in route.nodes]
                ctx.log.debug(f"route {route} > {address}/ip", dst=address)
            return route.dial("ip", address, ctx, self.dial_timeout)

    def _dial(self, network, address, ctx, taken=None):
        if network == "ip":
            return self._dial_ip(address, ctx)
        if address:
            if bypass_hit(self.bypass, self.registries, network, address, ctx):   # MissingReference passes up
                raise BypassError(f"{address} is bypassed")
        else:
            self.check()   # an association (no address yet): every name must resolve now
        # a target without a port is port 0, as Go's relay/tunnel ParseFrom takes it (a tunnel visitor
        # names an ingress host: -L tcp://:8000/srv.local); dialled directly it fails
        host, port = split_host_port(address, 0) if address else ("", 0)
        last = None
        for attempt in range(self.retries + 1):
            t0 = time.monotonic()
            try:
                with gevent.Timeout(self.dial_timeout, DialError(f"dial {address}: timeout after {self.dial_timeout:g}s")):
                    target = join_host_port(self._map(host, ctx), port) if host else address
                    chain = self._chain() if self.chain else None
                    route = chain.route(network, target, ctx) if chain is not None else None
                    if taken is not None:   # GOST's record route: "node@addr > … > target"
                        taken[0] = f"{route} > {target}" if route is not None and route.nodes else target
                    if route is None or not route.nodes:
                        if address and not host and not port:
                            # ":0" is a forwarder without a target of its own: only the last
                            # node of a chain can choose it; never dial this host's port 0
                            # (":8000" is this host's port 8000, as Go dials it)
                            raise MissingTarget(f"dial {address}: no target (only a chain's last node "
                                                f"can choose it, and no chain node was selected)")
                        if ctx is not None:
                            ctx.log.debug(f"route(retry={attempt}) {target}", dst=address)
                        if network == "udp":
                            sock = self.sockopts.packet_socket() if self.sockopts is not None else None
                            return UDPSocket(sock, resolve=self._map_name)
                        return dial_tcp(target, self.dial_timeout, self.sockopts)
                    if ctx is not None:
                        ctx.route = [n.name for n in route.nodes]   # the live-tunnel registry shows it
                        ctx.log.debug(f"route(retry={attempt}) {route} > {target}", dst=address)
                    return route.dial(network, target, ctx, self.dial_timeout)
            except (MissingReference, MissingTarget):
                raise
            except (OSError, DialError) as exc:
                last = exc
                if ctx is not None:
                    ctx.log.debug("dial failed", dst=address, attempt=attempt, error=str(exc),
                                  elapsed=round(time.monotonic() - t0, 3))
        if isinstance(last, DialError):
            # whoever raised it deep in a connector or dialer knew its text; the router knows
            # the target, and the cause is the exception it was raised from
            if last.target is None:
                last.target = address
            if last.cause is None:
                last.cause = last.__cause__
            raise last
        raise DialError(f"dial {address}: {last}", target=address, cause=last) from last
