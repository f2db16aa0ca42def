"""SOCKS5 UDP datagram header (RFC 1928 §7), GOST's UDP-TUN frame (same header, RSV = payload
length, FRAG = 0xFF) and relay's UDP CONNECT frame (``LEN(2) + payload``): byte vectors,
prefixes, round trips and garbage."""
import ipaddress

import pytest
from hypothesis import example, given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols import socks5
from gostg.relay.udp import LengthConn

H = bytes.fromhex
PROPS = settings(max_examples=300, deadline=None)

# --- vectors ----------------------------------------------------------------------------------

# RSV=0 FRAG=0 127.0.0.1:53 "hi"
DGRAM_V4 = H("0000 00 01 7f000001 0035") + b"hi"
# RSV=0 FRAG=0 [::1]:8080 "x"
DGRAM_V6 = H("0000 00 04 00000000000000000000000000000001 1f90") + b"x"
# RSV=0 FRAG=0 example.com:443 (empty payload)
DGRAM_DOMAIN = H("0000 00 03 0b") + b"example.com" + H("01bb")

# UDP-TUN: RSV=len 5, FRAG=0xFF, 10.0.0.1:1234 "hello"
TUN_V4 = H("0005 ff 01 0a000001 04d2") + b"hello"
# UDP-TUN: len 3, [2001:db8::1]:53 "abc"
TUN_V6 = H("0003 ff 04 20010db8000000000000000000000001 0035") + b"abc"
# UDP-TUN: len 2, localhost:7 "ok"
TUN_DOMAIN = H("0002 ff 03 09") + b"localhost" + H("0007") + b"ok"


def test_datagram_encode_vectors():
    assert socks5.encode_udp_datagram("127.0.0.1", 53, b"hi") == DGRAM_V4
    assert socks5.encode_udp_datagram("::1", 8080, b"x") == DGRAM_V6
    assert socks5.encode_udp_datagram("example.com", 443, b"") == DGRAM_DOMAIN


def test_datagram_parse_vectors():
    assert socks5.parse_udp_datagram(DGRAM_V4) == ("127.0.0.1", 53, b"hi")
    assert socks5.parse_udp_datagram(DGRAM_V6) == ("::1", 8080, b"x")
    assert socks5.parse_udp_datagram(DGRAM_DOMAIN) == ("example.com", 443, b"")
    # a memoryview of a receive buffer, as the relay passes it
    assert socks5.parse_udp_datagram(memoryview(bytearray(DGRAM_V4))) == ("127.0.0.1", 53, b"hi")


def test_datagram_payload_is_everything_after_the_header():
    payload = bytes(range(256)) * 4
    assert socks5.parse_udp_datagram(DGRAM_V4[:10] + payload)[2] == payload


@pytest.mark.parametrize("frag", [1, 2, 0x7F, 0x80, 0xFF])
def test_datagram_fragments_refused(frag):
    raw = bytearray(DGRAM_V4)
    raw[2] = frag
    with pytest.raises(ProtocolError, match="FRAG"):
        socks5.parse_udp_datagram(bytes(raw))


def test_datagram_truncated_is_a_protocol_error_not_need_data():
    """A datagram is whole or broken: a short one can never grow, so it is not NeedData."""
    for raw, header in ((DGRAM_V4, 10), (DGRAM_V6, 22), (DGRAM_DOMAIN, 18)):
        assert socks5.parse_udp_datagram(raw[:header])[2] == b""
        for i in range(header):
            with pytest.raises(ProtocolError):
                socks5.parse_udp_datagram(raw[:i])


def test_datagram_bad_address_types():
    for atyp in (0, 2, 5, 0xFF):
        with pytest.raises(ProtocolError):
            socks5.parse_udp_datagram(H("0000 00") + bytes([atyp]) + H("7f000001 0035"))
    with pytest.raises(ProtocolError):   # empty domain
        socks5.parse_udp_datagram(H("0000 00 03 00 0035"))


def test_tun_encode_vectors():
    assert socks5.encode_udp_tun("10.0.0.1", 1234, b"hello") == TUN_V4
    assert socks5.encode_udp_tun("2001:db8::1", 53, b"abc") == TUN_V6
    assert socks5.encode_udp_tun("localhost", 7, b"ok") == TUN_DOMAIN


def test_tun_parse_vectors():
    assert socks5.parse_udp_tun(TUN_V4) == ("10.0.0.1", 1234, b"hello", len(TUN_V4))
    assert socks5.parse_udp_tun(TUN_V6) == ("2001:db8::1", 53, b"abc", len(TUN_V6))
    assert socks5.parse_udp_tun(TUN_DOMAIN) == ("localhost", 7, b"ok", len(TUN_DOMAIN))


def test_tun_rsv_is_the_length_and_frames_are_cut_from_a_stream():
    stream = TUN_V4 + TUN_V6 + TUN_DOMAIN + TUN_V4[:7]
    out = []
    while True:
        try:
            host, port, data, used = socks5.parse_udp_tun(stream)
        except NeedData:
            break
        out.append((host, port, data))
        stream = stream[used:]
    assert out == [("10.0.0.1", 1234, b"hello"), ("2001:db8::1", 53, b"abc"), ("localhost", 7, b"ok")]
    assert stream == TUN_V4[:7]


def test_tun_frag_byte_is_not_what_frames_it():
    """GOST writes 0xFF; plain SOCKS5 code writes 0: the length rules either way."""
    raw = bytearray(TUN_V4)
    raw[2] = 0
    assert socks5.parse_udp_tun(bytes(raw)) == ("10.0.0.1", 1234, b"hello", len(TUN_V4))


def test_tun_zero_length_and_largest_datagram():
    empty = socks5.encode_udp_tun("1.2.3.4", 9, b"")
    assert empty == H("0000 ff 01 01020304 0009")
    assert socks5.parse_udp_tun(empty) == ("1.2.3.4", 9, b"", 10)
    big = bytes(i % 251 for i in range(socks5.MAX_DATAGRAM))
    raw = socks5.encode_udp_tun("1.2.3.4", 9, big)
    assert raw[:3] == H("ffff ff")
    assert socks5.parse_udp_tun(raw)[2] == big
    with pytest.raises(ProtocolError):
        socks5.encode_udp_tun("1.2.3.4", 9, big + b"!")


@pytest.mark.parametrize("raw", [TUN_V4, TUN_V6, TUN_DOMAIN])
def test_tun_every_prefix_needs_data(raw):
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            socks5.parse_udp_tun(raw[:i])


def test_tun_bad_address_types():
    for atyp in (0, 2, 5, 0x80):
        with pytest.raises(ProtocolError):
            socks5.parse_udp_tun(H("0001 ff") + bytes([atyp]) + H("7f000001 0035 00"))


# --- relay UDP CONNECT frames ---------------------------------------------------------------

def test_length_frame_vectors():
    assert LengthConn._frame(H("0003") + b"abc") == (b"abc", 5)
    assert LengthConn._frame(H("0000")) == (b"", 2)
    assert LengthConn._frame(H("0002") + b"hi" + b"next") == (b"hi", 4)
    assert LengthConn._frame(bytearray(H("0001 7a"))) == (b"z", 3)


def test_length_frame_prefixes_need_data():
    raw = H("0005") + b"hello"
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            LengthConn._frame(raw[:i])


def test_length_frame_largest():
    big = b"\xab" * 65535
    assert LengthConn._frame(H("ffff") + big) == (big, 65537)


class _Sink:
    def __init__(self):
        self.out = bytearray()

    def sendall(self, data):
        self.out += data

    def close(self):
        pass


def test_length_conn_writes_frames_and_refuses_oversize():
    sink = _Sink()
    lc = LengthConn(sink, "127.0.0.1:9")
    lc.write_to(b"abc", "ignored:1")
    lc.write_to(b"", None)
    assert bytes(sink.out) == H("0003") + b"abc" + H("0000")
    with pytest.raises(ProtocolError):
        lc.write_to(b"x" * 65536)


# --- properties -------------------------------------------------------------------------------

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).filter(
    lambda s: not s.startswith("-") and not s.endswith("-"))
domains = st.lists(_label, min_size=1, max_size=5).map(".".join).filter(lambda d: len(d) <= 255)
hosts = st.one_of(st.ip_addresses(v=4).map(str),
                 st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str), domains)
ports = st.integers(0, 65535)
payloads = st.binary(max_size=2048)


def _same_host(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


@PROPS
@given(hosts, ports, payloads)
def test_datagram_round_trip(host, port, data):
    h, p, d = socks5.parse_udp_datagram(socks5.encode_udp_datagram(host, port, data))
    assert _same_host(h, host) and (p, d) == (port, data)


@PROPS
@given(hosts, ports, payloads, st.binary(max_size=16))
def test_tun_round_trip_leaves_the_rest(host, port, data, tail):
    raw = socks5.encode_udp_tun(host, port, data)
    h, p, d, used = socks5.parse_udp_tun(raw + tail)
    assert _same_host(h, host) and (p, d, used) == (port, data, len(raw))


@PROPS
@given(hosts, ports, st.binary(max_size=64))
def test_tun_strict_prefixes_need_data(host, port, data):
    raw = socks5.encode_udp_tun(host, port, data)
    for i in range(len(raw)):
        with pytest.raises(NeedData):
            socks5.parse_udp_tun(raw[:i])


@PROPS
@given(st.binary(max_size=300))
def test_length_frame_round_trip(data):
    sink = _Sink()
    LengthConn(sink, "h:1").write_to(data)
    assert LengthConn._frame(bytes(sink.out) + b"tail") == (data, len(data) + 2)


@PROPS
@given(st.binary(max_size=300))
@example(H("0000 00 03 01 80 0035"))           # undecodable domain
@example(H("0000 00 03 02 c3a9 0035"))         # a valid UTF-8 domain
@example(H("0000 00 07 7f000001 0035"))        # bad ATYP
def test_datagram_garbage_raises_protocol_error_only(buf):
    try:
        host, port, data = socks5.parse_udp_datagram(buf)
    except ProtocolError:
        return
    assert isinstance(host, str) and 0 <= port <= 65535 and isinstance(data, bytes)


@PROPS
@given(st.binary(max_size=300))
@example(H("0001 ff 03 01 80 0035 00"))
@example(H("ffff ff 01 7f000001 0035"))
def test_tun_garbage_raises_protocol_error_or_need_data_only(buf):
    try:
        host, port, data, used = socks5.parse_udp_tun(buf)
    except (NeedData, ProtocolError):
        return
    assert 0 < used <= len(buf) and len(data) == int.from_bytes(buf[:2], "big")


@PROPS
@given(st.sampled_from([1, 3, 4]), st.binary(max_size=60))
def test_tun_garbage_after_a_valid_atyp(atyp, rest):
    """Random bytes mostly die on ATYP; force the address readers."""
    try:
        socks5.parse_udp_tun(H("0004 ff") + bytes([atyp]) + rest)
    except (NeedData, ProtocolError):
        pass
    try:
        socks5.parse_udp_datagram(H("0000 00") + bytes([atyp]) + rest)
    except ProtocolError:
        pass


@PROPS
@given(st.binary(max_size=64))
def test_length_frame_garbage_raises_need_data_only(buf):
    try:
        data, used = LengthConn._frame(buf)
    except NeedData:
        return
    assert used == len(data) + 2 <= len(buf)


def test_tun_conn_drops_empty_datagrams():
    """RSV 0 reads as "standard datagram" to GOST, which would then eat the next frames."""
    from gevent import socket as gsocket
    from gostg.relay.udp import TunConn
    a, b = gsocket.socketpair()
    with a, b:
        t = TunConn(a)
        t.write_to(b"", "127.0.0.1:53")
        t.write_to(b"x", "127.0.0.1:53")
        b.settimeout(2)
        assert b.recv(100) == socks5.encode_udp_tun("127.0.0.1", 53, b"x")
