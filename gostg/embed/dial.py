"""One connection of the host application, routed as a service routes it, handed back as a
socket: ``Gost.dial`` and ``Gost.create_connection``.

Rules:
1. :meth:`Egress.open` is the one place that calls the Router (a bypass match takes a direct
   Router, everything else the chain's); in thread mode an app thread has gostg's hub thread
   run it (:func:`open_socket`, ``Gost.hub.open_socket``) and gets a stdlib socket back.
2. Fail closed: a chain, bypass, hosts or resolver name that does not resolve is an error when
   the Egress is made and again at each connection; it never means "direct".
3. What comes back is a real socket: the tunnel's own when the route ends in a plain TCP
   socket (a direct dial, socks5/http/relay over tcp), with nothing read ahead; otherwise
   (TLS, WebSocket, mux hops, bytes read past the handshake) one end of a loopback TCP pair
   whose other end a greenlet relays to the tunnel. TCP and not ``socketpair()``: http.client
   sets TCP_NODELAY and fails on the EOPNOTSUPP an AF_UNIX socket gives.
4. Failures are :class:`RouteError`, an OSError (``ConnectionError``) *and* a GostgError,
   so libraries treat them as any failed connect; a timeout is ``socket.timeout``.
"""
import _socket
import errno
from typing import Any, Optional, Tuple, Union

import gevent
from gevent import socket

from ..core.context import Context
from ..core.router import Router
from ..errors import DialError, GostgError
from ..policy.bypass import bypass_hit
from ..protocols.addr import join_host_port, split_host_port
from ..transport.buffered import BufferedConn

__all__ = ["Egress", "RouteError", "dial", "create_connection", "connected", "open_socket", "to_socket",
           "loopback_pair"]

#: ``(host, port)`` or ``"host:port"``
Address = Union[Tuple[str, int], str]


class RouteError(ConnectionError, GostgError):
    """A routed connection could not be made; the Router's error is ``__cause__``."""


def split_address(address: Address) -> Tuple[str, int]:
    """``("h", 80)``, ``("::1", 80, 0, 0)`` or ``"h:80"`` / ``"[::1]:80"`` → ``(host, port)``."""
    if isinstance(address, str):
        host, port = split_host_port(address)
    else:
        host, port = address[0], address[1]
    if isinstance(host, bytes):
        host = host.decode("ascii")
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"bad port in {address!r}")
    return host, port


class Egress:
    """How the application's connections leave: through ``chain`` of ``gost``, except the
    destinations ``bypass`` matches, which go direct (as a hop's bypass does). ``hosts`` and
    ``resolver`` name objects of ``gost`` and apply to both; ``retries`` and ``dial_timeout``
    (seconds per attempt, GOST's 15 by default) are the Router's. All names are looked up at
    every connection (a Web API change applies to the next one)."""

    def __init__(self, gost, chain: Optional[str] = None, *, bypass: Optional[str] = None,
                 hosts: Optional[str] = None, resolver: Optional[str] = None, retries: int = 0,
                 dial_timeout: Optional[float] = None):
        if getattr(gost, "hub", None) is None:   # thread mode: start() built them in its hub
            gost.ensure_objects()
        self.gost = gost
        self.registries = gost.registries
        self.chain = chain
        self.bypass = bypass
        kw = dict(resolver=resolver, hosts=hosts, retries=retries, log=gost.log,
                  dial_timeout=dial_timeout or Router.DEFAULT_DIAL_TIMEOUT)
        self.routed = Router(self.registries, chain=chain, **kw)
        self.direct = Router(self.registries, **kw)
        self.check()

    def check(self) -> None:
        """Raise MissingReference (a DialError) for a name that does not resolve now."""
        self.routed.check()
        bypass_hit(self.bypass, self.registries, "tcp", "")

    def bypassed(self, address: str) -> bool:
        """Does ``address`` ("host:port", or a bare host) go direct? A bypass name that does
        not resolve raises MissingReference (rule 2)."""
        return bool(self.bypass) and bypass_hit(self.bypass, self.registries, "tcp", address)

    def node_hosts(self) -> set:
        """Hosts of every chain node of ``gost`` (lower case): never routed, never faked."""
        out = set()
        hops = [h for _, c in self.registries.chains.items() for h in c.hops]
        hops += [h for _, h in self.registries.hops.items()]
        for h in hops:
            hop = self.registries.hops.get(h) if isinstance(h, str) else h
            for node in getattr(hop, "nodes", None) or ():
                if node.addr:
                    try:
                        out.add(split_host_port(node.addr)[0].lower())
                    except GostgError:
                        pass
        return out

    def open(self, host: str, port: int, timeout: Optional[float] = None) -> Any:
        """→ a gostg conn to ``host:port`` (rule 1); ``timeout`` bounds the whole dial
        (retries included) on top of the Router's per-attempt ``dial_timeout``."""
        address = join_host_port(host, port)
        ctx = Context("embed", "", "", self.gost.log)
        ctx.target = address
        router = self.routed
        try:
            if self.bypassed(address):
                router = self.direct
            if timeout is None:
                return router.dial("tcp", address, ctx)
            with gevent.Timeout(timeout, socket.timeout("timed out")):
                return router.dial("tcp", address, ctx)
        except DialError as exc:
            via = f" via chain {self.chain!r}" if self.chain and router is self.routed else ""
            raise RouteError(errno.ECONNREFUSED, f"route to {address}{via}: {exc}") from exc


def loopback_pair() -> Tuple[_socket.socket, socket.socket]:
    """→ ``(outer, inner)``: two ends of a TCP connection on 127.0.0.1. ``outer`` is a
    blocking stdlib C socket no gevent watcher has seen (it may be ``dup2``-ed onto an app's
    fd, or detached into any socket object); ``inner`` is a gevent socket. The accepted
    connection is checked to be ours (another local process could race for the port)."""
    lst = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    outer = None
    try:
        lst.bind(("127.0.0.1", 0))
        lst.listen(8)
        lst.settimeout(5.0)    # ours is queued once connect returns: accept does not wait
        outer = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        outer.connect(lst.getsockname())
        mine = outer.getsockname()
        for _ in range(8):
            fd, peer = lst._accept()
            if peer == mine:
                inner = socket.socket(fileno=fd)
                break
            _socket.socket(fileno=fd).close()
        else:
            raise OSError(errno.ECONNABORTED, "loopback pair: our connection was not accepted")
        for s in (outer, inner):
            s.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        return outer, inner
    except BaseException:
        if outer is not None:
            outer.close()
        raise
    finally:
        lst.close()


def plain(conn: Any) -> bool:
    """Is ``conn`` a gevent TCP socket with nothing read ahead (rule 3)?"""
    if type(conn) is BufferedConn and not conn.pending:
        conn = conn.sock
    return type(conn) is socket.socket


def hub_thread(gost) -> Any:
    """gostg's hub thread when ``gost`` runs in thread mode and this is another thread (the
    app's), else None (``Gost.hub``: the thread-mode part; absent before it merges)."""
    hub = getattr(gost, "hub", None)
    return hub if hub is not None and not hub.is_current() else None


def relay_pair(conn: Any, gost: Any = None) -> _socket.socket:
    """→ the outer end of a :func:`loopback_pair` whose inner end a greenlet relays to
    ``conn`` until either side ends (both are closed then). The greenlet joins
    ``gost.relays`` when there is one (Gost.stop ends them)."""
    from ..relay.tcp import pipe

    try:
        outer, inner = loopback_pair()
    except BaseException:
        conn.close()
        raise
    relays = getattr(gost, "relays", None)
    (relays if relays is not None else gevent).spawn(pipe, inner, conn)
    return outer


def to_socket(conn: Any, gost: Any = None) -> socket.socket:
    """The conn :meth:`Egress.open` returned, as a gevent socket (rule 3)."""
    if plain(conn):
        return conn.sock if type(conn) is BufferedConn else conn
    outer = relay_pair(conn, gost)
    return socket.socket(fileno=outer.detach())


def open_socket(egress: Egress, host: str, port: int, timeout: Optional[float]) -> Any:
    """A socket connected through ``egress`` that keeps ``timeout``: a gevent one in the hub
    (a gevent-patched app), a stdlib one handed over by gostg's hub thread in thread mode."""
    gost = egress.gost
    hub = hub_thread(gost)
    if hub is not None:
        return hub.open_socket(lambda: to_socket(egress.open(host, port, timeout), gost), timeout=timeout)
    # Gost.call (thread mode's part, when merged): runs it here in a gevent app; an unpatched
    # app outside thread mode (not started, or stopped) gets NotPatchedError / HubStopped
    # instead of a private hub in its own thread, whose relays would never run
    call = getattr(gost, "call", None)
    make = lambda: to_socket(egress.open(host, port, timeout), gost)   # noqa: E731
    s = call(make) if call is not None else make()
    s.settimeout(timeout)
    return s


def dial(gost, address: Address, chain: Optional[str] = None, *, timeout: Optional[float] = None,
         bypass: Optional[str] = None, hosts: Optional[str] = None, resolver: Optional[str] = None,
         retries: int = 0) -> socket.socket:
    """``Gost.dial``: a socket connected to ``address``; ``timeout`` bounds the dial and
    stays on the socket, as :func:`socket.create_connection` does. See :class:`Egress`."""
    host, port = split_address(address)
    egress = Egress(gost, chain, bypass=bypass, hosts=hosts, resolver=resolver, retries=retries)
    return open_socket(egress, host, port, timeout)


_DEFAULT = getattr(socket, "_GLOBAL_DEFAULT_TIMEOUT", object())


def connected(egress: Egress, host: str, port: int, timeout: Any = _DEFAULT,
              source_address: Any = None) -> socket.socket:
    """:func:`socket.create_connection` through ``egress``: the socket keeps ``timeout``
    (default ``socket.getdefaulttimeout()``). ``source_address`` cannot be honoured on a route
    (its first hop's dialer makes the socket: use that node's ``interface`` metadata) and is
    refused, never ignored."""
    if source_address and tuple(source_address)[:2] not in (("", 0), ("0.0.0.0", 0), ("::", 0)):
        raise ValueError("source_address: a routed connection leaves from its first hop's node "
                         "(set metadata.interface on that node)")
    if timeout is _DEFAULT:
        timeout = socket.getdefaulttimeout()
    return open_socket(egress, host, port, timeout)


def create_connection(gost, address: Address, timeout: Any = _DEFAULT, source_address: Any = None, *,
                      chain: Optional[str] = None, bypass: Optional[str] = None, hosts: Optional[str] = None,
                      resolver: Optional[str] = None, retries: int = 0) -> socket.socket:
    """``Gost.create_connection``: :func:`connected` with an :class:`Egress` made for it."""
    host, port = split_address(address)
    egress = Egress(gost, chain, bypass=bypass, hosts=hosts, resolver=resolver, retries=retries)
    return connected(egress, host, port, timeout, source_address)
