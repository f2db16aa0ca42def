"""``http2`` listener: TLS (ALPN ``h2``) + an HTTP/2 server, as GOST's. Each request stream is a
connection for the handler (GOST pairs it with the ``http2`` handler, which answers it).

``wrap`` runs the TLS handshake as the ``tls`` listener does (same certificate rules,
``handshakeTimeout``) and returns an ``H2Session``; the Service sees its ``multiplex`` flag and
hands every request stream to the handler in a greenlet of its own. A client that speaks no
HTTP/2 fails the connection preface: a protocol error that closes that connection only."""
from ..h2conn import H2Session
from ..registry import listeners
from .tls import TLSListener

ALPN = ["h2"]


@listeners.register("http2")
class HTTP2Listener(TLSListener):
    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        self.context.set_alpn_protocols(ALPN)

    def wrap(self, sock):
        return H2Session(super().wrap(sock), client=False)
