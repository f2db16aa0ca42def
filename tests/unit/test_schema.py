"""The declared schema, table-driven: for every top-level object and every registered type, a
typo'd key warns with the right suggestion, a missing required key errors with its path, and a
GOST feature gostg does not build errors or warns as the schema says."""
import copy

import pytest

from gostg import builtins
from gostg.config import schema as S
from gostg.config.metadata import Metadata
from gostg.config.validate import DECISIVE, ERROR, WARNING, addr_problem, suggest, validate

#: a minimal valid object of each top-level list kind
MINIMAL = {
    "services": {"name": "s", "addr": "127.0.0.1:1080", "handler": {"type": "socks5"}, "listener": {"type": "tcp"}},
    "chains": {"name": "c", "hops": [{"name": "h", "nodes": [{"name": "n", "addr": "127.0.0.1:1"}]}]},
    "hops": {"name": "h", "nodes": [{"name": "n", "addr": "127.0.0.1:1"}]},
    "authers": {"name": "a", "auths": [{"username": "u", "password": "p"}]},
    "admissions": {"name": "a", "matchers": ["127.0.0.1"]},
    "bypasses": {"name": "b", "matchers": ["example.com"]},
    "resolvers": {"name": "r", "nameservers": [{"addr": "udp://127.0.0.1:53"}]},
    "hosts": {"name": "h", "mappings": [{"ip": "127.0.0.1", "hostname": "example.com"}]},
    "limiters": {"name": "l", "limits": ["$ 1MB 1MB"]},
    "climiters": {"name": "l", "limits": ["$ 10"]},
    "rlimiters": {"name": "l", "limits": ["$ 10"]},
}


def problems(cfg, level=None):
    return [(p.level, str(p)) for p in validate(cfg) if level is None or p.level == level]


def typo(name):
    """A plausible typo: one letter dropped from the middle."""
    i = len(name) // 2
    return name[:i] + name[i + 1:]


def test_minimal_objects_are_clean():
    for kind, o in MINIMAL.items():
        assert problems({kind: [o]}) == [], kind


def _typo_cases():
    for kind, o in MINIMAL.items():
        spec = S.TOP[kind].item
        for key in spec.values():
            if len(key.name) >= 5 and key.status == S.BUILT:
                yield kind, key.name


@pytest.mark.parametrize("kind, key", list(_typo_cases()))
def test_typo_in_each_object_warns_with_suggestion(kind, key):
    o = copy.deepcopy(MINIMAL[kind])
    bad = typo(key)
    o[bad] = "x"
    found = [p for p in validate({kind: [o]}) if p.path == f"{kind}[0].{bad}"]
    # a misspelt key that decides who gets in or where traffic goes, while it is unset, fails closed
    decisive = found and found[0].suggestion in DECISIVE and found[0].suggestion not in o
    assert found and found[0].level == (ERROR if decisive else WARNING), (kind, key, problems({kind: [o]}))
    assert found[0].suggestion in S.TOP[kind].item[key].names() or found[0].suggestion == key, found[0]
    assert f"did you mean {found[0].suggestion!r}" in found[0].message


@pytest.mark.parametrize("kind", list(MINIMAL))
def test_missing_name_is_an_error_with_path(kind):
    o = copy.deepcopy(MINIMAL[kind])
    del o["name"]
    assert (ERROR, f"{kind}[0].name: is required") in problems({kind: [o]})


@pytest.mark.parametrize("cfg, expected", [
    ({"services": [{"name": "s", "adr": "127.0.0.1:1"}]},
     [(ERROR, "services[0].adr: unknown key (did you mean 'addr'?); 'addr' decides who gets in or where traffic "
              "goes and is not set, so this is refused rather than run with its default"),
      (ERROR, "services[0].addr: is required")]),
    ({"services": [{"name": "s", "addr": "127.0.0.1"}]},
     [(ERROR, "services[0].addr: address '127.0.0.1' has no port (e.g. 127.0.0.1:1080 or :1080)")]),
    ({"services": [{"name": "s", "addr": ":1", "handlr": {"type": "http"}}]},
     [(ERROR, "services[0].handlr: unknown key (did you mean 'handler'?); 'handler' decides who gets in or "
              "where traffic goes and is not set, so this is refused rather than run with its default")]),
    ({"services": [{"name": "s", "addr": ":1", "handler": {"typ": "socks5"}}]},
     [(ERROR, "services[0].handler.typ: unknown key (did you mean 'type'?); 'type' decides who gets in or "
              "where traffic goes and is not set, so this is refused rather than run with its default")]),
    ({"services": [{"name": "s", "addr": ":1", "handler": {"type": "http", "chain": "c", "chian": "c"}}]},
     [(WARNING, "services[0].handler.chian: unknown key (did you mean 'chain'?)")]),
    ({"chains": [{"name": "c", "hops": [{"name": "h", "nodes": [{"name": "n"}]}]}]},
     [(ERROR, "chains[0].hops[0].nodes[0].addr: is required")]),
    ({"hops": [{"name": "h", "selector": {"strategy": "rund"}}]},
     [(ERROR, "hops[0].selector.strategy: unknown value 'rund' (did you mean 'round'?) "
              "(one of: round, rr, rand, random, fifo, ha, hash, parallel, lowestlatency, lowest, ll)")]),
    ({"services": [{"name": "s", "addr": ":1", "metadata": {"readTimeout": "abc"}}]},
     [(ERROR, "services[0].metadata.readTimeout: bad duration 'abc' (e.g. 10s, 1m30s, 500ms)")]),
    ({"services": [{"name": "s", "addr": ":1", "handler": {"type": "socks5", "metadata": {"udp": "maybe"}}}]},
     [(ERROR, "services[0].handler.metadata.udp: must be true or false, not 'maybe'")]),
    ({"services": [{"name": "s", "addr": ":1", "handler": {"retries": "x"}}]},
     [(ERROR, "services[0].handler.retries: must be an integer, not 'x'")]),
    ({"services": "nope"}, [(ERROR, "services: must be a list, not a string")]),
    ({"services": [{"name": "a", "addr": ":1"}, {"name": "a", "addr": ":2"}]},
     [(ERROR, "services[1].name: duplicate name 'a'")]),
    ({"api": {"adr": ":18080"}},
     [(ERROR, "api.adr: unknown key (did you mean 'addr'?); 'addr' decides who gets in or where traffic goes "
              "and is not set, so this is refused rather than run with its default"),
      (ERROR, "api.addr: is required")]),
    ({"log": {"level": "verbose"}},
     [(ERROR, "log.level: unknown value 'verbose' (one of: trace, debug, info, warn, warning, error, fatal)")]),
    ({"servces": []}, [(WARNING, "servces: unknown key (did you mean 'services'?)")]),
])
def test_verdicts(cfg, expected):
    got = [p for p in problems(cfg) if "does not exist" not in p[1]]
    assert got == expected


def test_case_insensitive_keys_as_gost():
    """GOST reads YAML keys case-insensitively (viper): ``certfile`` is ``certFile``."""
    cfg = {"services": [{"name": "s", "addr": ":1", "listener": {"type": "tls", "tls": {"certfile": "c.pem"}}}]}
    assert problems(cfg) == []


def _md_cases():
    for kind, types in builtins.MODULES.items():
        for t in types:
            for lname, key in S.component_md(kind, t).items():
                if key.status == S.BUILT and lname == key.name.lower() and len(key.name) >= 5:
                    yield kind, t, key.name


def _with_md(kind, t, md):
    if kind in ("handler", "listener"):
        svc = {"name": "s", "addr": ":1", "handler": {"type": "auto"}, "listener": {"type": "tcp"}}
        svc[kind] = {"type": t, "metadata": md}
        return {"services": [svc]}
    node = {"name": "n", "addr": "127.0.0.1:1", "connector": {"type": "http"}, "dialer": {"type": "tcp"}}
    node[kind] = {"type": t, "metadata": md}
    return {"hops": [{"name": "h", "nodes": [node]}]}


@pytest.mark.parametrize("kind, t, key", list(_md_cases()))
def test_typo_in_each_types_metadata_warns_with_suggestion(kind, t, key):
    bad = typo(key)
    if bad.lower() in S.md_owners():
        pytest.skip(f"{bad} is itself a key")
    found = [p for p in validate(_with_md(kind, t, {bad: "1"})) if p.path.endswith(f"metadata.{bad}")]
    assert found and found[0].level == WARNING, found
    assert found[0].suggestion is not None and found[0].suggestion.lower() in S.md_owners(), found[0]


@pytest.mark.parametrize("kind, t, key", list(_md_cases()))
def test_each_declared_key_is_accepted(kind, t, key):
    k = S.component_md(kind, t)[key.lower()]
    value = {S.BOOL: "true", S.INT: "1", S.DURATION: "1s", S.MAP: {}, S.STRLIST: ["a"]}.get(k.kind, "x")
    if k.choices:
        value = [c for c in k.choices if c][0]
    assert [p for p in validate(_with_md(kind, t, {key: value})) if "metadata" in p.path] == []


def _unbuilt_top():
    for name, key in S.TOP.items():
        if key.status in (S.UNBUILT_ERROR, S.UNBUILT_WARN):
            yield name, key
    for kind in MINIMAL:
        for name, key in S.TOP[kind].item.items():
            if key.status in (S.UNBUILT_ERROR, S.UNBUILT_WARN):
                yield f"{kind}.{name}", key


@pytest.mark.parametrize("where, key", list(_unbuilt_top()), ids=lambda x: x if isinstance(x, str) else "")
def test_unbuilt_gost_feature_errors_or_warns_per_rule(where, key):
    value = {S.LIST: [{"name": "x"}], S.MAP: {"addr": "127.0.0.1:1"}, S.BOOL: True, S.INT: 1,
             S.STRLIST: ["x"]}.get(key.kind, "x")
    if "." in where:
        kind, name = where.split(".")
        o = copy.deepcopy(MINIMAL[kind])
        o[name] = value
        cfg, path = {kind: [o]}, f"{kind}[0].{name}"
    else:
        cfg, path = {where: value}, where
    found = [p for p in validate(cfg) if p.path == path]
    assert found, problems(cfg)
    assert found[0].level == (ERROR if key.status == S.UNBUILT_ERROR else WARNING)
    assert "not built by gostg yet" in found[0].message and "https://gost.run/en/" in found[0].message
    if key.status == S.UNBUILT_WARN:
        assert "not active" in found[0].message


def test_rule_routing_and_auth_features_error_observational_warn():
    """The rule written once in the schema: who gets in / where traffic goes → error."""
    for name in ("sds", "quotas"):
        assert S.TOP[name].status == S.UNBUILT_ERROR, name
    for name in ("profiling",):
        assert S.TOP[name].status == S.UNBUILT_WARN, name
    assert S.TOP["metrics"].status == S.BUILT
    for kind in ("authers", "admissions", "bypasses", "hosts", "limiters"):
        for loader in ("redis", "http"):
            assert S.TOP[kind].item[loader].status == S.BUILT, (kind, loader)
    # plugins are built where GOST has them; climiters/rlimiters have none in GOST
    for kind in ("authers", "admissions", "bypasses", "hosts", "resolvers", "limiters", "hops"):
        assert S.TOP[kind].item["plugin"].status == S.BUILT, kind
    for kind in ("climiters", "rlimiters"):
        assert S.TOP[kind].item["plugin"].status == S.UNBUILT_ERROR, kind
    assert S.SERVICE["rewriter"].status == S.UNBUILT_ERROR
    # sniffing is built where a handler peeks (forward, http, socks, relay, auto), not elsewhere
    assert S.MD_HANDLER_BASE["sniffing"].status == S.UNBUILT_ERROR
    assert S.component_md("handler", "http2")["sniffing"].status == S.UNBUILT_ERROR
    for t in ("tcp", "http", "socks5", "socks4", "relay", "auto"):
        assert S.component_md("handler", t)["sniffing"].status == S.BUILT, t
    assert S.component_md("handler", "tcp")["mitm.certfile"].status == S.UNBUILT_ERROR
    # forwarder nodes match and rewrite; chain nodes do not yet
    assert S.FORWARD_NODE["matcher"].status == S.BUILT
    assert S.NODE["matcher"].status == S.UNBUILT_ERROR


@pytest.mark.parametrize("kind", ["handler", "listener", "connector", "dialer"])
def test_unbuilt_and_unknown_types(kind):
    built = set(builtins.MODULES[kind])
    for t in sorted(S.GOST_TYPES[kind] - built):
        found = [p for p in validate(_with_md(kind, t, {})) if p.path.endswith(f"{kind}.type")]
        assert found and found[0].level == ERROR
        assert f"{kind} type {t!r} is not built by gostg yet" in found[0].message
        assert S.type_docs(kind, t) in found[0].message
    name = {"handler": "sock5", "listener": "tsl", "connector": "sock5", "dialer": "tsl"}[kind]
    found = [p for p in validate(_with_md(kind, name, {})) if p.path.endswith(f"{kind}.type")]
    assert found[0].level == ERROR and found[0].message.startswith(f"unknown {kind} {name!r} (did you mean")


def test_every_built_type_has_declared_metadata():
    """builtins and the schema agree: each built type maps to a metadata family."""
    for kind, types in builtins.MODULES.items():
        for t in types:
            fam = S.FAMILY.get(kind, {}).get(t, t)
            assert (kind, fam) in S.COMPONENT_MD, (kind, t)


def test_metadata_refuses_undeclared_reads():
    md = Metadata({"udp": "true", "other": 1}, S.component_md("handler", "socks5"))
    assert md.bool("udp") is True
    with pytest.raises(KeyError, match="not declared"):
        md.str("other")


def test_cli_copies_are_reported_once():
    from gostg.config.cmdline import from_args
    cfg = from_args(["socks5://:1080?bogusKey=1"], [])
    assert [str(p) for p in validate(cfg)] == ["services[0].metadata.bogusKey: unknown metadata key"]


@pytest.mark.parametrize("addr, ok", [(":1080", True), ("127.0.0.1:1080", True), ("[::1]:1080", True),
                                      ("1080-1090", False), (":1080-1090", True), ("127.0.0.1", False),
                                      ("::1", False), ("h:99999", False), ("h:x", False)])
def test_addr_problem(addr, ok):
    assert (addr_problem(addr) is None) == ok


def test_suggest():
    assert suggest("adr", ["addr", "name"]) == "addr"
    assert suggest("zzzz", ["addr", "name"]) is None


def test_normalize_gives_canonical_spelling():
    o = {"ADDR": ":1", "Handler": {"Type": "http", "metadata": {"UDP": True}}, "unknownKey": 1}
    assert S.normalize(o, S.SERVICE) == {"addr": ":1", "handler": {"type": "http", "metadata": {"UDP": True}},
                                         "unknownKey": 1}


def test_reference_docs_are_current():
    """docs/config-reference.md is generated from the schema (python -m gostg.config.docs)."""
    import os

    from gostg.config import docs
    path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "config-reference.md")
    with open(path, encoding="utf-8") as f:
        assert f.read() == docs.render(), "run: .venv/bin/python -m gostg.config.docs > docs/config-reference.md"


def test_api_addr_is_checked():
    assert problems({"api": {"addr": ":99999"}}) == [(ERROR, "api.addr: bad port '99999' in address ':99999'")]


def test_non_utf8_config_is_a_config_error(tmp_path):
    from gostg.config import load
    from gostg.errors import ConfigError
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"services: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load.load_source(str(p))


def test_builder_reads_only_declared_keys_under_the_suite():
    o = S.normalize({"name": "s", "addr": ":1"}, S.SERVICE)
    assert o.get("addr") == ":1"
    with pytest.raises(KeyError, match="not declared"):
        o.get("adress")


@pytest.mark.parametrize("part, typo_key, intended", [
    ("dialer", "typ", "type"), ("connector", "tpye", "type")])
def test_misspelt_decisive_key_in_a_node_fails_closed(part, typo_key, intended):
    """``dialer: {typ: tls}`` would otherwise dial plain TCP where TLS was meant."""
    node = {"name": "n", "addr": "127.0.0.1:1", part: {typo_key: "tls"}}
    found = [p for p in validate({"hops": [{"name": "h", "nodes": [node]}]})
             if p.path == f"hops[0].nodes[0].{part}.{typo_key}"]
    assert found and found[0].level == ERROR and found[0].suggestion == intended


def test_misspelt_dialer_fails_closed():
    node = {"name": "n", "addr": "127.0.0.1:1", "dialr": {"type": "tls"}}
    found = [p for p in validate({"hops": [{"name": "h", "nodes": [node]}]}) if p.path.endswith("dialr")]
    assert found and found[0].level == ERROR and found[0].suggestion == "dialer"


from hypothesis import given, settings, strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                     st.text(max_size=12))
_keys = st.one_of(st.sampled_from(["services", "chains", "hops", "name", "addr", "handler", "listener", "type",
                                   "metadata", "nodes", "connector", "dialer", "selector", "strategy", "tls",
                                   "auth", "api", "log", "forwarder", "bypass", "limits", "matchers", "file",
                                   "readTimeout", "udp", "mux.version", "plugin", "redis"]), st.text(max_size=8))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(_keys, inner, max_size=5)), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=6))
def test_validate_never_crashes_on_any_shape(cfg):
    """Garbage in a config is a list of problems with paths, never an exception."""
    for p in validate(cfg):
        assert p.level in (ERROR, WARNING) and isinstance(p.path, str) and p.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_command_line_urls_raise_only_config_errors(service, node):
    from gostg.config.cmdline import from_args
    from gostg.errors import ConfigError
    try:
        cfg = from_args([service], [node] if node.strip() else [])
    except ConfigError:
        return
    validate(cfg)
