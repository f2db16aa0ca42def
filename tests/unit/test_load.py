"""gostg.config.load: parsing -C sources and merging several of them."""
import io
import json

import pytest

from gostg.config.load import load_source, merge, parse_text
from gostg.errors import ConfigError


def test_parse_yaml_and_json():
    assert parse_text("services:\n  - name: a\n    addr: :8080\n", "yaml", "f") == {
        "services": [{"name": "a", "addr": ":8080"}]}
    assert parse_text('{"log": {"level": "debug"}}', "json", "f") == {"log": {"level": "debug"}}
    assert parse_text("", "yaml", "f") == {}
    assert parse_text("# only a comment\n", "yaml", "f") == {}


@pytest.mark.parametrize("text,line", [
    ("services:\n  - name: a\n    addr: [\n", 4),
    ("services:\n  - name: a\n   addr: x\n", 3),
    ("log:\n  level: debug\n\tfile: x\n", 3),
    ("a: b\n  c: d\n", 2),
])
def test_broken_yaml_reports_line(text, line):
    with pytest.raises(ConfigError) as ei:
        parse_text(text, "yaml", "gost.yaml")
    assert ei.value.path == "gost.yaml"
    assert f"line {line}" in str(ei.value)


@pytest.mark.parametrize("text,line", [
    ('{\n  "services": [\n    {"name": "a",}\n  ]\n}\n', 3),
    ('{"a": 1}\n{"b": 2}\n', 2),
    ('{\n\n\n "a": }', 4),
])
def test_broken_json_reports_line(text, line):
    with pytest.raises(ConfigError) as ei:
        parse_text(text, "json", "gost.json")
    assert ei.value.path == "gost.json"
    assert f"line {line}" in str(ei.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text):
    with pytest.raises(ConfigError):
        parse_text(text, "yaml", "f")
    with pytest.raises(ConfigError):
        parse_text(json.dumps(["x"]), "json", "f")


def test_yaml_is_safe_loaded():
    with pytest.raises(ConfigError):
        parse_text("a: !!python/object/apply:os.system ['true']\n", "yaml", "f")


def test_load_source_inline_stdin_and_files(tmp_path):
    assert load_source(' {"services": []} ') == {"services": []}
    assert load_source("-", stdin=io.StringIO('{"a": 1}')) == {"a": 1}
    assert load_source("-", stdin=io.StringIO("a: 1\n")) == {"a": 1}
    y = tmp_path / "c.yml"
    y.write_text("log:\n  level: info\n")
    assert load_source(str(y)) == {"log": {"level": "info"}}
    j = tmp_path / "c.json"
    j.write_text('{"api": {"addr": ":18080"}}')
    assert load_source(str(j)) == {"api": {"addr": ":18080"}}
    with pytest.raises(ConfigError) as ei:
        load_source(str(tmp_path / "missing.yaml"))
    assert ei.value.path == str(tmp_path / "missing.yaml")


def test_load_source_json_extension_parsed_as_json(tmp_path):
    j = tmp_path / "c.json"
    j.write_text("a: 1\n")  # valid YAML, not JSON
    with pytest.raises(ConfigError):
        load_source(str(j))


def test_merge_lists_concatenate_in_order():
    a = {"services": [{"name": "s1"}], "chains": [{"name": "c1"}]}
    b = {"services": [{"name": "s2"}], "hops": [{"name": "h1"}]}
    c = {"services": [{"name": "s3"}]}
    out = merge([a, b, c])
    assert [s["name"] for s in out["services"]] == ["s1", "s2", "s3"]
    assert out["chains"] == [{"name": "c1"}] and out["hops"] == [{"name": "h1"}]
    assert a["services"] == [{"name": "s1"}]  # inputs untouched


def test_merge_singletons_later_wins():
    a = {"log": {"level": "debug", "format": "json"}, "api": {"addr": ":1"}, "tls": {"certFile": "a"}}
    b = {"log": {"level": "info"}, "metrics": {"addr": ":9000"}}
    out = merge([a, b])
    assert out["log"] == {"level": "info"}  # replaced, not deep-merged
    assert out["api"] == {"addr": ":1"} and out["metrics"] == {"addr": ":9000"} and out["tls"] == {"certFile": "a"}


def test_merge_empty_list_key_does_not_drop_earlier_items():
    # `services:` with nothing under it is null in YAML; GOST appends nothing
    out = merge([{"services": [{"name": "s1"}]}, {"services": None}, {"services": []}])
    assert out["services"] == [{"name": "s1"}]


def test_merge_nothing():
    assert merge([]) == {}
    assert merge([{}, {}]) == {}
