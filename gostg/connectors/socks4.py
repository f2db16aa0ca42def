from ..transport.buffered import Stream
from ..errors import DialError
from ..protocols import socks4
from ..protocols.addr import split_host_port
from ..core.registry import connectors
from .base import Connector


@connectors.register("socks4", "socks4a")
class SOCKS4Connector(Connector):
    def connect(self, conn, network, address, ctx=None):
        if network != "tcp":
            raise DialError(f"socks4 cannot carry {network}")
        host, port = split_host_port(address)
        conn.sendall(socks4.encode_request(socks4.CMD_CONNECT, host, port, self.auth[0] if self.auth else ""))
        s = Stream(conn)
        code = s.read(socks4.parse_reply)
        if code != socks4.GRANTED:
            raise DialError(f"socks4 CONNECT {address}: rejected ({code})")
        return s.conn_with_rest()
