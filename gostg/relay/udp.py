"""Packet conns and the UDP relay.

A *packet conn* carries datagrams with addresses ("host:port" strings):
``read_from() → (data, addr)`` (EOFError once closed), ``write_to(data, addr)``, ``close()``.
Every UDP path in gostg is two packet conns and :func:`relay` between them:

- direct: :class:`UDPSocket`, an unconnected socket (names resolved per datagram);
- over a stream (chains, UDP-TUN, relay, http): :class:`TunConn` / :class:`LengthConn`;
- the client side: a udp listener session, a SOCKS5 UDP relay socket, a UDP-TUN stream.

A conn bound to one peer (a connected one) ignores the address it is given and reports its
peer's address, so the same relay serves port forwarding and SOCKS5 associations.
"""
import gevent
from gevent import socket

from .._compat import raw_socket
from ..transport.buffered import Stream
from ..errors import NeedData, ProtocolError
from ..protocols import socks5
from ..protocols.addr import ip_family, join_host_port, split_host_port

#: bytes read per datagram when nothing smaller was configured: the largest UDP payload
MAX_DATAGRAM = socks5.MAX_DATAGRAM


def _fmt(sockaddr):
    host = sockaddr[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return join_host_port(host, sockaddr[1])


def bind_udp(host="", port=0):
    """A UDP socket on ``host:port``; no host = every address, IPv4 and IPv6 (as Go)."""
    if host:
        fam = ip_family(host) or socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.bind((host, port))
        except OSError:
            s.close()
            raise
        return s
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", port))
        return s
    except OSError:
        s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    return s


class UDPSocket:
    """Direct UDP: one unconnected socket; each datagram goes to its own address.

    ``resolve(host) → ip`` maps names (hosts, resolver); the system resolver is the fallback.
    Answers from other addresses than the ones written to are passed on, as a SOCKS5 UDP
    relay does (GOST's direct association behaves the same)."""

    def __init__(self, sock=None, resolve=None, bufsize=MAX_DATAGRAM):
        self.sock = sock if sock is not None else bind_udp()
        self.v6 = self.sock.family == socket.AF_INET6
        self.resolve = resolve
        self.buf = bytearray(bufsize)
        self._names = {}
        self._sa = {}      # "host:port" → sockaddr, for the callback path (no resolving there)

    def _sockaddr(self, addr):
        host, port = split_host_port(addr)
        fam = ip_family(host)
        if fam is None:
            ip = self._names.get(host)
            if ip is None:
                ip = self.resolve(host) if self.resolve else None
                if not ip:
                    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
                    if not infos:
                        raise OSError(f"cannot resolve {host}")
                    # IPv4 first, as GOST's resolvers prefer it
                    ip = min(infos, key=lambda i: i[0] != socket.AF_INET)[4][0]
                if len(self._names) > 1024:
                    self._names.clear()
                self._names[host] = ip
            host, fam = ip, ip_family(ip)
        if self.v6 and fam == socket.AF_INET:
            host = "::ffff:" + host
        return host, port

    def read_from(self):
        n, sockaddr = self.sock.recvfrom_into(self.buf)
        return bytes(memoryview(self.buf)[:n]), _fmt(sockaddr)

    def connect(self, addr):
        """Take datagrams from ``addr`` only, as a Go dialled UDP conn does (a TUN/TAP client's
        server); writes may still name it."""
        self.sock.connect(self._sockaddr(addr))

    def write_to(self, data, addr):
        self.sock.sendto(data, self._sockaddr(addr))

    @property
    def local_addr(self):
        return _fmt(self.sock.getsockname())

    def close(self):
        self.sock.close()

    # --- the callback path (gostg.udpfast) -----------------------------------------------
    def _cached_sockaddr(self, addr):
        sa = self._sa.get(addr)
        if sa is None:
            host, port = split_host_port(addr)
            if ip_family(host) is None and host not in self._names:
                return None
            sa = self._sockaddr(addr)
            if len(self._sa) > 4096:
                self._sa.clear()
            self._sa[addr] = sa
        return sa

    def send_nowait(self, data, addr):
        sa = self._cached_sockaddr(addr)
        if sa is None:
            gevent.spawn(self._send_resolving, data, addr)
            return
        try:
            raw_socket(self.sock).sendto(data, sa)
        except (BlockingIOError, InterruptedError):
            pass        # send buffer full: dropped, as the kernel would
        except OSError:
            if self.sock.fileno() < 0:
                raise

    def _send_resolving(self, data, addr):
        try:
            self.write_to(data, addr)
        except Exception:  # noqa: BLE001 — an unresolvable target drops its datagram
            pass

    def fast_start(self, on_datagram, fail):
        from .udpfast import read_batch, watch
        raw, buf = raw_socket(self.sock), self.buf
        mv = memoryview(buf)

        def deliver(n, sockaddr):
            on_datagram(bytes(mv[:n]), _fmt(sockaddr))
        return watch(self.sock, lambda: read_batch(raw, buf, deliver, fail))


class TunConn:
    """UDP-TUN over a stream conn (GOST's UDP over SOCKS5 0xF3, relay and http CONNECT):
    each datagram is one frame carrying its address. ``target`` makes it a connected conn
    (the client side of ``connect("udp", target)``)."""

    def __init__(self, conn, target="", stream=None):
        self.conn = conn
        self.stream = stream if stream is not None else Stream(conn, limit=MAX_DATAGRAM + 300)
        self.target = target

    def read_from(self):
        host, port, data = self.stream.read(socks5.parse_udp_tun)
        return data, join_host_port(host, port)

    def write_to(self, data, addr):
        if not data:
            # RSV 0 means "a standard datagram" to GOST's reader, which then swallows the
            # frames behind it: an empty datagram is dropped rather than sent
            return
        host, port = split_host_port(self.target or addr)
        self.conn.sendall(socks5.encode_udp_tun(host, port, data))

    def close(self):
        self.conn.close()


class LengthConn:
    """Relay's UDP CONNECT: ``LEN(2 BE) + payload`` frames to one fixed target."""

    def __init__(self, conn, target, stream=None):
        self.conn = conn
        self.target = target
        self.stream = stream if stream is not None else Stream(conn, limit=MAX_DATAGRAM + 2)

    @staticmethod
    def _frame(buf):
        if len(buf) < 2:
            raise NeedData()
        n = (buf[0] << 8) | buf[1]
        if len(buf) < 2 + n:
            raise NeedData()
        return bytes(buf[2:2 + n]), 2 + n

    def read_from(self):
        return self.stream.read(self._frame), self.target

    def write_to(self, data, addr=None):
        if len(data) > MAX_DATAGRAM:
            raise ProtocolError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
        self.conn.sendall(len(data).to_bytes(2, "big") + data)

    def close(self):
        self.conn.close()


class Socks5Relay:
    """The server side of a standard UDP ASSOCIATE: the relay socket the client sends SOCKS5
    UDP datagrams to. Only datagrams from the client's IP are taken (RFC 1928 §7); the
    first one fixes the client's UDP port, and answers go there."""

    fast_capable = True

    def __init__(self, sock, client_ip, bufsize=MAX_DATAGRAM + 262):
        self.sock = sock
        self.client_ip = client_ip
        self.client = None
        self.buf = bytearray(bufsize)
        self._stop = None
        self._on_close = None

    def _datagram(self, view, sockaddr):
        """→ ``(payload, "host:port")`` of a datagram from our client, else None."""
        host = sockaddr[0]
        if host.startswith("::ffff:"):
            host = host[7:]
        if host != self.client_ip:
            return None
        try:
            dhost, dport, data = socks5.parse_udp_datagram(view)
        except ProtocolError:
            return None   # a broken datagram is dropped, the association lives on
        self.client = sockaddr
        return data, join_host_port(dhost, dport)

    def fast_start(self, on_datagram, on_close, fail):
        from .udpfast import read_batch, watch
        raw, buf = raw_socket(self.sock), self.buf
        mv = memoryview(buf)

        def deliver(n, sockaddr):
            d = self._datagram(mv[:n], sockaddr)
            if d is not None:
                on_datagram(*d)
        self._on_close = on_close
        self._stop = watch(self.sock, lambda: read_batch(raw, buf, deliver, fail))
        return self._stop

    def send_nowait(self, data, addr):
        if self.client is None:
            return
        host, port = split_host_port(addr)
        try:
            raw_socket(self.sock).sendto(socks5.encode_udp_datagram(host, port, data), self.client)
        except (BlockingIOError, InterruptedError):
            pass

    def read_from(self):
        while True:
            n, sockaddr = self.sock.recvfrom_into(self.buf)
            d = self._datagram(memoryview(self.buf)[:n], sockaddr)
            if d is not None:
                return d

    def write_to(self, data, addr):
        if self.client is None:
            return
        host, port = split_host_port(addr)
        self.sock.sendto(socks5.encode_udp_datagram(host, port, data), self.client)

    @property
    def local_addr(self):
        return _fmt(self.sock.getsockname())

    def close(self):
        # watcher first (a libev watcher must not outlive its fd), then tell the relay
        if self._stop is not None:
            self._stop()
        cb, self._on_close = self._on_close, None
        if cb is not None:
            cb()
        self.sock.close()


class Socks5Client:
    """The client side of a standard UDP ASSOCIATE (connector ``relay=udp``): datagrams with
    SOCKS5 headers to the server's relay address; the TCP control conn lives as long."""

    def __init__(self, sock, control, target=""):
        self.sock = sock        # connected to the server's relay address
        self.control = control
        self.target = target
        self.buf = bytearray(MAX_DATAGRAM + 262)

    def read_from(self):
        while True:
            n = self.sock.recv_into(self.buf)
            try:
                host, port, data = socks5.parse_udp_datagram(memoryview(self.buf)[:n])
            except ProtocolError:
                continue
            return data, join_host_port(host, port)

    def write_to(self, data, addr):
        host, port = split_host_port(self.target or addr)
        self.sock.send(socks5.encode_udp_datagram(host, port, data))

    def close(self):
        self.sock.close()
        self.control.close()


def relay(client, upstream, ctx=None, target=None, bypassed=None, idle=None):
    """Move datagrams both ways until either side closes or, with ``idle`` seconds, nothing
    moved for that long. ``target`` fixes where client datagrams go (port forwarding);
    ``bypassed(addr)`` drops datagrams to refused destinations. → (datagrams in, out)."""
    counts = [0, 0]
    if ctx is not None:
        ctx.flow = counts   # Context.bytes() reads them live
    last = [_now()]
    errors = []

    def pump(src, dst, i, fixed):
        try:
            while True:
                data, addr = src.read_from()
                if fixed is not None:
                    addr = fixed
                elif i == 0 and bypassed is not None and bypassed(addr):
                    if ctx is not None:
                        ctx.log.debug("bypass", dst=addr, network="udp")
                    continue
                dst.write_to(data, addr)
                counts[i] += len(data)
                last[0] = _now()
        except (EOFError, OSError):
            pass
        except (ProtocolError, gevent.Timeout) as exc:
            errors.append(exc)

    gs = [gevent.spawn(pump, client, upstream, 0, target), gevent.spawn(pump, upstream, client, 1, None)]
    try:
        if idle:
            while not any(g.dead for g in gs):
                left = last[0] + idle - _now()
                if left <= 0:
                    break
                gevent.joinall(gs, timeout=left, count=1)
        else:
            gevent.joinall(gs, count=1)
    finally:
        gevent.killall(gs, block=True, timeout=1)
    if errors and ctx is not None:
        ctx.log.warning(f"udp relay: {errors[0]}")
    return counts[0], counts[1]


def _now():
    return gevent.get_hub().loop.now()
