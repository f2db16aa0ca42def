"""TLS ClientHello codec: real hellos from Python's ssl module, SNI rewrite round trips,
GOST's hidden-name encoding, prefixes (NeedData) and garbage (ProtocolError only)."""
import ssl
import struct

import pytest
from hypothesis import given, settings, strategies as st

from gostg.connectors.sni import disguise
from gostg.errors import NeedData, ProtocolError
from gostg.protocols import http, tls_hello

PROPS = settings(max_examples=300, deadline=None)


def client_hello(server_hostname="example.com", tls13=True):
    """The first flight a real TLS client sends (one or more records)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


HELLO = client_hello()


def test_real_hello_server_name():
    assert HELLO[0] == 0x16
    assert tls_hello.server_name(HELLO) == "example.com"
    hello, used = tls_hello.parse_client_hello(HELLO)
    assert used == len(HELLO)
    assert hello.encode_records() == HELLO  # decode/encode is lossless
    assert tls_hello.server_name(client_hello("a.b.c.test", tls13=False)) == "a.b.c.test"


def test_hello_without_sni():
    # an IP address is never sent as SNI (RFC 6066 §3)
    assert tls_hello.server_name(client_hello("127.0.0.1")) is None


def test_trailing_bytes_not_consumed():
    hello, used = tls_hello.parse_client_hello(HELLO + b"\x17\x03\x03junk")
    assert used == len(HELLO) and hello.server_name == "example.com"


def test_every_prefix_needs_data():
    for n in range(len(HELLO)):
        with pytest.raises(NeedData):
            tls_hello.parse_client_hello(HELLO[:n])


def test_not_a_hello():
    for bad in (b"GET / HTTP/1.1\r\n\r\n",
                b"\x16\x02\x00\x00\x05",                      # SSL 2 version
                b"\x16\x03\x01\x00\x00",                      # empty record
                b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # ServerHello
                b"\x17" + HELLO[1:]):                         # application data
        with pytest.raises(ProtocolError):
            tls_hello.parse_client_hello(bad)


def test_bad_lengths_inside_hello():
    # handshake length larger than the record, record ends: a hello split across records
    # expects another handshake record; a non-handshake record then is garbage
    body = bytearray(HELLO[5:])
    body[1:4] = (len(body) - 4 + 10).to_bytes(3, "big")
    rec = HELLO[:5] + bytes(body)
    with pytest.raises(NeedData):
        tls_hello.parse_client_hello(rec)
    with pytest.raises(ProtocolError):
        tls_hello.parse_client_hello(rec + b"\x17\x03\x03\x00\x0a" + b"x" * 10)
    # extensions block length wrong
    hello, _ = tls_hello.parse_client_hello(HELLO)
    msg = bytearray(hello.encode())
    msg += b"\x00"  # one stray byte after the extensions
    msg[1:4] = (len(msg) - 4).to_bytes(3, "big")
    with pytest.raises(ProtocolError):
        tls_hello.parse_client_hello(struct.pack("!BHH", 0x16, 0x0301, len(msg)) + msg)


def test_hello_split_over_records():
    hello, _ = tls_hello.parse_client_hello(HELLO)
    msg = hello.encode()
    cut = 100
    two = (struct.pack("!BHH", 0x16, 0x0301, cut) + msg[:cut]
           + struct.pack("!BHH", 0x16, 0x0301, len(msg) - cut) + msg[cut:])
    h2, used = tls_hello.parse_client_hello(two)
    assert used == len(two) and h2.server_name == "example.com"


def test_rewrite_round_trip():
    out = tls_hello.rewrite_server_name(HELLO, "other.test")
    assert tls_hello.server_name(out) == "other.test"
    hello, used = tls_hello.parse_client_hello(out)
    assert used == len(out)
    assert struct.unpack("!H", out[3:5])[0] == len(out) - 5  # record length fixed
    assert int.from_bytes(out[6:9], "big") == len(out) - 9    # handshake length fixed
    # the sni handler restores the client's hello byte for byte
    back, name = tls_hello.restore_server_name(out)
    assert name == "example.com" and back == HELLO
    # without carrying the old name: a plain rewrite, nothing to restore
    plain = tls_hello.rewrite_server_name(HELLO, "other.test", carry=False)
    assert tls_hello.server_name(plain) == "other.test"
    assert tls_hello.restore_server_name(plain) == (plain, None)
    # a longer and a shorter name
    for name in ("x", "a-much-longer-host-name." * 8 + "test"):
        out = tls_hello.rewrite_server_name(HELLO, name, carry=False)
        assert tls_hello.server_name(out) == name
        assert tls_hello.parse_client_hello(out)[1] == len(out)


def test_rewrite_adds_sni_when_absent():
    no_sni = client_hello("127.0.0.1")
    assert tls_hello.rewrite_server_name(no_sni, "other.test") == no_sni  # GOST: nothing to hide
    out = tls_hello.rewrite_server_name(no_sni, "other.test", carry=False)
    hello, _ = tls_hello.parse_client_hello(out)
    assert hello.server_name == "other.test" and hello.extensions[0][0] == 0


def test_target_encoding():
    for name in ("example.com", "a:443", "x", "bücher.example"):
        assert tls_hello.decode_target(tls_hello.encode_target(name)) == name
    assert tls_hello.encode_target("example.com").isascii()
    assert "=" not in tls_hello.encode_target("example.com")
    for bad in ("", "abc", "!!!!", tls_hello.encode_target("example.com")[:-2] + "AA"):
        assert tls_hello.decode_target(bad) is None


def test_http_disguise():
    data = b"GET /p HTTP/1.1\r\nHost: real.test:81\r\nAccept: */*\r\n\r\nbody"
    out = disguise(data, "cdn.test")
    req, used = http.parse_request_head(out)
    assert req.headers.get("Host") == "cdn.test"
    assert tls_hello.decode_target(req.headers.get("Gost-Target")) == "real.test:81"
    assert out[used:] == b"body"
    assert disguise(b"\x00garbage", "cdn.test") == b"\x00garbage"
    assert tls_hello.server_name(disguise(HELLO, "cdn.test")) == "cdn.test"


@PROPS
@given(st.binary(max_size=600))
def test_garbage_never_crashes(data):
    for buf in (data, b"\x16" + data, b"\x16\x03\x01" + data, HELLO[:9] + data):
        try:
            hello, used = tls_hello.parse_client_hello(buf)
        except (NeedData, ProtocolError):
            continue
        assert 0 < used <= len(buf)
        try:
            hello.server_name
        except ProtocolError:
            pass


@PROPS
@given(st.integers(min_value=0, max_value=len(HELLO) - 1), st.integers(0, 255))
def test_mutated_hello_never_crashes(pos, value):
    buf = bytearray(HELLO)
    buf[pos] = value
    try:
        out = tls_hello.rewrite_server_name(bytes(buf), "other.test")
    except (NeedData, ProtocolError):
        return
    try:
        tls_hello.restore_server_name(out)
    except ProtocolError:
        pass


@PROPS
@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}\.){0,4}[a-z]{1,10}", fullmatch=True))
def test_rewrite_any_name(name):
    out = tls_hello.rewrite_server_name(HELLO, name)
    assert tls_hello.server_name(out) == name
    assert tls_hello.restore_server_name(out) == (HELLO, "example.com")
