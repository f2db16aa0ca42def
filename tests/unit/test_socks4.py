"""SOCKS4 / SOCKS4a codec: vectors from the protocol documents, round trips, garbage, prefixes."""
import pytest
from hypothesis import example, given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols import socks4

H = bytes.fromhex
PROPS = settings(max_examples=250, deadline=None)

# SOCKS4 (Ying-Da Lee): "Fred" connects to 66.102.7.99:80
SOCKS4_CONNECT = H("04 01 0050 42660763") + b"Fred" + H("00")
# SOCKS4a: DSTIP 0.0.0.x (x != 0), then USERID NUL, then the host name NUL
SOCKS4A_CONNECT = H("04 01 0050 00000001") + b"Fred" + H("00") + b"example.com" + H("00")
SOCKS4_BIND_NO_USER = H("04 02 1f90 0a000001 00")
REPLY_GRANTED = H("00 5a 0050 42660763")


def test_socks4_connect_vector():
    assert socks4.parse_request(SOCKS4_CONNECT) == (1, "66.102.7.99", 80, "Fred", len(SOCKS4_CONNECT))
    assert socks4.encode_request(1, "66.102.7.99", 80, "Fred") == SOCKS4_CONNECT


def test_socks4a_connect_vector():
    assert socks4.parse_request(SOCKS4A_CONNECT) == (1, "example.com", 80, "Fred", len(SOCKS4A_CONNECT))
    assert socks4.encode_request(1, "example.com", 80, "Fred") == SOCKS4A_CONNECT


def test_bind_without_userid():
    assert socks4.parse_request(SOCKS4_BIND_NO_USER) == (2, "10.0.0.1", 8080, "", 9)
    assert socks4.encode_request(2, "10.0.0.1", 8080) == SOCKS4_BIND_NO_USER


def test_request_leaves_following_bytes():
    assert socks4.parse_request(SOCKS4_CONNECT + b"GET /")[-1] == len(SOCKS4_CONNECT)
    assert socks4.parse_request(SOCKS4A_CONNECT + b"\x00\x00")[-1] == len(SOCKS4A_CONNECT)


def test_dstip_zero_is_plain_socks4_not_4a():
    # 0.0.0.0 is not a 4a marker (x must be non-zero): nothing follows the USERID
    msg = H("04 01 0050 00000000 00")
    assert socks4.parse_request(msg) == (1, "0.0.0.0", 80, "", 9)


def test_reply_vectors():
    assert socks4.encode_reply(socks4.GRANTED, "66.102.7.99", 80) == REPLY_GRANTED
    assert socks4.encode_reply(socks4.REJECTED) == H("00 5b 0000 00000000")
    assert socks4.encode_reply(socks4.GRANTED, "not-an-ip", 1) == H("00 5a 0001 00000000")
    assert socks4.parse_reply(REPLY_GRANTED) == (socks4.GRANTED, 8)
    assert socks4.parse_reply(REPLY_GRANTED + b"data") == (socks4.GRANTED, 8)
    for i in range(8):
        with pytest.raises(NeedData):
            socks4.parse_reply(REPLY_GRANTED[:i])


def test_wrong_version():
    with pytest.raises(ProtocolError):
        socks4.parse_request(H("05 01 00 01 7f000001 0050"))


def test_empty_4a_hostname_is_refused():
    with pytest.raises(ProtocolError):
        socks4.parse_request(H("04 01 0050 00000001 00 00"))


def test_userid_bounded():
    ok = H("04 01 0050 01020304") + b"u" * socks4.MAX_FIELD + b"\x00"
    assert socks4.parse_request(ok)[3] == "u" * socks4.MAX_FIELD
    # a peer that never sends the NUL must not make us buffer forever
    with pytest.raises(ProtocolError):
        socks4.parse_request(H("04 01 0050 01020304") + b"u" * (socks4.MAX_FIELD + 1))
    with pytest.raises(NeedData):
        socks4.parse_request(H("04 01 0050 01020304") + b"u" * socks4.MAX_FIELD)


def test_4a_hostname_bounded():
    with pytest.raises(ProtocolError):
        socks4.parse_request(H("04 01 0050 00000001 00") + b"h" * (socks4.MAX_FIELD + 1))


def test_encode_ipv6_is_refused():
    with pytest.raises(ProtocolError):
        socks4.encode_request(1, "::1", 80)


@pytest.mark.parametrize("ip", ["0.0.0.1", "0.0.0.255"])
def test_encode_reserved_4a_marker_ip_round_trips(ip):
    """0.0.0.x (x≠0) on the wire means "SOCKS4a, host name follows": encoding such an IP as
    DSTIP makes the peer wait for a host name that never comes."""
    try:
        raw = socks4.encode_request(1, ip, 80)
    except ProtocolError:
        return  # refusing is fine too
    assert socks4.parse_request(raw) == (1, ip, 80, "", len(raw))


# --- property tests ---------------------------------------------------------------------------

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=15)
domains = st.lists(_label, min_size=2, max_size=4).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str).filter(lambda s: not (s.startswith("0.0.0.") and s != "0.0.0.0"))
userids = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=40).filter(
    lambda u: len(u.encode()) <= socks4.MAX_FIELD)


@PROPS
@given(st.sampled_from([1, 2]), st.one_of(ipv4, domains), st.integers(0, 65535), userids)
def test_request_round_trip(cmd, host, port, userid):
    raw = socks4.encode_request(cmd, host, port, userid)
    assert socks4.parse_request(raw) == (cmd, host, port, userid, len(raw))


@PROPS
@given(st.sampled_from([1, 2]), st.one_of(ipv4, domains), st.integers(0, 65535), userids)
def test_request_every_strict_prefix_needs_data(cmd, host, port, userid):
    raw = socks4.encode_request(cmd, host, port, userid)
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            socks4.parse_request(raw[:i])


@PROPS
@given(st.sampled_from([90, 91, 92, 93]), ipv4, st.integers(0, 65535))
def test_reply_round_trip(code, host, port):
    raw = socks4.encode_reply(code, host, port)
    assert socks4.parse_reply(raw) == (code, 8)


@PROPS
@given(st.sampled_from([socks4.parse_request, socks4.parse_reply]), st.binary(max_size=300))
@example(socks4.parse_request, H("04 01 0050 00000001 ff00 ff80fe00"))
@example(socks4.parse_request, H("04 01 0050 00000007 00") + b"\xc3" * 300)
def test_garbage_never_crashes(parse, buf):
    try:
        out = parse(buf)
    except (NeedData, ProtocolError):
        return
    assert 0 < out[-1] <= len(buf)


@PROPS
@given(st.binary(max_size=300))
def test_garbage_after_valid_header(tail):
    try:
        socks4.parse_request(b"\x04\x01\x00\x50" + tail)
    except (NeedData, ProtocolError):
        pass
