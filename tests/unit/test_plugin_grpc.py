"""GOST's gRPC plugin messages (gostg/plugin/protos.py) against wire bytes written by hand from
go-gost/plugin's .proto files (field numbers and types), the dict mapping both ways, and the
gRPC transport's config checks."""
import os
import re

import pytest

try:
    import google.protobuf  # noqa: F401
except ImportError:
    if os.environ.get("CI"):       # CI installs requirements-dev.txt: a skip would hide the tests
        raise
    pytest.skip("protobuf not installed (pip install 'gostg[grpc]')", allow_module_level=True)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gostg.errors import ConfigError  # noqa: E402
from gostg.plugin import grpc as plugin_grpc  # noqa: E402
from gostg.plugin import protos  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ld(num, data):
    """A length-delimited field (string, bytes, message) of a proto: key, length, bytes."""
    data = data.encode() if isinstance(data, str) else data
    assert len(data) < 128
    return bytes([num << 3 | 2, len(data)]) + data


def vint(num, value):
    out = bytearray([num << 3])
    value &= (1 << 64) - 1
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


# (kind, request dict, the .proto's field numbers for it, in order)
REQUESTS = [
    ("auth", {"username": "u", "password": "p", "client": "c", "service": "s"}, (1, 2, 3, 4)),
    ("admission", {"addr": "a", "service": "s"}, (1, 2)),
    ("bypass", {"addr": "a", "client": "c", "network": "n", "host": "h", "path": "p", "service": "s"},
     (1, 2, 3, 4, 5, 6)),
    ("hop", {"network": "n", "addr": "a", "host": "h", "client": "c", "path": "p", "src": "r"}, (1, 2, 3, 4, 5, 6)),
    ("hosts", {"network": "n", "host": "h", "client": "c"}, (1, 2, 3)),
    ("resolver", {"network": "n", "host": "h", "client": "c"}, (1, 2, 3)),
    ("limiter", {"network": "n", "addr": "a", "client": "c", "src": "r", "service": "s", "scope": "o"},
     (1, 2, 3, 4, 5, 6)),
    ("router", {"dst": "d", "id": "i"}, (1, 2)),
    ("ingress", {"host": "h", "service": "s"}, (1, 2)),
]


@pytest.mark.parametrize("kind,request_,numbers", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_request_wire_bytes_match_the_proto(kind, request_, numbers):
    path, msg, _ = protos.encode(kind, request_)
    want = b"".join(ld(n, v) for n, v in zip(numbers, request_.values()))
    assert msg.SerializeToString() == want
    assert path.startswith("/proto.")


def test_method_paths_are_gosts():
    paths = {k: protos.method(k, {}, "Get" if k == "sd" else None)[0] for k in protos.KINDS}
    assert paths == {
        "auth": "/proto.Authenticator/Authenticate", "admission": "/proto.Admission/Admit",
        "bypass": "/proto.Bypass/Bypass", "hop": "/proto.Hop/Select", "hosts": "/proto.HostMapper/Lookup",
        "resolver": "/proto.Resolver/Resolve", "limiter": "/proto.Limiter/Limit",
        "recorder": "/proto.Recorder/Record", "observer": "/proto.Observer/Observe",
        "router": "/proto.Router/GetRoute", "ingress": "/proto.Ingress/GetRule", "sd": "/proto.SD/Get"}
    assert protos.method("ingress", {"host": "h", "endpoint": "e"})[0] == "/proto.Ingress/SetRule"
    assert protos.method("sd", {}, "Renew")[0] == "/proto.SD/Renew"


def test_ingress_set_rule_and_sd_service_wire():
    _, msg, _ = protos.encode("ingress", {"host": "h", "endpoint": "e", "service": "s"})
    assert msg.SerializeToString() == ld(1, "h") + ld(2, "e") + ld(3, "s")
    # the HTTP sd plugin's body is the service itself: the gRPC request wraps it (field 1)
    svc = {"id": "i", "name": "n", "node": "o", "network": "t", "address": "a"}
    for op in ("Register", "Deregister", "Renew"):
        _, msg, _ = protos.encode("sd", svc, op)
        assert msg.SerializeToString() == ld(1, b"".join(ld(i, v) for i, v in enumerate(svc.values(), 1)))
    _, msg, _ = protos.encode("sd", {"name": "n"}, "Get")
    assert msg.SerializeToString() == ld(1, "n")


def test_observer_and_recorder_wire():
    ev = {"kind": "service", "service": "s", "type": "stats",
          "stats": {"totalConns": 1, "currentConns": 2, "inputBytes": 300, "outputBytes": 4, "totalErrs": 5}}
    _, msg, _ = protos.encode("observer", {"events": [ev, {"kind": "service", "service": "s", "type": "status",
                                                          "status": {"state": "ready", "msg": "m"}}]})
    stats = vint(1, 1) + vint(2, 2) + vint(3, 300) + vint(4, 4) + vint(5, 5)
    e1 = ld(1, "service") + ld(2, "s") + ld(4, "stats") + ld(5, stats)
    e2 = ld(1, "service") + ld(2, "s") + ld(4, "status") + ld(6, ld(1, "ready") + ld(2, "m"))
    assert msg.SerializeToString() == ld(1, e1) + ld(1, e2)
    # GOST sends the recorder's metadata as JSON of a map
    _, msg, _ = protos.encode("recorder", {"data": b"\x00rec", "metadata": {"service": "s"}})
    assert msg.SerializeToString() == ld(1, b"\x00rec") + ld(2, b'{"service":"s"}')
    # the same record as the HTTP plugin's JSON has it: Go's []byte is base64
    _, msg, _ = protos.encode("recorder", {"data": "AHJlYw==", "metadata": "eyJzZXJ2aWNlIjoicyJ9"})
    assert msg.SerializeToString() == ld(1, b"\x00rec") + ld(2, b'{"service":"s"}')
    with pytest.raises(ValueError, match="base64"):
        protos.encode("recorder", {"data": "not base64!"})


def _reply(kind, name, wire):
    return protos.decode(kind, name, protos.message_class(name).FromString(wire))


def test_replies_from_wire_bytes():
    assert _reply("auth", "AuthenticateReply", vint(1, 1) + ld(2, "id-1")) == {"ok": True, "id": "id-1"}
    assert _reply("auth", "AuthenticateReply", b"") == {"ok": False, "id": ""}     # proto3: unset is false
    assert _reply("admission", "AdmissionReply", vint(1, 1)) == {"ok": True}
    assert _reply("hosts", "LookupReply", ld(1, "1.2.3.4") + ld(1, "::1") + vint(2, 1)) == {
        "ips": ["1.2.3.4", "::1"], "ok": True}
    assert _reply("limiter", "LimitReply", vint(1, 1000) + vint(2, -1)) == {"in": 1000, "out": -1}
    assert _reply("router", "GetRouteReply", ld(1, "10.0.0.0/8") + ld(2, "10.0.0.1")) == {
        "dst": "10.0.0.0/8", "gateway": "10.0.0.1"}
    assert _reply("ingress", "GetRuleReply", ld(1, "ep")) == {"endpoint": "ep"}
    svc = ld(1, "i") + ld(2, "n") + ld(5, "a:1")
    assert _reply("sd", "GetServiceReply", ld(1, svc)) == {"services": [
        {"id": "i", "name": "n", "node": "", "network": "", "address": "a:1"}]}
    # unknown fields (a newer plugin) are skipped
    assert _reply("bypass", "BypassReply", vint(1, 1) + ld(9, "new")) == {"ok": True}


def test_hop_reply_is_the_node_json():
    node = b'{"name":"n1","addr":"127.0.0.1:8080","connector":{"type":"http"}}'
    assert _reply("hop", "SelectReply", ld(1, node)) == {
        "name": "n1", "addr": "127.0.0.1:8080", "connector": {"type": "http"}}
    assert _reply("hop", "SelectReply", b"") == {}
    for bad in (b"{nope", b"[1,2]"):
        with pytest.raises(ValueError, match="hop plugin"):
            _reply("hop", "SelectReply", ld(1, bad))


def test_bad_requests_are_value_errors():
    with pytest.raises(ValueError, match="unknown plugin kind"):
        protos.encode("nope", {})
    with pytest.raises(ValueError, match="no method"):
        protos.encode("sd", {"name": "n"})               # sd: the caller names the method
    with pytest.raises(ValueError, match="no method"):
        protos.encode("auth", {}, "Admit")
    with pytest.raises(ValueError, match="integer"):
        protos.encode("observer", {"events": [{"stats": {"totalConns": "many"}}]})
    with pytest.raises(ValueError, match="out of range"):
        protos.encode("observer", {"events": [{"stats": {"totalConns": -1}}]})
    with pytest.raises(ValueError, match="a list"):
        protos.encode("observer", {"events": {"kind": "x"}})
    with pytest.raises(ValueError, match="mapping"):
        protos.encode("observer", {"events": ["x"]})
    # keys the proto does not have (GOST's newer fields) are not sent; None is unset
    _, msg, _ = protos.encode("admission", {"addr": "a", "network": "tcp", "service": None})
    assert msg.SerializeToString() == ld(1, "a")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([r[:2] for r in REQUESTS]), st.data())
def test_string_requests_round_trip(case, data):
    kind, template = case
    request_ = {k: data.draw(st.text(max_size=20)) for k in template}
    path, msg, _ = protos.encode(kind, request_)
    name = protos.method(kind, request_)[2]
    back = protos.to_dict(protos.message_class(name).FromString(msg.SerializeToString()), name)
    assert back == request_


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_replies_raise_decode_error_or_decode(wire):
    """What a plugin answers is parsed by protobuf: garbage is its DecodeError (the transport
    turns any failure into PluginError), never anything else."""
    from google.protobuf.message import DecodeError

    for name in ("AuthenticateReply", "LookupReply", "GetServiceReply", "LimitReply"):
        try:
            out = protos.decode("x", name, protos.message_class(name).FromString(wire))
        except DecodeError:
            continue
        assert isinstance(out, dict)


def test_transport_config_checks(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"p\.addr: is required"):
        plugin_grpc.Transport({}, "auth", "p")
    with pytest.raises(ConfigError, match="host:port"):
        plugin_grpc.Transport({"addr": "http://x:1"}, "auth", "p")
    with pytest.raises(ConfigError, match=r"p\.tls\.caFile: cannot read"):
        plugin_grpc.Transport({"addr": "x:1", "tls": {"caFile": str(tmp_path / "none.pem")}}, "auth", "p")
    for token in ("tökén", "a\nb"):
        with pytest.raises(ConfigError, match=r"p\.token: a gRPC plugin token is printable ASCII"):
            plugin_grpc.Transport({"addr": "x:1", "token": token}, "auth", "p")
    with pytest.raises(ConfigError, match=r"p\.timeout"):
        plugin_grpc.Transport({"addr": "x:1", "timeout": "soon"}, "auth", "p")
    t = plugin_grpc.Transport({"addr": "x:1", "timeout": "2s", "token": "t"}, "bypass", "p")
    assert (t.timeout, t._metadata, t._channel) == (2.0, (("token", "t"),), None)   # no channel before a call
    assert plugin_grpc.Transport({"addr": "x:1"}, "auth").timeout == plugin_grpc.DEFAULT_TIMEOUT
    monkeypatch.setattr(plugin_grpc, "available", lambda: False)
    with pytest.raises(ConfigError, match=re.escape("pip install 'gostg[grpc]'")):
        plugin_grpc.Transport({"addr": "x:1"}, "auth", "p")


def test_extra_pins_match_requirements_dev():
    with open(os.path.join(ROOT, "setup.py")) as f:
        extra = re.search(r"GRPC_EXTRA = \[(.*?)\]", f.read()).group(1)
    pins = re.findall(r'"([^"]+)"', extra)
    with open(os.path.join(ROOT, "requirements-dev.txt")) as f:
        dev = {line.strip() for line in f}
    assert pins and all(p in dev for p in pins), pins
