"""gostg/observe/metrics.py: GOST's metric names, types, labels and buckets (go-gost/x
metrics/metrics.go, prom.go); bytes published per tunnel (at its end and, while open, at a
scrape) and never twice; off costs nothing (no prometheus_client import)."""
import subprocess
import sys
import weakref

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gostg.observe import metrics
from gostg.core.context import Context
from gostg.observe.metrics import _Metrics

ROOT = __file__.rsplit("/tests/", 1)[0]

#: GOST's metrics: name → (type, label names)
GOST = {
    "gost_services": ("gauge", {"host"}),
    "gost_service_status": ("gauge", {"host", "state"}),
    "gost_service_requests": ("counter", {"host", "service", "client"}),
    "gost_service_requests_in_flight": ("gauge", {"host", "service", "client"}),
    "gost_service_request_duration_seconds": ("histogram", {"host", "service"}),
    "gost_service_transfer_input_bytes": ("counter", {"host", "service", "client"}),
    "gost_service_transfer_output_bytes": ("counter", {"host", "service", "client"}),
    "gost_service_handler_errors": ("counter", {"host", "service", "client"}),
    "gost_chain_errors": ("counter", {"host", "chain", "node"}),
    "gost_chain_node_connect_duration_seconds": ("histogram", {"host", "chain", "node"}),
    "gost_recorder_records": ("counter", {"host", "recorder"}),
}


class _Log:
    def bind(self, **kw):
        return self


class _Gost:
    """What the collector reads of a runtime: its services' states."""

    def __init__(self, *states):
        self.services = {f"s{i}": type("S", (), {"state": st})() for i, st in enumerate(states)}


def _families(m):
    return {f.name: f for f in text_string_to_metric_families(generate_latest(m.registry).decode())}


@pytest.fixture
def live(monkeypatch):
    """A fresh _Metrics as the module's live one (the process-wide state restored after)."""
    m = _Metrics(True)
    monkeypatch.setattr(metrics, "_m", m)
    monkeypatch.setattr(metrics, "_runtimes", weakref.WeakSet())
    return m


def _conn(meter, cls=Context):
    """A connection of ``meter``'s service as Service._handle makes it while metrics are on."""
    ctx = cls("svc", "10.0.0.7:5555", "127.0.0.1:1080", _Log(), None, peer="10.0.0.7:5555")
    ctx.meter = meter.begin(ctx)
    return ctx


def _fill(m):
    meter = m.meter("svc")
    ctx = _conn(meter)
    ctx.stats_bytes(100, 2000)
    ctx.stats_error()
    ctx.meter.end()
    return meter


def test_names_types_labels_and_buckets(live):
    gost = _Gost("ready", "ready", "closed")
    metrics.watch(gost)
    _fill(live)
    metrics.chain_error("chain-0", "node-0")
    metrics.node_connect("chain-0", "node-0", 0.2)
    metrics.recorder_record("recorder-0")
    fams = _families(live)
    for name, (kind, labels) in GOST.items():
        assert fams[name].type == kind, name
        for s in fams[name].samples:
            assert set(s.labels) - {"le"} == labels, (name, s)
            assert s.labels["host"] == live.host
    assert not any(s.name.endswith("_created") for f in fams.values() for s in f.samples)
    assert {"process_resident_memory_bytes", "python_info", "python_gc_objects_collected"} <= set(fams)

    def bounds(name):
        return [s.labels["le"] for s in fams[name].samples if s.name == name + "_bucket"]
    # GOST's buckets, written as Go's client writes them (le="1", not "1.0")
    assert bounds("gost_service_request_duration_seconds") == [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "15", "30", "60", "+Inf"]
    assert bounds("gost_chain_node_connect_duration_seconds") == [
        "0.01", "0.05", "0.1", "0.25", "0.5", "1", "1.5", "2", "5", "10", "15", "30", "60", "+Inf"]

    def value(name, sample=None, **labels):
        return next(s.value for s in fams[name].samples if s.name == (sample or name)
                    and all(s.labels.get(k) == v for k, v in labels.items()))
    assert value("gost_services") == 2    # closed services are not counted
    assert value("gost_service_status", state="ready") == 2
    assert value("gost_service_status", state="closed") == 1
    one = dict(service="svc", client="10.0.0.7")
    assert value("gost_service_requests", "gost_service_requests_total", **one) == 1
    assert value("gost_service_requests_in_flight", **one) == 0
    assert value("gost_service_transfer_input_bytes", "gost_service_transfer_input_bytes_total", **one) == 100
    assert value("gost_service_transfer_output_bytes", "gost_service_transfer_output_bytes_total", **one) == 2000
    assert value("gost_service_handler_errors", "gost_service_handler_errors_total", **one) == 1
    assert value("gost_chain_errors", "gost_chain_errors_total", chain="chain-0", node="node-0") == 1
    assert value("gost_chain_node_connect_duration_seconds", "gost_chain_node_connect_duration_seconds_bucket",
                 chain="chain-0", node="node-0", le="0.25") == 1
    assert value("gost_recorder_records", "gost_recorder_records_total", recorder="recorder-0") == 1


def test_client_label_off_drops_it():
    m = _Metrics(False)
    _fill(m)
    fams = _families(m)
    for name in ("gost_service_requests", "gost_service_transfer_output_bytes", "gost_service_requests_in_flight"):
        assert {frozenset(s.labels) for s in fams[name].samples} == {frozenset({"host", "service"})}, name


def test_open_tunnel_bytes_published_at_scrape_and_never_twice(live):
    """Rule 3: a scrape publishes what an open tunnel moved so far (Context.bytes(), the
    relay's own counters); its end publishes only the rest; the counters never go back."""
    moved = {}

    class Live(Context):   # Context.bytes() of the live-tunnel registry: the relay's counters
        __slots__ = ()

        def bytes(self):
            return moved[self.sid]
    meter = live.meter("svc")
    ctx = _conn(meter, Live)
    kids = meter.kids["10.0.0.7"]

    def totals():
        return kids[1], kids[2]
    moved[ctx.sid] = (10, 1000)
    _families(live)
    assert totals() == (10, 1000)
    _families(live)    # nothing new moved: nothing added
    assert totals() == (10, 1000)
    moved[ctx.sid] = (15, 5000)
    _families(live)
    assert totals() == (15, 5000)
    ctx.stats_bytes(20, 8000)    # the end: only the rest
    assert totals() == (20, 8000)
    _families(live)              # an ended tunnel is not looked at again
    assert totals() == (20, 8000)
    assert meter.sync() == {"10.0.0.7": 1}   # in flight
    tally = ctx.meter
    tally.end()
    tally.end()                  # idempotent: one duration observed, no longer in flight
    assert meter.sync() == {} and sum(meter.duration.counts) == 1 and meter.duration.sum > 0


def test_seams_are_noops_while_off(monkeypatch):
    monkeypatch.setattr(metrics, "_m", None)
    assert metrics.meter("svc") is None
    metrics.recorder_record("r")
    metrics.chain_error("c", "n")
    metrics.node_connect("c", "n", 0.1)


def test_off_imports_nothing():
    """Rule 1: with metrics off, a service, a chain and this module load no prometheus_client."""
    code = ("import sys; import gostg.observe.metrics, gostg.core.service, gostg.core.chain, gostg.runtime; "
            "sys.exit('prometheus_client' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=30).returncode == 0


def test_cli_metrics_flag():
    from gostg.cli import parse_metrics
    assert parse_metrics("u:p@127.0.0.1:9000?path=/m&clientLabel=false") == {
        "addr": "127.0.0.1:9000", "path": "/m", "auth": {"username": "u", "password": "p"},
        "metadata": {"clientLabel": False}}
    assert parse_metrics("unix:///run/gostg.sock") == {"addr": "unix:///run/gostg.sock"}


def test_duration_buckets_count_le(live):
    """A 0.3 s connection is in the le=0.5 bucket and those above, not in le=0.25 (GOST's
    cumulative buckets); _count and _sum follow."""
    meter = live.meter("svc")
    ctx = _conn(meter)
    ctx.meter.t0 -= 0.3
    ctx.meter.end()
    fam = _families(live)["gost_service_request_duration_seconds"]
    got = {s.labels["le"]: s.value for s in fam.samples if s.name.endswith("_bucket")}
    assert (got["0.25"], got["0.5"], got["60"], got["+Inf"]) == (0, 1, 1, 1)
    count = next(s.value for s in fam.samples if s.name.endswith("_count"))
    total = next(s.value for s in fam.samples if s.name.endswith("_sum"))
    assert count == 1 and 0.3 <= total < 1


def test_flag_replaces_the_metrics_object_env_overrides_its_fields(monkeypatch):
    """GOST: ``-metrics`` replaces the config's ``metrics``; ``GOST_METRICS`` sets its address."""
    from gostg.cli import build_config, parse
    cfg = '{"metrics": {"addr": ":9000", "path": "/x"}}'
    monkeypatch.setenv("GOST_METRICS", "127.0.0.1:9100")
    assert build_config(parse(["-C", cfg]))["metrics"] == {"addr": "127.0.0.1:9100", "path": "/x"}
    assert build_config(parse(["-C", cfg, "-metrics", ":9200"]))["metrics"] == {"addr": ":9200"}
