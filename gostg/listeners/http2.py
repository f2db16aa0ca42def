"""``http2`` listener: TLS (ALPN ``h2``) + an HTTP/2 server, as GOST's. Each request stream is a
connection for the handler (GOST pairs it with the ``http2`` handler, which answers it).

``wrap`` runs the TLS handshake as the ``tls`` listener does (same certificate rules,
``handshakeTimeout``) and returns an ``H2Session``; the Service sees its ``multiplex`` flag and
hands every request stream to the handler in a greenlet of its own.

HTTP/1.1 clients are served too, as Go's server does for GOST: one that picks ``http/1.1`` by
ALPN, or sends no ALPN and no HTTP/2 preface (curl ``-x https://`` does exactly that), gets the
TLS conn itself, which the ``http2`` handler serves as an HTTP/1.1 proxy."""
import gevent

from ..transport.buffered import BufferedConn
from ..errors import ProtocolError
from ..transport.mux.h2 import H2Session
from ..core.registry import listeners
from .tls import TLSListener

ALPN = ["h2", "http/1.1"]
#: how an HTTP/2 client's first bytes start (RFC 9113 §3.4); no HTTP/1 method starts so
PREFACE_START = b"PRI "


@listeners.register("http2")
class HTTP2Listener(TLSListener):
    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        self.context.set_alpn_protocols(ALPN)

    def wrap(self, sock):
        conn = super().wrap(sock)
        proto = conn.selected_alpn_protocol()
        if proto == "h2":
            return H2Session(conn, client=False)
        if proto == "http/1.1":
            return conn
        head = b""
        with gevent.Timeout(self.handshake_timeout, ProtocolError("no request before handshakeTimeout")):
            while len(head) < len(PREFACE_START) and PREFACE_START.startswith(head):
                data = conn.recv(len(PREFACE_START) - len(head))
                if not data:
                    raise EOFError
                head += data
        conn = BufferedConn(conn, head)
        return H2Session(conn, client=False) if head == PREFACE_START else conn
