"""gostg/plugin: GOST's request/response JSON per kind (go-gost/x */plugin/http.go), the
transport seam's config errors, and the plugin-backed objects failing closed."""
import base64
import json

import pytest
from hypothesis import given, strategies as st

from gostg.errors import ConfigError
from gostg.plugin import PluginError, consumers, grpc_built, transport, type_problem, wire
from gostg.policy.group import MissingReference, Unanswered

from .loglines import Log


def test_requests_carry_gosts_field_names():
    assert wire.auth_request("u", "p", "1.2.3.4:5", "svc") == {
        "service": "svc", "username": "u", "password": "p", "client": "1.2.3.4:5"}
    assert wire.admission_request("1.2.3.4:5", "svc") == {"service": "svc", "network": "tcp", "addr": "1.2.3.4:5"}
    assert wire.bypass_request("udp", "a.b:53", "cid", "h", "/p", "svc") == {
        "service": "svc", "network": "udp", "addr": "a.b:53", "client": "cid", "host": "h", "path": "/p"}
    assert wire.lookup_request("ip4", "a.b", "cid") == {"network": "ip4", "host": "a.b", "client": "cid"}
    assert wire.hop_request("tcp", "a:1", client="c", src="1.1.1.1:2") == {
        "network": "tcp", "addr": "a:1", "host": "", "path": "", "client": "c", "src": "1.1.1.1:2"}
    assert wire.limiter_request("client", "svc", "tcp", "a:1", "c", "s:1") == {
        "service": "svc", "scope": "client", "network": "tcp", "addr": "a:1", "client": "c", "src": "s:1"}


def test_recorder_request_is_base64_as_go_marshals_bytes():
    r = wire.recorder_request(b"\x00rec", {"k": "v"})
    assert base64.b64decode(r["data"]) == b"\x00rec"
    assert json.loads(base64.b64decode(r["metadata"])) == {"k": "v"}


def test_replies_read_as_go_decodes_them():
    assert wire.auth_reply({"ok": True, "id": "x"}) == "x"
    assert wire.auth_reply({"ok": True}) == ""
    assert wire.auth_reply({"ok": False, "id": "x"}) is None
    assert wire.auth_reply({}) is None                       # missing ok: false (Go's zero value)
    assert wire.admission_reply({"ok": True}) is True
    assert wire.bypass_reply({"ok": None}) is False
    assert wire.ips_reply({"ok": True, "ips": ["1.2.3.4", "::1", "nope", 7]}) == (True, ["1.2.3.4", "::1"])
    assert wire.limiter_reply({"in": 100, "out": -1}) == (100, 0)
    assert wire.limiter_reply({}) == (0, 0)
    assert wire.hop_reply({}) is None and wire.hop_reply({"addr": "a:1"}) == {"addr": "a:1"}
    with pytest.raises(PluginError):
        wire.must_ok({"ok": False})


@pytest.mark.parametrize("fn,reply", [
    (wire.auth_reply, {"ok": "yes"}), (wire.auth_reply, {"ok": True, "id": 5}),
    (wire.admission_reply, {"ok": 1}), (wire.bypass_reply, {"ok": []}),
    (wire.ips_reply, {"ok": True, "ips": "1.2.3.4"}), (wire.limiter_reply, {"in": "1MB"}),
    (wire.limiter_reply, {"in": 1.5}), (wire.limiter_reply, {"out": True})])
def test_wrong_types_are_garbage(fn, reply):
    with pytest.raises(PluginError):
        fn(reply)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                    max_leaves=8)


@given(st.dictionaries(st.sampled_from(["ok", "id", "ips", "in", "out", "addr", "x"]), JSON, max_size=5))
def test_any_reply_is_an_answer_or_plugin_error(reply):
    for fn in (wire.auth_reply, wire.admission_reply, wire.ips_reply, wire.limiter_reply, wire.hop_reply):
        try:
            fn(reply)
        except PluginError:
            pass


def test_transport_config_errors_name_the_key():
    if not grpc_built():
        with pytest.raises(ConfigError, match=r"authers\[0\]\.plugin\.type.*grpc"):
            transport({"addr": "127.0.0.1:1"}, "auth", "authers[0].plugin")
        assert "GOST's default (grpc)" in type_problem({})
    with pytest.raises(ConfigError, match=r"\.type.*unknown plugin type 'soap'"):
        transport({"type": "soap", "addr": "x"}, "auth", "p")
    with pytest.raises(ConfigError, match=r"p\.addr.*required"):
        transport({"type": "http"}, "auth", "p")
    with pytest.raises(ConfigError, match=r"p\.addr"):
        transport({"type": "http", "addr": "ftp://x/"}, "auth", "p")
    with pytest.raises(ConfigError, match=r"p\.timeout"):
        transport({"type": "HTTP", "addr": "http://x/", "timeout": "soon"}, "auth", "p")
    t = transport({"type": "http", "addr": "plug:8000/a", "tls": {"serverName": "n"}, "token": "k"}, "auth", "p")
    assert t.target.https and t.target.server_name == "n" and t.target.token == "k" and t.target.timeout == 10.0


def test_http_plugin_ca_file_is_read_when_the_config_is_built(tmp_path):
    """A ``tls.caFile`` that is missing or holds no certificate is a config error naming the
    key (as for gRPC plugins), not a failure of every call later."""
    with pytest.raises(ConfigError, match=r"p\.tls\.caFile: cannot use .*No such file"):
        transport({"type": "http", "addr": "https://x/", "tls": {"caFile": str(tmp_path / "none.pem")}}, "auth", "p")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"p\.tls\.caFile: cannot use"):
        transport({"type": "http", "addr": "https://x/", "tls": {"caFile": str(junk)}}, "auth", "p")


class Fake:
    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def call(self, request):
        self.requests.append(request)
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    def close(self):
        pass


def backed(cls, *answers):
    log = Log()
    obj = cls("p", {"type": "http", "addr": "http://127.0.0.1:1/"}, "x.plugin", log)
    obj.transport = Fake(*answers)
    return obj, log


def test_failures_refuse_and_are_logged_once_per_change():
    a, log = backed(consumers.PluginAuther, PluginError("down"), PluginError("down"), PluginError("slow"),
                    {"ok": True, "id": "u"})
    for _ in range(3):
        with pytest.raises(Unanswered) as e:
            a.authenticate("u", "p")
        assert isinstance(e.value, MissingReference)   # every caller's fail-closed path
    assert a.authenticate("u", "p") == "u"
    assert [lvl for lvl, _ in log.lines] == ["error", "error", "info"]


def test_bypass_plugin_failure_is_not_a_bypass():
    b, _ = backed(consumers.PluginBypass, PluginError("down"), {"ok": True})
    with pytest.raises(Unanswered):
        b.contains("tcp", "a:1")
    assert b.contains("tcp", "a:1") is True
    assert b.contains("tcp", "") is False   # nothing to judge: no call
    assert len(b.transport.requests) == 2


def test_hosts_and_resolver_plugins():
    h, _ = backed(consumers.PluginHosts, {"ok": True, "ips": ["::1", "1.2.3.4"]}, {"ok": False, "ips": ["1.1.1.1"]})
    assert h.lookup("A.test.") == ["1.2.3.4", "::1"]
    assert h.transport.requests[0] == {"network": "ip", "host": "a.test", "client": ""}
    assert h.lookup("b.test") == []
    h.transport = Fake({"ok": True, "ips": ["1.2.3.4"]})

    class Ctx:
        client_id = "alice"
    assert h.lookup("c.test", only="ipv6", ctx=Ctx()) == []
    assert h.transport.requests[0] == {"network": "ip6", "host": "c.test", "client": "alice"}
    r, _ = backed(consumers.PluginResolver, {"ok": True, "ips": ["1.2.3.4"]}, {"ok": True, "ips": []})
    assert r.resolve("x.test") == ["1.2.3.4"] and r.resolve("9.9.9.9") == ["9.9.9.9"]
    from gostg.errors import DialError
    with pytest.raises(DialError):
        r.resolve("y.test")


def test_limiter_plugin_keeps_answers_per_key_and_its_last_answer_when_down():
    now = [0.0]
    lim = consumers.PluginTrafficLimiter("l", {"type": "http", "addr": "http://127.0.0.1:1/"}, "p", Log(),
                                         clock=lambda: now[0])
    lim.transport = Fake({"in": 1000, "out": 0}, PluginError("down"), PluginError("down"))

    class Ctx:
        client_id, service, src, target = "alice", "s", "1.1.1.1:2", "a:1"
    inb, outb = lim.buckets("client", "alice", Ctx())
    assert inb.rate == 1000 and outb is None
    assert lim.buckets("client", "alice", Ctx())[0] is inb     # kept: no second call
    now[0] = 31.0
    assert lim.buckets("client", "alice", Ctx())[0] is inb     # the plugin is down: last answer
    with pytest.raises(Unanswered):
        lim.buckets("client", "bob", Ctx())                    # never answered for bob: refused
    assert lim.transport.requests[0] == {"service": "s", "scope": "client", "network": "tcp", "addr": "a:1",
                                         "client": "alice", "src": "1.1.1.1:2"}


def test_rules_next_to_a_plugin_are_said_to_be_unused():
    from gostg.config.validate import validate
    got = [(p.level, p.path) for p in validate({
        "authers": [{"name": "a", "auths": [{"username": "u", "password": "p"}],
                     "plugin": {"type": "http", "addr": "http://127.0.0.1:1/"}}],
        "hops": [{"name": "h", "plugin": {"type": "http", "addr": "http://127.0.0.1:1/"},
                  "nodes": [{"name": "n", "addr": "1.2.3.4:1"}]}]})]
    assert ("warning", "authers[0].auths") in got and ("warning", "hops[0].nodes") in got


@pytest.mark.parametrize("status,body,why", [(500, b'{"ok": true}', "HTTP 500"), (200, b"[1, 2]", "not a JSON object"),
                                             (200, b"", "not JSON")])
def test_http_transport_wants_200_and_a_json_object(status, body, why):
    import http.server
    import threading

    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            seen.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        t = transport({"type": "http", "addr": f"127.0.0.1:{srv.server_address[1]}/p", "token": "tk", "timeout": "2s"},
                      "admission", "p")
        with pytest.raises(PluginError, match=why):
            t.call(wire.admission_request("1.2.3.4:5", "svc"))
    finally:
        srv.shutdown()
        srv.server_close()
    headers, sent = seen[0]
    assert headers["Authorization"] == "Bearer tk" and json.loads(sent) == {
        "service": "svc", "network": "tcp", "addr": "1.2.3.4:5"}
