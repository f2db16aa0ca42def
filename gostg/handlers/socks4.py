from ..transport.buffered import Stream
from ..protocols import socks4
from ..protocols.addr import join_host_port
from ..core.registry import handlers
from .base import Handler


@handlers.register("socks4", "socks4a")
class SOCKS4Handler(Handler):
    """SOCKS4/4a CONNECT. As GOST, a configured auther checks USERID with an empty password."""

    def handle(self, conn, ctx, stream=None):
        s = stream or Stream(conn)
        with self.handshake_deadline():
            cmd, host, port, userid = s.read(socks4.parse_request)
        target = join_host_port(host, port)
        ctx.target = target
        if self.options.auther is not None and not self.authenticate(ctx, userid, ""):
            conn.sendall(socks4.encode_reply(socks4.IDENT_MISMATCH))
            return
        if cmd != socks4.CMD_CONNECT:
            conn.sendall(socks4.encode_reply(socks4.REJECTED))
            ctx.log.warning(f"socks4: command {cmd} not supported", dst=target)
            return
        upstream = self.dial(target, ctx, lambda why: conn.sendall(socks4.encode_reply(socks4.REJECTED)))
        if upstream is None:
            return
        conn.sendall(socks4.encode_reply(socks4.GRANTED))
        self.tunnel(s.conn_with_rest(), upstream, ctx, target)
