"""Fail closed (issue 11 must 4) and the open-proxy warning (must 8), without sockets:
a name that does not resolve raises MissingReference wherever it is looked up, never means
"no chain / no bypass / no auth"; config/refs.py lists dangling references and open proxies."""
import pytest

from gostg.config.refs import beyond_loopback, config_warnings, dangling, dangling_refs, dangling_to, open_proxies
from gostg.config.validate import Problem
from gostg.core.chain import Chain, Hop, Node, resolve_node_addr
from gostg.core.registry import Registries
from gostg.core.router import Router
from gostg.errors import DialError
from gostg.policy.admission import Admission, AdmissionGroup
from gostg.policy.auth import Auther, AutherGroup, SkipAuth
from gostg.policy.bypass import Bypass, BypassGroup, bypass_hit
from gostg.policy.group import MissingReference, lookup


# --- connection time: every lookup fails closed ------------------------------------------------

def test_lookup_names_the_missing_object():
    reg = Registries()
    with pytest.raises(MissingReference) as e:
        lookup(reg, "chains", "nope")
    assert str(e.value) == "chain 'nope' not found"
    assert (e.value.kind, e.value.name) == ("chains", "nope")
    assert isinstance(e.value, DialError)   # handlers answer it as a failed dial


@pytest.mark.parametrize("kw,missing", [
    ({"chain": "nope"}, "chain 'nope'"),
    ({"hosts": "h"}, "hosts 'h'"),
    ({"resolver": "r"}, "resolver 'r'"),
])
def test_router_refuses_a_missing_chain_hosts_resolver(kw, missing):
    """Never a direct dial: the router raises before any socket is opened."""
    r = Router(Registries(), retries=3, **kw)
    with pytest.raises(MissingReference, match=missing):
        r.dial("tcp", "127.0.0.1:9")
    with pytest.raises(MissingReference, match=missing):
        r.dial("udp", "")     # a UDP association: no address yet, the names are checked anyway


def test_router_refuses_a_missing_bypass_and_udp_datagrams_are_dropped():
    reg = Registries()
    r = Router(reg, bypass=BypassGroup.of(["gone"], reg))
    with pytest.raises(MissingReference, match="bypass 'gone'"):
        r.dial("tcp", "127.0.0.1:9")
    with pytest.raises(MissingReference, match="bypass 'gone'"):
        r.dial("udp", "")
    assert r.bypassed("127.0.0.1:9", "udp") is True    # per datagram: dropped
    reg.bypasses.set("gone", Bypass("gone", ["10.0.0.0/8"]))
    assert r.bypassed("127.0.0.1:9", "udp") is False


def test_chain_with_a_missing_hop_does_not_shorten_the_route():
    reg = Registries()
    n0 = Node("n0", "127.0.0.1:1", None, None)
    reg.hops.set("h0", Hop("h0", [n0], registries=reg))
    chain = Chain("c", ["h0", "h1"], reg)
    with pytest.raises(MissingReference, match="hop 'h1'"):
        chain.route("tcp", "example.com:80")
    reg.hops.set("h1", Hop("h1", [Node("n1", "127.0.0.1:2", None, None)], registries=reg))
    assert [n.name for n in chain.route("tcp", "example.com:80").nodes] == ["n0", "n1"]


def test_a_hop_without_nodes_refuses():
    reg = Registries()
    reg.hops.set("empty", Hop("empty", [], registries=reg))
    with pytest.raises(DialError, match="hop 'empty' has no nodes"):
        Chain("c", ["empty"], reg).route("tcp", "example.com:80")


def test_hop_and_node_bypass_missing_refuse_the_route():
    reg = Registries()
    hop = Hop("h", [Node("n", "127.0.0.1:1", None, None, bypass=BypassGroup.of(["nb"], reg))],
              bypass=BypassGroup.of(["hb"], reg), registries=reg)
    with pytest.raises(MissingReference, match="bypass 'hb'"):
        hop.select(None, "example.com:80")
    with pytest.raises(MissingReference, match="bypass 'hb'"):
        hop.select(None, "")          # no target (a forwarder's pick): still checked
    reg.bypasses.set("hb", Bypass("hb", ["blocked.test"]))
    with pytest.raises(MissingReference, match="bypass 'nb'"):
        hop.select(None, "example.com:80")
    reg.bypasses.set("nb", Bypass("nb", ["other.test"]))
    assert hop.select(None, "example.com:80").name == "n"


def test_node_hosts_and_resolver_missing():
    reg = Registries()
    n = Node("n", "proxy.test:1080", None, None, hosts="hh")
    with pytest.raises(MissingReference, match="hosts 'hh'"):
        resolve_node_addr(n, reg)
    n = Node("n", "proxy.test:1080", None, None, resolver="rr")
    with pytest.raises(MissingReference, match="resolver 'rr'"):
        resolve_node_addr(n, reg)


def test_bypass_hit_by_name():
    reg = Registries()
    with pytest.raises(MissingReference):
        bypass_hit("nope", reg, "tcp", "a.com:1")
    with pytest.raises(MissingReference):
        bypass_hit(BypassGroup(["bp", "nope"], reg), reg, "tcp", "a.com:1")
    assert not bypass_hit(None, reg, "tcp", "a.com:1")


def test_admission_group_with_a_missing_member_raises():
    reg = Registries()
    reg.admissions.set("white", Admission("white", ["127.0.0.0/8"], whitelist=True))
    g = AdmissionGroup.of(["white", "missing"], reg)
    assert g.missing() == ["missing"]
    with pytest.raises(MissingReference, match="admission 'missing'"):
        g.admit("127.0.0.1:1")
    reg.admissions.set("missing", Admission("missing", ["10.0.0.0/8"]))
    assert g.admit("127.0.0.1:1") and g.missing() == []


def test_auther_group_with_a_missing_member_refuses_everyone_and_skipauth_too():
    reg = Registries()
    reg.authers.set("a", Auther("a", {"u": "p"}))
    g = AutherGroup(["a", "gone"], reg)
    with pytest.raises(MissingReference, match="auther 'gone'"):
        g.authenticate("u", "p")
    skip = SkipAuth(g, ["127.0.0.1"])
    with pytest.raises(MissingReference, match="auther 'gone'"):
        skip.authenticate("", "", client="127.0.0.1")
    reg.authers.set("gone", Auther("gone", {"v": "q"}))
    assert g.authenticate("u", "p") == "u" and g.authenticate("v", "q") == "v"
    assert skip.authenticate("", "", client="127.0.0.1") == ""


# --- config model: dangling references ----------------------------------------------------------

FULL = {
    "services": [{
        "name": "s", "addr": "127.0.0.1:1080",
        "handler": {"type": "socks5", "chain": "nope", "auther": "au", "authers": ["a", "ax"]},
        "listener": {"type": "tcp"},
        "admission": "ad", "admissions": ["ad2"], "bypass": "bp", "bypasses": ["bp2"],
        "resolver": "rs", "hosts": "hs", "limiter": "lm", "climiter": "cl", "rlimiter": "rl",
    }, {
        "name": "r", "addr": ":2222", "handler": {"type": "rtcp"}, "listener": {"type": "rtcp", "chain": "rc"},
        "forwarder": {"nodes": [{"name": "t", "addr": "127.0.0.1:22", "bypass": "fb"}]},
    }, {
        "name": "ignored", "addr": "127.0.0.1:3", "handler": {"type": "http", "chain": "skipped"},
        "metadata": {"ignoreChain": True},
    }],
    "authers": [{"name": "a", "auths": [{"username": "u", "password": "p"}]}],
    "chains": [{"name": "c", "hops": ["h-missing", {"name": "h0"},
                                      {"name": "inline", "bypass": "hb", "hosts": "hh",
                                       "nodes": [{"name": "n", "addr": "1.2.3.4:1", "resolver": "nr"}]}]}],
    "hops": [{"name": "h0", "bypasses": ["hb2"], "nodes": [{"name": "m", "addr": "1.2.3.4:2", "bypass": "mb"}]}],
    "resolvers": [{"name": "dns", "nameservers": [{"addr": "1.1.1.1", "chain": "dns-chain"}]}],
    "api": {"addr": "127.0.0.1:18080", "auther": "api-au"},
}


def test_dangling_refs_every_kind_and_place():
    got = {p.path: p.message for p in dangling_refs(FULL)}
    assert all(p.level == "warning" for p in dangling_refs(FULL))
    assert got["services[0].handler.chain"] == \
        "chain 'nope' does not exist (connections will be refused until it is created)"
    want = {
        "services[0].handler.auther": "auther 'au'", "services[0].handler.authers[1]": "auther 'ax'",
        "services[0].admission": "admission 'ad'", "services[0].admissions[0]": "admission 'ad2'",
        "services[0].bypass": "bypass 'bp'", "services[0].bypasses[0]": "bypass 'bp2'",
        "services[0].resolver": "resolver 'rs'", "services[0].hosts": "hosts 'hs'",
        "services[0].limiter": "limiter 'lm'", "services[0].climiter": "climiter 'cl'",
        "services[0].rlimiter": "rlimiter 'rl'",
        "services[1].listener.chain": "chain 'rc'", "services[1].forwarder.nodes[0].bypass": "bypass 'fb'",
        "chains[0].hops[0]": "hop 'h-missing'", "chains[0].hops[2].bypass": "bypass 'hb'",
        "chains[0].hops[2].hosts": "hosts 'hh'", "chains[0].hops[2].nodes[0].resolver": "resolver 'nr'",
        "hops[0].bypasses[0]": "bypass 'hb2'", "hops[0].nodes[0].bypass": "bypass 'mb'",
        "resolvers[0].nameservers[0].chain": "chain 'dns-chain'", "api.auther": "auther 'api-au'",
    }
    for path, obj in want.items():
        assert got.get(path, "").startswith(obj + " does not exist"), (path, got.get(path))
    # resolved references, and a chain the service ignores, are not reported
    assert "services[0].handler.authers[0]" not in got and "chains[0].hops[1]" not in got
    assert not any(p.startswith("services[2]") for p in got)
    assert set(got) == set(want) | {"services[0].handler.chain"}


def test_dangling_alias_prefix_and_deleted():
    assert dangling(FULL) == dangling_refs(FULL)
    assert {p.path for p in dangling_refs(FULL, "hops[0]")} == {"hops[0].bypasses[0]", "hops[0].nodes[0].bypass"}
    cfg = {"services": [{"name": "s", "addr": "127.0.0.1:1", "handler": {"chain": "c"}},
                        {"name": "t", "addr": "127.0.0.1:2", "handler": {"chain": "c"}, "bypass": "c"}]}
    assert [p.path for p in dangling_to(cfg, "chains", "c")] == ["services[0].handler.chain", "services[1].handler.chain"]
    assert dangling_refs({"chains": [{"name": "c"}], **cfg}, "services[0]") == []


def test_dangling_refs_tolerate_bad_shapes():
    """Shapes are the schema's to report: refs neither crash nor guess."""
    cfg = {"services": [{"name": "s", "handler": {"chain": ["x"], "authers": "a"}, "bypasses": [1, None, "b"]},
                        "junk"], "chains": [{"name": "c", "hops": [5, None]}], "hops": "x"}
    assert [str(p) for p in dangling_refs(cfg)] == [
        "services[0].bypasses[2]: bypass 'b' does not exist (connections will be refused until it is created)"]


# --- config model: open proxies -----------------------------------------------------------------

@pytest.mark.parametrize("addr,beyond", [
    ("0.0.0.0:1080", True), (":1080", True), ("[::]:1080", True), ("192.168.1.2:1080", True),
    ("proxy.example:1080", True), ("127.0.0.1:1080", False), ("127.9.9.9:1", False), ("[::1]:1080", False),
    ("localhost:1080", False), ("[::ffff:127.0.0.1]:1", False), ("[fe80::1%eth0]:1", True),
])
def test_beyond_loopback(addr, beyond):
    assert beyond_loopback(addr) is beyond


def _svc(addr="0.0.0.0:1080", handler="socks5", **kw):
    h = handler if isinstance(handler, dict) else {"type": handler}
    return {"name": "svc", "addr": addr, "handler": h, **kw}


@pytest.mark.parametrize("svc,open_", [
    (_svc(), True),
    (_svc(":8080", "http"), True),
    (_svc(handler={}), True),                       # auto
    (_svc(handler="relay"), True),
    (_svc(handler="sni"), True),
    (_svc(handler="socks4"), True),
    (_svc(handler="http2", listener={"type": "http2"}), True),
    (_svc("127.0.0.1:1080"), False),
    (_svc("[::1]:1080"), False),
    (_svc(handler={"type": "socks5", "auth": {"username": "u", "password": "p"}}), False),
    (_svc(handler={"type": "socks5", "auth": {"username": ""}}), True),    # GOST: no username, no auth
    (_svc(handler={"type": "http", "auther": "a"}), False),
    (_svc(handler={"type": "http", "authers": ["a"]}), False),
    (_svc(admission="ad"), False),
    (_svc(admissions=["ad"]), False),
    (_svc(listener={"type": "tls", "tls": {"caFile": "ca.pem"}}), False),  # client certificates
    (_svc(listener={"type": "tcp", "auth": {"username": "u", "password": "p"}}), True),  # not read by gostg
    (_svc(handler="tcp", forwarder={"nodes": [{"name": "t", "addr": "10.0.0.1:22"}]}), False),
    (_svc(handler="udp", listener={"type": "udp"}, forwarder={"nodes": [{"name": "t", "addr": "10.0.0.1:53"}]}), False),
    (_svc(handler="rtcp", listener={"type": "rtcp", "chain": "c"}), False),
    (_svc(handler="relay", forwarder={"nodes": [{"name": "t", "addr": "10.0.0.1:22"}]}), False),
    (_svc(handler={"type": "ss", "auth": {"username": "aes-128-gcm", "password": "k"}}), False),
])
def test_open_proxy(svc, open_):
    got = open_proxies({"services": [svc]})
    assert bool(got) is open_, got
    if open_:
        (p,) = got
        assert p.level == "warning" and p.path == "services[0]"
        assert p.message.startswith(f"open proxy on {svc['addr']}: anyone who can reach it can use it")
        assert "'svc'" in p.message


def test_open_web_api():
    cfg = {"services": [_svc(handler="api")], "api": {"addr": ":18080"}}
    got = [str(p) for p in open_proxies(cfg)]
    assert len(got) == 2 and all("open Web API on" in t for t in got)
    assert got[1].startswith("api: open Web API on :18080")
    cfg = {"services": [_svc(handler={"type": "api", "auth": {"username": "u", "password": "p"}})],
           "api": {"addr": ":18080", "auth": {"username": "u", "password": "p"}}}
    assert open_proxies(cfg) == []
    assert open_proxies({"api": {"addr": "127.0.0.1:18080"}}) == []


def test_config_warnings_are_problems():
    got = config_warnings({"services": [_svc(handler={"type": "http", "chain": "x"})]})
    assert [type(p) for p in got] == [Problem, Problem]
    assert [p.path for p in got] == ["services[0].handler.chain", "services[0]"]
