"""The sniffer over bytes: TLS SNI from real hellos, HTTP heads (Host, absolute form, path,
query), SSH, unknown protocols; every prefix of a recognised first message asks for more;
garbage never raises anything but NeedData/nothing."""
import pytest
from hypothesis import given, settings, strategies as st

from gostg.errors import NeedData
from gostg.protocols import sniff

from .test_tls_hello import HELLO, client_hello

PROPS = settings(max_examples=300, deadline=None)
GET = b"GET /a/b?x=1&y=&x=2 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\n\r\n"


def test_tls_hello():
    f = sniff.sniff(HELLO + b"more")
    assert (f.proto, f.host) == ("tls", "example.com")
    f = sniff.sniff(client_hello(None))
    assert (f.proto, f.host) == ("tls", "")


def test_http_head():
    f = sniff.sniff(GET + b"body")
    assert (f.proto, f.host, f.method, f.path) == ("http", "example.com:8080", "GET", "/a/b")
    assert f.query == {"x": ["1", "2"], "y": [""]}
    assert f.headers.get("user-agent") == "t"


def test_http_absolute_form_authority_wins():
    f = sniff.sniff(b"GET http://u:p@real.test:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (f.host, f.path, f.query) == ("real.test:81", "/p", {"q": ["1"]})


def test_ssh_and_unknown():
    assert sniff.sniff(b"SSH-2.0-OpenSSH_9\r\n").proto == "ssh"
    for data in (b"\x00\x01\x02", b"hello world", b"\x16\x01\x00", b"get / HTTP/1.1\r\n\r\n",
                 b"GET / HTTP/2.0\r\n\r\n", b"GETX / HTTP/1.1\r\n\r\n"):
        assert sniff.sniff(data) is sniff.UNKNOWN, data


def test_every_prefix_needs_more():
    for msg in (GET, HELLO, b"SSH-"):
        for n in range(len(msg)):
            with pytest.raises(NeedData):
                sniff.sniff(msg[:n])


def test_http_without_host():
    f = sniff.sniff(b"GET / HTTP/1.0\r\n\r\n")
    assert (f.proto, f.host) == ("http", "")


@PROPS
@given(st.binary(max_size=400))
def test_garbage_never_crashes(data):
    try:
        f = sniff.sniff(data)
    except NeedData:
        return
    assert f.proto in ("", "http", "tls", "ssh")


@PROPS
@given(st.sampled_from(sniff.METHODS), st.binary(max_size=200))
def test_method_then_garbage(method, tail):
    try:
        sniff.sniff(method + b" " + tail)
    except NeedData:
        pass


@PROPS
@given(st.integers(min_value=0, max_value=len(HELLO) - 1), st.integers(0, 255))
def test_mutated_hello_is_tls_or_unknown(pos, value):
    """One byte of a real hello changed: still TLS, or unknown (raw forwarding), or a wait
    for more; a bad SNI extension (decoded lazily) found a bug here once."""
    data = bytearray(HELLO)
    data[pos] = value
    try:
        assert sniff.sniff(bytes(data)).proto in ("tls", "")
    except NeedData:
        assert pos < 9       # only a changed record or handshake length makes it look longer
