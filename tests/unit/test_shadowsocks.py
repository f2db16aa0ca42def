"""Shadowsocks AEAD codec: key derivation vectors, streams and datagrams captured from
shadowsocks-libev (tests/unit/data), chunk boundaries, tampering, replay, and garbage."""
import base64
import hashlib
import json
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols import shadowsocks as ss

VECTORS = json.load(open(os.path.join(os.path.dirname(__file__), "data", "shadowsocks_vectors.json")))
PW = VECTORS["password"]
CIPHERS = sorted(VECTORS["ciphers"])


def _check_plain(pt, v):
    assert len(pt) == v["plaintext_len"]
    assert pt[:64].hex() == v["plaintext_head"]
    assert hashlib.sha256(pt).hexdigest() == v["plaintext_sha256"]


# -- keys ----------------------------------------------------------------------------------------

def test_evp_bytes_to_key_matches_openssl():
    # `openssl enc -aes-256-cbc -k foobar -nosalt -md md5 -P`
    want = bytes.fromhex("3858F62230AC3C915F300C664312C63F568378529614D22DDB49237D2F60BFDF")
    assert ss.evp_bytes_to_key(b"foobar", 32) == want
    assert ss.evp_bytes_to_key(b"foobar", 16) == want[:16]
    assert ss.evp_bytes_to_key(b"foobar", 24) == want[:24]


def test_hkdf_sha1_rfc5869_case_4():
    okm = ss.hkdf_sha1(bytes([0x0b] * 11), bytes(range(13)), bytes(range(0xf0, 0xfa)), 42)
    assert okm.hex() == ("085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2"
                         "c22e422478d305f3f896")


@pytest.mark.parametrize("name,canon", [
    ("aes-128-gcm", "aes-128-gcm"), ("AES-256-GCM", "aes-256-gcm"), ("aes-192-gcm", "aes-192-gcm"),
    ("chacha20-ietf-poly1305", "chacha20-ietf-poly1305"), ("AEAD_CHACHA20_POLY1305", "chacha20-ietf-poly1305"),
    ("AEAD_AES_128_GCM", "aes-128-gcm"), ("aead_aes_256_gcm", "aes-256-gcm"),
])
def test_cipher_names_and_aliases(name, canon):
    c = ss.Cipher.new(name, "pw")
    assert c.name == canon
    assert c.salt_size == c.spec.key_size == len(c.key)


@pytest.mark.parametrize("name", ["", "rc4-md5", "aes-256-cfb", "2022-blake3-aes-128-gcm", "bogus"])
def test_unknown_cipher_is_refused(name):
    with pytest.raises(ProtocolError):
        ss.Cipher.new(name, "pw")


def test_raw_key_must_fit_the_cipher():
    assert ss.Cipher.new("aes-128-gcm", key="k" * 16).key == b"k" * 16
    with pytest.raises(ProtocolError):
        ss.Cipher.new("aes-128-gcm", key="short")


def test_plain_names():
    assert ss.is_plain("none") and ss.is_plain("DUMMY") and not ss.is_plain("aes-128-gcm")


# -- vectors from shadowsocks-libev --------------------------------------------------------------

@pytest.mark.parametrize("name", CIPHERS)
@pytest.mark.parametrize("side", ["tcp_client", "tcp_server"])
def test_decrypts_libev_stream(name, side):
    v = VECTORS["ciphers"][name][side]
    wire = base64.b64decode(v["wire_b64"])
    dec = ss.Decryptor(ss.Cipher.new(name, PW))
    pt = dec.feed(wire)
    _check_plain(pt, v)
    assert dec.chunks >= 2 and dec.buffered == 0  # the vectors span more than one chunk


@pytest.mark.parametrize("name", CIPHERS)
def test_libev_client_stream_starts_with_target(name):
    v = VECTORS["ciphers"][name]["tcp_client"]
    pt = ss.Decryptor(ss.Cipher.new(name, PW)).feed(base64.b64decode(v["wire_b64"]))
    assert ss.parse_target(pt) == ("example.com", 80, 15)


@pytest.mark.parametrize("name", CIPHERS)
def test_decrypts_libev_datagrams(name):
    c = ss.Cipher.new(name, PW)
    u = VECTORS["ciphers"][name]["udp_client"]
    assert ss.unpack_udp(c, bytes.fromhex(u["wire"])) == (u["host"], u["port"], bytes.fromhex(u["payload"]))
    u = VECTORS["ciphers"][name]["udp_server"]
    host, _port, payload = ss.unpack_udp(c, bytes.fromhex(u["wire"]))
    assert host == u["host"] and payload == bytes.fromhex(u["payload"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=40))
def test_libev_stream_in_any_pieces(sizes):
    name = "chacha20-ietf-poly1305"
    v = VECTORS["ciphers"][name]["tcp_client"]
    wire = base64.b64decode(v["wire_b64"])
    dec = ss.Decryptor(ss.Cipher.new(name, PW))
    out, pos, i = [], 0, 0
    while pos < len(wire):
        n = sizes[i % len(sizes)]
        out.append(dec.feed(wire[pos:pos + n]))
        pos += n
        i += 1
    _check_plain(b"".join(out), v)


def test_wrong_password_fails_and_stays_failed():
    v = VECTORS["ciphers"]["aes-256-gcm"]["tcp_client"]
    dec = ss.Decryptor(ss.Cipher.new("aes-256-gcm", "not the password"))
    with pytest.raises(ProtocolError, match="authentication failed on first chunk"):
        dec.feed(base64.b64decode(v["wire_b64"]))
    with pytest.raises(ProtocolError):
        dec.feed(b"more")


# -- our own streams ----------------------------------------------------------------------------

SIZES = [0, 1, 2, ss.MAX_PAYLOAD - 1, ss.MAX_PAYLOAD, ss.MAX_PAYLOAD + 1, 2 * ss.MAX_PAYLOAD, 2 * ss.MAX_PAYLOAD + 7]


@pytest.mark.parametrize("name", ss.cipher_names())
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_at_chunk_boundaries(name, size):
    c = ss.Cipher.new(name, "pw")
    data = os.urandom(size)
    enc = ss.Encryptor(c)
    wire = enc.encrypt(data)
    chunks = -(-size // ss.MAX_PAYLOAD)
    assert len(wire) == c.salt_size + size + chunks * (2 + 2 * ss.TAG_SIZE)
    # cut the wire at every chunk's seams (salt, length, payload) and one byte either side
    cuts = {0, c.salt_size}
    pos = c.salt_size
    for i in range(chunks):
        n = min(ss.MAX_PAYLOAD, size - i * ss.MAX_PAYLOAD)
        cuts |= {pos + 1, pos + 2 + ss.TAG_SIZE - 1, pos + 2 + ss.TAG_SIZE, pos + 2 + ss.TAG_SIZE + n + ss.TAG_SIZE - 1}
        pos += 2 + ss.TAG_SIZE + n + ss.TAG_SIZE
    for cut in sorted(x for x in cuts if 0 <= x <= len(wire)):
        dec = ss.Decryptor(c)
        assert dec.feed(wire[:cut]) + dec.feed(wire[cut:]) == data
        assert dec.buffered == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=5000), max_size=8), st.integers(min_value=1, max_value=ss.MAX_PAYLOAD))
def test_round_trip_many_writes(writes, chunk):
    c = ss.Cipher.new("aes-128-gcm", "pw")
    enc, dec = ss.Encryptor(c), ss.Decryptor(c)
    got = b"".join(dec.feed(enc.encrypt(w, chunk)) for w in writes)
    assert got == b"".join(writes)


def test_salt_is_sent_once_even_for_an_empty_first_write():
    c = ss.Cipher.new("aes-128-gcm", "pw")
    enc = ss.Encryptor(c, salt=bytes(16))
    assert enc.encrypt(b"") == bytes(16)
    assert len(enc.encrypt(b"x")) == 2 + 16 + 1 + 16


def test_fixed_salt_stream_is_deterministic():
    # computed independently from the spec with cryptography's AESGCM
    c = ss.Cipher.new("aes-128-gcm", "pw")
    salt = bytes(range(16))
    aead = AESGCM(ss.hkdf_sha1(ss.evp_bytes_to_key(b"pw", 16), salt, b"ss-subkey", 16))
    want = salt + aead.encrypt(bytes(12), b"\x00\x05", None) + aead.encrypt(b"\x01" + bytes(11), b"hello", None)
    assert ss.Encryptor(c, salt=salt).encrypt(b"hello") == want


@pytest.mark.parametrize("where", ["length", "payload", "salt"])
def test_tampering_is_detected(where):
    c = ss.Cipher.new("chacha20-ietf-poly1305", "pw")
    wire = bytearray(ss.Encryptor(c).encrypt(b"payload bytes"))
    i = {"salt": 0, "length": 32, "payload": 32 + 18 + 3}[where]
    wire[i] ^= 1
    with pytest.raises(ProtocolError):
        ss.Decryptor(c).feed(bytes(wire))


def test_oversized_length_is_refused():
    c = ss.Cipher.new("aes-128-gcm", "pw")
    salt = os.urandom(16)
    aead = c.aead(salt)
    wire = salt + aead.encrypt(bytes(12), (ss.MAX_PAYLOAD + 1).to_bytes(2, "big"), None)
    with pytest.raises(ProtocolError, match="chunk length"):
        ss.Decryptor(c).feed(wire)


def test_truncated_stream_waits_for_more():
    c = ss.Cipher.new("aes-128-gcm", "pw")
    wire = ss.Encryptor(c).encrypt(b"abc")
    dec = ss.Decryptor(c)
    assert dec.feed(wire[:-1]) == b"" and dec.buffered > 0
    assert dec.feed(wire[-1:]) == b"abc"


# -- replay ---------------------------------------------------------------------------------------

def test_replayed_stream_is_refused():
    c = ss.Cipher.new("aes-256-gcm", "pw")
    f = ss.SaltFilter()
    wire = ss.Encryptor(c).encrypt(b"first request")
    assert ss.Decryptor(c, f).feed(wire) == b"first request"
    with pytest.raises(ProtocolError, match="replayed salt"):
        ss.Decryptor(c, f).feed(wire)


def test_garbage_does_not_poison_the_filter():
    c = ss.Cipher.new("aes-256-gcm", "pw")
    f = ss.SaltFilter()
    wire = ss.Encryptor(c).encrypt(b"x")
    with pytest.raises(ProtocolError):
        ss.Decryptor(c, f).feed(wire[:32] + os.urandom(40))  # same salt, bad chunk
    assert len(f) == 0
    assert ss.Decryptor(c, f).feed(wire) == b"x"


def test_salt_filter_forgets_after_two_periods_and_stays_bounded():
    now = [0.0]
    f = ss.SaltFilter(period=10, capacity=3, clock=lambda: now[0])
    f.add(b"a")
    now[0] = 11
    assert f.seen(b"a")          # rotated once: still remembered
    now[0] = 22
    assert not f.seen(b"a")      # two periods: forgotten
    for i in range(10):
        f.add(bytes([i]))
        assert len(f) <= 6       # two generations of at most `capacity`


# -- target header ---------------------------------------------------------------------------------

@pytest.mark.parametrize("host,port,raw", [
    ("1.2.3.4", 80, "01010203040050"),
    ("::1", 443, "04" + "00" * 15 + "01" + "01bb"),
    ("example.com", 8080, "030b" + b"example.com".hex() + "1f90"),
])
def test_target_header(host, port, raw):
    b = bytes.fromhex(raw)
    assert ss.encode_target(host, port) == b
    assert ss.parse_target(b + b"tail") == (host, port, len(b))
    with pytest.raises(NeedData):
        ss.parse_target(b[:-1])


def test_target_header_bad_type():
    with pytest.raises(ProtocolError):
        ss.parse_target(b"\x09\x00\x00")


# -- UDP -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ss.cipher_names())
def test_udp_round_trip(name):
    c = ss.Cipher.new(name, "pw")
    pkt = ss.pack_udp(c, "example.com", 53, b"query")
    assert len(pkt) == c.salt_size + 1 + 1 + 11 + 2 + 5 + ss.TAG_SIZE
    assert ss.unpack_udp(c, pkt) == ("example.com", 53, b"query")
    with pytest.raises(ProtocolError):
        ss.unpack_udp(ss.Cipher.new(name, "other"), pkt)
    with pytest.raises(ProtocolError):
        ss.unpack_udp(c, pkt[:c.salt_size + 3])


def test_udp_empty_header_is_protocol_error():
    c = ss.Cipher.new("aes-128-gcm", "pw")
    with pytest.raises(ProtocolError):
        ss.unpack_udp(c, ss.encrypt_packet(c, b""))


# -- garbage ---------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ss.cipher_names()), st.lists(st.binary(max_size=200), max_size=5))
def test_garbage_stream_raises_protocol_error_or_waits(name, pieces):
    dec = ss.Decryptor(ss.Cipher.new(name, "pw"))
    try:
        for p in pieces:
            assert dec.feed(p) == b""
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_datagram_raises_protocol_error(data):
    with pytest.raises(ProtocolError):
        ss.unpack_udp(ss.Cipher.new("aes-128-gcm", "pw"), data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_target_header(data):
    try:
        host, port, used = ss.parse_target(data)
    except (ProtocolError, NeedData):
        return
    assert 0 < used <= len(data) and 0 <= port <= 65535


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_valid_chunk_then_garbage(garbage):
    c = ss.Cipher.new("aes-128-gcm", "pw")
    dec = ss.Decryptor(c)
    assert dec.feed(ss.Encryptor(c).encrypt(b"ok")) == b"ok"
    try:
        assert dec.feed(garbage) == b""
    except ProtocolError:
        pass
