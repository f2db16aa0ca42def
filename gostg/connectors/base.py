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
