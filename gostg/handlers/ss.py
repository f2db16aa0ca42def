"""The Shadowsocks server (GOST's ``ss`` handler, ``x/handler/ss``): AEAD TCP.

The handler's ``auth`` is the method and password (``-L ss://chacha20-ietf-poly1305:pass@:8338``
or the SIP002 base64 userinfo, decoded by the URL rules). As in GOST, no auth (or an empty method
or password, or ``none``/``dummy``) means no encryption: the target header is read in the clear.
Metadata: ``key`` (a raw key instead of the password), ``readTimeout`` (default 15s).

Probing: a wrong password, garbage, a truncated header or a replayed salt is logged, then the
connection is read and discarded until the peer gives up or ``readTimeout`` (counted from accept)
runs out — the server never answers, and how long it stays open does not depend on what was sent.
A replay filter (salts of roughly the last two minutes, bounded) refuses reused salts; a salt is
remembered once its first chunk authenticates, and the server's own salts are remembered too, so a
reflected reply is refused as well.
"""
import gevent

from ..transport.buffered import Stream
from ..errors import ConfigError, ProtocolError
from ..protocols import shadowsocks as ss
from ..protocols.addr import join_host_port
from ..core.registry import handlers
from ..transport.ss import SSConn, SSStreamError
from .base import Handler


def make_cipher(auth, key=""):
    """(method, password) → Cipher, or None for no encryption (GOST's rule)."""
    method, password = auth if auth else ("", "")
    if not method or ss.is_plain(method) or (not password and not key):
        return None
    try:
        return ss.Cipher.new(method, password, key)
    except ProtocolError as exc:
        raise ConfigError("auth", str(exc)) from None


@handlers.register("ss")
class SSHandler(Handler):
    #: seconds a salt is remembered at least (twice this at most)
    replay_period = 60.0
    #: salts per filter generation; a full generation rotates early
    replay_capacity = 100_000

    def __init__(self, md, options):
        super().__init__(md, options)
        if not self.read_timeout or self.read_timeout <= 0:
            self.read_timeout = Handler.read_timeout  # as GOST: the probe deadline is never unset
        self.cipher = make_cipher(options.auth, md.str("key"))
        self.replay = ss.SaltFilter(self.replay_period, self.replay_capacity)

    def handle(self, conn, ctx):
        sconn = SSConn(conn, self.cipher, replay=self.replay) if self.cipher else conn
        s = Stream(sconn)
        timer = gevent.Timeout(self.read_timeout or None)
        timer.start()
        bad = None
        try:
            try:
                host, port = s.read(ss.parse_target)
            except (ProtocolError, SSStreamError) as exc:
                bad = exc
                ctx.log.warning(f"ss: {exc}")
                self._discard(conn)
                return
            except EOFError:
                return
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            if bad is None:
                ctx.log.warning("ss: no valid request before readTimeout")
            return
        finally:
            timer.close()
        if self.cipher is not None:
            self.replay.add(sconn.enc.salt)
        target = join_host_port(host, port)
        ctx.target = target
        upstream = self.dial(target, ctx, lambda why: None)  # ss has no way to say why: just close
        if upstream is None:
            return
        self.relay(s.conn_with_rest(), upstream, ctx, target, detach=True)

    @staticmethod
    def _discard(conn):
        """Read and drop until the peer closes (the caller's deadline bounds this)."""
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
