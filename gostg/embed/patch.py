"""Route the whole application: ``patch_socket`` / ``restore_socket`` / ``routed``.

While patched, every TCP connect of the process goes through :meth:`Egress.open`:
``socket.create_connection``, and ``connect`` / ``connect_ex`` of the ``socket.socket`` class
(gevent's, in an app that called ``monkey.patch_all()`` first), IPv4 and IPv6, whatever
library calls them. Name lookups (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``)
of names that will be routed are answered from the fake-ip blocks (:mod:`.fakeip`) and the
address is mapped back to the name on connect: names reach the chain's last node and no
query leaves this host.

Rules (a connect or a lookup of ``host``):
1. Left alone (the original function, with the original arguments): another family or
   socket type than TCP over IPv4/IPv6; loopback, unspecified and link-local addresses,
   ``localhost`` names;
   the host of any chain node of the Gost (the app talking to its proxy); for lookups, a
   numeric host or ``AI_NUMERICHOST``, and datagram-only lookups (UDP is not routed).
2. A ``bypass`` match goes direct: the original connect (a fake address is turned back into
   its name first), and the original lookup (the app's resolver, as without gostg).
3. A fake address that is not lent now (looked up before an expiry, or by another process)
   fails the connect with EHOSTUNREACH: it is never dialled, and never guessed.
4. Everything else is routed. A gevent socket adopts the tunnel's own OS socket when the
   route ends in plain TCP (no copy); otherwise, and for a subclass (an ``SSLSocket``
   connected after wrapping), the socket's fd becomes one end of a relayed loopback pair
   (``dup2`` of a socket gevent never watched). In thread mode an app thread's stdlib socket
   gets, the same way, the socket gostg's hub thread made. Socket options set before connect
   (keep-alive, TCP_NODELAY) are carried over; a ``bind`` before connect is not (the route
   leaves from its first node). Sockets of a class other than ``socket.socket`` (made before
   ``monkey.patch_all()``) are not seen.
5. gostg's own dials (chain hops, in-process services) use the connect gostg loaded with
   (``core.sockopts.own_connect``): they are never routed again, in any greenlet.
6. ``restore_socket()`` puts back the exact function objects found by the first
   ``patch_socket()``; ``routed()`` blocks nest and restore what was active before.
7. A routed socket's ``getpeername()`` is the address the app asked for (its fake address, for
   a name), not the tunnel's real peer (gostg's relay pair or the first hop): an app that
   connects back to its peer (ftplib's passive data connection) is routed to the same server.
"""
import contextlib
import errno
import ipaddress
import os
import socket
import weakref
from typing import Any, Iterator, Optional

from .._compat import adopt_socket
from ..protocols.addr import join_host_port
from .dial import Egress, hub_thread, connected, open_socket, plain, relay_pair, split_address
from .fakeip import V4, V6, FakeIP, PoolExhausted

__all__ = ["patch_socket", "restore_socket", "routed", "is_patched"]

#: module functions replaced while patched
_FUNCTIONS = ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex")
#: socket.socket methods replaced while patched
_METHODS = ("connect", "connect_ex", "getpeername")
#: options a socket may have been given before connect that the tunnel's socket takes over
_CARRIED = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE), (socket.IPPROTO_TCP, socket.TCP_NODELAY)] + [
    (socket.IPPROTO_TCP, getattr(socket, n)) for n in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")
    if hasattr(socket, n)]

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
_PASS = object()    # rule 1/2: the original call
#: routed sockets → the peer address the app asked for (rule 7)
_peers: "weakref.WeakKeyDictionary[Any, tuple]" = weakref.WeakKeyDictionary()


class _State:
    """What is patched: the egress, the fake-ip blocks and the originals to put back."""

    def __init__(self, egress: Egress, fakeip: Optional[FakeIP]):
        self.egress = egress
        self.fakeip = fakeip


_active: Optional[_State] = None
#: the originals by name, and under "_own" the methods the class defined itself (the others it
#: inherited: restore deletes our attribute so lookups find the base class's again)
_saved: Optional[dict] = None
_cls: Optional[type] = None
#: one fake-ip table for the process: an address handed out under one patch still maps back
#: under the next (a connection pool may hold it)
_fakeip: Optional[FakeIP] = None


def is_patched() -> bool:
    """Is the process's socket module patched by :func:`patch_socket` now?"""
    return _saved is not None


def _norm_name(host: Any) -> str:
    if isinstance(host, bytes):
        host = host.decode("ascii")
    host = host.rstrip(".").lower()
    return host if host.isascii() else host.encode("idna").decode("ascii")


def _ip(host: str) -> Optional[ipaddress._BaseAddress]:
    try:
        a = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if a.version == 6 and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def _decide(st: _State, host: Any, port: int, lookup: bool = False):
    """→ ``_PASS`` (rule 1), ``("direct", host)`` (rule 2) or ``("route", host)`` (rule 4)."""
    if host is None or (not isinstance(host, (str, bytes))):
        return _PASS
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    a = _ip(text)
    if a is not None:
        if lookup:
            return _PASS
        if st.fakeip is not None and st.fakeip.is_fake(a):
            name = st.fakeip.lookup(a)
            if name is None:                                              # rule 3
                raise OSError(errno.EHOSTUNREACH, f"{a} is a fake-ip address lent to no name "
                                                  f"(expired, or from before patch_socket)")
            text, a = name, None
        elif a.is_loopback or a.is_unspecified or a.is_link_local:   # no proxy can reach these for us
            return _PASS
        else:
            text = str(a)
    if a is None:
        text = _norm_name(text)
        if text in _LOOPBACK_NAMES or text.endswith(".localhost"):
            return _PASS
    if text in st.egress.node_hosts():
        return _PASS
    if st.egress.bypassed(join_host_port(text, port) if port else text):
        return ("direct", text)
    return ("route", text)


def _orig(name: str):
    return _saved[name]


def _carried(sock: Any) -> list:
    """The options of ``sock`` that its tunnel's socket takes over (rule 4)."""
    opts = []
    for level, opt in _CARRIED:
        try:
            opts.append((level, opt, sock.getsockopt(level, opt)))
        except OSError:
            pass
    return opts


def _put_on(sock: Any, other: Any) -> None:
    """``sock``'s fd becomes the open file of ``other`` (a socket no gevent watcher has seen),
    which is closed; the file gets ``sock``'s blocking mode (O_NONBLOCK belongs to the open
    file, which dup2 shares: a gevent socket waits on watchers, and a blocking read there
    would stop the hub and the relay feeding it)."""
    try:
        other.setblocking(not _is_gevent(sock) and sock.gettimeout() is None)
        os.dup2(other.fileno(), sock.fileno())
    finally:
        other.close()


def _install(sock: Any, conn: Any, gost: Any) -> None:
    """Rule 4, in the hub: ``sock`` (not connected) becomes the tunnel ``conn``."""
    gevent_cls = _gevent_socket_class()
    if type(sock) is gevent_cls:
        if plain(conn):
            adopt_socket(sock, conn.sock if not isinstance(conn, gevent_cls) else conn)
        else:
            adopt_socket(sock, gevent_cls(fileno=relay_pair(conn, gost).detach()))
    else:
        _put_on(sock, relay_pair(conn, gost))


def _is_gevent(sock: Any) -> bool:
    return isinstance(sock, _gevent_socket_class())


def _gevent_socket_class():
    from gevent import socket as gsocket
    return gsocket.socket


def _route_connect(sock: Any, address: Any):
    """→ None when ``sock`` was routed and is connected, else the address to connect as usual."""
    st = _active
    if st is None or sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM \
            or not isinstance(address, tuple) or len(address) < 2:
        return address
    port = address[1]
    what = _decide(st, address[0], port)
    if what is _PASS:
        return address
    kind, host = what
    if kind == "direct":
        return (host,) + tuple(address[1:])
    timeout = sock.gettimeout() or None
    opts = _carried(sock)
    gost = st.egress.gost
    if hub_thread(gost) is None:
        _install(sock, st.egress.open(host, port, timeout), gost)
    else:   # thread mode: an app thread's stdlib socket gets the fd gostg's hub thread made
        _put_on(sock, open_socket(st.egress, host, port, timeout))
    for level, opt, value in opts:
        try:
            sock.setsockopt(level, opt, value)
        except OSError:
            pass
    _remember_peer(st, sock, address[0], host, port)
    return None


def _remember_peer(st, sock, asked, name, port):
    """Rule 7: ``sock`` was routed to ``name`` for the app's ``asked`` host."""
    a = _ip(asked) if isinstance(asked, str) else None
    if a is None:
        if st.fakeip is None:
            return
        try:
            a = ipaddress.ip_address(st.fakeip.allocate(name, 6 if sock.family == socket.AF_INET6 else 4))
        except PoolExhausted:
            return
    if sock.family == socket.AF_INET6:
        ip = str(a) if a.version == 6 else f"::ffff:{a}"
        _peers[sock] = (ip, port, 0, 0)
    elif a.version == 4:
        _peers[sock] = (str(a), port)


def _getpeername(self):
    peer = _peers.get(self)
    return peer if peer is not None else _orig("getpeername")(self)


def _connect(self, address):
    address = _route_connect(self, address)
    if address is not None:
        return _orig("connect")(self, address)


def _connect_ex(self, address):
    try:
        address = _route_connect(self, address)
    except socket.timeout:
        return errno.EAGAIN
    except socket.gaierror:
        raise
    except OSError as exc:
        return exc.errno or errno.ECONNREFUSED
    if address is None:
        return 0
    return _orig("connect_ex")(self, address)


def _create_connection(address, timeout=getattr(socket, "_GLOBAL_DEFAULT_TIMEOUT", None),
                       source_address=None, **kw):
    st = _active
    if st is not None:
        host, port = split_address(address)
        what = _decide(st, host, port)
        if what is not _PASS:
            kind, host = what
            if kind == "direct":
                address = (host, port)
            else:
                sock = connected(st.egress, host, port, timeout, source_address)
                _remember_peer(st, sock, split_address(address)[0], host, port)
                return sock
    return _orig("create_connection")(address, timeout, source_address, **kw)


def _fake(host, port, family=0, type=0, proto=0, flags=0):
    """→ the fake address for a lookup (rule 1 & 2 checked), or None (the original lookup)."""
    st = _active
    if st is None or st.fakeip is None or flags & socket.AI_NUMERICHOST:
        return None
    if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6) \
            or type not in (0, socket.SOCK_STREAM) or proto not in (0, socket.IPPROTO_TCP):
        return None
    if isinstance(port, str) and port and not port.isdigit():
        port = socket.getservbyname(port, "tcp")
    port = int(port or 0)
    what = _decide(st, host, port, lookup=True)
    if what is _PASS or what[0] == "direct":
        return None
    name = what[1]
    try:
        # AF_UNSPEC gets the IPv4 one only: the app's first try is the one that connects
        # (a second, IPv6, address would only repeat a refused route)
        return st.fakeip.allocate(name, 6 if family == socket.AF_INET6 else 4), port, name
    except PoolExhausted as exc:
        raise socket.gaierror(socket.EAI_AGAIN, str(exc)) from None


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    fake = _fake(host, port, family, type, proto, flags)
    if fake is None:
        return _orig("getaddrinfo")(host, port, family, type, proto, flags)
    ip, port, name = fake
    canon = name if flags & socket.AI_CANONNAME else ""
    if ":" in ip:
        return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, canon, (ip, port, 0, 0))]
    return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, canon, (ip, port))]


def _gethostbyname(host):
    fake = _fake(host, None, socket.AF_INET)
    return _orig("gethostbyname")(host) if fake is None else fake[0]


def _gethostbyname_ex(host):
    fake = _fake(host, None, socket.AF_INET)
    return _orig("gethostbyname_ex")(host) if fake is None else (fake[2], [], [fake[0]])


_REPLACEMENTS = {"connect": _connect, "connect_ex": _connect_ex, "getpeername": _getpeername,
                 "create_connection": _create_connection,
                 "getaddrinfo": _getaddrinfo, "gethostbyname": _gethostbyname,
                 "gethostbyname_ex": _gethostbyname_ex}


def _check_host(gost) -> None:
    """An app whose sockets block its only thread (not gevent-patched) and no gostg hub thread
    would wait forever on a relayed connection: refuse, saying what to do."""
    from gevent import monkey

    if monkey.is_module_patched("socket") or getattr(gost, "hub", None) is not None:
        return
    from .. import errors
    raise getattr(errors, "NotPatchedError", errors.GostgError)(
        "patch_socket: this process is not gevent-patched; call gevent.monkey.patch_all() first, "
        "or run gostg in its own hub thread (thread mode) and start it before patching")


def patch_socket(gost, chain: Optional[str] = None, *, bypass: Optional[str] = None,
                 hosts: Optional[str] = None, resolver: Optional[str] = None, retries: int = 0,
                 fakeip: bool = True, fakeip_v4: str = V4, fakeip_v6: str = V6,
                 fakeip_hold: float = 600.0) -> None:
    """Route every TCP connect of this process through ``chain`` of ``gost`` (a
    :class:`gostg.Gost`); destinations the named ``bypass`` matches go direct (module rules).
    ``hosts``, ``resolver``, ``retries`` name objects / settings of ``gost`` as for
    :meth:`gostg.Gost.dial`. ``fakeip`` (on by default) answers lookups of routed names from
    ``fakeip_v4`` / ``fakeip_v6``, an address staying with its name ``fakeip_hold`` seconds
    after its last use; off, a library that resolves before connecting resolves locally (and
    its connect is routed by IP). A second call replaces the routing. Names that do not
    resolve raise MissingReference now, and fail each connect later (never direct)."""
    global _active, _saved, _cls, _fakeip
    _check_host(gost)
    egress = Egress(gost, chain, bypass=bypass, hosts=hosts, resolver=resolver, retries=retries)
    fake = None
    if fakeip:
        if _fakeip is None or (str(_fakeip.v4.network), str(_fakeip.v6.network)) != (
                str(ipaddress.ip_network(fakeip_v4)), str(ipaddress.ip_network(fakeip_v6))):
            _fakeip = FakeIP(fakeip_v4, fakeip_v6, fakeip_hold)
        _fakeip.v4.hold = _fakeip.v6.hold = float(fakeip_hold)
        fake = _fakeip
    _active = _State(egress, fake)
    if _saved is None:
        cls = socket.socket
        saved = {name: getattr(socket, name) for name in _FUNCTIONS}
        saved.update({name: getattr(cls, name) for name in _METHODS})
        saved["_own"] = {name for name in _METHODS if name in cls.__dict__}
        _saved, _cls = saved, cls
        for name in _FUNCTIONS:
            setattr(socket, name, _REPLACEMENTS[name])
        for name in _METHODS:
            setattr(cls, name, _REPLACEMENTS[name])


def restore_socket() -> None:
    """Put back the exact functions :func:`patch_socket` replaced (``socket.socket.connect
    is`` the original again). Sockets already connected stay as they are."""
    global _active, _saved, _cls
    if _saved is None:
        _active = None
        return
    for name in _FUNCTIONS:
        setattr(socket, name, _saved[name])
    for name in _METHODS:
        if name in _saved["_own"]:
            setattr(_cls, name, _saved[name])
        else:
            delattr(_cls, name)    # it was inherited: lookups find the base class's again
    _active = _saved = _cls = None


@contextlib.contextmanager
def routed(gost, chain: Optional[str] = None, **options: Any) -> Iterator[None]:
    """``with routed(g, chain="egress"):`` — :func:`patch_socket` for the block (same
    options), then whatever was active before: the previous routing, or nothing."""
    global _active
    before = _active
    patch_socket(gost, chain, **options)
    try:
        yield
    finally:
        if before is None:
            restore_socket()
        else:
            _active = before
