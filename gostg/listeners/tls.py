import gevent

from ..errors import ProtocolError
from ..core.registry import listeners
from ..transport.buffered import BufferedConn
from ..transport.tlsconf import server_context
from .tcp import TCPListener


@listeners.register("tls")
class TLSListener(TCPListener):
    """TCP + TLS. The handshake runs in the connection's greenlet, bounded by
    ``handshakeTimeout`` (metadata), so a slow client delays nobody else."""

    #: seconds a client may take to finish the TLS handshake
    handshake_timeout = 10.0

    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        self.context = server_context(tls)
        self.handshake_timeout = md.duration("handshakeTimeout", default=self.handshake_timeout)

    def wrap(self, sock):
        if isinstance(sock, BufferedConn):
            # bytes pushed back after looking for a PROXY header: they began "PROXY" or "\r\n",
            # which no TLS ClientHello does
            sock.close()
            raise ProtocolError("TLS handshake: the client spoke plain text")
        sock = super().wrap(sock)
        conn = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        try:
            with gevent.Timeout(self.handshake_timeout, ProtocolError("TLS handshake timeout")):
                conn.do_handshake()
        except OSError as exc:  # ssl.SSLError is an OSError: the peer spoke no (acceptable) TLS
            conn.close()
            raise ProtocolError(f"TLS handshake: {exc}") from None
        return conn
