"""Web API forward references (issue 12 must 3; GOST api/config.md): a service POSTed with a
chain, bypass and hosts that do not exist yet is accepted as GOST accepts it; creating the
objects later makes the service live, a PUT of an object replaces it live (the next connection
uses the new one), and a DELETE makes the service refuse again — never go direct or unfiltered."""
import pytest

from .helpers import Gost, Origin, free_port
from .peers import Api, refused_lines, relay_lines, served, via_http

NAME = "origin.test"


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


def _upstream():
    p = free_port()
    u = Gost("-L", f"http://127.0.0.1:{p}", ports=[p])
    u.port = p
    return u


def _chain(port):
    return {"name": "egress", "hops": [{"name": "h", "nodes": [
        {"name": "n", "addr": f"127.0.0.1:{port}", "connector": {"type": "http"}, "dialer": {"type": "tcp"}}]}]}


def test_forward_references_go_live_are_replaced_live_and_refuse_when_deleted(origin):
    api_port, port = free_port(), free_port()
    url = f"http://{NAME}:{origin.port}"
    with _upstream() as up_a, _upstream() as up_b, Gost("-api", f"127.0.0.1:{api_port}", ports=[api_port]) as g:
        api = Api(api_port)
        status, js, raw = api.request("POST", "/config/services", {
            "name": "web", "addr": f"127.0.0.1:{port}", "handler": {"type": "http", "chain": "egress"},
            "listener": {"type": "tcp"}, "bypass": "blocked", "hosts": "names"})
        assert status == 200 and js["msg"] == "OK", raw
        assert sorted(w.split(": ", 1)[0].rsplit(".", 1)[-1] for w in js["warnings"]) == ["bypass", "chain", "hosts"]

        # nothing exists yet: refused, and no byte reaches the origin by another way
        before = origin.connections
        assert via_http(port, f"{url}/a")[1] == 503
        assert origin.connections == before
        assert refused_lines(g, "bypass 'blocked'")

        # created one by one: still refused while any is missing
        api.post("hosts", {"name": "names", "mappings": [{"ip": "127.0.0.1", "hostname": NAME}]})
        api.post("bypasses", {"name": "blocked", "matchers": ["blocked.test"]})
        assert via_http(port, f"{url}/b")[1] == 503
        assert refused_lines(g, "chain 'egress'")
        api.post("chains", _chain(up_a.port))
        assert served(via_http(port, f"{url}/through-a"), "/through-a")
        assert relay_lines(up_a, f"127.0.0.1:{origin.port}") == 1     # the name was mapped by the hosts
        assert via_http(port, f"http://blocked.test:{origin.port}/x")[1] == 403

        # PUT replaces the chain live: the next request goes through the other upstream
        api.put("chains", "egress", _chain(up_b.port))
        assert served(via_http(port, f"{url}/through-b"), "/through-b")
        assert relay_lines(up_b, f"127.0.0.1:{origin.port}") == 1
        assert relay_lines(up_a, f"127.0.0.1:{origin.port}") == 1
        # … and the bypass: what it blocked now passes, a new entry blocks
        api.put("bypasses", "blocked", {"name": "blocked", "matchers": [NAME]})
        assert via_http(port, f"{url}/now-blocked")[1] == 403

        # DELETE: the service refuses again instead of going direct or unfiltered
        api.delete("bypasses", "blocked")
        before = origin.connections
        assert via_http(port, f"{url}/c")[1] == 503
        assert origin.connections == before
        api.post("bypasses", {"name": "blocked", "matchers": []})
        assert served(via_http(port, f"{url}/d"), "/d")
        api.delete("chains", "egress")
        assert via_http(port, f"{url}/e")[1] == 503
        assert origin.connections == before + 1
        assert g.proc.poll() is None, g.log_text()[-3000:]
