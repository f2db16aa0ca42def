"""GOST's SOCKS5 extension commands as bytes on the wire: MBIND (0xF2, a BIND whose peers
arrive as smux streams) and UDP-TUN (0xF3, UDP framed over the TCP connection). Both reuse the
RFC 1928 request and reply layout; the vectors pin the command codes go-gost/gosocks5 uses
(CmdMuxBind 0xF2, CmdUDPTun 0xF3)."""
import pytest

from gostg.errors import NeedData
from gostg.protocols import socks5

H = bytes.fromhex

MBIND_ANY_8000 = H("05 f2 00 01 00000000 1f40")                    # MBIND 0.0.0.0:8000
MBIND_DOMAIN = H("05 f2 00 03 09") + b"localhost" + H("2328")      # MBIND localhost:9000
MBIND_V6 = H("05 f2 00 04 00000000000000000000000000000001 1f40")  # MBIND [::1]:8000
MBIND_REPLY = H("05 00 00 01 7f000001 1f40")                       # succeeded, bound 127.0.0.1:8000
MBIND_REFUSED = H("05 02 00 01 00000000 0000")                     # not allowed (BIND disabled)
UDP_TUN_ANY = H("05 f3 00 01 00000000 0000")                       # UDP-TUN, no address (a client)
UDP_TUN_BIND = H("05 f3 00 01 00000000 1388")                      # UDP-TUN 0.0.0.0:5000 (rudp bind)
UDP_TUN_REPLY = H("05 00 00 01 00000000 0000")


def test_command_codes_are_gosts():
    assert (socks5.CMD_MBIND, socks5.CMD_UDP_TUN) == (0xF2, 0xF3)


@pytest.mark.parametrize("msg,expect", [
    (MBIND_ANY_8000, (socks5.CMD_MBIND, "0.0.0.0", 8000)),
    (MBIND_DOMAIN, (socks5.CMD_MBIND, "localhost", 9000)),
    (MBIND_V6, (socks5.CMD_MBIND, "::1", 8000)),
    (UDP_TUN_ANY, (socks5.CMD_UDP_TUN, "0.0.0.0", 0)),
    (UDP_TUN_BIND, (socks5.CMD_UDP_TUN, "0.0.0.0", 5000)),
], ids=["mbind-v4", "mbind-domain", "mbind-v6", "udptun-any", "udptun-bind"])
def test_request_vectors(msg, expect):
    assert socks5.encode_request(*expect) == msg
    assert socks5.parse_request(msg) == (*expect, len(msg))
    # what follows the request (smux frames, UDP-TUN frames) is not consumed
    assert socks5.parse_request(msg + H("00 01 02 03")) == (*expect, len(msg))


@pytest.mark.parametrize("msg", [MBIND_ANY_8000, MBIND_DOMAIN, UDP_TUN_BIND])
def test_request_prefixes_need_data(msg):
    for i in range(len(msg)):
        with pytest.raises(NeedData):
            socks5.parse_request(msg[:i])


def test_reply_vectors():
    assert socks5.encode_reply(socks5.SUCCEEDED, "127.0.0.1", 8000) == MBIND_REPLY
    assert socks5.parse_reply(MBIND_REPLY) == (socks5.SUCCEEDED, "127.0.0.1", 8000, len(MBIND_REPLY))
    assert socks5.encode_reply(socks5.NOT_ALLOWED) == MBIND_REFUSED
    assert socks5.parse_reply(MBIND_REFUSED) == (socks5.NOT_ALLOWED, "0.0.0.0", 0, len(MBIND_REFUSED))
    assert socks5.encode_reply(socks5.SUCCEEDED) == UDP_TUN_REPLY


def test_udp_tun_request_then_first_frame_in_one_segment():
    """A client may send its first UDP-TUN frame right behind the request: the request parser
    stops at its end and the frame parses from there."""
    frame = socks5.encode_udp_tun("127.0.0.1", 53, b"query")
    assert frame == H("0005 ff 01 7f000001 0035") + b"query"
    buf = UDP_TUN_ANY + frame
    cmd, host, port, used = socks5.parse_request(buf)
    assert (cmd, host, port) == (socks5.CMD_UDP_TUN, "0.0.0.0", 0)
    assert socks5.parse_udp_tun(buf[used:]) == ("127.0.0.1", 53, b"query", len(frame))


def test_ipv4_mapped_address_encodes_as_ipv4_like_gosocks5():
    from gostg.protocols import socks5
    assert socks5.encode_addr("::ffff:10.1.2.3", 53) == bytes.fromhex("01 0a010203 0035")
    assert socks5.encode_addr("::1", 53)[0] == socks5.ATYP_IPV6
