"""The ``http2`` dialer (TLS + ALPN h2, as GOST's) and the HTTP/2 session dialer that the
``h2``/``h2c`` tunnel dialers (dialers/h2.py) build on.

Rules:
1. One HTTP/2 connection per dialer (a dialer belongs to one node, see dialers/session.py):
   ``dial`` returns a ``SessionRef`` to the live session; a dead session (closed, or told
   GOAWAY) is replaced.
2. ``http2``: ``handshake`` passes the session on; the ``http2`` connector opens the stream
   (CONNECT to the target).
3. As a later hop (over a previous hop's stream) the session is private to the one tunnel
   and closes with it.
"""
from gevent import socket

from ..errors import DialError
from ..transport.mux.h2 import H2Session, SessionRef
from ..core.registry import dialers
from ..transport.tlsconf import client_context
from ..transport.tls import TLSConn
from .session import SessionDialer

ALPN = ["h2"]


def extra_headers(md):
    """GOST's ``header`` metadata as HTTP/2 header fields (names lower-cased, as h2 requires)."""
    h = md.raw("header")
    return [(str(k).lower(), str(v)) for k, v in h.items()] if isinstance(h, dict) else []


class H2SessionDialer(SessionDialer):
    #: TLS with ALPN h2 under HTTP/2 (``h2c`` speaks it in cleartext)
    secure = True

    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)
        if self.secure:
            self.context = client_context(tls)
            self.context.set_alpn_protocols(ALPN)
            self.server_name = (tls or {}).get("serverName") or None

    def _tls(self, conn):
        try:
            if type(conn) is socket.socket:  # a plain socket: the kernel-backed fast path
                c = self.context.wrap_socket(conn, server_hostname=self.server_name)
                proto = c.selected_alpn_protocol()
            else:  # over a previous hop
                c = TLSConn(conn, self.context, self.server_name).handshake()
                proto = c.obj.selected_alpn_protocol()
        except OSError as exc:
            raise DialError(f"TLS handshake: {exc}") from exc
        if proto not in (None, "h2"):
            c.close()
            raise DialError(f"server chose ALPN {proto!r}, not h2")
        return c

    def _new_session(self, conn):
        return H2Session(self._tls(conn) if self.secure else conn, client=True).start()

    def _for_route(self, session):
        """The shared session, also when this node is a later hop: the route restarts here,
        as GOST's does."""
        return SessionRef(session)

    def session_for(self, conn):
        """The shared session ``dial`` gave, or a private one over a previous hop's stream."""
        if isinstance(conn, SessionRef):
            return conn.session
        s = self._new_session(conn)
        s.private = True
        return s


@dialers.register("http2")
class HTTP2Dialer(H2SessionDialer):
    def handshake(self, conn):
        return SessionRef(self.session_for(conn))


