class Dialer:
    """``dial`` opens the real socket (hop 0 only); ``handshake`` runs a transport over a stream
    (TLS, WebSocket …) and is the only part used for later hops."""

    multiplex = False
    #: the node's address, set by the config builder (a ws dialer's default Host header)
    node_addr = ""
    #: the node's interface / so_mark / netns (:class:`gostg.core.sockopts.SockOpts`), set by
    #: the config builder; only a dialer class that passes it to the socket it opens says
    #: ``applies_sockopts``, so a node's settings are never silently ignored (fail closed)
    sockopts = None
    applies_sockopts = False

    def __init__(self, md, auth=None, tls=None):
        self.md = md
        self.auth = auth
        self.tls = tls

    def dial(self, addr, timeout):
        raise NotImplementedError

    def handshake(self, conn):
        return conn
