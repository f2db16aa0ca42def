from ..relay import udp
from ..transport.buffered import Stream
from ..errors import DialError
from ..protocols import socks5
from ..protocols.addr import join_host_port, split_host_port
from .bound import BoundPackets, BoundStreams
from ..core.registry import connectors
from .base import Connector


@connectors.register("socks5", "socks")
class SOCKS5Connector(Connector):
    def __init__(self, md, auth=None):
        super().__init__(md, auth)
        self.pipeline = md.bool("pipeline")

    def connect(self, conn, network, address, ctx=None):
        if network not in ("tcp", "udp"):
            raise DialError(f"socks5 connector cannot carry {network}")
        if network == "udp":
            return self._udp(conn, address)
        host, port = split_host_port(address) if address else ("", 0)
        s = self._request(conn, socks5.CMD_CONNECT, host, port)
        rep, _, _ = s.read(socks5.parse_reply)
        if rep != socks5.SUCCEEDED:
            raise DialError(f"socks5 CONNECT {address}: {socks5.REPLY_TEXT.get(rep, rep)}")
        return s.conn_with_rest()

    def bind(self, conn, network, address, ctx=None):
        """Remote forwarding: the server listens on ``address``. TCP uses GOST's MBIND (0xF2:
        peers arrive as smux streams); UDP uses UDP-TUN (0xF3) with that port."""
        host, port = split_host_port(address, 0)
        cmd = socks5.CMD_UDP_TUN if network == "udp" else socks5.CMD_MBIND
        s = self._request(conn, cmd, host or "0.0.0.0", port)
        rep, bhost, bport = s.read(socks5.parse_reply)
        if rep != socks5.SUCCEEDED:
            raise DialError(f"socks5 BIND {address}: {socks5.REPLY_TEXT.get(rep, rep)}")
        bound = join_host_port(bhost, bport)
        if network == "udp":
            return BoundPackets(udp.TunConn(conn, stream=s), bound)
        return BoundStreams(s.conn_with_rest(), bound, _peer_of_reply, self.md)

    def _request(self, conn, cmd, host, port):
        """Greeting (+ sub-negotiation) + request; → the Stream whose next message is the
        request's reply.

        With ``pipeline`` (gostg's, off by default) what can go early goes early. Without
        credentials only "no auth" is offered, so the server's one valid pick leaves the
        request next on the wire: greeting and request go in one write (one round trip instead
        of two; a server that refuses answers 0xFF and closes, the request unread). With
        credentials the server's pick decides what comes next, so the greeting waits for it;
        the request then rides with the credentials (a server that fails them must close,
        RFC 1929, and the status is checked before the reply is looked at). Off, each message
        waits for the answer before it, as RFC 1928 and GOST do: servers that read a message
        per recv() (microsocks) drop what came early."""
        request = socks5.encode_request(cmd, host, port)   # before anything is sent: a bad name fails here
        early = self.pipeline and not self.auth
        s = Stream(conn)
        methods = [socks5.METHOD_NONE] + ([socks5.METHOD_USERPASS] if self.auth else [])
        conn.sendall(socks5.encode_greeting(methods) + (request if early else b""))
        method = s.read(socks5.parse_method_reply)
        if method == socks5.METHOD_USERPASS:
            if not self.auth:
                raise DialError("socks5 server wants a username and password")
            conn.sendall(socks5.encode_userpass(*self.auth) + (request if self.pipeline else b""))
            if s.read(socks5.parse_userpass_reply) != 0:
                raise DialError("socks5 authentication failed")
            if not self.pipeline:
                conn.sendall(request)
        elif method != socks5.METHOD_NONE:
            raise DialError(f"socks5 server offered no acceptable method ({method:#x})")
        elif not early:
            conn.sendall(request)
        return s

    def _udp(self, conn, address):
        """GOST's UDP-TUN (0xF3) over this stream; ``relay=udp`` asks a standard UDP ASSOCIATE
        instead (third-party servers) and sends datagrams straight to its relay address."""
        standard = self.md.str("relay") == "udp"
        s = self._request(conn, socks5.CMD_UDP if standard else socks5.CMD_UDP_TUN, "0.0.0.0", 0)
        rep, rhost, rport = s.read(socks5.parse_reply)
        if rep != socks5.SUCCEEDED:
            raise DialError(f"socks5 UDP {'associate' if standard else 'tunnel'}: {socks5.REPLY_TEXT.get(rep, rep)}")
        if not standard:
            return udp.TunConn(conn, target=address, stream=s)
        if rhost in ("0.0.0.0", "::"):
            rhost = conn.getpeername()[0]   # "any": the server we are talking to
        sock = udp.bind_udp("::" if ":" in rhost else "0.0.0.0", 0)
        try:
            sock.connect((rhost, rport))
        except OSError:
            sock.close()
            raise
        return udp.Socks5Client(sock, conn, target=address)


def _peer_of_reply(s):
    """Each MBIND stream starts with a SOCKS5 reply naming the accepted peer."""
    rep, host, port = s.read(socks5.parse_reply)
    if rep != socks5.SUCCEEDED:
        raise DialError(f"socks5 bind stream: {socks5.REPLY_TEXT.get(rep, rep)}")
    return join_host_port(host, port)
