"""The ``dns`` listener (go-gost/x listener/dns): DNS messages over GOST's four ``mode``s.

- ``udp`` (default): every datagram is a query of its own, served in a pool greenlet, so one
  client's many queries run side by side (a udp listener's per-client session would serialize
  them). Datagrams are read whole: ``readBufferSize`` defaults to 65535 here, not GOST's 512.
- ``tcp``: length-prefixed messages (RFC 1035 4.2.2), several per connection.
- ``tls``: the same inside TLS (DoT, RFC 7858); the certificate as the tls listener's (the
  service's ``tls``, else cert.pem/key.pem, else gostg's generated one).
- ``https``: DoH (RFC 8484) inside TLS, HTTP/2 or HTTP/1.1 by ALPN, as the http2 listener.

The listener only frames messages (gostg.transport.dnsmsg); the ``dns`` handler answers them.
"""
from gevent.server import DatagramServer

from ..errors import ConfigError
from ..core.registry import listeners
from ..relay.udp import MAX_DATAGRAM
from ..transport.dnsmsg import DatagramQuery, DoHConn, DoHSession, StreamMessages
from ..transport.mux.h2 import H2Session
from .base import Listener
from .http2 import HTTP2Listener
from .tcp import TCPListener
from .tls import TLSListener
from .udp import bind_listen_udp

MODES = {"udp": None, "tcp": TCPListener, "tls": TLSListener, "https": HTTP2Listener}
#: a DNS message over UDP is at least this large a datagram to accept (RFC 1035 2.3.4)
MIN_UDP = 512


class QueryServer(DatagramServer):
    """gevent's datagram server, reading whole datagrams; each becomes a DatagramQuery handed
    to ``handle(query, address)`` in a pool greenlet (a full pool pauses reading: the kernel
    queues, then drops, as UDP may)."""

    def __init__(self, sock, handle, pool, bufsize):
        super().__init__(sock, handle, spawn=pool)
        self.bufsize = bufsize

    def do_read(self):
        # runs in the loop's callback: the raw (non-blocking) socket, as gevent's own do_read
        try:
            data, addr = self._socket.recvfrom(self.bufsize)
        except BlockingIOError:
            return None
        except OSError:
            if self._socket.fileno() < 0:
                raise
            return None   # an ICMP error surfaced here: the socket stays usable
        host = addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
        return DatagramQuery(self.socket, data, addr), (host, addr[1])


@listeners.register("dns")
class DNSListener(Listener):
    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        self.mode = (md.str("mode") or "udp").lower()
        if self.mode not in MODES:
            raise ConfigError("metadata.mode", f"unknown mode {self.mode!r} (one of: udp, tcp, tls, https)")
        self.read_timeout = md.duration("readTimeout", default=2.0)
        self.write_timeout = md.duration("writeTimeout", default=2.0)
        self.read_buffer_size = max(MIN_UDP, md.int("readBufferSize", default=0) or MAX_DATAGRAM)
        inner = MODES[self.mode]
        self.inner = inner(addr, md, tls, auth) if inner is not None else None

    @property
    def shareable(self):
        return self.inner is not None   # tcp, tls, https: a TCP port; udp: worker 0 alone

    def bind(self):
        if self.inner is not None:
            self.socket = self.inner.bind()
            return self.socket
        self.socket = bind_listen_udp(self.addr)
        return self.socket

    def adopt(self, sock):
        super().adopt(sock)
        if self.inner is not None:
            self.inner.adopt(sock)

    def server(self, handle, pool):
        if self.inner is None:
            return QueryServer(self.socket, handle, pool, self.read_buffer_size)
        self.inner.log = self.log
        return super().server(handle, pool)

    def wrap(self, sock):
        if self.inner is None:
            return sock    # already a DatagramQuery
        conn = self.inner.wrap(sock)
        if isinstance(conn, H2Session):
            return DoHSession(conn, self.read_timeout, self.write_timeout)
        if self.mode == "https":
            return DoHConn(conn, self.read_timeout, self.write_timeout)
        return StreamMessages(conn, self.read_timeout, self.write_timeout)
