"""Observers (GOST's ``observers:``): service status and stats events POSTed to an HTTP plugin
in GOST's JSON (x/observer/plugin/http.go).

What a plugin receives, exactly as GOST writes it::

    {"events":[{"kind":"service","service":"s","type":"status",
                "status":{"state":"ready","msg":"service s is ready"}}]}
    {"events":[{"kind":"service","service":"s","type":"stats",
                "stats":{"totalConns":1,"currentConns":0,"inputBytes":235,"outputBytes":632,"totalErrs":0}}]}

and it answers ``200`` with ``{"ok": true}``; anything else is a failed report, sent again
with the next one (GOST's retry rule).

Rules:
1. Nothing here runs per chunk. A service calls :meth:`Observer.status` on a state change (a
   deque append); its stats are *read* from the counters it keeps anyway (``Service.stats``,
   ``len(pool)``, the open tunnels' live byte counts in ``Service.tunnels``) by one background
   greenlet per observer, every ``observer.period``. A handler observer's per-client counts
   (:class:`ClientStats`) take two additions per tunnel, at its start and at its end.
2. That greenlet is the only one that talks to the plugin, one POST at a time with a
   deadline (``plugin.timeout``, 10s when unset: GOST waits forever). A plugin that is down,
   slow or answers garbage costs a warning (once, until it answers again) and a retry at the
   next period; traffic and the hub never wait for it.
3. Stats as GOST: a service with ``enableStats`` (a handler with an ``observer``: each client)
   is reported every period (at least 1s, 5s by default) when anything changed since the last
   report; ``observer.resetTraffic`` makes ``inputBytes``/``outputBytes`` the bytes since the
   last report (the other three stay totals). A report that fails is sent again before new
   values are read, so no delta is lost.
4. Bounded: one pending report per service or handler (a handler's holds an event per client)
   and :data:`MAX_STATUS` pending status events (the oldest are dropped, and that is logged).
   GOST drops a status event the plugin did not take; gostg sends it again.
5. The greenlet starts with the first event and ends on :meth:`close` (the runtime closes an
   observer it replaces, deletes or stops); services are found by name at report time and the
   reporting state lives on the service or handler, so a replaced service or observer needs no
   re-wiring.
"""
import collections
import json
import time

import gevent
from gevent.event import Event

from .httppost import PluginError, Target, plugin_ok, post_json

#: pending status events kept while the plugin does not answer
MAX_STATUS = 256
#: GOST's default and smallest reporting period (seconds)
DEFAULT_PERIOD, MIN_PERIOD = 5.0, 1.0
#: POST deadline when the plugin sets no ``timeout`` (GOST: none)
DEFAULT_TIMEOUT = 10.0
#: seconds :meth:`Observer.close` gives the last pending events
CLOSE_FLUSH = 2.0


def period_of(seconds):
    """GOST's clamp: unset → 5s, below 1s → 1s."""
    return DEFAULT_PERIOD if not seconds else max(MIN_PERIOD, seconds)


def status_event(service, state, msg):
    return {"kind": "service", "service": service, "type": "status", "status": {"state": state, "msg": msg}}


def stats_event(service, totals, kind="service", client=""):
    """``totals``: (totalConns, currentConns, inputBytes, outputBytes, totalErrs). ``client``
    is left out when empty (GOST's ``omitempty``)."""
    ev = {"kind": kind, "service": service}
    if client:
        ev["client"] = client
    ev["type"] = "stats"
    ev["stats"] = dict(zip(("totalConns", "currentConns", "inputBytes", "outputBytes", "totalErrs"), totals))
    return ev


def service_totals(service):
    """(totalConns, currentConns, inputBytes, outputBytes, totalErrs) of a Service, read from
    its counters. Bytes of finished tunnels are counted at their end; those of open tunnels
    come from the connection registry (``Service.tunnels`` / ``Context.bytes()``) when it
    exists, so a long download moves the numbers while it runs."""
    st = service.stats
    inp, out = st.input_bytes, st.output_bytes
    for ctx in list(getattr(service, "tunnels", {}).values()):
        live = getattr(ctx, "bytes", None)
        if live is not None:
            i, o = live()
            inp, out = inp + i, out + o
    return (st.total_conns, service.current_conns, inp, out, st.total_errs)


class _Totals:
    """What was last reported of one set of counters: GOST reports only once something
    changed, and with ``resetTraffic`` the bytes since the last report."""

    __slots__ = ("last", "base")

    def __init__(self):
        self.last = (0, 0, 0, 0, 0)
        self.base = (0, 0)      # bytes reported so far

    def report(self, totals, reset):
        """→ the totals to report, or None when nothing changed."""
        if totals == self.last:
            return None
        self.last = totals
        if not reset:
            return totals
        inp, out = max(0, totals[2] - self.base[0]), max(0, totals[3] - self.base[1])
        self.base = (max(totals[2], self.base[0]), max(totals[3], self.base[1]))
        return totals[:2] + (inp, out) + totals[4:]


class Reporter:
    """The reporting state of one service or handler: when it is due and the events the
    plugin has not taken yet (sent again before anything new is read: no delta is lost).
    Kept on the service/handler, so a replaced observer goes on where the old one stopped."""

    __slots__ = ("due", "pending")

    #: seconds between reports (subclasses)
    period = DEFAULT_PERIOD

    def __init__(self):
        self.due = None
        self.pending = None

    def read(self):
        """→ new events (a list, maybe empty)."""
        raise NotImplementedError


class ServiceReporter(Reporter):
    """A service's ``enableStats``: one ``kind: service`` event."""

    __slots__ = ("service", "totals")

    def __init__(self, service):
        super().__init__()
        self.service = service
        self.totals = _Totals()

    @property
    def period(self):
        return period_of(self.service.observer_period)

    def read(self):
        t = self.totals.report(service_totals(self.service), self.service.observer_reset)
        return [] if t is None else [stats_event(self.service.name, t)]


class ClientStats(Reporter):
    """A handler's ``observer`` (GOST's HandlerStats): counts per client id (the auther's
    answer; ``""`` without auth), one ``kind: handler`` event per client that changed.
    A handler counts a tunnel with :meth:`begin` when it starts and :meth:`end` when it ends;
    nothing is counted per chunk. Clients are kept for the handler's life, as GOST does."""

    __slots__ = ("observer", "service", "reset", "clients", "_period")

    def __init__(self, observer, service, period=0.0, reset=False):
        super().__init__()
        self.observer, self.service, self.reset = observer, service, reset
        self._period = period_of(period)
        self.clients = {}     # client id → [totalConns, currentConns, inputBytes, outputBytes, totalErrs, _Totals]

    @property
    def period(self):
        return self._period

    def begin(self, client):
        c = self.clients.get(client)
        if c is None:
            c = self.clients[client] = [0, 0, 0, 0, 0, _Totals()]
        c[0] += 1
        c[1] += 1
        return c

    @staticmethod
    def end(c, inp, out):
        c[1] -= 1
        c[2] += inp
        c[3] += out

    def read(self):
        out = []
        for client, c in list(self.clients.items()):
            t = c[5].report(tuple(c[:5]), self.reset)
            if t is not None:
                out.append(stats_event(self.service, t, "handler", client))
        return out


def _service_reporter(service):
    r = service.observed
    if r is None:
        r = service.observed = ServiceReporter(service)
    return r


class Observer:
    """An HTTP observer plugin (:class:`GrpcObserver`: a gRPC one). ``registries`` is where services are found by name (their
    ``observer``, ``enable_stats``, ``observer_period``, ``observer_reset``)."""

    def __init__(self, name, target, registries=None, log=None):
        self.name = name
        #: a Target (HTTP, posted here) or a plugin transport (``call``: gRPC)
        self.target = target
        self.where = getattr(target, "url", "") or f"plugin {name}"
        self.registries = registries
        self.log = log.bind(kind="observer", observer=name) if log is not None else None
        self._status = collections.deque()
        self._wake = Event()
        self._greenlet = None
        self._closing = False
        self._failing = False
        self._dropped = 0

    # -- what services call -----------------------------------------------------------------
    def status(self, service, state, msg=None):
        """Queue a status event; it goes out at once (not at the next period)."""
        if self._closing and self._greenlet is None:
            return
        if len(self._status) >= MAX_STATUS:
            self._status.popleft()
            self._dropped += 1
        self._status.append(status_event(service, state, msg or f"service {service} is {state}"))
        self.start()
        self._wake.set()

    def start(self):
        if self._greenlet is None and not self._closing:
            self._greenlet = gevent.spawn(self._run)

    def close(self, flush=CLOSE_FLUSH):
        """Stop reporting: what is pending gets ``flush`` seconds to go out, then the greenlet
        ends (it never outlives its runtime)."""
        self._closing = True
        g = self._greenlet
        if g is None:
            return
        self._wake.set()
        g.join(timeout=flush)
        g.kill(block=True, timeout=1)
        self._greenlet = None

    # -- the greenlet -------------------------------------------------------------------------
    def _run(self):
        while True:
            self._wake.clear()      # before collecting: an event queued while posting wakes the wait
            try:
                events = self._collect(time.monotonic())
                if events:
                    self._deliver(events)
            except Exception as exc:   # a bug here must not end reporting for good
                if self.log is not None:
                    self.log.exception(f"observer: reporting failed: {exc!r}")
                self._failing = True
            if self._closing:
                return
            now = time.monotonic()
            if self._status and not self._failing:
                continue            # more status events came while the last POST was out
            # a status report the plugin did not take is sent again within a period
            self._wake.wait(self._next_wait(now, idle=DEFAULT_PERIOD if self._status else None))

    def _reporters(self):
        """The service stats (``enableStats``) and handler client stats reporting to this
        observer, found by name on the running services."""
        services = getattr(self.registries, "services", None)
        out = []
        for _, s in services.items() if services is not None else ():
            if s.state == "closed":
                continue
            if s.enable_stats and s.observer == self.name:
                out.append(_service_reporter(s))
            cs = getattr(s.handler, "client_stats", None)
            if cs is not None and cs.observer == self.name:
                out.append(cs)
        return out

    def _next_wait(self, now, idle=None):
        """Seconds until the next stats report is due (``idle`` or forever when none is)."""
        dues = []
        for r in self._reporters():
            if r.due is None:
                r.due = now + r.period    # the first report one period on (GOST's ticker)
            dues.append(r.due)
        if not dues:
            return idle
        wait = max(0.0, min(dues) - now)
        return wait if idle is None else min(wait, idle)

    def _collect(self, now):
        """Pending status events, then each due reporter's events (those the plugin did not
        take last time, else new ones if anything changed)."""
        events = list(self._status)
        for r in self._reporters():
            if r.due is None:
                r.due = now + r.period
                continue
            if now < r.due and not self._closing:
                continue
            r.due = now + r.period
            if r.pending is None:
                r.pending = r.read() or None
            if r.pending:
                events.extend(r.pending)
        return events

    def _deliver(self, events):
        try:
            self._post(events)
        except PluginError as exc:
            if not self._failing and self.log is not None:
                self.log.warning(f"observer: {self.where}: {exc} (reports are kept and sent again)")
            elif self.log is not None:
                self.log.debug(f"observer: {self.where}: {exc}")
            self._failing = True
            return
        if self._failing and self.log is not None:
            self.log.info(f"observer: {self.where} answers again")
        self._failing = False
        sent = {id(e) for e in events}
        while self._status and id(self._status[0]) in sent:   # those sent (more may have come)
            self._status.popleft()
        for r in self._reporters():
            if r.pending and id(r.pending[0]) in sent:
                r.pending = None
        if self._dropped:
            if self.log is not None:
                self.log.warning(f"observer: {self._dropped} status event(s) dropped while the plugin did not answer")
            self._dropped = 0

    def _post(self, events):
        if hasattr(self.target, "call"):   # another transport (gRPC): the same request, as a dict
            from ..plugin.wire import must_ok
            return must_ok(self.target.call({"events": events}))
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        plugin_ok(*post_json(self.target, body))


class GrpcObserver(Observer):
    """The same observer over GOST's gRPC observer plugin (``proto.Observer/Observe``): the
    events go as the proto's messages (gostg/plugin/protos.py), ``ok: false`` is a failure."""

    def __init__(self, name, transport, registries=None, log=None):
        super().__init__(name, _Addr(transport.addr), registries, log)
        self.transport = transport

    def _post(self, events):
        from ..plugin import PluginError as TransportError   # (the same class once httppost re-exports it)

        try:
            reply = self.transport.call({"events": events})
        except TransportError as exc:
            raise PluginError(str(exc)) from None
        if reply.get("ok") is not True:
            raise PluginError("plugin answered ok: false")

    def close(self, flush=CLOSE_FLUSH):
        super().close(flush)
        self.transport.close()


class _Addr:
    """What the log lines name (``target.url``) for a gRPC plugin: its host:port."""

    def __init__(self, url):
        self.url = url


def build(name, addr, token="", timeout=0.0, server_name="", ca_file="", registries=None, log=None):
    """An :class:`Observer` POSTing to ``addr`` (config.build checked the plugin mapping)."""
    target = Target(addr, token=token, timeout=timeout or DEFAULT_TIMEOUT, server_name=server_name, ca_file=ca_file)
    return Observer(name, target, registries, log)
