"""SOCKS5 codec (RFC 1928, RFC 1929): byte vectors, round trips, garbage and prefixes."""
import ipaddress

import pytest
from hypothesis import example, given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols import socks5
from gostg.protocols.reader import Reader

H = bytes.fromhex
PROPS = settings(max_examples=250, deadline=None)

# --- RFC 1928 / RFC 1929 vectors --------------------------------------------------------------

CONNECT_V4 = H("05 01 00 01 7f000001 0050")                      # CONNECT 127.0.0.1:80
CONNECT_DOMAIN = H("05 01 00 03 0b") + b"example.com" + H("01bb")  # CONNECT example.com:443
CONNECT_V6 = H("05 01 00 04 00000000000000000000000000000001 1f90")  # CONNECT [::1]:8080
UDP_ASSOC = H("05 03 00 01 00000000 0000")                       # UDP ASSOCIATE 0.0.0.0:0
REPLY_OK_V4 = H("05 00 00 01 c0a80001 1f90")                     # succeeded, bound 192.168.0.1:8080
REPLY_REFUSED = H("05 05 00 01 00000000 0000")


def test_greeting_vectors():
    assert socks5.parse_greeting(H("05 01 00")) == ({0}, 3)
    assert socks5.parse_greeting(H("05 02 00 02")) == ({0, 2}, 4)
    assert socks5.parse_greeting(H("05 02 00 02 ff")) == ({0, 2}, 4)  # trailing byte is not used
    assert socks5.encode_greeting([0]) == H("05 01 00")
    assert socks5.encode_greeting([0, 2]) == H("05 02 00 02")


def test_greeting_errors():
    with pytest.raises(ProtocolError):
        socks5.parse_greeting(H("04 01 00"))  # SOCKS4 peer
    with pytest.raises(ProtocolError):
        socks5.parse_greeting(H("05 00"))     # no methods offered
    for prefix in (b"", H("05"), H("05 02 00")):
        with pytest.raises(NeedData):
            socks5.parse_greeting(prefix)


def test_method_reply_vectors():
    assert socks5.encode_method_reply(socks5.METHOD_NONE) == H("05 00")
    assert socks5.encode_method_reply(socks5.METHOD_NO_ACCEPTABLE) == H("05 ff")
    assert socks5.parse_method_reply(H("05 02")) == (2, 2)
    assert socks5.parse_method_reply(H("05 ff 99")) == (0xFF, 2)
    with pytest.raises(ProtocolError):
        socks5.parse_method_reply(H("04 00"))
    with pytest.raises(NeedData):
        socks5.parse_method_reply(H("05"))


def test_rfc1929_userpass_vectors():
    msg = H("01 04") + b"user" + H("08") + b"password"
    assert socks5.encode_userpass("user", "password") == msg
    assert socks5.parse_userpass(msg + b"tail") == ("user", "password", len(msg))
    assert socks5.parse_userpass(H("01 00 00")) == ("", "", 3)
    assert socks5.encode_userpass_reply(True) == H("01 00")
    assert socks5.encode_userpass_reply(False) == H("01 01")
    assert socks5.parse_userpass_reply(H("01 00")) == (0, 2)
    assert socks5.parse_userpass_reply(H("01 01")) == (1, 2)


def test_userpass_errors():
    with pytest.raises(ProtocolError):
        socks5.parse_userpass(H("05 01 00"))  # a greeting where the sub-negotiation belongs
    for prefix in (b"", H("01"), H("01 04") + b"us", H("01 04") + b"user", H("01 04") + b"user" + H("02") + b"p"):
        with pytest.raises(NeedData):
            socks5.parse_userpass(prefix)
    with pytest.raises(ProtocolError):
        socks5.encode_userpass("u" * 256, "p")
    with pytest.raises(ProtocolError):
        socks5.encode_userpass("u", "p" * 256)


def test_userpass_utf8_credentials():
    msg = socks5.encode_userpass("jösé", "пароль")
    assert socks5.parse_userpass(msg) == ("jösé", "пароль", len(msg))


def test_userpass_undecodable_bytes_do_not_crash():
    user, pw, used = socks5.parse_userpass(H("01 02 ff fe 01 80"))
    assert used == 6 and isinstance(user, str) and isinstance(pw, str)


@pytest.mark.parametrize("msg,expect", [
    (CONNECT_V4, (socks5.CMD_CONNECT, "127.0.0.1", 80)),
    (CONNECT_DOMAIN, (socks5.CMD_CONNECT, "example.com", 443)),
    (CONNECT_V6, (socks5.CMD_CONNECT, "::1", 8080)),
    (UDP_ASSOC, (socks5.CMD_UDP, "0.0.0.0", 0)),
])
def test_request_vectors(msg, expect):
    assert socks5.parse_request(msg) == (*expect, len(msg))
    assert socks5.parse_request(msg + b"GET / HTTP/1.1\r\n") == (*expect, len(msg))
    assert socks5.parse_request(bytearray(msg)) == (*expect, len(msg))
    assert socks5.encode_request(*expect) == msg


def test_reply_vectors():
    assert socks5.parse_reply(REPLY_OK_V4) == (socks5.SUCCEEDED, "192.168.0.1", 8080, 10)
    assert socks5.encode_reply(socks5.SUCCEEDED, "192.168.0.1", 8080) == REPLY_OK_V4
    assert socks5.encode_reply(socks5.CONNECTION_REFUSED) == REPLY_REFUSED
    assert socks5.parse_reply(REPLY_REFUSED)[0] == socks5.CONNECTION_REFUSED


def test_encode_addr_forms():
    assert socks5.encode_addr("10.0.0.1", 1) == H("01 0a000001 0001")
    assert socks5.encode_addr("2001:db8::1", 443) == H("04 20010db8000000000000000000000001 01bb")
    assert socks5.encode_addr("a.b", 65535) == H("03 03") + b"a.b" + H("ffff")


def test_encode_addr_idn_is_sent_as_utf8_like_gost():
    # GOST passes the name through as bytes (Go strings are UTF-8); the far end resolves it
    raw = socks5.encode_addr("bücher.example", 80)
    assert raw[0] == socks5.ATYP_DOMAIN
    assert raw[2:2 + raw[1]] == "bücher.example".encode()
    assert socks5.read_addr(Reader(raw, partial=False)) == ("bücher.example", 80)


def test_encode_addr_domain_too_long():
    with pytest.raises(ProtocolError):
        socks5.encode_addr(".".join(["a" * 60] * 5), 80)  # 304 bytes > 255


@pytest.mark.parametrize("host", [
    "a" * 64 + ".example.com",   # a DNS label longer than 63 bytes
    "a..b",                      # an empty label
])
def test_encode_addr_odd_host_raises_protocol_error_or_round_trips(host):
    """Hosts come from clients (an HTTP CONNECT line, a SOCKS request) and are re-encoded by the
    socks5 connector: anything but ProtocolError escapes the handler's error handling."""
    try:
        raw = socks5.encode_addr(host, 80)
    except ProtocolError:
        return
    assert socks5.read_addr(Reader(raw)) == (host, 80)


def test_encode_addr_empty_host_is_refused_like_the_parser_refuses_it():
    # parse_request refuses an empty DOMAINNAME; the encoder must not produce one (the socks5
    # connector would send it for a target like ":80" and get an opaque failure back)
    with pytest.raises(ProtocolError):
        socks5.encode_addr("", 80)


def test_bad_address_type_carries_reply_code():
    with pytest.raises(ProtocolError) as ei:
        socks5.parse_request(H("05 01 00 02 00000000 0050"))
    assert ei.value.reply == socks5.ADDRESS_NOT_SUPPORTED


def test_empty_domain_is_refused():
    with pytest.raises(ProtocolError) as ei:
        socks5.parse_request(H("05 01 00 03 00 0050"))
    assert ei.value.reply == socks5.ADDRESS_NOT_SUPPORTED


def test_undecodable_domain_is_protocol_error():
    with pytest.raises(ProtocolError):
        socks5.parse_request(H("05 01 00 03 03 fffefd 0050"))


def test_wrong_version_request():
    with pytest.raises(ProtocolError):
        socks5.parse_request(H("04 01 00 01 7f000001 0050"))


def test_read_addr_final_buffer_is_protocol_error():
    with pytest.raises(ProtocolError):
        socks5.read_addr(Reader(H("01 7f00"), partial=False))


# --- property tests ---------------------------------------------------------------------------

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith("-") and not s.endswith("-"))
domains = st.lists(_label, min_size=1, max_size=5).map(".".join).filter(lambda d: len(d) <= 255)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)  # mapped ones go as IPv4
hosts = st.one_of(ipv4, ipv6, domains)
ports = st.integers(0, 65535)


def _same_host(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


@PROPS
@given(hosts, ports)
def test_addr_round_trip(host, port):
    raw = socks5.encode_addr(host, port)
    r = Reader(raw)
    h, p = socks5.read_addr(r)
    assert _same_host(h, host) and p == port and r.pos == len(raw)


@PROPS
@given(st.sampled_from([1, 2, 3]), hosts, ports, st.binary(max_size=8))
def test_request_round_trip(cmd, host, port, tail):
    raw = socks5.encode_request(cmd, host, port)
    c, h, p, used = socks5.parse_request(raw + tail)
    assert (c, p, used) == (cmd, port, len(raw)) and _same_host(h, host)


@PROPS
@given(st.integers(0, 255), hosts, ports)
def test_reply_round_trip(rep, host, port):
    raw = socks5.encode_reply(rep, host, port)
    r, h, p, used = socks5.parse_reply(raw)
    assert (r, p, used) == (rep, port, len(raw)) and _same_host(h, host)


@PROPS
@given(st.lists(st.integers(0, 255), min_size=1, max_size=255))
def test_greeting_round_trip(methods):
    raw = socks5.encode_greeting(methods)
    assert socks5.parse_greeting(raw) == (set(methods), len(raw))


@PROPS
@given(st.text(max_size=60), st.text(max_size=60))
def test_userpass_round_trip(user, pw):
    raw = socks5.encode_userpass(user, pw)
    assert socks5.parse_userpass(raw) == (user, pw, len(raw))


PARSERS = [socks5.parse_greeting, socks5.parse_method_reply, socks5.parse_userpass,
           socks5.parse_userpass_reply, socks5.parse_request, socks5.parse_reply]


@PROPS
@given(st.sampled_from(PARSERS), st.binary(max_size=300))
@example(socks5.parse_request, H("05 01 00 03 02 c3a9 0050"))
@example(socks5.parse_request, H("05 01 00 03 01 80 0050"))
@example(socks5.parse_reply, H("05 00 00 07"))
def test_garbage_never_crashes(parse, buf):
    try:
        out = parse(buf)
    except (NeedData, ProtocolError):
        return
    assert 0 < out[-1] <= len(buf)


@PROPS
@given(st.sampled_from(PARSERS), st.binary(min_size=1, max_size=40))
def test_garbage_after_a_valid_version_byte(parse, buf):
    """Most random bytes die on the version byte; force the deeper paths."""
    first = b"\x01" if parse in (socks5.parse_userpass, socks5.parse_userpass_reply) else b"\x05"
    try:
        parse(first + buf)
    except (NeedData, ProtocolError):
        pass


def _valid_messages():
    return st.one_of(
        st.builds(lambda c, h, p: (socks5.parse_request, socks5.encode_request(c, h, p)),
                  st.sampled_from([1, 2, 3]), hosts, ports),
        st.builds(lambda r, h, p: (socks5.parse_reply, socks5.encode_reply(r, h, p)),
                  st.integers(0, 8), hosts, ports),
        st.builds(lambda m: (socks5.parse_greeting, socks5.encode_greeting(m)),
                  st.lists(st.integers(0, 255), min_size=1, max_size=10)),
        st.builds(lambda u, p: (socks5.parse_userpass, socks5.encode_userpass(u, p)),
                  st.text(max_size=10), st.text(max_size=10)),
        st.just((socks5.parse_method_reply, socks5.encode_method_reply(2))),
        st.just((socks5.parse_userpass_reply, socks5.encode_userpass_reply(True))),
    )


@PROPS
@given(_valid_messages())
def test_every_strict_prefix_needs_data(pm):
    parse, raw = pm
    assert parse(raw)[-1] == len(raw)
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            parse(raw[:i])
