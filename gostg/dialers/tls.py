from gevent import socket

from ..errors import DialError
from ..core.registry import dialers
from ..core.router import dial_tcp
from ..transport.tlsconf import client_context
from ..transport.tls import TLSConn
from .base import Dialer


@dialers.register("tls")
class TLSDialer(Dialer):
    """TCP + TLS; as a later hop only the handshake runs, over the previous hop's stream."""

    applies_sockopts = True

    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)
        self.context = client_context(tls)
        self.server_name = (tls or {}).get("serverName") or None

    def dial(self, addr, timeout):
        return dial_tcp(addr, timeout, self.sockopts)

    def handshake(self, conn):
        try:
            if type(conn) is socket.socket:  # a plain socket: the kernel-backed fast path
                return self.context.wrap_socket(conn, server_hostname=self.server_name)
            return TLSConn(conn, self.context, self.server_name).handshake()  # over a previous hop
        except OSError as exc:
            raise DialError(f"TLS handshake: {exc}") from exc
