from ..transport.buffered import Stream, send_all as send_reply   # a short reply: one send on a plain socket
from ..errors import ProtocolError
from ..protocols import socks5
from ..protocols.addr import join_host_port
from ..core.registry import handlers
from . import socks5_udp
from .base import Handler


def _flush(conn, held):
    """A held method answer on the way out of an error: the client gets it, then the close,
    as when it was sent at once."""
    if held:
        try:
            conn.sendall(held)
        except OSError:
            pass


@handlers.register("socks5", "socks")
class SOCKS5Handler(Handler):
    """SOCKS5 (RFC 1928/1929): CONNECT; with ``udp=true`` UDP ASSOCIATE and GOST's UDP-TUN
    (0xF3); with ``bind=true`` BIND and GOST's MBIND (0xF2)."""

    def __init__(self, md, options):
        super().__init__(md, options)
        self.enable_udp = md.bool("udp")
        self.enable_bind = md.bool("bind")

    def handle(self, conn, ctx, stream=None):
        s = stream or Stream(conn)
        with self.handshake_deadline():
            request, held = self._negotiate(conn, s, ctx)
        if request is None:
            return
        cmd, host, port = request
        target = join_host_port(host, port)
        ctx.target = target
        if cmd in (socks5.CMD_UDP, socks5.CMD_UDP_TUN, socks5.CMD_BIND, socks5.CMD_MBIND):
            if held:
                send_reply(conn, held)
            return socks5_udp.serve(self, cmd, conn, s, ctx, host, port)
        if cmd != socks5.CMD_CONNECT:
            conn.sendall(held + socks5.encode_reply(socks5.COMMAND_NOT_SUPPORTED))
            ctx.log.warning(f"socks5: command {cmd} not supported", dst=target)
            return
        try:
            upstream = self.dial(target, ctx, lambda why: conn.sendall(held + socks5.encode_reply(
                socks5.NOT_ALLOWED if why == "bypass" else socks5.HOST_UNREACHABLE)))
        except BaseException:
            _flush(conn, held)
            raise
        if upstream is None:
            return
        try:
            send_reply(conn, held + socks5.encode_reply(socks5.SUCCEEDED))
        except OSError:
            upstream.close()
            raise
        self.tunnel(s.conn_with_rest(), upstream, ctx, target)

    def _negotiate(self, conn, s, ctx):
        """Method selection, sub-negotiation, request → ``((cmd, host, port), held)``, or
        ``(None, b"")`` when the client was refused. ``held`` is the method answer not sent yet:
        a client that sent its request right behind its greeting (no auth) is not waiting for
        it, so it goes out with the next reply, in one segment. (Its own frame: nothing of the
        handshake stays alive for as long as the tunnel runs.)"""
        methods = s.read(socks5.parse_greeting)
        if self.options.auther is not None:
            method = socks5.METHOD_USERPASS if socks5.METHOD_USERPASS in methods else socks5.METHOD_NO_ACCEPTABLE
        elif socks5.METHOD_NONE in methods:
            method = socks5.METHOD_NONE
        elif socks5.METHOD_USERPASS in methods:
            method = socks5.METHOD_USERPASS  # no auth configured: accept any credentials
        else:
            method = socks5.METHOD_NO_ACCEPTABLE
        held = socks5.encode_method_reply(method)
        if method != socks5.METHOD_NONE or not s.buf:
            send_reply(conn, held)
            held = b""
        if method == socks5.METHOD_NO_ACCEPTABLE:
            ctx.log.warning("socks5: no acceptable auth method", methods=sorted(methods))
            return None, b""
        if method == socks5.METHOD_USERPASS:
            user, password, = s.read(socks5.parse_userpass)
            ok = self.authenticate(ctx, user, password)
            conn.sendall(socks5.encode_userpass_reply(ok))
            if not ok:
                return None, b""
        try:
            return s.read(socks5.parse_request), held
        except ProtocolError as exc:
            out = held + (socks5.encode_reply(exc.reply) if exc.reply is not None else b"")
            if out:
                conn.sendall(out)
            raise
        except BaseException:
            _flush(conn, held)
            raise
