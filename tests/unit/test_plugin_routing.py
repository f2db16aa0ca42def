"""Plugin-backed ingresses, routers and sds (gostg/plugin/routing.py) over stand-in
transports: the requests GOST's HTTP plugins send (GET with a query, PUT/POST/DELETE with a
body) and gRPC's (method names), what each answer means, and fail closed — a plugin that fails
gives no rule, route or service, logged once per change of cause and once on recovery."""
import json

import pytest

from gostg.plugin import PluginError, wire
from gostg.plugin.routing import PluginIngress, PluginRouter, PluginSD
from gostg.policy.ingress import Rule
from gostg.policy.sd import Service

from .loglines import Log

U1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"


class HTTPStandIn:
    """Has ``request`` (so the consumer speaks GOST's REST-shaped HTTP plugin protocol)."""

    def __init__(self, answer):
        self.answer = answer      # (status, body dict or bytes) or an exception
        self.seen = []

    def request(self, method, query=None, body=None):
        self.seen.append((method, query, body))
        if isinstance(self.answer, Exception):
            raise self.answer
        code, reply = self.answer
        return code, reply if isinstance(reply, bytes) else json.dumps(reply).encode()

    def close(self):
        pass


class GRPCStandIn:
    def __init__(self, answer):
        self.answer = answer
        self.seen = []

    def call(self, request, op=None):
        self.seen.append((op, request))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def close(self):
        pass


def make(cls, transport):
    obj = cls.__new__(cls)
    obj.name, obj.transport, obj._failing = "p", transport, None
    obj.log = Log()
    return obj


def test_ingress_http_get_rule_and_set_rule():
    t = HTTPStandIn((200, {"endpoint": U1}))
    i = make(PluginIngress, t)
    assert i.get_rule("example.com:443", service="ep") == Rule("example.com:443", U1)
    assert t.seen[-1] == ("GET", {"host": "example.com:443", "service": "ep"}, None)
    t.answer = (200, {"endpoint": ""})
    assert i.get_rule("none.com") is None and t.seen[-1][1] == {"host": "none.com"}
    t.answer = (404, b"no")
    assert i.get_rule("none.com") is None and not i.log.lines        # 404: no rule, not a failure
    t.answer = (200, {"ok": True})
    assert i.set_rule(Rule("a.com", U1), service="s") is True
    assert t.seen[-1] == ("PUT", None, {"service": "s", "host": "a.com", "endpoint": U1})
    t.answer = (200, {"ok": False})
    assert i.set_rule(Rule("a.com", U1)) is False


@pytest.mark.parametrize("answer", [PluginError("connection refused"), (500, b"oops"), (200, b"<html>"),
                                    (200, {"endpoint": 7}), (200, [1, 2]), (200, {"endpoint": "tunnel-1"})])
def test_ingress_failures_route_nothing_logged_once_then_recovery(answer):
    t = HTTPStandIn(answer)
    i = make(PluginIngress, t)
    for _ in range(3):
        assert i.get_rule("a.com") is None
    assert [lvl for lvl, _ in i.log.lines] == ["error"], i.log.lines
    assert "no rule until it answers" in i.log.lines[0][1]
    t.answer = (200, {"endpoint": U1})
    assert i.get_rule("a.com").endpoint == U1
    assert [lvl for lvl, _ in i.log.lines] == ["error", "info"]


def test_ingress_grpc_methods():
    t = GRPCStandIn({"endpoint": f"${U1}"})
    i = make(PluginIngress, t)
    assert i.get_rule("a.com").endpoint == f"${U1}"
    assert t.seen[-1] == ("GetRule", {"host": "a.com"})
    t.answer = {"ok": True}
    assert i.set_rule(Rule("a.com", U1)) is True
    assert t.seen[-1] == ("SetRule", {"service": "", "host": "a.com", "endpoint": U1})


def test_router_http_and_grpc():
    t = HTTPStandIn((200, {"dst": "192.168.1.0/24", "gateway": "192.168.123.2"}))
    r = make(PluginRouter, t)
    route = r.get_route("192.168.1.2", id="1b564300-a2c5-406d-af0c-b7bdb039b0e3")
    assert (route.dst, route.gateway, str(route.net)) == ("192.168.1.0/24", "192.168.123.2", "192.168.1.0/24")
    assert t.seen[-1] == ("GET", {"dst": "192.168.1.2", "id": "1b564300-a2c5-406d-af0c-b7bdb039b0e3"}, None)
    t.answer = (200, {"net": "10.0.0.0/8", "gateway": "g"})          # GOST's deprecated net
    assert r.get_route("10.1.1.1").dst == "10.0.0.0/8"
    t.answer = (200, {"dst": "10.0.0.0/8"})                           # no gateway: no route
    assert r.get_route("10.1.1.1") is None and not r.log.lines
    t.answer = (200, {"dst": "not-a-net", "gateway": "g"})            # garbage: no route, logged
    assert r.get_route("10.1.1.1") is None and r.log.lines[0][0] == "error"
    g = GRPCStandIn({"dst": "10.0.0.1", "gateway": "gw"})
    r = make(PluginRouter, g)
    assert r.get_route("10.0.0.1").gateway == "gw" and g.seen[-1] == ("GetRoute", {"dst": "10.0.0.1"})
    g.answer = PluginError("gRPC UNAVAILABLE")
    assert r.get_route("10.0.0.1") is None and "no route until it answers" in r.log.lines[-1][1]


SVC = Service("c23d4f42", "c9ef8f8c", "db670b91", "tcp", "10.42.0.100:80")


def test_sd_http_methods_and_get():
    t = HTTPStandIn((200, {}))
    sd = make(PluginSD, t)
    assert sd.register(SVC) and sd.deregister(SVC) and sd.renew(SVC)
    assert [m for m, _, _ in t.seen] == ["POST", "DELETE", "PUT"]
    assert t.seen[0][2] == {"id": "c23d4f42", "name": "c9ef8f8c", "node": "db670b91", "network": "tcp",
                            "address": "10.42.0.100:80"}
    t.answer = (200, {"services": [SVC.as_dict(), None]})
    assert sd.get("c9ef8f8c") == [SVC] and t.seen[-1] == ("GET", {"name": "c9ef8f8c"}, None)
    t.answer = (503, b"")
    assert sd.register(SVC) is False and sd.get("c9ef8f8c") == []     # fail closed
    assert sum(1 for lvl, _ in sd.log.lines if lvl == "error") == 1    # one cause: one line


@pytest.mark.parametrize("reply", [b"{", {"services": "x"}, {"services": [1]}, {"services": [{"id": 5}]}])
def test_sd_garbage_finds_nothing(reply):
    sd = make(PluginSD, HTTPStandIn((200, reply)))
    assert sd.get("n") == [] and sd.log.lines[0][0] == "error"


def test_sd_grpc_methods():
    t = GRPCStandIn({"ok": True})
    sd = make(PluginSD, t)
    assert sd.register(SVC) and sd.deregister(SVC) and sd.renew(SVC)
    assert [op for op, _ in t.seen] == ["Register", "Deregister", "Renew"]
    t.answer = {"services": [SVC.as_dict()]}
    assert sd.get("c9ef8f8c") == [SVC] and t.seen[-1] == ("Get", {"name": "c9ef8f8c"})


def test_wire_mappings():
    assert wire.route_reply({"net": "1.0.0.0/8", "dst": "", "gateway": "g"}) == ("1.0.0.0/8", "g")
    assert wire.ingress_rule_reply({}) == ""
    with pytest.raises(PluginError):
        wire.ingress_rule_reply({"endpoint": True})
    assert wire.sd_service({"id": "a"}) == {"id": "a", "name": "", "node": "", "network": "", "address": ""}
