"""Prometheus metrics (issue 14 musts 1 and 2): ``bin/gostg -metrics`` with GOST's metric names,
scraped by a real ``prometheus`` started here, values read back through its query API; the
exposition accepted by ``promtool check metrics``; Basic auth failing closed (401).

Traffic is curl through an http and a socks5 service (known body sizes), one http service
reaching the socks5 one through a chain (node connect duration), and one whose chain node is
down (chain error, handler error, 503)."""
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode

import pytest
import socks
from prometheus_client.parser import text_string_to_metric_families

from gostg.core.context import Context

from .helpers import Echo, Gost, Origin, free_port
from .peers import PeerProcess, via_http, via_socks5

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("prometheus", "promtool", "curl")),
                                reason="prometheus/promtool (apt prometheus) or curl not installed")

N = 3
SIZE = 100_000
#: what HTTP adds around a body at most, per request (request line and headers, response headers)
OVERHEAD = 600
USER, PASSWORD = "scraper", "s3cret"


def _get(url, auth=None, timeout=5):
    """→ (status, body bytes) of a GET, 4xx/5xx included."""
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Prometheus(PeerProcess):
    """``prometheus`` scraping ``target`` every second (Basic auth), on a free loopback port,
    its data and log in ``tmp``; stopped by PID."""

    name = "prometheus"

    def __init__(self, tmp, target, auth):
        port = free_port()
        conf = tmp / "prometheus.yml"
        conf.write_text(json.dumps({   # YAML is a superset of JSON
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "gostg", "scrape_interval": "1s",
                                "basic_auth": {"username": auth[0], "password": auth[1]},
                                "static_configs": [{"targets": [target]}]}]}))
        self.log = open(tmp / "prometheus.log", "wb")   # a pipe nobody reads would fill up
        super().__init__(["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{port}"], port=port, stderr=self.log, timeout=20)

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.log.close()

    def query(self, expr):
        """→ {frozenset(labels): float} of an instant query (an empty dict when nothing matches)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            status, body = _get(url, timeout=2)
        except OSError:
            return {}
        if status != 200:
            return {}
        data = json.loads(body)["data"]["result"]
        return {frozenset(r["metric"].items()): float(r["value"][1]) for r in data}

    def value(self, expr):
        """The single value of ``expr`` (a sum: one series), or None."""
        got = self.query(f"sum({expr})")
        return next(iter(got.values()), None)


def _config(http_p, socks_p, chained_p, broken_p, dead_p):
    def http(name, port, chain=None):
        h = {"type": "http"}
        if chain:
            h["chain"] = chain
        return {"name": name, "addr": f"127.0.0.1:{port}", "handler": h, "listener": {"type": "tcp"}}

    def chain(name, node, addr, kind):
        return {"name": name, "hops": [{"name": f"{name}-hop", "nodes": [
            {"name": node, "addr": addr, "connector": {"type": kind}, "dialer": {"type": "tcp"}}]}]}
    return {"services": [http("http-svc", http_p),
                         {"name": "socks-svc", "addr": f"127.0.0.1:{socks_p}", "handler": {"type": "socks5"},
                          "listener": {"type": "tcp"}},
                         http("chained", chained_p, "chain-ok"), http("broken", broken_p, "chain-dead")],
            "chains": [chain("chain-ok", "node-ok", f"127.0.0.1:{socks_p}", "socks5"),
                       chain("chain-dead", "node-dead", f"127.0.0.1:{dead_p}", "http")]}


def _requests(url, services, auth=(USER, PASSWORD), scraped=""):
    """gost_service_requests_total per service, read from the exposition (text format) once
    each of ``services`` has one and no connection is in flight (≤ 5 s: a connection is
    counted once gostg accepts it, and its end just after the client's), but for the
    ``scraped`` service's: that is this scrape."""
    deadline = time.monotonic() + 5
    while True:
        text = _get(url, auth)[1].decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        counts = {s.labels["service"]: int(s.value) for s in fams["gost_service_requests"].samples
                  if s.name == "gost_service_requests_total"}
        if set(services) <= set(counts) and all(s.value == 0 for s in fams["gost_service_requests_in_flight"].samples
                                                if s.labels["service"] != scraped) \
                or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def _settled(prom, want):
    """Poll Prometheus until every ``expr: value`` of ``want`` holds (≤ 15 s) → what it last saw."""
    deadline = time.monotonic() + 15
    seen = {}
    while time.monotonic() < deadline:
        seen = {expr: prom.value(expr) for expr in want}
        if seen == want:
            break
        time.sleep(0.3)
    return seen


def test_prometheus_scrapes_gost_metrics(tmp_path):
    http_p, socks_p, chained_p, broken_p, dead_p, metrics_p = (free_port() for _ in range(6))
    cfg = _config(http_p, socks_p, chained_p, broken_p, dead_p)
    with Origin() as origin, Gost("-C", json.dumps(cfg), "-metrics", f"{USER}:{PASSWORD}@127.0.0.1:{metrics_p}",
                                  ports=[http_p, socks_p, chained_p, broken_p, metrics_p]) as g:
        with Prometheus(tmp_path, f"127.0.0.1:{metrics_p}", (USER, PASSWORD)) as prom:
            # the start-up waits connected to each port once: those connections count (as GOST's)
            base = _requests(f"http://127.0.0.1:{metrics_p}/metrics", ("http-svc", "socks-svc", "chained", "broken"))
            assert base == {"http-svc": 1, "socks-svc": 1, "chained": 1, "broken": 1}
            for _ in range(N):
                rc, status, body = via_http(http_p, f"{origin.url}/bytes/{SIZE}")
                assert (rc, status, len(body)) == (0, 200, SIZE)
                rc, status, body = via_socks5(socks_p, f"{origin.url}/bytes/{SIZE}")
                assert (rc, status, len(body)) == (0, 200, SIZE)
            assert via_http(chained_p, f"{origin.url}/hello")[:2] == (0, 200)
            assert via_http(broken_p, f"{origin.url}/hello")[:2] == (0, 503)

            # the exposition itself: Prometheus's own linter accepts it
            url = f"http://127.0.0.1:{metrics_p}/metrics"
            status, text = _get(url, (USER, PASSWORD))
            assert status == 200
            lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=10)
            assert lint.returncode == 0, lint.stdout + lint.stderr
            assert b"_created" not in text          # GOST has no _created series
            for family in (b"process_resident_memory_bytes", b"python_info", b"python_gc_objects_collected_total"):
                assert family in text

            # what a user's Prometheus sees: GOST's names, labels and values
            svc = 'service="{}"'.format
            want = {
                f"gost_service_requests_total{{{svc('http-svc')}}}": base["http-svc"] + N,
                # the chained service reaches the origin through socks-svc: one request more there
                f"gost_service_requests_total{{{svc('socks-svc')}}}": base["socks-svc"] + N + 1,
                f"gost_service_requests_total{{{svc('chained')}}}": base["chained"] + 1,
                f"gost_service_requests_total{{{svc('broken')}}}": base["broken"] + 1,
                f"gost_service_requests_in_flight{{{svc('http-svc')}}}": 0,
                f"gost_service_handler_errors_total{{{svc('broken')}}}": 1,
                f"gost_service_handler_errors_total{{{svc('http-svc')}}}": 0,
                f"gost_service_request_duration_seconds_count{{{svc('http-svc')}}}": base["http-svc"] + N,
                'gost_chain_errors_total{chain="chain-dead",node="node-dead"}': 1,
                'gost_chain_node_connect_duration_seconds_count{chain="chain-ok",node="node-ok"}': 1,
                "gost_services": 4,
                'gost_service_status{state="ready"}': 4,
                'up{job="gostg"}': 1,
            }
            seen = _settled(prom, want)
            assert seen == want, g.log_text()[-3000:]
            for name in ("http-svc", "socks-svc"):
                out = prom.value(f"gost_service_transfer_output_bytes_total{{{svc(name)}}}")
                inp = prom.value(f"gost_service_transfer_input_bytes_total{{{svc(name)}}}")
                extra = 1 if name == "socks-svc" else 0   # the chained request's small answer
                assert N * SIZE <= out <= N * SIZE + (N + extra) * OVERHEAD, (name, out)
                assert 0 < inp <= (N + extra) * OVERHEAD, (name, inp)
            # labels as GOST: host everywhere, the client IP on the per-service series
            series = prom.query(f"gost_service_requests_total{{{svc('http-svc')}}}")
            labels = dict(next(iter(series)))
            assert labels["client"] == "127.0.0.1" and labels["host"] and labels["job"] == "gostg"
            buckets = prom.query(f"gost_service_request_duration_seconds_bucket{{{svc('http-svc')}}}")
            assert sorted((dict(k)["le"] for k in buckets), key=float) == [   # as GOST's (Go) are written
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "15", "30", "60", "+Inf"]
        assert g.proc.poll() is None, g.log_text()[-3000:]


def test_metrics_auth_fails_closed_and_path():
    """Wrong or missing credentials: 401 (with a Basic challenge); another path: 404."""
    port = free_port()
    with Gost("-metrics", f"{USER}:{PASSWORD}@127.0.0.1:{port}?path=/m", ports=[port]) as g:
        url = f"http://127.0.0.1:{port}/m"
        assert _get(url)[0] == 401
        assert _get(url, (USER, "wrong"))[0] == 401
        assert _get(url, ("nobody", PASSWORD))[0] == 401
        status, body = _get(url, (USER, PASSWORD))
        assert status == 200 and b"# TYPE gost_services gauge" in body
        assert _get(f"http://127.0.0.1:{port}/metrics", (USER, PASSWORD))[0] == 404
        assert g.proc.poll() is None


def test_metrics_handler_service_and_client_label_off(tmp_path):
    """``-L metrics://…`` (GOST's metrics handler as a service) with ``clientLabel=false``: the
    per-service series have no ``client`` label; a missing auther refuses every scrape."""
    mp, sp, lp = free_port(), free_port(), free_port()
    cfg = {"services": [
        {"name": "m", "addr": f"127.0.0.1:{mp}",
         "handler": {"type": "metrics", "metadata": {"path": "/metrics", "clientLabel": False}}},
        {"name": "locked", "addr": f"127.0.0.1:{lp}", "handler": {"type": "metrics", "auther": "nope"}},
        {"name": "s", "addr": f"127.0.0.1:{sp}", "handler": {"type": "socks5"}}]}
    url = f"http://127.0.0.1:{mp}/metrics"
    with Origin() as origin, Gost("-C", json.dumps(cfg), ports=[mp, sp, lp]) as g:
        base = _requests(url, ("s",), None, "m")
        assert via_socks5(sp, f"{origin.url}/hello")[:2] == (0, 200)
        after = _requests(url, ("s",), None, "m")
        assert after["s"] == base["s"] + 1
        text = _get(url)[1].decode()
        assert 'gost_service_requests_total{host="' in text and "client=" not in text
        assert _get(f"http://127.0.0.1:{lp}/metrics", (USER, PASSWORD))[0] == 401
        assert g.proc.poll() is None


def test_reload_rebuilds_the_endpoint(tmp_path):
    """SIGHUP with a changed ``metrics`` object (GOST rebuilds it on reload): the new path
    answers on the same port, the old one is gone, the counters go on."""
    port = free_port()
    conf = tmp_path / "gost.json"

    def write(path):
        conf.write_text(json.dumps({"metrics": {"addr": f"127.0.0.1:{port}", "path": path}}))
    write("/a")
    with Gost("-C", conf, ports=[port]) as g:
        assert _get(f"http://127.0.0.1:{port}/a")[0] == 200
        write("/b")
        g.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while _get(f"http://127.0.0.1:{port}/b")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _get(f"http://127.0.0.1:{port}/b")[0] == 200, g.log_text()
        assert _get(f"http://127.0.0.1:{port}/a")[0] == 404
        assert g.proc.poll() is None


@pytest.mark.skipif(not hasattr(Context, "bytes"), reason="needs the live-tunnel registry (Context.bytes)")
def test_open_tunnel_bytes_show_before_it_ends():
    """Rule 3 of observe/metrics.py: a scrape during a long tunnel sees the bytes moved so far
    (read from the relay's counters, not counted per chunk); at its end the totals are exact."""
    sp, mp = free_port(), free_port()
    url = f"http://127.0.0.1:{mp}/metrics"
    chunk = b"x" * 50_000

    def moved():
        """(input, output) bytes of service-0 as the exposition says."""
        text = _get(url)[1].decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        return tuple(sum(s.value for s in fams[f"gost_service_transfer_{d}_bytes"].samples
                         if s.labels["service"] == "service-0") for d in ("input", "output"))
    with Echo() as echo, Gost("-L", f"socks5://127.0.0.1:{sp}", "-metrics", f"127.0.0.1:{mp}", ports=[sp, mp]):
        c = socks.socksocket()
        c.set_proxy(socks.SOCKS5, "127.0.0.1", sp)
        c.settimeout(5)
        c.connect(("127.0.0.1", echo.port))
        with c:
            for n in (1, 2):
                c.sendall(chunk)
                got = b""
                while len(got) < len(chunk):
                    got += c.recv(65536)
                deadline = time.monotonic() + 5
                while moved() != (n * len(chunk), n * len(chunk)) and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert moved() == (n * len(chunk), n * len(chunk))   # open, and already counted
        deadline = time.monotonic() + 5
        while _in_flight(url, "service-0") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert moved() == (2 * len(chunk), 2 * len(chunk))   # its end added nothing twice


def _in_flight(url, service):
    text = _get(url)[1].decode()
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "gost_service_requests_in_flight"
               for s in f.samples if s.labels["service"] == service)


def test_recorded_service_is_metered_and_records_are_counted(tmp_path):
    """A service with a handler recorder (its own Context class) is metered as any other, and
    each record written counts in gost_recorder_records_total{recorder}."""
    sp, mp = free_port(), free_port()
    out = tmp_path / "rec.txt"
    cfg = {"services": [{"name": "s", "addr": f"127.0.0.1:{sp}", "handler": {"type": "socks5"},
                         "recorders": [{"name": "rec-0", "record": "recorder.service.handler"}]}],
           "recorders": [{"name": "rec-0", "file": {"path": str(out), "sep": "\n"}}]}
    url = f"http://127.0.0.1:{mp}/metrics"
    with Origin() as origin, Gost("-C", json.dumps(cfg), "-metrics", f"127.0.0.1:{mp}", ports=[sp, mp]):
        base = _requests(url, ("s",), None)
        for _ in range(N):
            rc, status, body = via_socks5(sp, f"{origin.url}/bytes/{SIZE}")
            assert (rc, status, len(body)) == (0, 200, SIZE)
        assert _requests(url, ("s",), None)["s"] == base["s"] + N
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:   # a record is written once its connection ended
            fams = {f.name: f for f in text_string_to_metric_families(_get(url)[1].decode())}
            records = [s.value for s in fams["gost_recorder_records"].samples if s.labels["recorder"] == "rec-0"]
            if records and records[0] >= base["s"] + N:
                break
            time.sleep(0.1)
        # every connection is recorded (the start-up probe too, as GOST records every accepted one)
        assert records == [base["s"] + N]
        assert len([ln for ln in out.read_text().splitlines() if ln.startswith("{")]) == base["s"] + N
        output = sum(s.value for s in fams["gost_service_transfer_output_bytes"].samples if s.labels["service"] == "s")
        assert N * SIZE <= output <= N * (SIZE + OVERHEAD)


def test_udp_bytes_are_counted():
    """UDP traffic counts as GOST's users asked (go-gost/gost#533: GOST's metrics miss UDP
    bytes): each udp:// forwarding session is a request, its datagrams' bytes are input/output."""
    from .udppeers import UDPEcho, free_udp_port, udp_ask, wait_udp_service

    up, mp = free_udp_port(), free_port()
    url = f"http://127.0.0.1:{mp}/metrics"
    with UDPEcho(b"E:") as echo, Gost("-L", f"udp://127.0.0.1:{up}/{echo.addr}", "-metrics", f"127.0.0.1:{mp}",
                                      ports=[mp]) as g:
        wait_udp_service(g)
        for i in range(N):
            assert udp_ask(up, b"x" * 1000) == b"E:" + b"x" * 1000
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:   # a session ends after its answer (GOST's default)
            fams = {f.name: f for f in text_string_to_metric_families(_get(url)[1].decode())}

            def total(family):
                return sum(s.value for s in fams[family].samples if s.name.endswith("_total"))
            got = (total("gost_service_requests"), total("gost_service_transfer_input_bytes"),
                   total("gost_service_transfer_output_bytes"))
            if got == (N, N * 1000, N * 1002):
                break
            time.sleep(0.1)
        assert got == (N, N * 1000, N * 1002), g.log_text()[-2000:]
