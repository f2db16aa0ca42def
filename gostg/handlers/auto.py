from ..transport.buffered import Stream
from ..core.registry import handlers
from .base import Handler
from .http import HTTPHandler
from .socks4 import SOCKS4Handler
from .socks5 import SOCKS5Handler


@handlers.register("auto")
class AutoHandler(Handler):
    """HTTP, SOCKS4/4a and SOCKS5 on one port, told apart by the first byte."""

    def __init__(self, md, options):
        super().__init__(md, options)
        self.socks4 = SOCKS4Handler(md, options)
        self.socks5 = SOCKS5Handler(md, options)
        self.http = HTTPHandler(md, options)

    def handle(self, conn, ctx):
        s = Stream(conn)
        with self.handshake_deadline():
            if not s.fill(16384):
                return
        first = s.buf[0]
        if first == 4:
            return self.socks4.handle(conn, ctx, s)
        if first == 5:
            return self.socks5.handle(conn, ctx, s)
        return self.http.handle(conn, ctx, s)
