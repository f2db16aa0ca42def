"""gostg.protocols.addr: GOST's [host]:port forms, IPv6 brackets, port ranges."""
import pytest
from hypothesis import given, settings, strategies as st

from gostg.errors import ProtocolError
from gostg.protocols.addr import expand_port_range, is_ip, join_host_port, split_host_port


@pytest.mark.parametrize("addr,default,expect", [
    ("example.com:80", None, ("example.com", 80)),
    ("1.2.3.4:0", None, ("1.2.3.4", 0)),
    ("[::1]:443", None, ("::1", 443)),
    ("[2001:db8::1]:65535", None, ("2001:db8::1", 65535)),
    (":8080", None, ("", 8080)),
    ("example.com", 80, ("example.com", 80)),
    ("example.com:", 80, ("example.com", 80)),
    ("[::1]", 53, ("::1", 53)),
    ("::1", 53, ("::1", 53)),
    ("  h:1  ", None, ("h", 1)),
])
def test_split_host_port(addr, default, expect):
    assert split_host_port(addr, default) == expect


@pytest.mark.parametrize("addr", [
    "example.com",       # no port and no default
    "h:",                # empty port, no default
    "h:http",            # not a number
    "h:65536",           # out of range
    "h:-1",
    "[::1",              # unterminated bracket
    "[::1]80",           # junk after the bracket
    "[::1]",             # no port, no default
    "::1",
])
def test_split_host_port_errors(addr):
    with pytest.raises(ProtocolError):
        split_host_port(addr)


def test_join_host_port():
    assert join_host_port("example.com", 80) == "example.com:80"
    assert join_host_port("1.2.3.4", 1) == "1.2.3.4:1"
    assert join_host_port("::1", 443) == "[::1]:443"
    assert join_host_port("", 8080) == ":8080"


def test_is_ip():
    assert is_ip("127.0.0.1") and is_ip("::1") and is_ip("fe80::1")
    assert not is_ip("example.com") and not is_ip("") and not is_ip("1.2.3") and not is_ip("[::1]")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,30}", fullmatch=True)),
       st.integers(0, 65535))
def test_join_split_round_trip(host, port):
    assert split_host_port(join_host_port(host, port)) == (host, port)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_split_host_port_garbage_raises_only_protocol_error(s):
    try:
        host, port = split_host_port(s)
    except ProtocolError:
        return
    assert 0 <= port <= 65535


@pytest.mark.parametrize("addr,expect", [
    (":8000-8003", [":8000", ":8001", ":8002", ":8003"]),
    ("h:8000-8002", ["h:8000", "h:8001", "h:8002"]),
    ("[::1]:80-81", ["[::1]:80", "[::1]:81"]),
    ("h:8003-8000", ["h:8000", "h:8001", "h:8002", "h:8003"]),
    ("h:80", ["h:80"]),
    (":80", [":80"]),
    ("h", ["h"]),
    ("", [""]),
    ("h:a-b", ["h:a-b"]),
    ("h:1-70000", ["h:1-70000"]),
])
def test_expand_port_range(addr, expect):
    assert expand_port_range(addr) == expect
