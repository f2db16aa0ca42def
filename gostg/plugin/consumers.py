"""Named objects whose decisions a plugin makes: authers, admissions, bypasses, hosts,
resolvers and traffic limiters with ``plugin:`` (GOST builds the plugin *instead of* the
object's own rules, and so does gostg). Each has the interface of the object it stands for.

Fail closed (gostg's rule; GOST's differences are in the note of each class): a plugin that
times out, is down or answers garbage raises :class:`gostg.policy.group.Unanswered`, which
every caller already treats as a reference that does not resolve: the connection is refused
with one error line. The failure itself is logged once per change of cause, and once when
the plugin answers again, never once per connection.
"""
import time

from . import PluginError, transport, wire
from ..policy.group import Unanswered


class PluginBacked:
    """One named object answered by a plugin. ``kind`` is the registry ("authers"),
    ``plugin_kind`` GOST's plugin kind ("auth")."""

    kind = plugin_kind = ""
    whitelist = False
    #: what a failing plugin means, in its log line
    failing = "refusing until it answers"

    def __init__(self, name, cfg, path, log=None):
        self.name = name
        self.transport = transport(cfg, self.plugin_kind, path)
        self.log = log.bind(kind=self.plugin_kind, plugin=name) if log is not None else None
        self._failing = None   # the last failure's text while failing

    def ask(self, request, parse, call=None):
        """→ ``parse(call(request))`` (``call``: the transport's JSON POST unless given); a
        failure (transport, status, garbage) raises Unanswered."""
        try:
            out = parse((call or self.transport.call)(request))
        except PluginError as exc:
            why = str(exc) or type(exc).__name__
            if why != self._failing and self.log is not None:
                self.log.error(f"{self.plugin_kind} plugin {self.name}: {why}: {self.failing}")
            self._failing = why
            raise Unanswered(self.kind, self.name, why) from None
        if self._failing is not None:
            self._failing = None
            if self.log is not None:
                self.log.info(f"{self.plugin_kind} plugin {self.name} answers again")
        return out

    def close(self):
        self.transport.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


def _src(ctx):
    return getattr(ctx, "src", "") or ""


def _service(ctx):
    return getattr(ctx, "service", "") or ""


def _client_id(ctx):
    return getattr(ctx, "client_id", "") or ""


class PluginAuther(PluginBacked):
    """``{service, username, password, client}`` → ``{ok, id}``; the ID becomes the client's
    (hash selector, bypass/hop/limiter plugins). GOST denies on a failure too."""

    kind, plugin_kind = "authers", "auth"

    def authenticate(self, username, password, client=None, ctx=None):
        return self.ask(wire.auth_request(username, password, _src(ctx) or client or "", _service(ctx)),
                        wire.auth_reply)


class PluginAdmission(PluginBacked):
    """``{service, network, addr}`` → ``{ok}``; ok admits. GOST denies on a failure too."""

    kind, plugin_kind = "admissions", "admission"

    def admit(self, address, service=""):
        return self.ask(wire.admission_request(address, service), wire.admission_reply)


class PluginBypass(PluginBacked):
    """``{service, network, addr, client, host, path}`` → ``{ok}``; ok means "bypassed" (a
    service refuses, a hop is cut, a node left out). GOST answers "bypassed" when the plugin
    fails, which at a hop or node sends the traffic around it (hop 0: directly); gostg refuses
    the connection instead."""

    kind, plugin_kind = "bypasses", "bypass"

    def contains(self, network, address=None, ctx=None):
        if address is None:
            network, address = "tcp", network
        if not address:
            return False
        return self.ask(wire.bypass_request(network, address, _client_id(ctx), service=_service(ctx)),
                        wire.bypass_reply)


def _ip_network(only):
    return {"ipv4": "ip4", "ip4": "ip4", "ipv6": "ip6", "ip6": "ip6"}.get(only or "", "ip")


class PluginHosts(PluginBacked):
    """``{network, host, client}`` → ``{ips, ok}``; not ok is "no mapping" (the resolver
    goes on). GOST reads a failure as "no mapping" too; gostg refuses: a hosts mapping may pin
    where a name goes, and resolving it elsewhere would send traffic somewhere it would not go."""

    kind, plugin_kind = "hosts", "hosts"

    def lookup(self, host, prefer="ipv4", only="", ctx=None):
        h = (host or "").lower().rstrip(".")
        if not h:
            return []
        ok, ips = self.ask(wire.lookup_request(_ip_network(only), h, _client_id(ctx)), wire.ips_reply)
        if not ok:
            return []
        from ..dns.hosts import order_ips
        return order_ips(ips, prefer, only)


class PluginResolver(PluginBacked):
    """``{network, host, client}`` → ``{ips, ok}``; not ok, or no address, fails the
    resolution (GOST: the same)."""

    kind, plugin_kind = "resolvers", "resolver"

    def resolve(self, host, ctx=None):
        from ..protocols.addr import is_ip
        if is_ip(host):
            return [host]
        name = host.rstrip(".").lower()
        ok, ips = self.ask(wire.lookup_request("ip", name, _client_id(ctx)), wire.ips_reply)
        if not ok or not ips:
            from ..errors import DialError
            raise DialError(f"resolver {self.name}: {name}: the plugin found no address")
        return ips


class PluginTrafficLimiter(PluginBacked):
    """``{service, scope, network, addr, client, src}`` → ``{in, out}`` bytes/s (0: no limit).
    Each answer is kept ``refresh`` seconds (GOST's ``limiter.refreshInterval``, 30 s) per
    (scope, key), and its buckets are shared by that key's connections meanwhile. The key is
    the client ID (handler ``limiter``, scope ``client``) or the client IP (service
    ``limiter``, scope ``service``). GOST leaves a client unlimited when the plugin fails;
    gostg keeps the key's last answer, and refuses a key it never had one for."""

    kind, plugin_kind = "limiters", "limiter"
    #: seconds an answer is kept
    refresh = 30.0
    #: keys remembered at most (expired ones are dropped when this is passed)
    MAX_KEYS = 4096

    def __init__(self, name, cfg, path, log=None, clock=time.monotonic):
        super().__init__(name, cfg, path, log)
        self._clock = clock
        self._keys = {}   # (scope, key) → [expires, (in bucket or None, out bucket or None)]

    def buckets(self, scope, key, ctx, network="tcp"):
        from ..policy.limiter.bucket import TokenBucket

        now = self._clock()
        entry = self._keys.get((scope, key))
        if entry is None or entry[0] <= now:
            req = wire.limiter_request(scope, _service(ctx), network, getattr(ctx, "target", "") or "",
                                       _client_id(ctx), _src(ctx))
            try:
                rates = self.ask(req, wire.limiter_reply)
            except Unanswered:
                if entry is None:
                    raise
                return entry[1]   # the last answer for this key, until the plugin answers
            if len(self._keys) >= self.MAX_KEYS:
                self._keys = {k: v for k, v in self._keys.items() if v[0] > now}
            old = entry[1] if entry is not None else (None, None)
            pair = []
            for rate, b in zip(rates, old):
                if rate <= 0:
                    pair.append(None)
                elif b is not None:
                    b.set_rate(rate)
                    pair.append(b)
                else:
                    pair.append(TokenBucket(rate))
            entry = self._keys[(scope, key)] = [now + self.refresh, tuple(pair)]
        return entry[1]

    def wrap(self, conn, host, ctx=None, scope="service"):
        from ..policy.limiter.traffic import LimitedConn

        key = _client_id(ctx) if scope == "client" else str(host or "")
        inb, outb = self.buckets(scope, key, ctx)
        if inb is None and outb is None:
            return conn
        return LimitedConn(conn, (inb,) if inb else (), (outb,) if outb else ())


#: registry kind → its plugin-backed class
CLASSES = {"authers": PluginAuther, "admissions": PluginAdmission, "bypasses": PluginBypass,
           "hosts": PluginHosts, "resolvers": PluginResolver, "limiters": PluginTrafficLimiter}


def build(kind, o, path, log=None):
    """``o`` (a config object with ``plugin``) → its plugin-backed object."""
    return CLASSES[kind](o["name"], o["plugin"], f"{path}.plugin", log)
