"""GOST's TUN-over-UDP keepalive (x/handler/tun): vectors, garbage."""
from hypothesis import given, settings, strategies as st

from gostg.protocols import tunkeepalive as ka

H = bytes.fromhex


def test_client_keepalive_vector():
    # GOST's client: "GOST" + passphrase in 16 bytes + each address To16()
    data = ka.encode("s3cret", ["192.168.123.2", "fd00::2"])
    assert data == (b"GOST" + b"s3cret" + bytes(10) + H("00000000000000000000ffff c0a87b02")
                    + H("fd000000000000000000000000000002"))
    assert ka.parse(data) == (b"s3cret", [H("00000000000000000000ffffc0a87b02"), H("fd000000000000000000000000000002")])
    assert ka.encode("x" * 20, [])[4:20] == b"x" * 16   # truncated, as Go's copy()


def test_server_reply_vector():
    reply = ka.encode_reply("10.77.1.2")
    assert reply == b"GOST" + H("00000000000000000000ffff 0a4d0102")
    assert ka.is_reply(reply) and ka.from16(reply[4:]) == "10.77.1.2"
    assert ka.parse(reply) is None               # 20 bytes: an answer, not a keepalive
    assert ka.encode_reply("::ffff:10.77.1.2") == reply


def test_not_keepalives():
    assert ka.parse(b"GOST" + bytes(17)) == (b"", [])   # addresses not whole: ignored
    assert ka.parse(b"GOSS" + bytes(32)) is None
    assert ka.parse(H("45000054") + bytes(80)) is None
    assert not ka.is_reply(b"GOST" + bytes(17))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_garbage_never_raises(data):
    got = ka.parse(data)
    assert got is None or (isinstance(got[0], bytes) and all(len(ip) == 16 for ip in got[1]))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=16).filter(lambda t: len(t.encode()) <= 16 and not t.endswith("\0")),
       st.lists(st.ip_addresses(), max_size=4))
def test_round_trip(key, ips):
    k, got = ka.parse(ka.encode(key, ips)) if ips else (key.encode(), [])
    assert k == key.encode()
    assert [ka.from16(ip) for ip in got] == [str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip) for ip in ips]


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses() | st.text(max_size=24))
def test_to16_text_agrees_with_ipaddress(addr):
    """to16's inet_pton fast path for text gives what ipaddress gives, and refuses what it refuses."""
    import ipaddress

    text = str(addr)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        try:
            ka.to16(text)
        except ValueError:
            return
        raise AssertionError(f"to16 took {text!r}, which ipaddress refuses")
    want = (bytes(10) + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed
    assert ka.to16(text) == want == ka.to16(ip)
    assert ka.to16("fe80::1%eth0") == ka.to16("fe80::1")   # a scope: read by ipaddress, as before
