import time

import gevent

from .. import relay
from ..errors import BypassError, DialError


class Options:
    """What a handler gets from its service: everything it may consult but not own."""

    __slots__ = ("router", "auther", "forwarder", "service", "registries")

    def __init__(self, router, auther=None, forwarder=None, service="", registries=None):
        self.router = router
        self.auther = auther
        self.forwarder = forwarder
        self.service = service
        self.registries = registries


class Handler:
    #: seconds a client may take to complete its handshake (GOST's ``readTimeout``)
    read_timeout = 15.0

    def __init__(self, md, options):
        self.md = md
        self.options = options
        self.router = options.router
        self.read_timeout = md.duration("readTimeout", default=self.read_timeout)

    def handshake_deadline(self):
        return gevent.Timeout(self.read_timeout or None)

    def authenticate(self, ctx, username, password):
        """True when no auther is set or the credentials pass; sets ``ctx.client_id``."""
        auther = self.options.auther
        if auther is None:
            return True
        cid = auther.authenticate(username, password)
        if cid is None:
            ctx.log.warning("authentication failed", user=username)
            return False
        ctx.client_id = cid
        return True

    def handle(self, conn, ctx):
        raise NotImplementedError

    def dial(self, target, ctx, refuse):
        """``router.dial`` or None, after ``refuse(reason)`` told the client why
        (reason: ``"bypass"`` or ``"unreachable"``) and the cause was logged."""
        try:
            return self.router.dial("tcp", target, ctx)
        except BypassError:
            ctx.log.info("bypass", dst=target)
            refuse("bypass")
        except DialError as exc:
            ctx.log.error(str(exc), dst=target)
            refuse("unreachable")
        return None

    def close(self):
        pass

    @staticmethod
    def relay(conn, upstream, ctx, target):
        ctx.log.info(f"{ctx.src} <-> {target}", dst=target)
        t0 = time.monotonic()
        inp, out = relay.pipe(conn, upstream)
        ctx.stats_bytes(inp, out)
        ctx.log.info(f"{ctx.src} >-< {target}", dst=target, duration=round(time.monotonic() - t0, 6),
                     inputBytes=inp, outputBytes=out)
