class Listener:
    """``bind()`` happens when the service is built, so a port in use is a build error and a
    replacement can be bound before the old service goes. ``wrap(sock)`` runs in the
    connection's greenlet (TLS handshake, WebSocket upgrade …) and returns the conn."""

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

    def wrap(self, sock):
        return sock

    def close(self):
        if self.socket is not None:
            self.socket.close()
