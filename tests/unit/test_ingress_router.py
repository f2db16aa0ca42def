"""Ingresses and routers (gostg/policy/ingress.py, routes.py): GOST's wildcard lookup and
first-match routes, the line formats of file/Redis/HTTP sources, bad rules refused at load with
their path and bad dynamic lines logged and skipped, fail closed while a source was never read."""
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gostg.config.build import build_object
from gostg.config.validate import ERROR, validate
from gostg.errors import ConfigError
from gostg.policy import ingress as ing
from gostg.policy import routes as rt

from .loglines import Log
from .test_loader import Fake

U1 = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
U2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"
U3 = "c9ef8f8c-d687-4dca-be7a-1467b6565404"


def ingress(lines=(), sources=(), log=None):
    return ing.Ingress("i", [tuple(line.split()) for line in lines], log=log, sources=sources)


# --- ingress lookup --------------------------------------------------------------------------------

def test_lookup_order_is_exact_then_own_wildcard_then_parents():
    i = ingress([f"abc.example.org {U1}", f".abc.example.org {U2}", f"*.example.org {U3}", f".org {U1}"])
    assert i.get_rule("abc.example.org").endpoint == U1            # exact first
    assert i.get_rule("x.abc.example.org").endpoint == U2          # .abc.example.org
    assert i.get_rule("def.example.org").endpoint == U3            # .example.org (*.example.org)
    assert i.get_rule("example.org").endpoint == U3                # a wildcard matches its own name
    assert i.get_rule("other.org").endpoint == U1                  # .org
    assert i.get_rule("example.com") is None
    assert i.get_rule("") is None


def test_lookup_cuts_the_port_and_ignores_case_and_a_trailing_dot():
    i = ingress([f"Example.COM {U1}", f"::1 {U2}"])
    assert i.get_rule("example.com:8080").endpoint == U1
    assert i.get_rule("EXAMPLE.com.").endpoint == U1
    assert i.get_rule("[::1]:80").endpoint == U2
    rule = i.get_rule("example.com")
    assert (rule.hostname, rule.endpoint) == ("Example.COM", U1)     # as written


def test_a_later_line_wins_for_the_same_hostname_and_private_endpoints_stay_as_written():
    i = ingress([f"a.com {U1}", f"*.b.com ${U2}"], sources=[Fake([f"a.com {U3}", f".b.com {U1}"])])
    assert i.get_rule("a.com").endpoint == U3
    assert i.get_rule("x.b.com").endpoint == U1
    assert ingress([f"a.com ${U2}"]).get_rule("a.com").endpoint == f"${U2}"
    assert ingress([f"a.com {U1}"]).set_rule(ing.Rule("b.com", U2)) is False   # GOST's local ingress


_label = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=8)
_name = st.lists(_label, min_size=1, max_size=5).map(".".join)


@given(_name, st.lists(_name, max_size=6), st.booleans())
def test_lookup_matches_a_reference_model(host, rule_names, wild):
    """The rule found is the one GOST's lookup order finds, computed independently."""
    lines = [f"{'*.' if wild and n != host else ''}{n} {U1}" for n in rule_names]
    table = {}
    for line in lines:
        k, r = ing.parse_line(line)
        table[k] = r
    expected = None
    labels = host.split(".")
    for cand in [host, "." + host] + ["." + ".".join(labels[i:]) for i in range(1, len(labels))]:
        if cand in table:
            expected = table[cand]
            break
    assert ing.find(table, host) == expected


@given(st.text(max_size=60))
def test_lookup_never_raises(host):
    i = ingress([f"a.com {U1}", f".b.org {U2}"])
    r = i.get_rule(host)
    assert r is None or r.endpoint in (U1, U2)


# --- ingress lines and endpoints ---------------------------------------------------------------------

@pytest.mark.parametrize("endpoint, private", [
    (U1, False), (f"${U1}", True), (U1.upper(), False), (U1.replace("-", ""), False),
    ("{" + U1 + "}", False), (f"urn:uuid:{U1}", False)])
def test_endpoints_are_uuids_in_google_uuid_forms(endpoint, private):
    raw, priv = ing.endpoint_id(endpoint)
    assert raw == bytes.fromhex(U1.replace("-", "")) and priv is private


@pytest.mark.parametrize("endpoint", ["", "$", "tunnel-1", U1[:-1], U1 + "0", U1.replace("-", "_"),
                                      "4d21-094e-b74c-4916-86c1d9fa36ea677b", "$$" + U1, "g" + U1[1:]])
def test_bad_endpoints_are_refused(endpoint):
    with pytest.raises(ValueError):
        ing.endpoint_id(endpoint)


@pytest.mark.parametrize("hostname", ["", "*", "*example.org", "a.*.org", "..", "a..b", "."])
def test_bad_hostnames_are_refused(hostname):
    with pytest.raises(ValueError):
        ing.rule_key(hostname)


def test_bad_dynamic_lines_are_logged_and_skipped():
    log = Log()
    i = ingress([f"a.com {U1}"], sources=[Fake([f"b.com {U2}", "c.com not-a-uuid", "lonely.com",
                                                f"*bad.com {U3}"])], log=log)
    assert i.get_rule("b.com").endpoint == U2 and i.get_rule("a.com").endpoint == U1
    assert i.get_rule("c.com") is None and i.get_rule("bad.com") is None
    warned = [m for lvl, m in log.lines if lvl == "warning"]
    assert len(warned) == 3 and all("skipped" in m for m in warned), warned


@given(st.lists(st.text(max_size=80), max_size=8))
def test_garbage_lines_never_raise(lines):
    table = ing.build_table(lines)
    assert all(isinstance(r, ing.Rule) for r in table.values())


def test_an_unread_source_routes_nothing_and_a_failing_one_keeps_its_last_lines():
    down = Fake(OSError("connection refused"))
    i = ingress([f"a.com {U1}"], sources=[down])
    assert i.source.pending and i.get_rule("a.com") is None        # fail closed
    down.result = [f"b.com {U2}"]
    i.source.refresh()
    assert i.get_rule("a.com").endpoint == U1 and i.get_rule("b.com").endpoint == U2
    down.result = OSError("down again")
    i.source.refresh()
    assert i.get_rule("b.com").endpoint == U2                       # last good kept
    i.close()
    assert down.closed


# --- routers -----------------------------------------------------------------------------------------

def router(lines=(), sources=()):
    return rt.Router("r", [rt.parse_line(x) for x in lines], sources=sources)


def test_first_route_that_holds_the_destination_wins_not_the_longest_prefix():
    r = router(["10.0.0.0/8 192.168.123.1", "10.1.0.0/16 192.168.123.2", "10.1.2.3 192.168.123.3"])
    assert r.get_route("10.1.2.3").gateway == "192.168.123.1"       # GOST: first match
    assert r.get_route("11.0.0.1") is None and r.get_route("") is None
    r = router(["10.1.2.3 gw-a", "10.0.0.0/8 gw-b", "fd00::/8 gw6"])
    assert r.get_route("10.1.2.3").gateway == "gw-a"
    assert r.get_route("10.9.9.9").gateway == "gw-b"
    assert r.get_route("fd00::1").gateway == "gw6"
    assert r.get_route("::ffff:10.2.3.4").gateway == "gw-b"         # Go sees a mapped IPv4 as IPv4
    assert r.get_route("not-an-ip") is None


def test_inline_routes_come_before_file_redis_http():
    r = router(["10.0.0.0/8 inline"], sources=[Fake(["10.0.0.0/8 redis", "11.0.0.0/8 redis"])])
    assert r.get_route("10.0.0.1").gateway == "inline" and r.get_route("11.0.0.1").gateway == "redis"


def _ref_route(routes, dst):
    ip = ipaddress.ip_address(dst)
    for d, gw in routes:
        if d == dst or ("/" in d and ip in ipaddress.ip_network(d, strict=False)):
            return gw
    return None


_v4net = st.tuples(st.integers(0, 2 ** 32 - 1), st.integers(0, 32)).map(
    lambda t: str(ipaddress.ip_network((t[0], t[1]), strict=False)))
_v4 = st.integers(0, 2 ** 32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))


@given(st.lists(st.tuples(st.one_of(_v4net, _v4), st.sampled_from(["g1", "g2", "g3"])), max_size=8), _v4)
def test_routes_match_a_reference_model(routes, dst):
    r = router([f"{d} {g}" for d, g in routes])
    got = r.get_route(dst)
    assert (got.gateway if got else None) == _ref_route(routes, dst)


@pytest.mark.parametrize("line", ["10.0.0.0/33 gw", "example.com gw", "10.0.0.1", "", "300.1.1.1 gw"])
def test_bad_route_lines_are_refused(line):
    with pytest.raises(ValueError):
        rt.parse_line(line)


def test_bad_route_lines_from_a_source_are_logged_and_skipped():
    log = Log()
    r = rt.Router("r", sources=[Fake(["10.0.0.0/8 a", "nonsense b", "12.0.0.0/8"])], log=log)
    assert r.get_route("10.1.1.1").gateway == "a" and len(r.routes()) == 1
    assert sum(1 for lvl, m in log.lines if lvl == "warning" and "skipped" in m) == 2
    down = rt.Router("d", sources=[Fake(OSError("refused"))])
    assert down.get_route("10.1.1.1") is None                       # never read: routes nothing


# --- config ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("obj, path", [
    ({"name": "i", "rules": [{"hostname": "a.com", "endpoint": "not-a-uuid"}]}, "ingresses[0].rules[0].endpoint"),
    ({"name": "i", "rules": [{"hostname": "a.com", "endpoint": U1}, {"hostname": "*x.com", "endpoint": U1}]},
     "ingresses[0].rules[1].hostname"),
    ({"name": "i", "rules": [{"hostname": "a.com"}]}, "ingresses[0].rules[0].endpoint"),
    ({"name": "i", "redis": {"addr": "127.0.0.1:6379", "type": "list"}}, "ingresses[0].redis.type"),
])
def test_bad_ingresses_are_config_errors_with_their_path(obj, path):
    with pytest.raises(ConfigError) as e:
        build_object("ingresses", obj, "ingresses[0]", None)
    assert e.value.path == path


@pytest.mark.parametrize("obj, path", [
    ({"name": "r", "routes": [{"dst": "10.0.0.0/40", "gateway": "g"}]}, "routers[0].routes[0].dst"),
    ({"name": "r", "routes": [{"net": "nope", "gateway": "g"}]}, "routers[0].routes[0].net"),
    ({"name": "r", "routes": [{"dst": "10.0.0.1"}]}, "routers[0].routes[0].gateway"),
    ({"name": "r", "routes": [{"gateway": "g"}]}, "routers[0].routes[0].dst"),
    ({"name": "r", "routes": [{"net": "10.0.0.0/8", "dst": "11.0.0.0/8", "gateway": "g"}]}, "routers[0].routes[0].net"),
    ({"name": "r", "redis": {"addr": "127.0.0.1:6379", "type": "zset"}}, "routers[0].redis.type"),
])
def test_bad_routers_are_config_errors_with_their_path(obj, path):
    with pytest.raises(ConfigError) as e:
        build_object("routers", obj, "routers[0]", None)
    assert e.value.path == path


def test_a_net_only_route_is_named_by_its_network_as_gost_does():
    r = build_object("routers", {"name": "r", "routes": [{"net": "10.1.2.3/8", "gateway": "g"}]}, "routers[0]", None)
    route = r.get_route("10.200.0.1")
    assert route.dst == "10.0.0.0/8" and route.net == ipaddress.ip_network("10.0.0.0/8")


def test_an_sd_needs_a_plugin_and_the_schema_knows_every_key():
    with pytest.raises(ConfigError) as e:
        build_object("sds", {"name": "s"}, "sds[0]", None)
    assert e.value.path == "sds[0].plugin"
    errors = [p for p in validate({"sds": [{"name": "s"}]}) if p.level == ERROR]
    assert [p.path for p in errors] == ["sds[0].plugin"]
    cfg = {"ingresses": [{"name": "i", "reload": "10s", "rules": [{"hostname": "a.com", "endpoint": U1}],
                          "file": {"path": "/x"}, "redis": {"addr": "127.0.0.1:6379", "type": "set", "pubsub": True},
                          "http": {"url": "http://127.0.0.1:1/x", "timeout": "1s"}}],
           "routers": [{"name": "r", "routes": [{"dst": "10.0.0.0/8", "gateway": "g"}, {"net": "11.0.0.0/8",
                                                                                          "gateway": "h"}],
                        "redis": {"addr": "127.0.0.1:6379", "type": "list"}}],
           "sds": [{"name": "s", "plugin": {"type": "http", "addr": "http://127.0.0.1:1/sd"}}]}
    assert validate(cfg) == []
    bad = validate({"routers": [{"name": "r", "routes": [{"dst": "10.0.0.0/8", "gw": "g"}]}]})
    assert any(p.path == "routers[0].routes[0].gw" for p in bad), bad


@given(st.lists(st.text(max_size=80), max_size=8), st.text(max_size=40))
def test_garbage_route_lines_never_raise(lines, dst):
    routes = rt.build_table(lines)
    assert all(isinstance(r, rt.Route) for r in routes)
    got = rt.first_match(routes, dst)
    assert got is None or got in routes


# --- garbage objects: a config error with a path, never another exception --------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                         st.sampled_from(["hostname", "endpoint", "dst", "net", "gateway", "x"]), kids, max_size=3),
                     max_leaves=8)


@given(_json, _json)
def test_garbage_rules_and_routes_are_config_errors_or_objects(rules, routes):
    for kind, key, value in (("ingresses", "rules", rules), ("routers", "routes", routes)):
        try:
            obj = build_object(kind, {"name": "x", key: value}, f"{kind}[0]", None)
        except ConfigError as exc:
            assert exc.path.startswith(f"{kind}[0]"), exc.path
        else:
            obj.close()


@pytest.mark.parametrize("kind, obj, path", [
    ("ingresses", {"name": "i", "rules": "a.com 4d21094e-b74c-4916-86c1-d9fa36ea677b"}, "ingresses[0].rules"),
    ("ingresses", {"name": "i", "rules": [["a.com", U1]]}, "ingresses[0].rules[0]"),
    ("ingresses", {"name": "i", "rules": [{"hostname": ["a.com"], "endpoint": U1}]}, "ingresses[0].rules[0].hostname"),
    ("ingresses", {"name": "i", "redis": "127.0.0.1:6379"}, "ingresses[0].redis"),
    ("ingresses", {"name": "i", "http": {"url": "ftp://x/y"}}, "ingresses[0].http.url"),
    ("ingresses", {"name": "i", "reload": "soon"}, "ingresses[0].reload"),
    ("routers", {"name": "r", "routes": [{"dst": {"a": 1}, "gateway": "g"}]}, "routers[0].routes[0].dst"),
    ("routers", {"name": "r", "routes": [{"dst": "10.0.0.1", "gateway": "two words"}]}, "routers[0].routes[0].gateway"),
    ("sds", {"name": "s", "plugin": {"type": "http"}}, "sds[0].plugin.addr"),
    ("sds", {"name": "s", "plugin": {"type": "smtp", "addr": "x"}}, "sds[0].plugin.type"),
])
def test_malformed_objects_name_their_key(kind, obj, path):
    with pytest.raises(ConfigError) as e:
        build_object(kind, obj, f"{kind}[0]", None)
    assert e.value.path == path
