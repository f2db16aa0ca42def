from gevent.server import StreamServer


class Listener:
    """``bind()`` happens when the service is built, so a port in use is a build error and a
    replacement can be bound before the old service goes. ``wrap(sock)`` runs in the
    connection's greenlet (TLS handshake, WebSocket upgrade …) and returns the conn."""

    #: set by the config builder: a listener-level chain (rtcp/rudp bind through it), the
    #: registries to find it in, and the service's logger
    chain = None
    registries = None
    log = None

    def __init__(self, addr, md, tls=None, auth=None):
        self.addr = addr
        self.md = md
        self.tls = tls
        self.auth = auth
        self.socket = None

    def bind(self):
        raise NotImplementedError

    def adopt(self, sock):
        """Take over a predecessor's bound socket (a replacement on the same address)."""
        self.socket = sock

    def server(self, handle, pool):
        """The accept loop: ``handle(conn, address)`` runs in a ``pool`` greenlet per peer."""
        return StreamServer(self.socket, handle, spawn=pool)

    def wrap(self, sock):
        return sock

    def close(self):
        if self.socket is not None:
            self.socket.close()
