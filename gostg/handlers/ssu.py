"""The Shadowsocks UDP server (GOST's ``ssu`` handler): ``-L ssu://method:pass@:8338``.

On a udp listener each client address is a session whose datagrams carry their own targets;
the session lives while datagrams flow (keepAlive is implied: an ss client sends many
exchanges from one port) and ends after the listener's ``ttl`` of silence. On a stream
listener (``ssu+tcp``, GOST's UDP over an ss TCP connection) the stream is decrypted as ss TCP
and carries UDP-TUN frames."""
from ..relay import udp
from ..errors import DialError
from ..protocols import shadowsocks as ss
from ..core.registry import handlers
from ..transport.ss import SSConn
from ..transport.ssu import SSUServer
from .base import Handler
from .ss import SSHandler, make_cipher


@handlers.register("ssu")
class SSUHandler(Handler):

    def __init__(self, md, options):
        super().__init__(md, options)
        self.cipher = make_cipher(options.auth, md.str("key"))
        self.replay = ss.SaltFilter(SSHandler.replay_period, SSHandler.replay_capacity)

    def handle(self, conn, ctx):
        if getattr(conn, "is_packet", False):
            conn.keepalive = True
            client = SSUServer(conn, self.cipher, ctx.log, self.replay)
        else:
            client = udp.TunConn(SSConn(conn, self.cipher) if self.cipher else conn)
        try:
            upstream = self.router.dial("udp", "", ctx)
        except DialError as exc:
            ctx.log.error(f"ssu: {exc}")
            return
        self.relay_udp(client, upstream, ctx, "ssu")
