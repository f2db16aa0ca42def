"""gostg.dns.hosts: static mappings, exact names and `.domain` entries of parents."""
import pytest

from gostg.dns.hosts import Hosts


def make(*pairs):
    return Hosts("hosts-0", list(pairs))


def test_exact():
    h = make(("example.com", "1.2.3.4"))
    assert h.lookup("example.com") == ["1.2.3.4"]
    assert h.lookup("www.example.com") == []
    assert h.lookup("com") == []
    assert h.lookup("other.org") == []


def test_case_and_trailing_dot_ignored():
    h = make(("Example.COM.", "1.2.3.4"))
    assert h.lookup("EXAMPLE.com") == ["1.2.3.4"]
    assert h.lookup("example.com.") == ["1.2.3.4"]


def test_dot_domain_covers_itself_and_subdomains():
    h = make((".example.com", "5.6.7.8"))
    assert h.lookup("example.com") == ["5.6.7.8"]
    assert h.lookup("www.example.com") == ["5.6.7.8"]
    assert h.lookup("a.b.c.example.com") == ["5.6.7.8"]
    assert h.lookup("badexample.com") == []
    assert h.lookup("example.com.evil") == []


def test_exact_beats_domain_and_nearest_parent_wins():
    h = make((".example.com", "1.1.1.1"), ("www.example.com", "2.2.2.2"), (".b.example.com", "3.3.3.3"))
    assert h.lookup("www.example.com") == ["2.2.2.2"]
    assert h.lookup("a.b.example.com") == ["3.3.3.3"]
    assert h.lookup("b.example.com") == ["3.3.3.3"]
    assert h.lookup("c.example.com") == ["1.1.1.1"]


def test_several_ips_and_preference():
    h = make(("h", "::1"), ("h", "10.0.0.1"), ("h", "fe80::2"), ("h", "10.0.0.2"))
    assert h.lookup("h") == ["10.0.0.1", "10.0.0.2", "::1", "fe80::2"]
    assert h.lookup("h", prefer="ipv6") == ["::1", "fe80::2", "10.0.0.1", "10.0.0.2"]


def test_bad_ip_is_refused_at_build_time():
    with pytest.raises(ValueError):
        make(("h", "not-an-ip"))


def test_empty_and_odd_queries():
    h = make((".example.com", "1.1.1.1"))
    assert h.lookup("") == []
    assert h.lookup(".") == []
    assert make().lookup("example.com") == []


# --- GOST docs examples, /etc/hosts files, reload, config building -------------------------

from hypothesis import given, strategies as st  # noqa: E402

from gostg.config.build import _build_hosts  # noqa: E402
from gostg.dns.hosts import parse_hosts_lines  # noqa: E402
from gostg.errors import ConfigError  # noqa: E402


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_docs_mappings_example():
    """hosts.md: example.org → 127.0.0.1 and ::1, example.com → 2001:db8::1."""
    h = _build_hosts({"name": "hosts-0", "mappings": [
        {"ip": "127.0.0.1", "hostname": "example.org"},
        {"ip": "::1", "hostname": "example.org"},
        {"ip": "2001:db8::1", "hostname": "example.com"}]}, "hosts[0]")
    assert h.lookup("example.org") == ["127.0.0.1", "::1"]
    assert h.lookup("example.org", prefer="ipv6") == ["::1", "127.0.0.1"]
    assert h.lookup("example.org", only="ipv6") == ["::1"]
    assert h.lookup("example.com") == ["2001:db8::1"]
    assert h.lookup("example.com", only="ipv4") == []


def test_docs_wildcard_order():
    """hosts.md: abc.example.org → exact, then .abc.example.org, then .example.org, then .org."""
    cases = [
        ([("abc.example.org", "1.0.0.1"), (".abc.example.org", "1.0.0.2"), (".example.org", "1.0.0.3"), (".org", "1.0.0.4")], "1.0.0.1"),
        ([(".abc.example.org", "1.0.0.2"), (".example.org", "1.0.0.3"), (".org", "1.0.0.4")], "1.0.0.2"),
        ([(".example.org", "1.0.0.3"), (".org", "1.0.0.4")], "1.0.0.3"),
        ([(".org", "1.0.0.4")], "1.0.0.4"),
        ([("example.org", "1.0.0.5")], None),
    ]
    for pairs, want in cases:
        got = Hosts("h", pairs).lookup("abc.example.org")
        assert got == ([want] if want else []), (pairs, got)


def test_aliases():
    h = _build_hosts({"name": "h", "mappings": [
        {"ip": "10.0.0.1", "hostname": "main.test", "aliases": ["alias1.test", "Alias2.test"]}]}, "hosts[0]")
    assert h.lookup("main.test") == h.lookup("alias1.test") == h.lookup("alias2.test") == ["10.0.0.1"]


@pytest.mark.parametrize("lines,expected", [
    (["127.0.0.1 example.com"], {"example.com": ["127.0.0.1"]}),
    (["2001:db8::1  example.com"], {"example.com": ["2001:db8::1"]}),
    (["10.0.0.1\tmain alias1 alias2  # comment"], {"main": ["10.0.0.1"], "alias1": ["10.0.0.1"], "alias2": ["10.0.0.1"]}),
    (["# 10.0.0.1 commented"], {}),
    (["10.0.0.1"], {}),                              # fewer than two fields: skipped
    (["not-an-ip name"], {}),                        # bad IP: skipped (GOST)
    (["10.0.0.1 a", "10.0.0.1 a", "10.0.0.2 a"], {"a": ["10.0.0.1", "10.0.0.2"]}),  # duplicates dropped
    (["fe80::1%eth0 ll"], {"ll": ["fe80::1"]}),     # zone index as in /etc/hosts
])
def test_parse_hosts_lines(lines, expected):
    assert parse_hosts_lines(lines) == expected


def test_system_style_hosts_file(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("# ip host\n\n127.0.0.1    example.com\n2001:db8::1  example.com\n"
                 "127.0.1.1 box.local box\n::1 localhost ip6-localhost ip6-loopback\n")
    h = Hosts("hosts-0", file=str(f))
    assert h.lookup("example.com") == ["127.0.0.1", "2001:db8::1"]
    assert h.lookup("box") == ["127.0.1.1"]
    assert h.lookup("ip6-loopback") == ["::1"]


def test_file_reload_and_inline(tmp_path):
    f = tmp_path / "hosts"
    f.write_text("10.0.0.1 a.test\n")
    clock = Clock()
    h = Hosts("h", [("inline.test", "10.9.9.9")], file=str(f), reload=5, clock=clock)
    assert h.lookup("a.test") == ["10.0.0.1"]
    assert h.lookup("inline.test") == ["10.9.9.9"]
    f.write_text("10.0.0.2 a.test\n10.0.0.3 b.test\n")
    assert h.lookup("a.test") == ["10.0.0.1"]      # before the period ends
    clock.t += 6
    assert h.lookup("a.test") == ["10.0.0.2"]
    assert h.lookup("b.test") == ["10.0.0.3"]
    assert h.lookup("inline.test") == ["10.9.9.9"]


def test_build_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as e:
        _build_hosts({"name": "h", "mappings": [{"ip": "1.2.3.4", "hostname": "a"},
                                                {"ip": "999.1.1.1", "hostname": "b"}]}, "hosts[3]")
    assert e.value.path == "hosts[3].mappings[1].ip"
    with pytest.raises(ConfigError) as e:
        _build_hosts({"name": "h", "file": {"path": str(tmp_path / "none")}}, "hosts[0]")
    assert e.value.path == "hosts[0].file.path"


@given(st.lists(st.text(max_size=60), max_size=10), st.text(max_size=40))
def test_garbage_lines_and_queries_never_crash(lines, query):
    assert isinstance(parse_hosts_lines(lines), dict)
    ips = Hosts("h", lines=lines).lookup(query)
    assert isinstance(ips, list) and all(isinstance(ip, str) for ip in ips)
