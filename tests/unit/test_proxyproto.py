"""PROXY protocol v1/v2 codec: the spec's examples, TLVs, LOCAL/UNSPEC/UNIX, garbage, prefixes,
and round trips."""
import ipaddress
import select

import pytest
from hypothesis import given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.protocols import proxyproto as pp

H = bytes.fromhex
PROPS = settings(max_examples=150, deadline=None)
SIG = pp.V2_SIG

# proxy-protocol.txt §2.1: the v1 example, and the same connection in v2 (INET, STREAM)
V1_TCP4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
V2_TCP4 = SIG + H("21 11 000c c0a80001 c0a8000b dc04 01bb")


def test_v1_tcp4_example():
    hdr, used = pp.parse(V1_TCP4 + b"GET / HTTP/1.1\r\n")
    assert used == len(V1_TCP4)
    assert (hdr.version, hdr.command, hdr.family) == (1, pp.PROXY, pp.INET)
    assert hdr.src == ("192.168.0.1", 56324) and hdr.dst == ("192.168.0.11", 443)
    assert pp.encode(1, ("192.168.0.1", 56324), ("192.168.0.11", 443)) == V1_TCP4


def test_v1_tcp6_and_unknown():
    line = b"PROXY TCP6 2001:db8::1 ::1 1024 8080\r\n"
    hdr, used = pp.parse(line)
    assert hdr.src == ("2001:db8::1", 1024) and hdr.dst == ("::1", 8080) and used == len(line)
    for line in (b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"):
        hdr, used = pp.parse(line + b"x")
        assert hdr.src is None and used == len(line)


def test_v2_tcp4_example_and_following_bytes():
    hdr, used = pp.parse(V2_TCP4 + b"\x16\x03\x01")
    assert used == len(V2_TCP4)
    assert (hdr.version, hdr.command, hdr.family) == (2, pp.PROXY, pp.INET)
    assert hdr.src == ("192.168.0.1", 56324) and hdr.dst == ("192.168.0.11", 443)
    assert pp.encode(2, ("192.168.0.1", 56324), ("192.168.0.11", 443)) == V2_TCP4


def test_v2_tlvs_are_skipped_but_kept():
    # PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", a NOOP of length 0
    tlvs = H("01 0002") + b"h2" + H("02 000b") + b"example.com" + H("04 0000")
    msg = SIG + H("21 11") + (12 + len(tlvs)).to_bytes(2, "big") + H("7f000002 7f000001 3039 0050") + tlvs
    hdr, used = pp.parse(msg + b"rest")
    assert used == len(msg) and hdr.src == ("127.0.0.2", 12345)
    assert hdr.tlvs == ((1, b"h2"), (2, b"example.com"), (4, b""))
    assert pp.encode(2, ("127.0.0.2", 12345), ("127.0.0.1", 80), hdr.tlvs) == msg


def test_v2_tlv_running_past_the_header_is_garbage():
    msg = SIG + H("21 11 0010 7f000002 7f000001 3039 0050 01 0009 6832")
    with pytest.raises(ProtocolError):
        pp.parse(msg)


def test_v2_local_unspec_unix_name_no_client():
    local = SIG + H("20 00 0000")
    hdr, used = pp.parse(local)
    assert (hdr.command, hdr.src, used) == (pp.LOCAL, None, 16)
    # LOCAL with addresses (haproxy health checks may send them): still no client
    local_addr = SIG + H("20 11 000c 0a000001 0a000002 0001 0002")
    assert pp.parse(local_addr)[0].src is None
    unspec = SIG + H("21 00 0003 aabbcc")
    assert pp.parse(unspec) == (pp.Header(2, pp.PROXY, pp.UNSPEC), 19)
    unix = SIG + H("21 31 00d8") + b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")
    hdr, used = pp.parse(unix)
    assert (hdr.family, hdr.src, used) == (pp.UNIX, None, 16 + 216)
    assert pp.encode(2, None, None) == local
    assert pp.encode(1, ("unix", 0), ("127.0.0.1", 1)) == b"PROXY UNKNOWN\r\n"


def test_v2_inet6():
    a, b = ipaddress.IPv6Address("2001:db8::5"), ipaddress.IPv6Address("::1")
    msg = SIG + H("21 21 0024") + a.packed + b.packed + H("1f90 0050")
    hdr, _ = pp.parse(msg)
    assert hdr.src == ("2001:db8::5", 8080) and hdr.dst == ("::1", 80)


def test_no_header_is_not_an_error():
    for data in (b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"\x05\x01\x00", b"POST /", b"\r\n\r\nX"):
        assert pp.parse(data) == (None, 0)


@pytest.mark.parametrize("prefix", [b"P", b"PROX", b"PROXY", b"\r", b"\r\n\r\n\x00\r\nQUI",
                                    b"PROXY TCP4 1.2.3.4", V2_TCP4[:-1], SIG + H("21 11")])
def test_prefixes_need_data(prefix):
    with pytest.raises(NeedData):
        pp.parse(prefix)


@pytest.mark.parametrize("msg", [
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",           # too many fields
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",               # too few
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",             # unknown protocol
    b"PROXY TCP4 ::1 ::2 1 2\r\n",                     # family mismatch
    b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",         # port out of range
    b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",            # leading zero
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",            # double space
    b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff\r\n",          # not ASCII
    b"PROXY " + b"A" * 120,                            # no CRLF within 107 bytes
    SIG + H("11 11 000c") + bytes(12),                 # version 1 in a v2 header
    SIG + H("22 11 000c") + bytes(12),                 # unknown command
    SIG + H("21 41 000c") + bytes(12),                 # unknown family
    SIG + H("21 13 000c") + bytes(12),                 # unknown transport
    SIG + H("21 11 0008") + bytes(8),                  # INET with short address block
    SIG + H("21 21 000c") + bytes(12),                 # INET6 with short address block
])
def test_garbage_is_refused(msg):
    with pytest.raises(ProtocolError):
        pp.parse(msg)


def test_encode_mixed_families_and_mapped_addresses():
    # a dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: that is IPv4 on the wire
    assert pp.encode(1, ("::ffff:10.0.0.1", 5), ("10.0.0.2", 6)) == b"PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n"
    hdr, _ = pp.parse(pp.encode(1, ("10.0.0.1", 5), ("::1", 6)))
    assert hdr.family == pp.INET6 and ipaddress.ip_address(hdr.src[0]).ipv4_mapped == ipaddress.ip_address("10.0.0.1")
    with pytest.raises(ValueError):
        pp.encode(3, ("10.0.0.1", 5), ("10.0.0.2", 6))


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
port = st.integers(0, 65535)
tlv = st.tuples(st.integers(0, 255), st.binary(max_size=40))


@PROPS
@given(st.sampled_from([1, 2]), st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)), port, port,
       st.lists(tlv, max_size=4), st.binary(max_size=20))
def test_round_trip(version, ips, sport, dport, tlvs, rest):
    src, dst = (ips[0], sport), (ips[1], dport)
    msg = pp.encode(version, src, dst, tlvs if version == 2 else ())
    hdr, used = pp.parse(msg + rest)
    assert used == len(msg) and (hdr.src, hdr.dst, hdr.version) == (src, dst, version)
    if version == 2:
        assert hdr.tlvs == tuple(tlvs)
    for n in range(len(msg)):   # every proper prefix asks for more bytes
        with pytest.raises(NeedData):
            pp.parse(msg[:n])


@PROPS
@given(st.binary(max_size=300))
def test_garbage_never_crashes(data):
    for buf in (data, b"PROXY " + data, SIG + data):
        try:
            hdr, used = pp.parse(buf)
        except (NeedData, ProtocolError):
            continue
        assert 0 <= used <= len(buf) and (hdr is None) == (used == 0)


# ---------------------------------------------------------------------------------------------
# Receiver: reading the header off a socket (gevent socketpair; no network)

def _pair():
    from gevent import socket
    return socket.socketpair()


def test_receiver_takes_exactly_the_header_off_the_wire():
    from gostg.transport.proxyproto import Receiver
    a, b = _pair()
    with a, b:
        b.sendall(V2_TCP4 + b"\x16\x03\x01hello")
        conn, hdr = Receiver().accept(a, "127.0.0.1")
        assert conn is a and hdr.src == ("192.168.0.1", 56324)
        assert a.recv(100) == b"\x16\x03\x01hello"   # the kernel socket, ready for TLS


def test_receiver_without_header_leaves_the_bytes():
    from gostg.transport.proxyproto import Receiver
    a, b = _pair()
    with a, b:
        b.sendall(b"GET / HTTP/1.1\r\n\r\n")
        conn, hdr = Receiver().accept(a, "127.0.0.1")
        assert (conn, hdr) == (a, None) and a.recv(100) == b"GET / HTTP/1.1\r\n\r\n"


def test_receiver_pushes_back_a_dribbled_signature_prefix():
    import gevent
    from gostg.transport.buffered import BufferedConn
    from gostg.transport.proxyproto import Receiver
    a, b = _pair()
    with a, b:
        b.sendall(b"PRO")
        g = gevent.spawn(Receiver().accept, a, "127.0.0.1")
        for _ in range(200):   # until the reader took the three bytes off the wire (bounded)
            gevent.sleep(0.005)
            if not select.select([a.fileno()], [], [], 0)[0]:
                break
        b.sendall(b"PFIND / HTTP/1.1\r\n\r\n")
        conn, hdr = g.get(timeout=5)
        assert hdr is None and isinstance(conn, BufferedConn)
        assert conn.recv(100) == b"PRO" and conn.recv(100) == b"PFIND / HTTP/1.1\r\n\r\n"


def test_receiver_timeouts_and_trust():
    from gostg.transport.proxyproto import Receiver
    a, b = _pair()
    with a, b:   # silent: no header (a server-speaks-first protocol)
        assert Receiver(timeout=0.05).accept(a, "127.0.0.1") == (a, None)
    a, b = _pair()
    with a, b:   # started, then stalled: refused
        b.sendall(b"PROXY TCP4 ")
        with pytest.raises(ProtocolError, match="incomplete"):
            Receiver(timeout=0.05).accept(a, "127.0.0.1")
    a, b = _pair()
    with a, b:
        b.sendall(V1_TCP4)
        with pytest.raises(ProtocolError, match="untrusted peer 10.0.0.1"):
            Receiver(["127.0.0.0/8"]).accept(a, "10.0.0.1")
    r = Receiver(["127.0.0.1", "10.0.0.0/8"])
    assert r.trusts("::ffff:10.1.2.3") and r.trusts("127.0.0.1") and not r.trusts("127.0.0.2")
    assert not r.trusts("not-an-ip") and Receiver().trusts("anything")
