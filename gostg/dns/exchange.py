"""Nameservers: where a query goes and how it travels (go-gost/x resolver/exchanger).

Address ``[proto://]host[:port][/path]``: proto ``udp`` (default), ``tcp``, ``tls``/``dot``
(DNS over TLS) or ``https`` (DNS over HTTPS); the port defaults to 53, 853 and 443. As GOST,
TLS certificates are not verified; ``hostname`` is the TLS server name (SNI) and the DoH Host.

All I/O is on gevent sockets: a lookup never blocks the hub, whether or not the host app
monkey-patched. One ``timeout`` (default 5 s) bounds the whole exchange, connect included.
With ``chain`` (a resolver's nameserver) the query goes through that chain (late-bound by
name, as a service's chain) and a ``udp`` nameserver is then asked over TCP. With ``router``
(the ``dns`` handler's upstreams, as GOST's exchanger) every dial goes through that router:
its chain, hosts and resolver; ``udp`` stays UDP, so the chain must carry UDP (socks5 with
``udp``, relay) as in GOST.
"""
import ipaddress
import random

import dns.edns
import dns.flags
import dns.message
import gevent
from gevent import socket, ssl

from ..errors import ConfigError, DialError, NeedData, ProtocolError
from ..protocols.addr import is_ip, join_host_port, split_host_port
from ..transport.tlsconf import client_context
from ..transport.tls import TLSConn
from . import wire

DEFAULT_PORTS = {"udp": 53, "tcp": 53, "tls": 853, "https": 443}
PROTOCOLS = {"udp": "udp", "tcp": "tcp", "tls": "tls", "dot": "tls", "https": "https", "doh": "https"}


def parse_addr(addr):
    """``[proto://]host[:port][/path]`` → ``(proto, host, port, path)``; ConfigError if bad."""
    addr = (addr or "").strip()
    if not addr:
        raise ConfigError("", "nameserver address is empty")
    proto = "udp"
    if "://" in addr:
        proto, addr = addr.split("://", 1)
        proto = proto.lower()
    if proto not in PROTOCOLS:
        raise ConfigError("", f"nameserver protocol {proto!r} is not supported "
                              f"(udp, tcp, tls/dot, https)")
    proto = PROTOCOLS[proto]
    path = ""
    if "/" in addr:
        addr, path = addr.split("/", 1)
        path = "/" + path
    try:
        host, port = split_host_port(addr, DEFAULT_PORTS[proto])
    except Exception as exc:
        raise ConfigError("", f"bad nameserver address {addr!r}: {exc}") from None
    if not host:
        raise ConfigError("", f"nameserver address {addr!r} has no host")
    return proto, host, port, path or ("/dns-query" if proto == "https" else "")


class Nameserver:
    """One ``nameservers[]`` entry: transport settings plus the resolver policy knobs."""

    DEFAULT_TIMEOUT = 5.0

    def __init__(self, addr, prefer="ipv4", timeout=0.0, ttl=0.0, only="", chain="",
                 hostname="", client_ip="", async_=False, registries=None, router=None):
        self.addr = addr
        self.proto, self.host, self.port, self.path = parse_addr(addr)
        only = {"ip4": "ipv4", "ip6": "ipv6"}.get(only, only)
        prefer = {"ip4": "ipv4", "ip6": "ipv6"}.get(prefer, prefer)
        # GOST: a valid ``only`` also sets the preference; anything else means no filter
        self.only = only if only in ("ipv4", "ipv6") else ""
        self.prefer = self.only or (prefer if prefer in ("ipv4", "ipv6") else "ipv4")
        self.timeout = timeout if timeout and timeout > 0 else self.DEFAULT_TIMEOUT
        self.ttl = ttl
        # stale answers cannot be served from a cache that is off
        self.async_ = bool(async_) and ttl >= 0
        self.chain = chain or ""
        self.hostname = hostname or ""
        if client_ip:
            try:
                client_ip = str(ipaddress.ip_address(client_ip))
            except ValueError:
                raise ConfigError("", f"clientIP {client_ip!r} is not an IP address") from None
        self.client_ip = client_ip or ""
        self.registries = registries
        self.router = router
        self._tls = None

    def __repr__(self):
        return self.addr

    # -- one query --------------------------------------------------------------------------

    def make_query(self, name, rdtype):
        q = dns.message.make_query(name, rdtype)
        q.id = random.randrange(65536)
        if self.client_ip:
            # EDNS Client Subnet (RFC 7871), as GOST's clientIP: /24 for v4, /64 for v6
            bits = 64 if ":" in self.client_ip else 24
            q.use_edns(0, options=[dns.edns.ECSOption(self.client_ip, bits)])
        return q

    def query(self, name, rdtype):
        """→ the reply (dns.message.Message); DialError when the server cannot be reached or
        does not answer in time, ProtocolError when its reply is garbage."""
        return self.exchange(self.make_query(name, rdtype))

    def exchange(self, q, ctx=None):
        """Send the query message ``q`` as it is; → the reply, as :meth:`query`."""
        return self.exchange_wire(q, ctx)[0]

    def exchange_wire(self, q, ctx=None):
        """:meth:`exchange`, → ``(reply, reply_bytes)``: a proxy passes the bytes on."""
        data = q.to_wire()
        with gevent.Timeout(self.timeout, DialError(f"nameserver {self.addr}: no answer within {self.timeout:g}s")):
            try:
                if self.proto == "udp" and self.router is not None and (self.router.chain or not is_ip(self.host)):
                    r, raw = self._udp_routed(data, q.id, ctx)
                elif self.proto == "udp" and not self.chain:
                    r, raw = self._udp(data, q.id)
                elif self.proto == "https":
                    r, raw = self._https(data, ctx)
                else:
                    r, raw = self._stream(data, self.proto == "tls", ctx)
                if self.proto == "udp" and r.flags & dns.flags.TC:   # truncated: ask again over TCP (RFC 7766)
                    r, raw = self._stream(data, False, ctx)
            except OSError as exc:
                raise DialError(f"nameserver {self.addr}: {exc}") from exc
        if r.id != q.id:
            raise ProtocolError(f"nameserver {self.addr}: reply id {r.id} does not match query id {q.id}")
        return r, raw

    def _udp(self, data, qid):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s.connect((self.host, self.port))   # connected: the kernel drops other senders
            s.send(data)
            return self._matching_reply(lambda: s.recv(65535), qid)
        finally:
            s.close()

    def _matching_reply(self, recv, qid):
        """``(reply, bytes)`` of the first datagram from ``recv()`` that is a reply to
        ``qid``; stray ones are skipped, a bounded number."""
        for _ in range(64):
            raw = recv()
            try:
                r = wire.parse_message(raw)
            except ProtocolError:
                continue
            if r.id == qid:
                return r, raw
        raise ProtocolError(f"nameserver {self.addr}: no matching reply")

    def _udp_routed(self, data, qid, ctx):
        """UDP through the router: its chain's packet conn (or a direct one, names mapped by
        its hosts and resolver)."""
        target = join_host_port(self.host, self.port)
        pc = self.router.dial("udp", target, ctx)
        try:
            pc.write_to(data, target)
            return self._matching_reply(lambda: pc.read_from()[0], qid)
        finally:
            pc.close()

    def _open(self, ctx=None):
        """A stream to the server: through the router or chain when one is set, else direct."""
        target = join_host_port(self.host, self.port)
        if self.router is not None:
            return self.router.dial("tcp", target, ctx)
        if self.chain:
            from ..core.router import Router   # late: the router module imports nothing of ours
            if self.registries is None:
                raise DialError(f"nameserver {self.addr}: chain {self.chain!r} needs a registry")
            return Router(self.registries, chain=self.chain, dial_timeout=self.timeout).dial("tcp", target)
        from ..core.router import connect_tcp   # gostg's own connect: never an app's patched one
        return connect_tcp(self.host, self.port, self.timeout)

    def _wrap_tls(self, conn):
        if self._tls is None:
            self._tls = client_context({})    # GOST: InsecureSkipVerify unless configured
        sni = self.hostname or (None if is_ip(self.host) else self.host)
        if type(conn) is socket.socket:
            return self._tls.wrap_socket(conn, server_hostname=sni)
        return TLSConn(conn, self._tls, sni).handshake()

    def _stream(self, data, tls, ctx=None):
        conn = self._open(ctx)
        try:
            if tls:
                conn = self._wrap_tls(conn)
            conn.sendall(wire.tcp_frame(data))
            buf = bytearray()
            while True:
                try:
                    msg, _ = wire.parse_tcp_frame(buf)
                    return wire.parse_message(msg), msg
                except NeedData:
                    pass
                chunk = conn.recv(65535)
                if not chunk:
                    raise DialError(f"nameserver {self.addr}: connection closed before the reply")
                buf += chunk
        finally:
            conn.close()

    def _https(self, data, ctx=None):
        conn = self._open(ctx)
        try:
            conn = self._wrap_tls(conn)
            host = self.hostname or join_host_port(self.host, self.port)
            conn.sendall(wire.doh_request(self.path, host, data))
            buf = bytearray()
            eof = False
            while True:
                try:
                    status, body, _ = wire.parse_doh_response(buf, eof=eof)
                    break
                except NeedData:
                    if eof:
                        raise DialError(f"nameserver {self.addr}: connection closed before the reply") from None
                if len(buf) > wire.MAX_BODY + 16384:
                    raise ProtocolError(f"nameserver {self.addr}: reply too large")
                chunk = conn.recv(65535)
                if chunk:
                    buf += chunk
                else:
                    eof = True
            if status != 200:
                raise DialError(f"nameserver {self.addr}: HTTP status {status}")
            return wire.parse_message(body), body
        finally:
            try:
                conn.close()
            except (OSError, ssl.SSLError):
                pass
