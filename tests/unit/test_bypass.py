"""gostg.policy.bypass: matchers (exact, .domain, *.glob, IP, CIDR), blacklist and whitelist."""
import pytest

from gostg.policy.bypass import Admission, Bypass, Matcher

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


def test_empty_whitelist_bypasses_everything():
    assert Bypass("b", [], whitelist=True).contains("example.com:80")
    assert not Bypass("b", []).contains("example.com:80")


def test_admission():
    black = Admission("a", ["10.0.0.0/8"])
    assert not black.admit("10.1.2.3:5000")
    assert black.admit("192.168.1.1:5000")
    white = Admission("a", ["10.0.0.0/8", "::1"], whitelist=True)
    assert white.admit("10.1.2.3:5000")
    assert white.admit("[::1]:5000")
    assert not white.admit("192.168.1.1:5000")
