"""gostg.policy.bypass / admission: blacklist and whitelist, network, groups (GOST's AND/OR
rule), file sources with reload, late binding by name, config building."""
import os
import time

import pytest
from hypothesis import given, settings, strategies as st

from gostg.config.build import build_object
from gostg.errors import ConfigError
from gostg.policy.admission import Admission, AdmissionGroup, admission_rules
from gostg.policy.bypass import Bypass, BypassGroup, Matcher, bypass_hit, group_contains
from gostg.core.registry import Registries
from gostg.policy.group import MissingReference

PATTERNS = ["example.com", ".corp.net", "*.glob.io", "10.0.0.1", "192.168.0.0/16", "2001:db8::/32", "::1"]


@pytest.mark.parametrize("host,hit", [
    ("example.com", True),
    ("EXAMPLE.COM", True),
    ("example.com.", True),
    ("www.example.com", False),       # exact names do not cover subdomains
    ("notexample.com", False),
    ("corp.net", True),               # .domain covers the domain itself
    ("a.corp.net", True),
    ("a.b.corp.net", True),
    ("xcorp.net", False),
    ("corp.net.evil", False),
    ("x.glob.io", True),
    ("a.b.glob.io", True),
    ("glob.io", False),               # the glob needs a label before the dot
    ("10.0.0.1", True),
    ("10.0.0.2", False),
    ("192.168.3.4", True),
    ("192.169.0.1", False),
    ("2001:db8::5", True),
    ("2001:db9::5", False),
    ("::1", True),
    ("::2", False),
    ("", False),
])
def test_matcher(host, hit):
    assert Matcher(PATTERNS).match(host) is hit


def test_names_are_never_resolved_for_networks():
    m = Matcher(["127.0.0.0/8"])
    assert not m.match("localhost")


def test_blank_patterns_ignored():
    assert not Matcher(["", "  "]).match("")
    assert not Matcher([]).match("example.com")


def test_pattern_case_and_spaces():
    assert Matcher([" Example.COM "]).match("example.com")
    assert Matcher(["*.EXAMPLE.com"]).match("A.example.COM")


def test_question_mark_glob():
    m = Matcher(["host?.lan"])
    assert m.match("host1.lan") and not m.match("host12.lan")


@pytest.mark.parametrize("addr,hit", [
    ("example.com:443", True),
    ("example.com", True),
    ("10.0.0.1:80", True),
    ("[2001:db8::1]:443", True),
    ("[::1]:22", True),
    ("2001:db8::1", True),
    ("other.org:80", False),
    ("10.9.9.9:80", False),
])
def test_bypass_blacklist_on_addresses(addr, hit):
    assert Bypass("bypass-0", PATTERNS).contains(addr) is hit


@pytest.mark.parametrize("addr,hit", [
    ("example.com:443", False),
    ("a.corp.net:80", False),
    ("other.org:80", True),
    ("8.8.8.8:53", True),
])
def test_bypass_whitelist_inverts(addr, hit):
    assert Bypass("bypass-0", PATTERNS, whitelist=True).contains(addr) is hit


def test_no_rules_bypass_nothing_even_as_whitelist():
    # GOST (x/bypass decide): a bypass without rules and without a network is inert
    assert not Bypass("b", [], whitelist=True).contains("example.com:80")
    assert not Bypass("b", []).contains("example.com:80")


def test_admission():
    black = Admission("a", ["10.0.0.0/8"])
    assert not black.admit("10.1.2.3:5000")
    assert black.admit("192.168.1.1:5000")
    white = Admission("a", ["10.0.0.0/8", "::1"], whitelist=True)
    assert white.admit("10.1.2.3:5000")
    assert white.admit("[::1]:5000")
    assert not white.admit("192.168.1.1:5000")


# ---- network (GOST 3.3.0; x/bypass bypass_test.go cases) -------------------------------------

@pytest.mark.parametrize("whitelist,network,rules,conn,addr,hit", [
    (False, "", ["192.168.1.1"], "tcp", "192.168.1.1", True),     # no network: behaves as before
    (False, "", ["192.168.1.1"], "udp", "192.168.1.1", True),
    (False, "tcp", ["192.168.1.1"], "tcp", "192.168.1.1", True),
    (False, "tcp", ["192.168.1.1"], "tcp", "10.0.0.1", False),
    (True, "udp", ["192.168.1.1"], "udp", "192.168.1.1", False),   # whitelisted: proxied
    (True, "udp", ["192.168.1.1"], "udp", "10.0.0.1", True),
    (False, "tcp", ["192.168.1.1"], "udp", "192.168.1.1", False),  # other network: inactive
    (True, "tcp", ["192.168.1.1"], "udp", "10.0.0.1", False),
    (False, "tcp", ["192.168.1.1"], "tcp", "", False),             # empty address
    (False, "tcp", [], "tcp", "192.168.1.1", True),                # network only, blacklist
    (False, "tcp", [], "udp", "192.168.1.1", False),
    (True, "tcp", [], "tcp", "192.168.1.1", False),                # network only, whitelist
    (True, "tcp", [], "udp", "192.168.1.1", False),
    (False, "tcp", [], "tcp6", "[::1]:1", True),                   # tcp4/tcp6 count as tcp
    (False, "UDP", [], "udp", "a:1", True),
])
def test_network_rule(whitelist, network, rules, conn, addr, hit):
    assert Bypass("b", rules, whitelist, network).contains(conn, addr) is hit


def test_single_argument_means_tcp():
    b = Bypass("b", ["a.com"], network="udp")
    assert not b.contains("a.com:53")
    assert b.contains("udp", "a.com:53")


# ---- groups: all whitelist members bypass (AND), else any blacklist member (OR) ---------------

class Fixed:
    def __init__(self, whitelist, result):
        self.whitelist, self.result = whitelist, result

    def contains(self, network, address, ctx=None):
        return self.result


W1, W0, B1, B0 = Fixed(True, True), Fixed(True, False), Fixed(False, True), Fixed(False, False)


@pytest.mark.parametrize("members,hit", [
    ([], False),
    ([B1, B1], True),
    ([B1, B0], True),
    ([B0, B0], False),
    ([W1, W1], True),
    ([W1, W0], False),
    ([W1, B1], True),
    ([W0, B1], True),
    ([W0, B0], False),
    ([W1, W1, B0], True),
    ([W1, W0, B0], False),
    ([W0, W0, B0, B1], True),
])
def test_group_rule(members, hit):
    assert group_contains(members, "tcp", "x:1") is hit


def test_group_docs_example():
    # GOST docs "分流器组": bypass-0 whitelist 172.10.0.0/16, bypass-1 blacklist
    g = BypassGroup([Bypass("bypass-0", ["172.10.0.0/16"], whitelist=True),
                     Bypass("bypass-1", ["127.0.0.1", "172.10.0.1", "localhost", "*.example.com", ".example.org"])])
    assert not g.contains("tcp", "172.10.3.3:80")     # whitelisted, not blacklisted → proxied
    assert g.contains("tcp", "172.10.0.1:80")         # whitelisted but blacklisted → bypassed
    assert g.contains("tcp", "8.8.8.8:53")            # not whitelisted → bypassed
    assert g.contains("tcp", "www.example.com:443")


def test_hop_docs_example():
    # GOST docs hop-level example: hop-0 whitelist, hop-1 blacklist
    hop0 = Bypass("bypass-0", ["example.com", ".example.org"], whitelist=True)
    hop1 = Bypass("bypass-1", ["example.com"])
    assert hop0.contains("www.example.com:80")                                      # no chain
    assert not hop0.contains("example.com:80") and hop1.contains("example.com:80")  # hop-0 only
    assert not hop0.contains("www.example.org:80") and not hop1.contains("www.example.org:80")


def test_group_late_binding_and_unknown_names():
    reg = Registries()
    g = BypassGroup.of(["bp", ""], reg)
    with pytest.raises(MissingReference, match="bypass 'bp'"):   # fail closed: never "no bypass"
        g.contains("tcp", "a.com:80")
    reg.bypasses.set("bp", Bypass("bp", ["a.com"]))
    assert g.contains("tcp", "a.com:80")
    reg.bypasses.set("bp", Bypass("bp", ["b.com"]))   # replaced (Web API PUT): seen next call
    assert not g.contains("tcp", "a.com:80")
    assert BypassGroup.of(["", None], reg) is None


def test_bypass_hit_forms():
    reg = Registries()
    reg.bypasses.set("bp", Bypass("bp", ["a.com"]))
    assert bypass_hit("bp", reg, "tcp", "a.com:1")
    with pytest.raises(MissingReference, match="bypass 'nope'"):
        bypass_hit("nope", reg, "tcp", "a.com:1")
    assert not bypass_hit(None, reg, "tcp", "a.com:1")
    assert not bypass_hit("bp", reg, "tcp", "")
    assert bypass_hit(BypassGroup(["bp"], reg), reg, "tcp", "a.com:1")


# ---- file + reload ---------------------------------------------------------------------------

def _touch_later(path, text):
    st = os.stat(path)
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_file_rules_and_reload(tmp_path):
    f = tmp_path / "bypass.txt"
    f.write_text("# blocked\nblocked.test  # trailing comment\n10.0.0.0/8\n")
    b = Bypass("b", ["inline.test"], file=str(f), reload=0.05)
    assert b.contains("blocked.test:80") and b.contains("inline.test:80") and b.contains("10.9.9.9:1")
    _touch_later(f, "other.test\n")
    time.sleep(0.06)
    assert b.contains("other.test:80") and not b.contains("blocked.test:80")
    assert b.contains("inline.test:80")              # inline matchers stay
    f.unlink()                                       # a vanished file keeps the last good rules
    time.sleep(0.06)
    assert b.contains("other.test:80")


def test_file_without_reload_is_read_once(tmp_path):
    f = tmp_path / "b"
    f.write_text("a.test\n")
    b = Bypass("b", [], file=str(f))
    _touch_later(f, "b.test\n")
    assert b.contains("a.test:1") and not b.contains("b.test:1")


# ---- config ----------------------------------------------------------------------------------

def test_build_bypass_from_config(tmp_path):
    f = tmp_path / "b"
    f.write_text("from-file.test\n")
    reg = Registries()
    b = build_object("bypasses", {"name": "b", "whitelist": True, "network": "udp", "reload": "1s",
                                  "matchers": ["a.test"], "file": {"path": str(f)}}, "bypasses[0]", reg)
    assert b.whitelist and b.network == "udp" and b.source.reload == 1.0
    assert not b.contains("udp", "from-file.test:1") and b.contains("udp", "x.test:1")
    assert build_object("bypasses", {"name": "r", "reverse": True}, "bypasses[0]", reg).whitelist


@pytest.mark.parametrize("obj,path", [
    ({"name": "b", "network": "sctp"}, "bypasses[0].network"),
    ({"name": "b", "matchers": "a.com"}, "bypasses[0].matchers"),
    ({"name": "b", "file": {"path": "/nonexistent/x"}}, "bypasses[0].file.path"),
])
def test_build_bypass_errors(obj, path):
    with pytest.raises(ConfigError) as e:
        build_object("bypasses", obj, "bypasses[0]", Registries())
    assert e.value.path == path


# ---- admission -------------------------------------------------------------------------------

def test_admission_rules_resolve_names_once():
    calls = []

    def resolve(name):
        calls.append(name)
        return {"gw.test": ["192.0.2.7", "2001:db8::7"]}.get(name, [])

    assert admission_rules(["10.0.0.0/8", "1.1.1.1-1.1.1.5", "gw.test", "nothing.test", "::1"],
                           resolve) == ["10.0.0.0/8", "1.1.1.1-1.1.1.5", "192.0.2.7", "2001:db8::7", "::1"]
    a = Admission("a", ["gw.test"], resolve=resolve)
    calls.clear()
    assert not a.admit("192.0.2.7:5000") and not a.admit("[2001:db8::7]:1")
    assert a.admit("192.0.2.8:5000")
    assert calls == []                               # not per connection


def test_admission_localhost_resolves():
    a = Admission("a", ["localhost"], whitelist=True)
    assert a.admit("127.0.0.1:1000")
    assert not a.admit("192.0.2.1:1000")


@pytest.mark.parametrize("whitelist,rules,addr,ok", [
    (False, ["127.0.0.2"], "127.0.0.2:5000", False),
    (False, ["127.0.0.2"], "127.0.0.1:5000", True),
    (True, ["127.0.0.1"], "127.0.0.1:5000", True),
    (True, ["127.0.0.1"], "127.0.0.2:5000", False),
    (True, [], "127.0.0.1:5000", False),             # an empty whitelist admits nobody
    (False, [], "127.0.0.1:5000", True),
    (False, ["10.0.0.0/8"], "[::ffff:10.1.1.1]:5", False),
    (False, ["10.0.0.0/8"], "", True),
])
def test_admission_table(whitelist, rules, addr, ok):
    assert Admission("a", rules, whitelist).admit(addr) is ok


def test_admission_group_any_reject_rejects():
    reg = Registries()
    reg.admissions.set("white", Admission("white", ["127.0.0.0/8"], whitelist=True))
    reg.admissions.set("black", Admission("black", ["127.0.0.2"]))
    g = AdmissionGroup.of(["white", "black"], reg)
    assert g.admit("127.0.0.1:1")
    assert not g.admit("127.0.0.2:1")
    assert not g.admit("10.0.0.1:1")
    assert AdmissionGroup.of([""], reg) is None
    with pytest.raises(MissingReference, match="admission 'missing'"):   # fail closed
        AdmissionGroup.of(["white", "missing"], reg).admit("127.0.0.1:1")


def test_admission_file_reload(tmp_path):
    f = tmp_path / "adm"
    f.write_text("127.0.0.2\n")
    a = build_object("admissions", {"name": "a", "file": {"path": str(f)}, "reload": 0.05}, "admissions[0]",
                     Registries())
    assert not a.admit("127.0.0.2:1")
    _touch_later(f, "127.0.0.3\n")
    time.sleep(0.06)
    assert a.admit("127.0.0.2:1") and not a.admit("127.0.0.3:1")


def test_service_hop_node_groups_from_config():
    from gostg.config.build import build_chain, build_service
    from gostg.observe.log import make_logger
    reg = Registries()
    reg.bypasses.set("a", Bypass("a", ["a.test"]))
    reg.bypasses.set("w", Bypass("w", ["w.test"], whitelist=True))
    reg.admissions.set("x", Admission("x", ["127.0.0.2"]))
    reg.admissions.set("y", Admission("y", ["127.0.0.3"]))
    svc = build_service({"name": "s", "addr": "127.0.0.1:0", "bypass": "a", "bypasses": ["w"],
                         "admission": "x", "admissions": ["y"], "handler": {"type": "http"}},
                        "services[0]", reg, make_logger("error", "json", "none"))
    assert svc.handler.options.router.bypassed("a.test:1")           # blacklist member (OR)
    assert svc.handler.options.router.bypassed("other.test:1")       # whitelist member (AND of one)
    assert not svc.handler.options.router.bypassed("w.test:1")
    assert not svc.admission.admit("127.0.0.2:1") and not svc.admission.admit("127.0.0.3:1")
    assert svc.admission.admit("127.0.0.1:1")
    chain = build_chain({"name": "c", "hops": [{"name": "h", "bypasses": ["a"], "nodes": [
        {"name": "n0", "addr": "127.0.0.1:1", "bypass": "w"}, {"name": "n1", "addr": "127.0.0.1:2"}]}]},
        "chains[0]", reg)
    assert chain.route("tcp", "a.test:80").nodes == []                # hop bypass: chain cut → direct
    assert [n.name for n in chain.route("tcp", "z.test:80").nodes] == ["n1"]   # n0 excluded
    names = {chain.route("tcp", "w.test:80").nodes[0].name for _ in range(4)}
    assert names == {"n0", "n1"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=16), max_size=6), st.booleans(), st.sampled_from(["", "tcp", "udp"]),
       st.text(max_size=5), st.text(max_size=30))
def test_garbage_never_raises(rules, whitelist, network, conn, addr):
    assert Bypass("b", rules, whitelist, network).contains(conn, addr) in (True, False)
    assert Admission("a", rules, whitelist, resolve=lambda name: []).admit(addr) in (True, False)
