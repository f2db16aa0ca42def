"""gostg.protocols.yamux: frame vectors from hashicorp/yamux's spec.md, prefixes → NeedData,
garbage → ProtocolError; and yamux sessions over a socketpair (streams, half-close, RST,
per-stream windows with a slow reader, pings, Go Away, teardown)."""
import gevent
import pytest
from gevent import socket
from hypothesis import given, settings, strategies as st

from gostg.errors import ProtocolError
from gostg.protocols import yamux
from gostg.transport.mux.config import MuxConfig
from gostg.transport.mux.yamux import Session

from .mux_checks import (echo_server, every_prefix_needs_data, flood_ends_the_session, parse_garbage,
                         slow_reader_holds_back_only_its_writer)

PROPS = settings(max_examples=200, deadline=None)

# VERSION TYPE FLAGS(be16) STREAMID(be32) LENGTH(be32) [DATA]
VECTORS = [
    (yamux.WINDOW_UPDATE, yamux.SYN, 1, 0, b"", "00010001" "00000001" "00000000"),
    (yamux.WINDOW_UPDATE, yamux.ACK, 2, 786432, b"", "00010002" "00000002" "000c0000"),
    (yamux.DATA, 0, 1, 2, b"hi", "00000000" "00000001" "00000002" "6869"),
    (yamux.DATA, yamux.FIN, 3, 0, b"", "00000004" "00000003" "00000000"),
    (yamux.WINDOW_UPDATE, yamux.RST, 5, 0, b"", "00010008" "00000005" "00000000"),
    (yamux.PING, yamux.SYN, 0, 7, b"", "00020001" "00000000" "00000007"),
    (yamux.PING, yamux.ACK, 0, 7, b"", "00020002" "00000000" "00000007"),
    (yamux.GO_AWAY, 0, 0, yamux.GOAWAY_PROTOCOL, b"", "00030000" "00000000" "00000001"),
]


@pytest.mark.parametrize("ftype,flags,sid,length,data,hexed", VECTORS)
def test_vectors_encode_and_parse(ftype, flags, sid, length, data, hexed):
    wire = bytes.fromhex(hexed)
    assert yamux.encode_frame(ftype, flags, sid, length, data) == wire
    assert yamux.parse_frame(wire) == (ftype, flags, sid, length, data, len(wire))


def test_bad_version_type_and_oversized_data_are_protocol_errors():
    for wire in ("01000000" "00000001" "00000000", "00040000" "00000001" "00000000",
                 "00ff0000" "00000000" "00000000"):
        with pytest.raises(ProtocolError):
            yamux.parse_frame(bytes.fromhex(wire))
    # refused from the header alone: the 1 GiB payload is never waited for
    with pytest.raises(ProtocolError, match="exceed its window"):
        yamux.parse_frame(bytes.fromhex("00000000" "00000001" "40000000"), 0, yamux.INITIAL_WINDOW)


@PROPS
@given(st.sampled_from(sorted(yamux.TYPE_NAMES)), st.integers(0, 15), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.binary(max_size=300))
def test_roundtrip_and_every_prefix_needs_data(ftype, flags, sid, value, data):
    data = data if ftype == yamux.DATA else b""
    value = len(data) if ftype == yamux.DATA else value
    wire = yamux.encode_frame(ftype, flags, sid, value, data)
    assert yamux.parse_frame(wire + b"trailing") == (ftype, flags, sid, value, data, len(wire))
    every_prefix_needs_data(yamux.parse_frame, wire)


@PROPS
@given(st.binary(max_size=200))
def test_garbage_raises_only_needdata_or_protocolerror(buf):
    parse_garbage(yamux.parse_frame, buf, yamux.INITIAL_WINDOW)


# --- sessions over a socketpair ------------------------------------------------------------

def _pair(**cfg):
    a, b = socket.socketpair()
    config = MuxConfig(type="yamux", keepalive_interval=0, **cfg)
    return Session(a, client=True, config=config).start(), Session(b, client=False, config=config)


def _accepting(server):
    accepted = []
    return accepted, gevent.spawn(lambda: [accepted.append(x) for x in server.accept()])


def _wait(cond, timeout=5):
    with gevent.Timeout(timeout):
        while not cond():
            gevent.sleep(0.01)


def test_streams_echo_concurrently_and_close_cleans_up():
    client, server = _pair()
    g = echo_server(server)
    # 307,200 bytes: beyond one 256 KiB window each way. 8 streams keep the test about 1 s alone:
    # 20 × 512 KB ran past the join timeout on a loaded 2-core box (slow, not stuck).
    payload = bytes(range(256)) * 1200

    sids = []

    def one(i):
        s = client.open()
        sids.append(s.sid)
        gevent.spawn(s.sendall, payload + bytes([i])).link(lambda _: s.shutdown(socket.SHUT_WR))
        got = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        s.close()
        return bytes(got)

    jobs = [gevent.spawn(one, i) for i in range(8)]
    gevent.joinall(jobs, timeout=60, raise_error=True)
    assert [j.value for j in jobs] == [payload + bytes([i]) for i in range(8)]
    _wait(lambda: not server.streams and not client.streams)
    assert sorted(sids) == list(range(1, 16, 2))     # the client's ids are odd, in order
    client.close()
    g.join(timeout=5)
    assert server.closed and server.opened == 8


def test_half_close_keeps_the_other_direction():
    client, server = _pair()
    accepted, g = _accepting(server)
    s = client.open()
    s.sendall(b"request")
    s.shutdown(socket.SHUT_WR)
    _wait(lambda: accepted)
    peer = accepted[0]
    assert peer.recv(100) == b"request"
    assert peer.recv(100) == b""              # the client's FIN
    peer.sendall(b"answer after FIN")         # still allowed: a half-close
    peer.close()
    assert s.recv(100) == b"answer after FIN"
    assert s.recv(100) == b""
    with pytest.raises(BrokenPipeError):
        s.sendall(b"x")
    s.close()
    _wait(lambda: not server.streams and not client.streams)
    client.close()
    g.join(timeout=5)


def test_rst_drops_buffered_bytes_and_fails_writes():
    a, b = socket.socketpair()
    server = Session(b, client=False, config=MuxConfig(type="yamux", keepalive_interval=0))
    accepted, g = _accepting(server)
    a.sendall(yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.SYN, 1) +
              yamux.encode_frame(yamux.DATA, 0, 1, data=b"lost"))
    _wait(lambda: accepted and accepted[0].buf)
    a.sendall(yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.RST, 1))
    st = accepted[0]
    _wait(lambda: st.reset)
    with gevent.Timeout(5):
        assert st.recv(10) == b""
    with pytest.raises(BrokenPipeError):
        st.sendall(b"x")
    a.close()
    g.join(timeout=5)


def test_slow_reader_holds_back_only_its_own_writer():
    """The 256 KiB window each way: the receiver holds no more than that."""
    client, server = _pair()
    slow_reader_holds_back_only_its_writer(client, server, yamux.INITIAL_WINDOW, size=3000000)


def test_a_larger_window_is_announced_with_syn_and_ack():
    a, b = socket.socketpair()
    cfg = MuxConfig(type="yamux", keepalive_interval=0, max_stream_window=1 << 20)
    client = Session(a, client=True, config=cfg)
    st = client.open()
    syn = b.recv(12)
    assert syn == yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.SYN, 1, (1 << 20) - yamux.INITIAL_WINDOW)
    assert st.recv_window == 1 << 20
    c, d = socket.socketpair()
    server = Session(d, client=False, config=cfg)
    accepted, g = _accepting(server)
    c.sendall(syn)
    with gevent.Timeout(5):
        assert c.recv(12) == yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.ACK, 1, (1 << 20) - yamux.INITIAL_WINDOW)
    assert accepted[0].send_window == 1 << 20
    for s in (a, b, c):
        s.close()
    g.join(timeout=5)
    assert server.closed


def test_data_beyond_the_window_ends_the_session():
    a, b = socket.socketpair()
    server = Session(b, client=False, config=MuxConfig(type="yamux", keepalive_interval=0))
    # 6 × 60000 bytes > 256 KiB, never reading a window update
    flood_ends_the_session(server, a, yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.SYN, 1),
                           yamux.encode_frame(yamux.DATA, 0, 1, data=b"x" * 60000), 6, "beyond its window")


def test_pings_are_answered_and_an_unanswered_ping_closes_the_session():
    a, b = socket.socketpair()
    server = Session(b, client=False, config=MuxConfig(type="yamux", keepalive_interval=0))
    g = gevent.spawn(lambda: list(server.accept()))
    a.sendall(yamux.encode_frame(yamux.PING, yamux.SYN, 0, 42))
    with gevent.Timeout(5):
        assert a.recv(12) == yamux.encode_frame(yamux.PING, yamux.ACK, 0, 42)
    a.close()
    g.join(timeout=5)

    import gostg.transport.mux.yamux as ymod
    a, b = socket.socketpair()
    old = ymod.PING_TIMEOUT
    ymod.PING_TIMEOUT = 0.1
    try:
        silent = Session(b, client=False, config=MuxConfig(type="yamux", keepalive_interval=0.05))
        _wait(lambda: silent.closed)
    finally:
        ymod.PING_TIMEOUT = old
    assert a.recv(12)[:4] == bytes.fromhex("00020001")     # it did ping
    a.close()


def test_go_away_stops_new_streams_and_an_error_code_ends_the_session():
    a, b = socket.socketpair()
    client = Session(a, client=True, config=MuxConfig(type="yamux", keepalive_interval=0)).start()
    st = client.open()
    b.sendall(yamux.encode_frame(yamux.GO_AWAY, 0, 0, yamux.GOAWAY_NORMAL))
    _wait(lambda: not client.alive)
    assert not client.closed and st.sid in client.streams   # running streams go on
    with pytest.raises(BrokenPipeError, match="Go Away"):
        client.open()
    b.sendall(yamux.encode_frame(yamux.GO_AWAY, 0, 0, yamux.GOAWAY_PROTOCOL))
    _wait(lambda: client.closed)
    b.close()


def test_a_client_refuses_streams_the_peer_opens():
    a, b = socket.socketpair()
    client = Session(a, client=True, config=MuxConfig(type="yamux", keepalive_interval=0)).start()
    b.sendall(yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.SYN, 2))
    with gevent.Timeout(5):
        assert b.recv(12) == yamux.encode_frame(yamux.WINDOW_UPDATE, yamux.RST, 2)
    assert not client.streams
    client.close()
    b.close()
