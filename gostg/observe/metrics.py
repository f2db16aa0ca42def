"""Prometheus metrics under GOST's names, types, labels and buckets (go-gost/x
``metrics/metrics.go``, ``metrics/prom.go``; docs ``tutorials/metrics.md``): what GOST's Grafana
dashboard (16037) and users' alert rules are built on.

Rules:
1. Off by default, and off costs nothing: until :func:`enable` this module imports no
   ``prometheus_client``, a service has no meter and a connection no tally (``Service.meter``,
   ``Context.meter`` None: a store and three attribute tests per connection) and each seam
   function below (:func:`recorder_record`, :func:`chain_error`, :func:`node_connect`) returns
   after one test of a module global.
2. One registry per process, as GOST's: its metrics plus the process and Python collectors.
   Every endpoint (``-metrics``, the ``metrics:`` object, ``metrics`` handler services) serves it.
   Once on, metrics stay on until the process ends (GOST's ``Enable`` is never undone).
3. Bytes are counted per tunnel, never per chunk: published when the tunnel ends
   (``Context.stats_bytes`` hands them to the connection's :class:`Tally`) and, for tunnels
   still open, at each scrape from the counters the relay keeps anyway (``Context.bytes()``),
   so a long download shows as it goes and every counter only ever grows. The per-service
   metrics are plain integers a connection adds to (no lock, no prometheus_client call per
   connection); a scrape turns them into families, and counts the in-flight gauge from the
   open connections.
4. Labels as GOST's: ``host`` (this host's name) on all; ``service``, ``client`` (the client's
   IP; a PROXY header's when one came) on the per-service ones; ``chain``, ``node``;
   ``recorder``. ``clientLabel: false`` drops ``client`` (one series per client IP is what
   makes a busy proxy's scrape large), chosen once per process when metrics are turned on.
5. Nothing GOST does not have: no ``_created`` series (prometheus_client's metric objects add
   them, its metric families do not), and bucket bounds written as Go's client writes them
   (``le="1"``, not ``le="1.0"``): a GOST fleet and gostg aggregate per bucket.
"""
import bisect
import itertools
import socket as _socket
import time
import weakref

# GOST's metric names (x/metrics/metrics.go)
SERVICES = "gost_services"
SERVICE_STATUS = "gost_service_status"
REQUESTS = "gost_service_requests_total"
IN_FLIGHT = "gost_service_requests_in_flight"
DURATION = "gost_service_request_duration_seconds"
INPUT_BYTES = "gost_service_transfer_input_bytes_total"
OUTPUT_BYTES = "gost_service_transfer_output_bytes_total"
HANDLER_ERRORS = "gost_service_handler_errors_total"
CHAIN_ERRORS = "gost_chain_errors_total"
NODE_CONNECT = "gost_chain_node_connect_duration_seconds"
RECORDS = "gost_recorder_records_total"

#: GOST's histogram buckets (x/metrics/prom.go)
REQUEST_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60)
NODE_BUCKETS = (.01, .05, .1, .25, .5, 1, 1.5, 2, 5, 10, 15, 30, 60)

#: the live metrics while enabled, else None (rule 1)
_m = None
#: ``Tally.sent`` once its bytes are published in full
_FINAL = (-1, -1)
#: runtimes (gostg.Gost) whose services are counted in gost_services / gost_service_status
_runtimes = weakref.WeakSet()


def enabled():
    return _m is not None


def enable(client_label=True, log=None):
    """Turn metrics on for this process (idempotent) → the live metrics. Services of watched
    runtimes get their meters now. The ``client`` label choice is the first caller's: a later
    different one is logged, not applied (the series would change shape under a running
    Prometheus)."""
    global _m
    if _m is None:
        _m = _Metrics(bool(client_label))
        for gost in list(_runtimes):
            gost.meter_services()
    elif _m.client_label != bool(client_label) and log is not None:
        log.warning(f"metrics: clientLabel={str(bool(client_label)).lower()} not applied: metrics are on "
                    f"already with clientLabel={str(_m.client_label).lower()} (restart to change it)")
    return _m


def watch(gost):
    """Count ``gost``'s services in ``gost_services`` (held weakly: an embedding app's dropped
    runtime is forgotten)."""
    _runtimes.add(gost)


def meter(service_name):
    """→ the :class:`ServiceMeter` of a service while metrics are on, else None."""
    m = _m
    return None if m is None else m.meter(service_name)


def registry():
    """→ the process's metrics registry (enables metrics)."""
    return enable().registry


# -- seams other parts call (no-ops while metrics are off) -----------------------------------

def recorder_record(recorder_name):
    """A recorder wrote one record (gost_recorder_records_total)."""
    m = _m
    if m is not None:
        key = recorder_name or ""
        m.records[key] = m.records.get(key, 0) + 1


def chain_error(chain, node):
    """Reaching ``node`` of ``chain`` failed (gost_chain_errors_total)."""
    m = _m
    if m is not None:
        key = (chain or "", node or "")
        m.chain_errors[key] = m.chain_errors.get(key, 0) + 1


def node_connect(chain, node, seconds):
    """Hop 0's node of ``chain`` took ``seconds`` to dial and handshake
    (gost_chain_node_connect_duration_seconds)."""
    m = _m
    if m is not None:
        key = (chain or "", node or "")
        h = m.node_connect.get(key)
        if h is None:
            h = m.node_connect[key] = Histogram(NODE_BUCKETS)
        h.observe(seconds)


# -- the metrics --------------------------------------------------------------------------------

def _le(bound):
    """A bucket bound as Go's client writes it (``1``, ``2.5``, ``0.005``): the ``le`` label
    values of GOST's series, so a fleet of GOST and gostg aggregates per bucket."""
    text = repr(float(bound))
    return text[:-2] if text.endswith(".0") else text


class Histogram:
    """A histogram's counts: one per bucket (the last: above the top bound) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect.bisect_left(self.bounds, value)] += 1   # le: value <= bound
        self.sum += value

    def add_to(self, family, labels):
        cumulative = itertools.accumulate(self.counts)
        family.add_metric(labels, list(zip([_le(b) for b in self.bounds] + ["+Inf"], cumulative)), self.sum)


class _Metrics:
    """Everything counted since metrics went on: plain integers (rule 3), which a scrape turns
    into Prometheus families; prometheus_client writes the exposition."""

    def __init__(self, client_label):
        import prometheus_client as prom   # here: nothing of it is loaded while metrics are off

        self.client_label = client_label
        self.host = _socket.gethostname()
        self.meters = {}
        self.chain_errors = {}     # (chain, node) → count
        self.node_connect = {}     # (chain, node) → Histogram
        self.records = {}          # recorder → count
        self.registry = prom.CollectorRegistry()
        self.registry.register(_Collector(self))
        prom.ProcessCollector(registry=self.registry)
        prom.PlatformCollector(registry=self.registry)
        prom.GCCollector(registry=self.registry)

    def meter(self, name):
        m = self.meters.get(name)
        if m is None:
            m = self.meters[name] = ServiceMeter(self, name)
        return m

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        host = self.host
        services = GaugeMetricFamily(SERVICES, "Current number of services", labels=["host"])
        status = GaugeMetricFamily(SERVICE_STATUS, "Number of services in each state", labels=["host", "state"])
        states = {}
        for gost in list(_runtimes):
            for s in list(gost.services.values()):
                states[s.state] = states.get(s.state, 0) + 1
        services.add_metric([host], sum(n for st, n in states.items() if st != "closed"))
        for st, n in sorted(states.items()):
            status.add_metric([host, st], n)
        per_client = ["host", "service", "client"] if self.client_label else ["host", "service"]
        requests = CounterMetricFamily(REQUESTS, "Total number of requests", labels=per_client)
        in_flight = GaugeMetricFamily(IN_FLIGHT, "Current in-flight requests", labels=per_client)
        duration = HistogramMetricFamily(DURATION, "Distribution of request latencies", labels=["host", "service"])
        inp = CounterMetricFamily(INPUT_BYTES, "Total service input data transfer size in bytes", labels=per_client)
        out = CounterMetricFamily(OUTPUT_BYTES, "Total service output data transfer size in bytes",
                                  labels=per_client)
        errors = CounterMetricFamily(HANDLER_ERRORS, "Total service handler errors", labels=per_client)
        for name, m in sorted(self.meters.items()):
            flying = m.sync()
            for client, k in sorted(m.kids.items()):
                labels = [host, name, client] if self.client_label else [host, name]
                requests.add_metric(labels, k[0])
                in_flight.add_metric(labels, flying.get(client, 0))
                inp.add_metric(labels, k[1])
                out.add_metric(labels, k[2])
                errors.add_metric(labels, k[3])
            if m.kids:
                m.duration.add_to(duration, [host, name])
        chain_errors = CounterMetricFamily(CHAIN_ERRORS, "Total chain errors", labels=["host", "chain", "node"])
        for (chain, node), n in sorted(self.chain_errors.items()):
            chain_errors.add_metric([host, chain, node], n)
        node_connect = HistogramMetricFamily(NODE_CONNECT, "Distribution of chain node connect latencies",
                                             labels=["host", "chain", "node"])
        for (chain, node), h in sorted(self.node_connect.items()):
            h.add_to(node_connect, [host, chain, node])
        records = CounterMetricFamily(RECORDS, "Total records written by recorder", labels=["host", "recorder"])
        for name, n in sorted(self.records.items()):
            records.add_metric([host, name], n)
        return [services, status, requests, in_flight, duration, inp, out, errors, chain_errors, node_connect,
                records]


class _Collector:
    """The registry's view of :class:`_Metrics`."""

    def __init__(self, metrics):
        self.metrics = metrics

    def collect(self):
        return self.metrics.collect()


class ServiceMeter:
    """One service's metrics, counted in plain integers (a connection pays a few additions, no
    lock) and turned into Prometheus families at a scrape. While metrics are on the service
    gives each connection's Context a :class:`Tally` (``ctx.meter = meter.begin(ctx)``)."""

    __slots__ = ("m", "name", "kids", "live", "duration")

    def __init__(self, metrics, name):
        self.m = metrics
        self.name = name
        #: client IP ("" without the client label) → [requests, input bytes, output bytes, errors]
        self.kids = {}
        #: the open connections' tallies: at a scrape, the in-flight gauge and open tunnels' bytes
        self.live = set()
        #: how long its connections took (GOST's buckets)
        self.duration = Histogram(REQUEST_BUCKETS)

    def begin(self, ctx):
        """A connection was accepted → its :class:`Tally` (counted as a request, in flight)."""
        client = ctx.client_ip if self.m.client_label else ""
        kids = self.kids.get(client)
        if kids is None:
            kids = self.kids[client] = [0, 0, 0, 0]
        kids[0] += 1
        t = Tally(self, ctx, kids, client)
        self.live.add(t)
        return t

    def sync(self):
        """At a scrape: publish what open tunnels moved since the last look (rule 3) → the
        connections in flight per client."""
        flying = {}
        for t in list(self.live):
            flying[t.client] = flying.get(t.client, 0) + 1
            if t.sent is not _FINAL:
                t.publish_live()
        return flying


class Tally:
    """One connection's share of its service's meter (``Context.meter``): the Context hands it
    its bytes and errors, the service its end. Composition rather than a Context subclass, so
    a service's own Context class (a recorder's) and metrics go together."""

    __slots__ = ("meter", "ctx", "kids", "client", "t0", "sent")

    def __init__(self, meter, ctx, kids, client):
        self.meter, self.ctx, self.kids, self.client = meter, ctx, kids, client
        self.sent = None      # what a scrape published of an open tunnel's bytes (rule 3)
        self.t0 = time.monotonic()

    def bytes(self, inp, out):
        """``Context.stats_bytes``: the tunnel's bytes, final."""
        sent, self.sent = self.sent, _FINAL   # no scrape looks again
        if sent is not None and sent is not _FINAL:   # a scrape published part of them already
            inp, out = inp - sent[0], out - sent[1]
        kids = self.kids
        if inp > 0:
            kids[1] += inp
        if out > 0:
            kids[2] += out

    def error(self):
        """``Context.stats_error``: GOST's handler error."""
        self.kids[3] += 1

    def end(self):
        """The connection's handler is done (the tunnel ended): GOST's duration; it is no
        longer in flight. Idempotent."""
        if self.t0 is None:
            return
        self.meter.duration.observe(time.monotonic() - self.t0)
        self.t0 = None
        self.meter.live.discard(self)
        self.ctx = None

    def publish_live(self):
        """At a scrape: what the open tunnel moved since the last look (rule 3)."""
        read = getattr(self.ctx, "bytes", None)   # the live-tunnel registry's reader, when built
        if read is None:
            return
        inp, out = read()
        sent = self.sent or (0, 0)
        kids = self.kids
        if inp > sent[0]:
            kids[1] += inp - sent[0]
        if out > sent[1]:
            kids[2] += out - sent[1]
        self.sent = (max(inp, sent[0]), max(out, sent[1]))


__all__ = ["enable", "enabled", "watch", "meter", "registry", "recorder_record", "chain_error", "node_connect",
           "ServiceMeter", "Tally", "Histogram", "REQUEST_BUCKETS", "NODE_BUCKETS"]
