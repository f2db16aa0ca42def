from ..conn import Stream
from ..errors import DialError
from ..protocols import socks5
from ..protocols.addr import split_host_port
from ..registry import connectors
from .base import Connector


@connectors.register("socks5", "socks")
class SOCKS5Connector(Connector):
    def connect(self, conn, network, address, ctx=None):
        if network != "tcp":
            raise DialError(f"socks5 connector cannot carry {network} yet")
        methods = [socks5.METHOD_NONE] + ([socks5.METHOD_USERPASS] if self.auth else [])
        host, port = split_host_port(address)
        out = socks5.encode_greeting(methods)
        conn.sendall(out)
        s = Stream(conn)
        method = s.read(socks5.parse_method_reply)
        if method == socks5.METHOD_USERPASS:
            if not self.auth:
                raise DialError("socks5 server wants a username and password")
            conn.sendall(socks5.encode_userpass(*self.auth))
            status = s.read(socks5.parse_userpass_reply)
            if status != 0:
                raise DialError("socks5 authentication failed")
        elif method != socks5.METHOD_NONE:
            raise DialError(f"socks5 server offered no acceptable method ({method:#x})")
        conn.sendall(socks5.encode_request(socks5.CMD_CONNECT, host, port))
        rep, _, _ = s.read(socks5.parse_reply)
        if rep != socks5.SUCCEEDED:
            raise DialError(f"socks5 CONNECT {address}: {socks5.REPLY_TEXT.get(rep, rep)}")
        return s.conn_with_rest()
