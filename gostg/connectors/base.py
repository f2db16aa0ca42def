from ..protocols.addr import join_host_port


def sock_addr_text(conn, which="getpeername"):
    """``host:port`` of ``conn``'s peer (``which="getsockname"``: its own end); "" when it has
    none to give (a socketpair, a conn that is not a socket)."""
    try:
        return join_host_port(*getattr(conn, which)()[:2])
    except (OSError, TypeError, ValueError, AttributeError):
        return ""


class Connector:
    """``connect(conn, network, address, ctx)`` asks the node at the other end of ``conn`` to
    connect to ``address`` and returns the conn that now leads there."""

    def __init__(self, md, auth=None):
        self.md = md
        self.auth = auth  # (username, password) or None

    def handshake(self, conn):
        return conn

    def connect(self, conn, network, address, ctx=None):
        raise NotImplementedError
