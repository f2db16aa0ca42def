"""Hand a routed connection to code that wants a socket.

A conn from the Router is whatever its route made: a plain TCP socket (direct, or a chain of
plain-TCP proxies once their handshakes are done), a socket with bytes read ahead (BufferedConn),
or a wrapper (TLS, WebSocket, a multiplexed stream, Shadowsocks). Code outside gostg wants a
socket: ``ssl.wrap_socket``, ``http.client``, ``makefile``, ``fileno()`` for ``select``.

Rules:
1. A plain TCP socket with nothing read ahead is handed over as it is: the tunnel's own fd,
   no relay, no copy.
2. Anything else is relayed: the caller gets one end of a loopback TCP pair, and a greenlet
   (``relay.tcp.pipe``, spawned in the caller's Group so a stop ends it) moves bytes between
   the other end and the conn. TCP, not ``socket.socketpair()``'s AF_UNIX: libraries set TCP
   options on the sockets they are given (http.client sets TCP_NODELAY after connecting, and
   AF_UNIX answers EOPNOTSUPP), and an app's own AF_INET socket may receive the fd (dup2).
3. The pair is checked: the accepted end must be the one this code connected (its address is
   the connecting end's), so another local process racing to the ephemeral listener gets
   nothing but a closed connection.
"""
from gevent import socket

from .._compat import has_raw_socket
from ..relay.tcp import pipe
from ..transport.buffered import BufferedConn

#: connections accepted on a pair's listener before giving up on finding our own
PAIR_ACCEPTS = 8
#: seconds the pair may take (loopback: microseconds; a stuck accept must not hang a dial)
PAIR_TIMEOUT = 5.0


def plain(conn):
    """True for a gevent TCP socket that can be handed over as it is (rule 1)."""
    return (type(conn) is socket.socket and has_raw_socket(conn)
            and conn.family in (socket.AF_INET, socket.AF_INET6))


def loopback_pair():
    """→ ``(near, far)``: two connected gevent TCP sockets on 127.0.0.1 (rule 3)."""
    lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    near = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(PAIR_ACCEPTS)
        lsn.settimeout(PAIR_TIMEOUT)
        near.settimeout(PAIR_TIMEOUT)
        near.connect(lsn.getsockname())
        mine = near.getsockname()
        for _ in range(PAIR_ACCEPTS):
            far, peer = lsn.accept()
            if peer == mine:
                break
            far.close()
        else:
            raise ConnectionError("loopback pair: our own connection was not accepted")
    except BaseException:
        near.close()
        raise
    finally:
        lsn.close()
    near.settimeout(None)
    far.settimeout(None)
    for s in (near, far):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return near, far


def to_socket(conn, relays):
    """→ a gevent TCP socket for ``conn`` (rules 1 and 2); ``relays`` is the gevent Group the
    relay greenlet joins. Runs in the hub that owns ``conn``. On failure ``conn`` is closed."""
    inner = conn
    while isinstance(inner, BufferedConn) and not inner.pending:
        inner = inner.sock
    if plain(inner):
        return inner
    try:
        near, far = loopback_pair()
    except BaseException:
        conn.close()
        raise
    relays.spawn(pipe, far, conn)
    return near


__all__ = ["to_socket", "loopback_pair", "plain"]
