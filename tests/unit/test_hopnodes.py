"""config/hopnodes.py: loaded hop nodes are validated and built like inline ones, reloaded in
a greenlet only when the hop is used, and a failing source keeps its last good list."""
import json

import gevent

from gostg.config.hopnodes import NodeBuilder, NodeSources
from gostg.errors import ConfigError

from .loglines import Log


def build_one(cfg, path):
    if cfg.get("addr") == "bad:1":
        raise ConfigError(f"{path}.addr", "does not build")
    return ("node", cfg["addr"])


def sources(fetches, reload=1.0):
    now = [0.0]
    calls = []

    def fetch():
        calls.append(now[0])
        v = fetches[min(len(calls), len(fetches)) - 1]
        if isinstance(v, Exception):
            raise v
        return v
    log = Log()
    s = NodeSources("h", [("inline", "a:0")], [("hops[0].file", fetch)], reload, NodeBuilder("h", build_one), log,
                    clock=lambda: now[0])
    return s, now, calls, log


def nodes_json(*addrs):
    return json.dumps([{"addr": a} for a in addrs])


def test_the_first_load_is_at_build_and_nothing_runs_while_unused():
    s, now, calls, _ = sources([nodes_json("a:1")])
    assert calls == [0.0] and s.current() == [("inline", "a:0"), ("node", "a:1")]
    now[0] = 100.0
    gevent.sleep(0)
    assert calls == [0.0]      # unused: no poll
    s.current()                # used after the period: one fetch, in a greenlet
    s.wait(1)
    assert calls == [0.0, 100.0]


def test_a_change_is_served_after_the_fetch_and_failures_keep_the_last_good_list():
    s, now, calls, log = sources([nodes_json("a:1"), nodes_json("b:1"), "[oops", nodes_json("bad:1"),
                                  OSError("gone"), nodes_json("c:1")])
    before = "a:1"   # the build's load
    for t, want in ((1, "b:1"), (2, "b:1"), (3, "b:1"), (4, "b:1"), (5, "c:1")):
        now[0] = float(t)
        assert s.current()[-1] == ("node", before)   # served the last good list while it reads
        s.wait(1)
        assert s.current()[-1] == ("node", want), t
        before = want
    texts = [m for _, m in log.lines]
    assert any("not JSON" in m for m in texts) and any("does not build" in m for m in texts)
    assert any("gone" in m for m in texts) and texts[-1].endswith("loaded again (1 nodes)")


def test_unchanged_nodes_are_the_same_objects_and_schema_errors_name_the_node():
    b = NodeBuilder("h", lambda cfg, path: object())
    first = b.nodes([{"addr": "a:1"}, {"addr": "b:1"}], "x")
    again = b.nodes([{"addr": "b:1"}, {"addr": "a:1"}], "x")
    assert again[0] is first[1] and again[1] is first[0]
    for bad, where in (({"addr": "a:1", "connector": {"type": "nope"}}, "x[0].connector.type"),
                       ({"name": "n"}, "x[0].addr")):
        try:
            b.nodes([bad], "x")
        except ConfigError as exc:
            assert exc.path == where, exc.path
        else:
            raise AssertionError("built")
    try:
        b.nodes({"addr": "a:1"}, "x")
    except ConfigError as exc:
        assert "JSON array" in exc.msg


def test_an_inline_chain_hop_with_a_loader_is_a_hop_not_a_reference(tmp_path):
    from gostg.config.build import build_chain
    from gostg.config.refs import _hop_reference

    f = tmp_path / "n.json"
    f.write_text('[{"name": "n", "addr": "127.0.0.1:1"}]')
    h = {"name": "h", "file": {"path": str(f)}}
    assert _hop_reference(h) is None and _hop_reference({"name": "h"}) == "h"
    chain = build_chain({"name": "c", "hops": [h]}, "chains[0]", None)
    assert [n.addr for n in chain.hops[0].nodes] == ["127.0.0.1:1"]


from hypothesis import given, settings, strategies as st  # noqa: E402

NODE_JSON = st.dictionaries(
    st.sampled_from(["name", "addr", "connector", "dialer", "metadata", "probe", "bypass", "tls", "x"]),
    st.none() | st.booleans() | st.integers() | st.text(max_size=6) | st.lists(st.text(max_size=3), max_size=2)
    | st.dictionaries(st.sampled_from(["type", "metadata", "auth", "tls"]),
                      st.none() | st.integers() | st.text(max_size=6) | st.dictionaries(st.text(max_size=3),
                                                                                       st.text(max_size=3))),
    max_size=5)


@settings(max_examples=150, deadline=None)
@given(NODE_JSON)
def test_a_plugin_hop_refuses_or_builds_whatever_node_json_comes(cfg):
    from gostg.config.build import build_hop
    from gostg.plugin import PluginError
    from gostg.policy.group import Unanswered

    hop = build_hop({"name": "h", "plugin": {"type": "http", "addr": "http://127.0.0.1:1/"}}, "hops[0]", None)

    class T:
        def call(self, request):
            return cfg

        def close(self):
            pass
    hop.asker.transport = T()
    try:
        node = hop.select(None, "1.2.3.4:1")
    except (Unanswered, PluginError):
        return
    assert node.addr or node.connector is not None
