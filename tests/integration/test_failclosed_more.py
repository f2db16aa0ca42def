"""Fail closed (issue 11 must 4), the references test_failclosed.py does not cover: a traffic
``limiter``, an ``rlimiter``, a ``resolver`` and a ``hosts`` name that do not resolve.

One ``bin/gostg -C file -api …`` process serves one HTTP proxy service per missing name. For
each: startup warns naming the path and the object; curl through the service fails and the
origin sees no request at all (never unlimited, never the system resolver); the log names the
missing object; creating the object through the Web API (GOST's shapes) makes the next
connection flow — for hosts and resolver by a name only that object can map (a hosts mapping,
a tiny DNS server on 127.0.0.1)."""

import pytest
import yaml

from .helpers import Gost, Origin, free_port
from .peers import Api, DNSServer, refused_lines, served, via_http

REFUSED = "connections will be refused until it is created"

SERVICES = [  # (service name, service keys naming a missing object, path, object as logged)
    ("limit-svc", {"limiter": "lim"}, "services[0].limiter", "limiter 'lim'"),
    ("rlimit-svc", {"rlimiter": "rlim"}, "services[1].rlimiter", "rlimiter 'rlim'"),
    ("resolver-svc", {"resolver": "res"}, "services[2].resolver", "resolver 'res'"),
    ("hosts-svc", {"hosts": "hst"}, "services[3].hosts", "hosts 'hst'"),
]




class CountingOrigin(Origin):
    """helpers.Origin that also counts HTTP requests (``.requests``), not only connections."""

    def __init__(self):
        super().__init__()
        outer = self
        self.requests = 0
        handler = self.server.RequestHandlerClass

        class Counting(handler):
            def do_GET(self):
                outer.requests += 1
                super().do_GET()

        self.server.RequestHandlerClass = Counting


@pytest.fixture(scope="module")
def origin():
    with CountingOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def dns():
    with DNSServer({"resolved.test": "127.0.0.1"}) as d:
        yield d


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    ports = {name: free_port() for name, _, _, _ in SERVICES}
    cfg = {"services": [{"name": n, "addr": f"127.0.0.1:{ports[n]}", "handler": {"type": "http"},
                         "listener": {"type": "tcp"}, **x} for n, x, _, _ in SERVICES]}
    path = tmp_path_factory.mktemp("failclosed-more") / "gost.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    api_port = free_port()
    with Gost("-C", path, "-api", f"127.0.0.1:{api_port}", ports=[api_port, *ports.values()]) as g:
        g.ports, g.api = ports, Api(api_port)
        yield g
        assert g.proc.poll() is None, "gostg died:\n" + g.log_text()[-3000:]



def assert_refused(g, origin, port, url, what, accept_time):
    """curl fails through ``port``, the origin gets no request, one more refusal line names
    ``what``. ``accept_time``: closed at accept (no HTTP answer) rather than a 503."""
    n = len(refused_lines(g, what, count=0))
    before = origin.requests, origin.connections
    rc, status, body = via_http(port, url)
    if accept_time:
        assert rc != 0 and status == 0, f"{what} missing: curl rc {rc}, status {status}, {body[:200]!r}"
    else:
        assert status == 503, f"{what} missing: curl rc {rc}, status {status}, {body[:200]!r}"
    assert (origin.requests, origin.connections) == before, f"{what} missing, but the origin was reached"
    assert len(refused_lines(g, what, count=n + 1)) >= n + 1, \
        f"no log line naming {what}:\n{g.log_text()[-3000:]}"


def test_startup_warns_naming_path_and_object(gw):
    log = gw.log_text()
    for _, _, path, obj in SERVICES:
        line = f"{path}: {obj} does not exist ({REFUSED})"
        assert log.count(line) == 1, f"startup warning {line!r} seen {log.count(line)} times:\n{log[-3000:]}"


def test_missing_limiter_refuses_never_unlimited(gw, origin):
    port = gw.ports["limit-svc"]
    assert_refused(gw, origin, port, origin.url + "/lim", "limiter 'lim'", accept_time=True)
    assert gw.api.post("limiters", {"name": "lim", "limits": ["$ 10MB 10MB"]})["msg"] == "OK"
    before = origin.requests
    assert served(via_http(port, origin.url + "/limited"), "/limited")
    assert origin.requests == before + 1, "the origin's request count does not move: the refusals prove nothing"
    gw.api.delete("limiters", "lim")
    assert_refused(gw, origin, port, origin.url + "/lim-gone", "limiter 'lim'", accept_time=True)


def test_missing_rlimiter_refuses_never_unlimited(gw, origin):
    port = gw.ports["rlimit-svc"]
    assert_refused(gw, origin, port, origin.url + "/rlim", "rlimiter 'rlim'", accept_time=True)
    assert gw.api.post("rlimiters", {"name": "rlim", "limits": ["$ 100"]})["msg"] == "OK"
    assert served(via_http(port, origin.url + "/rate-ok"), "/rate-ok")
    gw.api.delete("rlimiters", "rlim")
    assert_refused(gw, origin, port, origin.url + "/rlim-gone", "rlimiter 'rlim'", accept_time=True)


def test_missing_resolver_refuses_never_system_resolver(gw, origin, dns):
    port = gw.ports["resolver-svc"]
    # an IP target too: a missing resolver refuses, it does not mean "no resolver"
    assert_refused(gw, origin, port, origin.url + "/res-ip", "resolver 'res'", accept_time=False)
    assert_refused(gw, origin, port, f"http://resolved.test:{origin.port}/res", "resolver 'res'", accept_time=False)
    assert dns.queries == [], "a missing resolver still asked a nameserver"
    assert gw.api.post("resolvers", {"name": "res", "nameservers": [{"addr": f"udp://127.0.0.1:{dns.port}"}]}
                       )["msg"] == "OK"
    assert served(via_http(port, f"http://resolved.test:{origin.port}/resolved"), "/resolved")
    assert ("resolved.test", "A") in dns.queries, dns.queries
    gw.api.delete("resolvers", "res")
    assert_refused(gw, origin, port, f"http://resolved.test:{origin.port}/res-gone", "resolver 'res'",
                   accept_time=False)


def test_missing_hosts_refuses_then_mapping_makes_the_name_work(gw, origin):
    port = gw.ports["hosts-svc"]
    url = f"http://mapped.test:{origin.port}/mapped"
    assert_refused(gw, origin, port, origin.url + "/hosts-ip", "hosts 'hst'", accept_time=False)
    assert_refused(gw, origin, port, url, "hosts 'hst'", accept_time=False)
    assert gw.api.post("hosts", {"name": "hst", "mappings": [{"ip": "127.0.0.1", "hostname": "mapped.test"}]}
                       )["msg"] == "OK"
    rc, status, body = via_http(port, url)
    assert rc == 0 and status == 200 and body.startswith(b"hello from origin /mapped host=mapped.test:"), \
        (rc, status, body[:200])
    gw.api.delete("hosts", "hst")
    assert_refused(gw, origin, port, url, "hosts 'hst'", accept_time=False)
