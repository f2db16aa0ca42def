"""GOST relay codec (go-gost/relay relay.go, feature.go): byte vectors, round trips, garbage
and prefixes."""
import pytest
from hypothesis import given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols import relay as rp

H = bytes.fromhex
PROPS = settings(max_examples=200, deadline=None)

# --- vectors built from the spec (gost-spec.md §6.9) ---------------------------------------

# CONNECT with UserAuth("u","p") and Addr(example.com:80), as GOST's connector writes it:
# VER CMD FEALEN | 01 0004 01'u'01'p' | 02 000f 03 0b"example.com" 0050
CONNECT_AUTH_DOMAIN = (H("01 01 0019") + H("01 0004 01") + b"u" + H("01") + b"p"
                       + H("02 000f 03 0b") + b"example.com" + H("0050"))
CONNECT_V4 = H("01 01 000a 02 0007 01 7f000001 1f90")                           # 127.0.0.1:8080
CONNECT_V6 = H("01 01 0016 02 0013 04 00000000000000000000000000000001 0035")   # [::1]:53
RESP_OK = H("01 00 0000")
RESP_UNAUTHORIZED = H("01 02 0000")
NETWORK_UDP = H("01 01 0005 04 0002 0001")
TUNNEL = H("01 01 0013 03 0010") + bytes(range(16))


def test_request_vectors():
    req = rp.Request(rp.CMD_CONNECT, (rp.UserAuth("u", "p"), rp.Addr("example.com", 80)))
    assert rp.encode_request(req) == CONNECT_AUTH_DOMAIN
    assert rp.parse_request(CONNECT_AUTH_DOMAIN + b"GET /") == (req, len(CONNECT_AUTH_DOMAIN))
    assert rp.encode_request(rp.Request(1, (rp.Addr("127.0.0.1", 8080),))) == CONNECT_V4
    assert rp.parse_request(CONNECT_V4)[0].find(rp.Addr) == rp.Addr("127.0.0.1", 8080)
    assert rp.encode_request(rp.Request(1, (rp.Addr("::1", 53),))) == CONNECT_V6
    assert rp.parse_request(CONNECT_V6)[0].find(rp.Addr) == rp.Addr("::1", 53)
    assert rp.encode_request(rp.Request(1)) == H("01 01 0000")
    assert rp.parse_request(H("01 82 0000")) == (rp.Request(0x82), 4)
    assert rp.parse_request(H("01 82 0000"))[0].command == rp.CMD_BIND


def test_ipv4_mapped_encodes_as_ipv4():
    assert rp.encode_request(rp.Request(1, (rp.Addr("::ffff:127.0.0.1", 8080),))) == CONNECT_V4


def test_response_vectors():
    assert rp.encode_response(rp.Response()) == RESP_OK
    assert rp.encode_response(rp.Response(rp.STATUS_UNAUTHORIZED)) == RESP_UNAUTHORIZED
    assert rp.parse_response(RESP_OK + b"data") == (rp.Response(rp.STATUS_OK), 4)
    bound = H("01 00 000a 02 0007 01 0a000001 04d2")
    assert rp.parse_response(bound)[0].find(rp.Addr) == rp.Addr("10.0.0.1", 1234)


def test_network_and_tunnel_features():
    req, used = rp.parse_request(NETWORK_UDP)
    assert used == len(NETWORK_UDP) and req.find(rp.Network).name == "udp"
    assert rp.Network(0x99).name == "tcp"  # unknown ids mean tcp, as GOST
    assert rp.encode_request(req) == NETWORK_UDP
    req, _ = rp.parse_request(TUNNEL)
    assert req.find(rp.Tunnel).raw == bytes(range(16))
    assert rp.encode_request(req) == TUNNEL


def test_lenient_like_gost():
    # bytes after a feature's own fields are ignored, as GOST's Decode does
    req, _ = rp.parse_request(H("01 01 000b 02 0008 01 7f000001 0050 ff"))
    assert req.find(rp.Addr) == rp.Addr("127.0.0.1", 80)
    # an empty domain is accepted (GOST sends one for ":port")
    assert rp.parse_request(H("01 01 0007 02 0004 03 00 0050"))[0].find(rp.Addr) == rp.Addr("", 80)
    # the later feature of a kind wins
    two = rp.Request(1, (rp.Addr("a", 1), rp.Addr("b", 2)))
    assert rp.parse_request(rp.encode_request(two))[0].find(rp.Addr) == rp.Addr("b", 2)


@pytest.mark.parametrize("bad", [
    H("05 01 0000"),                        # SOCKS5 peer: bad version
    H("00"),                                # bad version, known from the first byte
    H("01 01 0002 02 00"),                  # feature header runs past FEALEN
    H("01 01 0003 02 0001"),                # feature data runs past FEALEN
    H("01 01 0004 09 0001 00"),             # unknown feature type
    H("01 01 0004 01 0001 05"),             # UserAuth: ULEN past its data
    H("01 01 0006 02 0003 01 7f00"),        # Addr: truncated IPv4
    H("01 01 0008 02 0005 07 00000000"),    # Addr: bad ATYP
    H("01 01 0004 04 0001 00"),             # Network: one byte
    H("01 01 0005 03 0002 0000"),           # Tunnel: shorter than 16 bytes
    H("01 01 0008 02 0005 03 02 ff fe 0050"),  # Addr: undecodable domain
])
def test_garbage_is_protocol_error(bad):
    with pytest.raises(ProtocolError):
        rp.parse_request(bad)
    with pytest.raises(ProtocolError):
        rp.parse_response(bad)


def test_encode_limits():
    with pytest.raises(ProtocolError):
        rp.encode_request(rp.Request(1, (rp.UserAuth("x" * 256, ""),)))
    with pytest.raises(ProtocolError):
        rp.encode_request(rp.Request(1, (rp.Addr("d" * 256, 1),)))
    with pytest.raises(ProtocolError):
        rp.encode_request(rp.Request(1, (rp.Addr("h", 70000),)))
    with pytest.raises(ProtocolError):
        rp.encode_request(rp.Request(1, tuple(rp.Tunnel(bytes(16)) for _ in range(3500))))


@pytest.mark.parametrize("msg", [CONNECT_AUTH_DOMAIN, CONNECT_V4, CONNECT_V6, RESP_OK, NETWORK_UDP, TUNNEL])
def test_strict_prefixes_need_data(msg):
    for i in range(len(msg)):
        with pytest.raises(NeedData):
            rp.parse_request(msg[:i])


# --- properties ----------------------------------------------------------------------------

_text = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
_host = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).filter(lambda ip: ip.ipv4_mapped is None).map(str),
    st.from_regex(r"[a-z0-9][a-z0-9.-]{0,60}", fullmatch=True),
)
_feature = st.one_of(
    st.builds(rp.UserAuth, _text, _text),
    st.builds(rp.Addr, _host, st.integers(0, 0xFFFF)),
    st.builds(rp.Tunnel, st.binary(min_size=16, max_size=24)),
    st.builds(rp.Network, st.integers(0, 0xFFFF)),
)
_features = st.lists(_feature, max_size=4).map(tuple)


@PROPS
@given(st.integers(0, 255), _features, st.binary(max_size=8))
def test_request_round_trip(cmd, features, tail):
    req = rp.Request(cmd, features)
    wire = rp.encode_request(req)
    assert rp.parse_request(wire + tail) == (req, len(wire))
    for i in (0, 1, 3, len(wire) - 1):
        if 0 <= i < len(wire):
            with pytest.raises(NeedData):
                rp.parse_request(wire[:i])


@PROPS
@given(st.integers(0, 255), _features)
def test_response_round_trip(status, features):
    resp = rp.Response(status, features)
    wire = rp.encode_response(resp)
    assert rp.parse_response(wire) == (resp, len(wire))


@PROPS
@given(st.one_of(st.binary(max_size=64),
                 st.binary(max_size=60).map(lambda b: H("01 01") + len(b).to_bytes(2, "big") + b),
                 st.binary(max_size=60).map(lambda b: H("01 00") + (len(b) + 3).to_bytes(2, "big") + b)))
def test_garbage_never_crashes(data):
    for parse in (rp.parse_request, rp.parse_response):
        try:
            msg, used = parse(data)
        except (ProtocolError, NeedData):
            continue
        assert 4 <= used <= len(data)
        assert isinstance(msg, (rp.Request, rp.Response))
