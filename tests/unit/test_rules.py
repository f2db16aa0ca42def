"""Forwarder routing rules (GOST's matcher.rule): grammar, precedence, each matcher's meaning,
refusals of bad rules, and properties: any generated rule parses and evaluates as the same
boolean expression does in Python; garbage only ever raises ValueError."""
import pytest
from hypothesis import given, settings, strategies as st

from gostg.policy import rules
from gostg.policy.rules import Request
from gostg.protocols.http import Headers

PROPS = settings(max_examples=300, deadline=None)


def m(rule, **req):
    return rules.parse(rule).match(Request(**req))


@pytest.mark.parametrize("rule,req,want", [
    ("Host(`example.com`)", dict(host="example.com"), True),
    ("Host(`example.com`)", dict(host="EXAMPLE.com:8080"), True),
    ("Host(`example.com`)", dict(host="www.example.com"), False),
    ("Host(`*.example.com`)", dict(host="a.b.example.com"), True),
    ("Host(`*.example.com`)", dict(host="example.com"), True),          # as GOST's docs say
    ("Host(`*.example.com`)", dict(host="badexample.com"), False),      # label boundary
    ("Host(`.example.com`)", dict(host="x.example.com:443"), True),
    ("Host(`*example.com`)", dict(host="x.example.com"), True),
    ("Host(`example.com`)", dict(host=""), False),
    ("Host(`::1`)", dict(host="[::1]:80"), True),
    ("HostRegexp(`^.+\\.example\\.com$`)", dict(host="a.example.com:80"), True),
    ("HostRegexp(`^.+\\.example\\.com$`)", dict(host="example.com"), False),
    ("Method(`post`)", dict(method="POST"), True),
    ("Path(`/products/1`)", dict(path="/products/1"), True),
    ("Path(`/products`)", dict(path="/products/1"), False),
    ("PathPrefix(`/products`)", dict(path="/products/1"), True),
    ("PathRegexp(`\\.(jpeg|jpg|png)$`)", dict(path="/a/b.png"), True),
    ("Query(`foo`)", dict(query={"foo": [""]}), True),
    ("Query(`foo`, `bar`)", dict(query={"foo": ["x", "bar"]}), True),
    ("Query(`foo`, `bar`)", dict(query={"foo": ["x"]}), False),
    ("QueryRegexp(`foo`, `^b`)", dict(query={"foo": ["bar"]}), True),
    ("Query(`n`, `gt`, `3`)", dict(query={"n": ["4"]}), True),
    ("Query(`n`, `le`, `3`)", dict(query={"n": ["4", "x"]}), False),
    ("Header(`Content-Type`)", dict(headers=Headers([("content-type", "a")])), True),
    ("Header(`Content-Type`, `application/json`)", dict(headers=Headers([("Content-Type", "application/json")])), True),
    ("HeaderRegexp(`Content-Type`, `^application/(json|yaml)$`)",
     dict(headers=Headers([("Content-Type", "application/yaml")])), True),
    ("Header(`X`)", dict(headers=None), False),
    ("ClientIP(`192.168.1.0/24`)", dict(client_ip="192.168.1.9"), True),
    ("ClientIP(`192.168.1.1`)", dict(client_ip="192.168.1.9"), False),
    ("ClientIP(`::1`)", dict(client_ip="::1"), True),
    ("ClientIP(`10.0.0.0/8`)", dict(client_ip="::ffff:10.1.1.1"), True),
    ("ClientIP(`10.0.0.0/8`)", dict(client_ip=""), False),
    ("Proto(`HTTP`)", dict(proto="http"), True),
    ("Network(`udp`)", dict(network="udp4"), True),
    ("Network(`udp`)", dict(network="tcp"), False),
])
def test_matchers(rule, req, want):
    assert m(rule, **req) is want


def test_precedence_and_grouping():
    # && binds tighter than ||
    r = "Host(`a`) || Host(`b`) && Path(`/x`)"
    assert m(r, host="a", path="/y")
    assert not m(r, host="b", path="/y")
    assert m(r, host="b", path="/x")
    r = "(Host(`a`) || Host(`b`)) && Path(`/x`)"
    assert not m(r, host="a", path="/y")
    # the docs' example
    r = "Host(`example.com`) || (Host(`example.org`) && !Path(`/path`))"
    assert m(r, host="example.com", path="/path")
    assert m(r, host="example.org", path="/other")
    assert not m(r, host="example.org", path="/path")


def test_not_over_groups_is_de_morgan():
    r = rules.parse("!(Host(`a`) && Path(`/x`))")
    assert r.tree[0] == "or"
    assert r.match(Request(host="a", path="/y"))
    assert not r.match(Request(host="a", path="/x"))
    assert rules.parse("!!Host(`a`)").match(Request(host="a"))


def test_name_spellings_and_strings():
    for name in ("PathPrefix", "pathprefix", "PATHPREFIX", "Pathprefix"):
        assert m(f"{name}(`/a`)", path="/ab")
    assert m('Path("/a\\tb")', path="/a\tb")
    assert m('Host("ex\\x61mple.com")', host="example.com")
    assert m("  Host( `a` ,)".replace(",", "") + "  ", host="a")


@pytest.mark.parametrize("bad", [
    "", "   ", "Host(", "Host()", "Host(`a`", "Host(`a`) &&", "&& Host(`a`)", "Foo(`a`)",
    "Host(`a`) Host(`b`)", "Host(`a`) & Host(`b`)", "Host('a')", "Host(`a`, `b`)", "Path(`x`)",
    "PathPrefix(`x`)", "HostRegexp(`(`)", "ClientIP(`nope`)", "Header(`a`, `zz`, `1`)",
    "Query(`a`, `gt`, `x`)", "Host(``)", "Host(`é.com`)", "BodyRegexp(`x`)",
    "BodyJSON(`a`, `b`)", 'Host("\\q")', "((Host(`a`)", "Host(`a`))", "!" * 100 + "Host(`a`)",
    "(" * 100 + "Host(`a`)" + ")" * 100, "x" * 5000,
])
def test_bad_rules_refused(bad):
    with pytest.raises(ValueError):
        rules.parse(bad)


def test_bypass_and_admission_by_name():
    class BP:
        def contains(self, network, addr):
            return addr.startswith("blocked")

    class Adm:
        def admit(self, ip):
            return ip == "10.0.0.1"
    live = {("bypasses", "bp"): BP(), ("admissions", "adm"): Adm()}
    look = lambda kind, name: live.get((kind, name))
    r = rules.parse("Bypass(`bp`)")
    assert r.match(Request(host="ok.com", lookup=look))
    assert not r.match(Request(host="blocked.com", lookup=look))
    assert not rules.parse("Bypass(`missing`)").match(Request(host="ok.com", lookup=look))   # fail closed
    assert rules.parse("Admission(`adm`)").match(Request(client_ip="10.0.0.1", lookup=look))
    assert not rules.parse("Admission(`adm`)").match(Request(client_ip="10.0.0.2", lookup=look))
    assert not rules.parse("Admission(`nope`)").match(Request(client_ip="10.0.0.1", lookup=look))


# --- properties -------------------------------------------------------------------------------

HOSTS = ["a.com", "b.com", "x.a.com"]
PATHS = ["/", "/x", "/x/y"]
leaf = st.one_of(
    st.sampled_from(HOSTS).map(lambda h: (f"Host(`{h}`)", lambda r, h=h: r.host == h)),
    st.sampled_from(PATHS).map(lambda p: (f"PathPrefix(`{p}`)", lambda r, p=p: r.path.startswith(p))),
)


def _combine(children):
    def op(pair):
        (a, fa), (b, fb), kind, neg = pair
        if kind == "and":
            src, f = f"({a} && {b})", (lambda r: fa(r) and fb(r))
        else:
            src, f = f"({a} || {b})", (lambda r: fa(r) or fb(r))
        if neg:
            return "!" + src, (lambda r: not f(r))
        return src, f
    return st.tuples(children, children, st.sampled_from(["and", "or"]), st.booleans()).map(op)


exprs = st.recursive(leaf, _combine, max_leaves=12)


@PROPS
@given(exprs, st.sampled_from(HOSTS), st.sampled_from(PATHS))
def test_generated_rules_evaluate_like_python(expr, host, path):
    src, f = expr
    req = Request(host=host, path=path)
    assert rules.parse(src).match(req) == f(req)


@PROPS
@given(st.text(max_size=200))
def test_garbage_only_raises_value_error(text):
    try:
        r = rules.parse(text)
    except ValueError:
        return
    r.match(Request())   # what parses must evaluate


@PROPS
@given(st.lists(st.sampled_from(["Host(`a`)", "&&", "||", "!", "(", ")", "Path(`/`)", ",", "`x`"]),
                max_size=30))
def test_token_soup_only_raises_value_error(toks):
    try:
        rules.parse(" ".join(toks)).match(Request(host="a", path="/"))
    except ValueError:
        pass


def test_go_replacement_templates():
    """rewriteURL replacements are Go templates: $1, ${1}, $name, ${name}, $$; unknown
    names (and Go's greedy ``$1x``) expand to nothing."""
    import re

    from gostg.handlers.nodehttp import build_node_http, go_expand
    m = re.search(r"(?P<n>a)(b)", "ab")
    assert go_expand("$2-${n}-$$-$1x-$9-${1}", m) == "b-a-$---a"
    n = build_node_http({"rewriteURL": [{"match": "/api/login", "replacement": "/user/login"},
                                        {"match": "/api/(.*)", "replacement": "/$1"}]}, "x")
    assert n.rewrite_target("/api/login") == "/user/login"
    assert n.rewrite_target("/api/logout?a=1") == "/logout?a=1"
    assert n.rewrite_target("/other") == "/other"
    q = build_node_http({"rewrite": [{"match": "^/old", "replacement": "/new?v=2"}]}, "x")
    assert q.rewrite_target("/old?v=1") == "/new?v=2"        # a '?' in the result is the new query
