"""The Shadowsocks client (GOST's ``ss`` connector, ``x/connector/ss``): AEAD TCP.

``-F ss://aes-256-gcm:pass@host:port``: the connector's ``auth`` is the method and password
(required, as in GOST; ``none``/``dummy`` sends the target header in the clear). Nothing goes on
the wire at connect time: the target header rides in the first encrypted chunk with the first
payload, as shadowsocks clients do. ``nodelay=true`` sends it at once instead, for protocols where
the server speaks first. Metadata ``key``: a raw key instead of the password.
"""
from ..errors import ConfigError, DialError, ProtocolError
from ..protocols import shadowsocks as ss
from ..protocols.addr import split_host_port
from ..core.registry import connectors
from ..transport.ss import SSConn
from .base import Connector


@connectors.register("ss")
class SSConnector(Connector):

    def __init__(self, md, auth=None):
        super().__init__(md, auth)
        method, password = auth if auth else ("", "")
        if not method:
            raise ConfigError("auth", "ss connector: auth (method:password) is required")
        self.cipher = None
        if not ss.is_plain(method):
            try:
                self.cipher = ss.Cipher.new(method, password, md.str("key"))
            except ProtocolError as exc:
                raise ConfigError("auth", str(exc)) from None
        self.nodelay = md.bool("nodelay", "noDelay")

    def connect(self, conn, network, address, ctx=None):
        if network not in ("tcp", "tcp4", "tcp6"):
            raise DialError(f"ss connector: network {network} is not supported")
        try:
            header = ss.encode_target(*split_host_port(address))
        except ProtocolError as exc:
            raise DialError(f"ss: bad address {address!r}: {exc}") from exc
        if self.cipher is None:
            conn.sendall(header)
            return conn
        sconn = SSConn(conn, self.cipher, header)
        if self.nodelay:
            sconn.flush_header()
        return sconn
