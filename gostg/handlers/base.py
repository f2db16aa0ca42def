import time

import gevent

from ..relay import tcp as relay, udp, udpfast
from ..errors import BypassError, DialError
from ..policy.group import MissingReference, lookup, refused
from . import sniffing


class Options:
    """What a handler gets from its service: everything it may consult but not own."""

    __slots__ = ("router", "auther", "forwarder", "service", "registries", "auth", "netns")

    def __init__(self, router, auther=None, forwarder=None, service="", registries=None, auth=None, netns=""):
        self.router = router
        #: the service's listening namespace: the sockets a client is told to reach (SOCKS5 UDP
        #: relay, BIND listeners) are made there too, as GOST does
        self.netns = netns
        #: the handler's own ``auth`` as (username, password): ss reads its cipher and password here
        self.auth = auth
        self.auther = auther
        self.forwarder = forwarder
        self.service = service
        self.registries = registries


class Handler:
    #: seconds a client may take to complete its handshake (GOST's ``readTimeout``)
    read_timeout = 15.0
    #: the handler's ``observer``: per-client counts (observe.observer.ClientStats), or None
    client_stats = None
    #: the handler's ``limiter`` (a limiters[] name): shapes each tunnel by its client (GOST's
    #: scope ``client``, keyed by the client ID auth gave), or None
    limiter = None

    def __init__(self, md, options):
        self.md = md
        self.options = options
        self.router = options.router
        self.read_timeout = md.duration("readTimeout", default=self.read_timeout)
        # GOST's sniffing=true: types whose schema builds it peek at what they tunnel
        self.sniffing = md.declares("sniffing") and md.bool("sniffing")
        self.sniffing_timeout = (md.duration("sniffing.timeout") if self.sniffing else 0) or self.read_timeout

    def handshake_deadline(self):
        return gevent.Timeout(self.read_timeout or None)

    def authenticate(self, ctx, username, password):
        """True when no auther is set or the credentials pass; sets ``ctx.client_id``.
        The client IP goes along so a ``skipauth`` network passes without credentials.
        An auther name that does not resolve refuses every client, with one error line."""
        auther = self.options.auther
        if auther is None:
            return True
        try:
            cid = auther.authenticate(username, password, client=ctx.client_ip, ctx=ctx)
        except MissingReference as exc:   # fail closed: a missing auther lets nobody in
            refused(ctx.log, exc, service=ctx.service, client=ctx.client_ip)
            return False
        if cid is None:
            ctx.log.warning("authentication failed", user=username, service=ctx.service, client=ctx.client_ip)
            return False
        ctx.client_id = cid
        return True

    def handle(self, conn, ctx):
        raise NotImplementedError

    def dial(self, target, ctx, refuse, network="tcp"):
        """``router.dial`` or None, after ``refuse(reason)`` told the client why
        (reason: ``"bypass"`` or ``"unreachable"``; a missing chain, hop, bypass, resolver or
        hosts is "unreachable") and the cause was logged."""
        try:
            return self.router.dial(network, target, ctx)
        except BypassError:
            ctx.log.info("bypass", dst=target)
            refuse("bypass")
        except MissingReference as exc:
            ctx.stats_error()
            refused(ctx.log, exc, service=ctx.service, client=ctx.client_ip, dst=target)
            refuse("unreachable")
        except DialError as exc:
            ctx.stats_error()   # GOST's handler returns it: a handler error (a bypass is not)
            ctx.log.error(str(exc), dst=target)
            refuse("unreachable")
        return None

    def close(self):
        pass

    def relay_udp(self, client, upstream, ctx, dst, target=None):
        """Datagrams both ways until a side closes; closes ``upstream``."""
        ctx.log.info(f"{ctx.src} <-> {dst}", dst=dst, network="udp")
        t0 = time.monotonic()
        counted = self.client_begin(ctx)
        inp = out = 0
        try:
            run = udpfast.relay if udpfast.eligible(client, upstream) else udp.relay
            inp, out = run(client, upstream, ctx, target=target,
                           bypassed=None if target else lambda a: self.router.bypassed(a, "udp"))
        finally:
            upstream.close()
            self.client_end(counted, inp, out)
        ctx.stats_bytes(inp, out)
        ctx.log.info(f"{ctx.src} >-< {dst}", dst=dst, network="udp",
                     duration=round(time.monotonic() - t0, 6), inputBytes=inp, outputBytes=out)

    def tunnel(self, conn, upstream, ctx, target):
        """``relay`` for a CONNECT-style tunnel; with ``sniffing`` the client's first message
        is peeked first: a TLS SNI is logged and judged by the service bypass (refused: closed,
        with a log line); HTTP is served request by request, each Host judged (403)."""
        if self.sniffing:
            conn, found = sniffing.peek(conn, ctx, self.sniffing_timeout)
            if found.proto == "http":   # each request judged on its own (revproxy rule 5)
                from . import revproxy  # here: revproxy builds on the http handler, which needs this module
                return revproxy.serve(self, conn, ctx, upstream=upstream)   # it closes upstream
            if sniffing.bypassed(self.router, found, ctx):
                upstream.close()
                return
        self.relay(conn, upstream, ctx, target, detach=True)

    def client_begin(self, ctx):
        """A tunnel starts: with a handler ``observer``, count it for its client (GOST's
        per-client stats) → the client's counts for ``client_stats.end``; else None."""
        cs = self.client_stats
        return None if cs is None else cs.begin(ctx.client_id)

    def client_end(self, counted, inp, out):
        """The tunnel ``client_begin`` counted ended, having moved these bytes."""
        if counted is not None:
            self.client_stats.end(counted, inp, out)

    def client_limited(self, conn, upstream, ctx):
        """``conn`` shaped by the handler's limiter, or None (``upstream`` closed, logged) when
        the limiter is missing or its plugin cannot answer (fail closed)."""
        try:
            return lookup(self.options.registries, "limiters", self.limiter).wrap(
                conn, ctx.client_ip, ctx=ctx, scope="client")
        except MissingReference as exc:
            ctx.stats_error()
            refused(ctx.log, exc, service=ctx.service, client=ctx.client_ip)
            upstream.close()
            return None

    def relay(self, conn, upstream, ctx, target, detach=False):
        """Relay, then count and log the tunnel's end. With ``detach`` (a caller whose handler
        returns right after, leaving both conns to the relay) an idle plain-socket tunnel may
        go on without this greenlet (relay/tcp.py rule 6); the end is then logged from there."""
        if self.limiter is not None:
            conn = self.client_limited(conn, upstream, ctx)
            if conn is None:
                return
        t0 = time.monotonic()
        counted = self.client_begin(ctx)

        def finish(inp, out):   # at the end, in this greenlet or, once it left, in a callback
            self.client_end(counted, inp, out)
            ctx.stats_bytes(inp, out)
            ctx.log.info(f"{ctx.src} >-< {target}", dst=target, duration=round(time.monotonic() - t0, 6),
                         inputBytes=inp, outputBytes=out)

        # the "<->" line is written once the relay first waits: bytes already here go on first
        relay.pipe(conn, upstream, lambda: ctx.log.info(f"{ctx.src} <-> {target}", dst=target), finish, detach,
                   ctx)
