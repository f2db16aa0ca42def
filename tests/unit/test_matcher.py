"""gostg.policy.matcher: GOST's rule syntax (docs concepts/bypass.md examples, x/internal/matcher),
checked against a naive linear reference, and its cost with 100k rules."""
import fnmatch
import ipaddress
import time

import pytest
from hypothesis import given, settings, strategies as st

from gostg.policy.matcher import Matcher, glob_to_regex, go_split_host_port, is_ip_rule, parse_cidr, parse_ip_range, parse_port_range

# The rule lists of GOST's bypass docs (bypass-1 of the first example, the port example).
DOCS_RULES = ["127.0.0.1", "172.20.0.1-172.30.0.255", "172.10.0.0/16", "localhost", "*.example.com",
              ".example.org"]
DOCS_PORT_RULES = ["192.168.1.1:80", "192.168.1.2:0-65535", "example.com:80", ".example.com:443"]


@pytest.mark.parametrize("addr,hit", [
    ("127.0.0.1:80", True),
    ("127.0.0.1", True),
    ("127.0.0.2:80", False),
    ("172.20.0.1:1", True),            # range ends are inclusive
    ("172.25.9.9:1", True),
    ("172.30.0.255:1", True),
    ("172.30.1.0:1", False),
    ("172.20.0.0:1", False),
    ("172.10.200.3:443", True),        # CIDR, any port
    ("172.11.0.1:443", False),
    ("localhost:8080", True),
    ("LOCALHOST:8080", True),          # case-insensitive
    ("www.localhost:80", False),       # an exact name covers no subdomain
    ("www.example.com:443", True),     # *.example.com
    ("a.b.example.com:443", True),     # '*' crosses dots, as gobwas/glob without separators
    ("example.com:443", False),        # ... but needs the dot
    ("example.org:80", True),          # .example.org covers the name itself
    ("www.example.org:80", True),
    ("a.b.example.org", True),
    ("badexample.org:80", False),
    ("example.org.evil:80", False),
    ("[::1]:80", False),
    ("", False),
])
def test_docs_bypass_rules(addr, hit):
    assert Matcher(DOCS_RULES).match_address(addr) is hit


@pytest.mark.parametrize("addr,hit", [
    ("192.168.1.1:80", True),
    ("192.168.1.1:81", False),
    ("192.168.1.1", False),            # no port counts as port 0
    ("192.168.1.2:0", True),
    ("192.168.1.2:65535", True),
    ("192.168.1.2", True),             # 0-65535 includes the missing port 0
    ("example.com:80", True),
    ("example.com:443", True),         # via .example.com:443
    ("example.com:8080", False),
    ("www.example.com:443", True),
    ("www.example.com:80", False),     # example.com:80 is exact, not a suffix rule
])
def test_docs_port_rules(addr, hit):
    assert Matcher(DOCS_PORT_RULES).match_address(addr) is hit


@pytest.mark.parametrize("rules,host,port,hit", [
    (["10.0.0.0/8"], "localhost", 0, False),              # names are never resolved
    (["127.0.0.0/8"], "127.1.2.3", 5, True),
    (["10.1.2.3/8"], "10.200.0.1", 0, True),               # host bits ignored, like Go
    (["2001:db8::/32"], "2001:DB8::5", 0, True),
    (["2001:db8::/32"], "2001:db9::5", 0, False),
    (["2001:db8::1"], "2001:0db8:0::1", 0, True),           # IPv6 in canonical form
    (["[2001:db8::1]:443"], "2001:db8::1", 443, True),
    (["[2001:db8::1]:443"], "2001:db8::1", 80, False),
    (["::1"], "[::1]", 0, True),                           # brackets on the looked-up host
    (["10.0.0.0/8"], "::ffff:10.1.1.1", 0, True),          # IPv4-mapped IPv6 meets IPv4 rules
    (["10.0.0.1"], "::ffff:10.0.0.1", 0, True),
    (["fe80::1"], "fe80::1%eth0", 0, True),                # zones are dropped
    (["1.2.3.4:1000-2000"], "1.2.3.4", 1500, True),
    (["1.2.3.4:1000-2000"], "1.2.3.4", 2001, False),
    (["1.2.3.4:x"], "1.2.3.4", 9, True),                   # a bad port makes a port-less rule
    (["example.com:"], "example.com", 9, True),
    (["Example.COM."], "example.com", 0, True),            # case and trailing dots
    (["example.com"], "EXAMPLE.com.", 0, True),
    (["*.x.com:443"], "a.x.com", 443, True),
    (["*.x.com:443"], "a.x.com", 80, False),
    (["*.x.com:400-500"], "a.x.com", 450, True),
    (["host?.lan"], "host1.lan", 0, True),
    (["host?.lan"], "host12.lan", 0, False),
    (["*"], "anything.at.all", 7, True),
    (["*:22"], "anything", 22, True),
    (["*:22"], "anything", 23, False),
    (["192.168.*"], "192.168.7.7", 0, True),               # globs also see IP literals
    (["*.{a,b}.com"], "x.b.com", 0, True),
    (["*.{a,b}.com"], "x.c.com", 0, False),
    (["w[0-9]*.lan"], "w7x.lan", 0, True),
    (["w[!0-9]*.lan"], "w7x.lan", 0, False),
    (["*[.lan"], "*[.lan", 0, True),                       # a broken glob is a plain address
    (["*[.lan"], "x[.lan", 0, False),
    (["10.0.0.9-10.0.0.1"], "10.0.0.5", 0, False),          # reversed range: matches nothing
    (["10.0.0.1-::2"], "10.0.0.1", 0, False),               # mixed families: a plain name
    ([".example.org"], "example.org", 0, True),
    ([".example.org"], "org", 0, False),
    (["  example.net  ", "", "#x"], "example.net", 0, True),
])
def test_rule_table(rules, host, port, hit):
    assert Matcher(rules).match(host, port) is hit


def test_empty_and_blank():
    assert not Matcher([]).match("example.com")
    assert not Matcher(["", "  "]).match("")
    assert len(Matcher(["a", " ", "b"])) == 2


@pytest.mark.parametrize("s,out", [
    ("h:80", ("h", "80")), ("[::1]:80", ("::1", "80")), ("h", None), ("::1", None),
    ("[::1]", None), ("h:", ("h", "")), ("a:b:c", None), ("[::1]x", None), (":80", ("", "80")),
])
def test_go_split_host_port(s, out):
    assert go_split_host_port(s) == out


def test_small_parsers():
    assert parse_port_range("80") == (80, 80)
    assert parse_port_range("1-2") == (1, 2)
    assert parse_port_range("70000") is None
    assert parse_port_range("a-b") is None
    assert parse_cidr("10.0.0.0/33") is None
    assert parse_cidr("10.0.0.0") is None
    assert parse_cidr("::/0") == (6, 0, (1 << 128) - 1)
    assert parse_ip_range("1.2.3.4")[1] == 0x01020304
    assert parse_ip_range("a.com") is None
    assert is_ip_rule("10.0.0.0/8") and is_ip_rule("::1") and is_ip_rule("1.1.1.1-1.1.1.9")
    assert not is_ip_rule("localhost") and not is_ip_rule("1.2.3.4:80")
    with pytest.raises(ValueError):
        glob_to_regex("{a,b")
    with pytest.raises(ValueError):
        glob_to_regex("a\\")


# ---- a naive reference: every rule checked in turn, with the stdlib -------------------------

def _ref_split(r):
    if r.startswith("["):
        host, _, port = r[1:].partition("]:")
        return host, port
    if r.count(":") == 1:
        host, _, port = r.partition(":")
        return host, port
    return r, None


def _ref_port(port_s, port):
    if port_s is None:
        return True
    lo, _, hi = port_s.partition("-")
    try:
        lo, hi = int(lo), int(hi or lo)
    except ValueError:
        return True
    return lo <= port <= hi


def _ip(s):
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def ref_match(rules, host, port):
    h = host.lower().rstrip(".")
    ip = _ip(h)
    for r in (x.strip() for x in rules):
        if not r:
            continue
        if "/" in r:
            try:
                net = ipaddress.ip_network(r, strict=False)
            except ValueError:
                net = None
            if net is not None:
                if ip is not None and ip.version == net.version and ip in net:
                    return True
                continue
        if "*" in r or "?" in r:
            hp, ps = _ref_split(r)
            if fnmatch.fnmatchcase(h, hp.lower().rstrip(".")) and _ref_port(ps, port):
                return True
            continue
        if "-" in r and r.count("-") == 1:
            lo, hi = (_ip(x) for x in r.split("-"))
            if lo is not None and hi is not None and lo.version == hi.version:
                if ip is not None and ip.version == lo.version and lo <= ip <= hi:
                    return True
                continue
        if _ip(r) is not None:
            if ip == _ip(r):
                return True
            continue
        hp, ps = _ref_split(r)
        key = hp.lower().rstrip(".")
        if _ip(key) is not None:
            hit = ip is not None and ip == _ip(key)
        elif ip is not None:
            hit = False
        else:
            hit = h == key or (key.startswith(".") and (h == key[1:] or h.endswith(key)))
        if hit and _ref_port(ps, port):
            return True
    return False


LABELS = st.sampled_from(["a", "b", "ex", "com", "org", "lan"])
NAMES = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
V4 = st.tuples(st.integers(0, 3), st.integers(0, 3)).map(lambda t: f"10.0.{t[0]}.{t[1]}")
V6 = st.integers(0, 6).map(lambda n: f"2001:db8::{n:x}")
HOSTS = st.one_of(NAMES, V4, V6, NAMES.map(str.upper), NAMES.map(lambda n: n + "."))
PORTSPEC = st.one_of(st.just(None), st.sampled_from(["80", "443", "0-100", "400-500", "0-65535"]))


def _with_port(host, spec):
    if spec is None:
        return host
    return f"[{host}]:{spec}" if ":" in host else f"{host}:{spec}"


RULES = st.one_of(
    st.builds(_with_port, NAMES, PORTSPEC),
    st.builds(_with_port, NAMES.map(lambda n: "." + n), PORTSPEC),
    st.builds(_with_port, NAMES.map(lambda n: "*." + n), PORTSPEC),
    st.builds(_with_port, NAMES.map(lambda n: n[:-1] + "?" if len(n) > 1 else "?"), PORTSPEC),
    st.builds(_with_port, st.one_of(V4, V6), PORTSPEC),
    st.tuples(V4, V4).map(lambda t: f"{t[0]}-{t[1]}"),
    st.tuples(V4, st.integers(22, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(V6, st.integers(120, 128)).map(lambda t: f"{t[0]}/{t[1]}"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(RULES, max_size=12), HOSTS, st.sampled_from([0, 80, 443, 450, 1000]))
def test_agrees_with_naive_reference(rules, host, port):
    assert Matcher(rules).match(host, port) is ref_match(rules, host, port)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=8), st.text(max_size=30), st.integers(-5, 70000))
def test_garbage_never_raises(rules, host, port):
    m = Matcher(rules)
    assert m.match(host, port) in (True, False)
    assert m.match_address(host) in (True, False)


def _big_rules(n):
    out = []
    for i in range(n):
        k = i % 7
        a, b, c = (i >> 16) & 255, (i >> 8) & 255, i & 255
        out.append([f"site{i}.example", f".zone{i}.net", f"*.wild{i}.org", f"11.{a}.{b}.{c}",
                    f"12.{a}.{b}.0/24", f"13.{a}.{b}.1-13.{a}.{b}.9", f"svc{i}.lan:{1 + i % 60000}"][k])
    return out


def _per_lookup(m, probes, rounds=3):
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for h, p in probes:
            m.match(h, p)
        best = min(best, time.perf_counter() - t0)
    return best / len(probes)


def test_100k_rules_cost_like_10():
    big, small = Matcher(_big_rules(100_000)), Matcher(_big_rules(10))
    assert len(big) == 100_000
    assert big.match("site70.example") and big.match("x.zone71.net") and big.match("a.b.wild72.org")
    assert big.match("11.0.0.73") and big.match("12.0.0.250") and big.match("13.0.1.5")
    assert big.match("svc76.lan", 77) and not big.match("svc76.lan", 78)
    probes = [("www.nowhere-%d.example.com" % i, 443) for i in range(500)] + \
             [("99.1.%d.%d" % (i // 250, i % 250), 80) for i in range(500)]
    assert not any(big.match(h, p) for h, p in probes)
    assert _per_lookup(big, probes) < 20 * _per_lookup(small, probes)
