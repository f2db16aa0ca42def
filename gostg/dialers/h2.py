"""HTTP/2 stream-tunnel dialers ``h2`` (TLS, ALPN h2) and ``h2c`` (cleartext, prior knowledge),
as GOST's: one HTTP/2 connection per node (see dialers/http2.py), and ``handshake`` opens a
stream and waits for ``200``: ``CONNECT`` with ``:authority`` = ``host`` (default: the node's
address), or, with ``path``, ``GET`` of that path. ``header`` adds request headers. As a later
hop the session is private to the one tunnel and closes with it."""
from ..errors import DialError, ProtocolError
from ..core.registry import dialers
from .http2 import H2SessionDialer, extra_headers


@dialers.register("h2")
class H2Dialer(H2SessionDialer):
    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)
        self.host = md.str("host")
        self.path = md.str("path")
        self.header = extra_headers(md)

    def request(self):
        host = self.host or self.node_addr or "localhost"
        if self.path:
            return [(":method", "GET"), (":scheme", "https" if self.secure else "http"),
                    (":authority", host), (":path", self.path), *self.header]
        return [(":method", "CONNECT"), (":authority", host), *self.header]

    def handshake(self, conn):
        session = self.session_for(conn)
        st = None
        try:
            st = session.open(self.request())
            status, _ = st.response()
            if status != 200:
                raise DialError(f"h2 tunnel: server answered {status}")
        except BaseException as exc:
            if st is not None:
                st.close()
            if session.private:
                session.close()
            if isinstance(exc, (OSError, ProtocolError)):
                raise DialError(f"h2 tunnel: {exc}") from exc
            raise
        st.owns_session = session.private
        return st


@dialers.register("h2c")
class H2CDialer(H2Dialer):
    secure = False
