"""``h2`` (TLS, ALPN ``h2``) and ``h2c`` (cleartext, prior knowledge) listeners: GOST's HTTP/2
stream tunnels. Every accepted request stream is answered ``200`` and becomes a connection for
ANY handler (``socks5+h2://``, ``relay+h2c://`` …).

GOST's rule for which requests open a tunnel: without ``path`` only ``CONNECT`` (else 405);
with ``path`` any method whose request target is exactly that path (else 400)."""
from ..transport.mux.h2 import H2Session
from ..core.registry import listeners
from .http2 import ALPN
from .tcp import TCPListener
from .tls import TLSListener


class Tunnels:
    """An ``H2Session`` whose ``accept`` answers each request and yields the good ones."""

    multiplex = True

    def __init__(self, session, path):
        self.session = session
        self.path = path

    def accept(self):
        for st in self.session.accept():
            if not self.path and st.method != "CONNECT":
                status = 405
            elif self.path and (st.method == "CONNECT" or st.path != self.path):
                status = 400
            else:
                status = 200
            try:
                st.respond(status, end_stream=status != 200)
            except OSError:
                st.close()
                continue
            if status != 200:
                st.close()
                continue
            yield st

    def close(self):
        self.session.close()

    def getpeername(self):
        return self.session.getpeername()


class _H2Mixin:
    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        self.path = md.str("path")

    def wrap(self, sock):
        return Tunnels(H2Session(super().wrap(sock), client=False), self.path)


@listeners.register("h2")
class H2Listener(_H2Mixin, TLSListener):
    def __init__(self, addr, md, tls=None, auth=None):
        super().__init__(addr, md, tls, auth)
        self.context.set_alpn_protocols(ALPN)


@listeners.register("h2c")
class H2CListener(_H2Mixin, TCPListener):
    pass
