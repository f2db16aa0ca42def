"""The PROXY protocol on sockets: reading a header off an accepted connection (``proxyProtocol``
on a service or listener) and sending one ahead of a dialled connection (``proxyProtocol`` on a
forward handler or a chain node).

Reading rules (GOST's listener, go-proxyproto's default policy):
1. The header is optional: a peer whose first bytes cannot start one is served as it is, and a
   peer that sends nothing within ``timeout`` seconds is too (a server-speaks-first protocol).
2. The header is read before anything else on the socket (before TLS or a WebSocket upgrade).
   Bytes are peeked, then exactly the header is taken off the wire, so the socket handed on is
   still the kernel's (TLS needs it); only a peer that dribbles the first bytes of a signature
   and then turns out not to send a header gets them pushed back (a BufferedConn).
3. A header that started but is malformed, cut short or not finished within ``timeout`` refuses
   the connection (ProtocolError): gostg never serves a connection on a guessed address.
4. ``trusted`` (gostg's own ``proxyProtocol.trusted``, a list of IPs/CIDRs): when set, only
   those peers may send a header; a header from anyone else refuses the connection. GOST has no
   such list: without it, any peer's header is believed, as in GOST.
"""
import ipaddress

import gevent
from gevent import socket

from ..errors import ConfigError, NeedData, ProtocolError
from ..protocols import proxyproto
from ..protocols.addr import join_host_port
from .buffered import BufferedConn


def version_of(md):
    """``proxyProtocol`` metadata: 0 (off), 1 or 2 (GOST's values; any other number is a config
    error at ``metadata.proxyProtocol``)."""
    v = md.int("proxyProtocol")
    if v not in (0, 1, 2):
        raise ConfigError("metadata.proxyProtocol", f"must be 1 or 2, not {md.raw('proxyProtocol')!r}")
    return v


def _recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ProtocolError("PROXY header: peer closed mid-header")
        out += chunk
    return bytes(out)


class Receiver:
    #: seconds a peer may take to send its header (GOST: go-proxyproto's ReadHeaderTimeout, 10 s)
    timeout = 10.0
    #: bytes looked at per peek (a v1 header is at most 107; v2 ones with big TLVs take more rounds)
    peek = 4096

    def __init__(self, trusted=(), timeout=None):
        self.trusted = tuple(ipaddress.ip_network(c.strip(), strict=False) for c in trusted if c.strip())
        if timeout:
            self.timeout = timeout

    def trusts(self, ip):
        if not self.trusted:
            return True
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        a = a.ipv4_mapped or a if a.version == 6 else a
        return any(a in net for net in self.trusted)

    def accept(self, sock, peer_ip):
        """→ ``(conn, Header or None)``. Raises ProtocolError (rule 3, 4) or EOFError (the peer
        closed before sending anything)."""
        buf = bytearray()
        timer = gevent.Timeout(self.timeout)
        timer.start()
        try:
            while True:
                try:
                    peeked = sock.recv(self.peek, socket.MSG_PEEK)
                except gevent.Timeout as t:
                    if t is not timer:
                        raise
                    if not buf:
                        return sock, None   # rule 1: a silent peer has no header
                    raise ProtocolError(f"PROXY header: incomplete after {self.timeout:g}s") from None
                if not peeked:
                    if buf:
                        raise ProtocolError("PROXY header: peer closed mid-header")
                    raise EOFError("peer closed")
                try:
                    hdr, used = proxyproto.parse(bytes(buf) + peeked)
                except NeedData:
                    # a signature prefix so far: take these bytes off the wire and wait for more
                    buf += _recv_exact(sock, len(peeked))
                    continue
                if hdr is None:
                    return (BufferedConn(sock, bytes(buf)) if buf else sock), None
                if not self.trusts(peer_ip):
                    raise ProtocolError(f"PROXY header from untrusted peer {peer_ip} (proxyProtocol.trusted)")
                _recv_exact(sock, used - len(buf))
                return sock, hdr
        finally:
            timer.close()


def client_of(hdr, peer):
    """The client a header names as "ip:port", or ``peer`` when it names none (LOCAL, UNKNOWN)."""
    if hdr is None or hdr.src is None:
        return peer
    return join_host_port(*hdr.src)


def _ip_port(addr):
    host, _, port = addr.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def send_header(conn, version, ctx, client_conn=None):
    """Write a v1/v2 header as the first bytes on ``conn``: the client is ``ctx.src``; the
    address it reached is what a received header said (GOST's DstAddr), else the local end of
    ``client_conn`` (GOST's conn.LocalAddr()), else the service's address."""
    dst = ctx.proxied_dst or ctx.local
    try:
        if not ctx.proxied_dst and client_conn is not None and getattr(client_conn, "type", None) == socket.SOCK_STREAM:
            dst = join_host_port(*client_conn.getsockname()[:2])
    except OSError:
        pass
    conn.sendall(proxyproto.encode(version, _ip_port(ctx.src or ""), _ip_port(dst or "")))
