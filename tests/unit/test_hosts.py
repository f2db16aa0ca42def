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
