"""gostg.protocols.smux: smux v1 frame vectors, prefixes → NeedData, garbage → ProtocolError;
and gostg.mux sessions over a socketpair (streams, FIN, back-pressure, teardown)."""
import gevent
import pytest
from gevent import socket
from hypothesis import given, settings, strategies as st

from gostg.errors import NeedData, ProtocolError
from gostg.transport.mux.config import MuxConfig
from gostg.transport.mux.session import READ_SIZE
from gostg.transport.mux.smux import Session
from gostg.protocols import smux

from .mux_checks import (echo_server, every_prefix_needs_data, flood_ends_the_session, parse_garbage,
                         slow_reader_holds_back_only_its_writer)

PROPS = settings(max_examples=200, deadline=None)

# header bytes as smux v1 writes them: VER CMD LEN(le16) SID(le32)
VECTORS = [
    (smux.SYN, 3, b"", "0100000003000000"),
    (smux.FIN, 3, b"", "0101000003000000"),
    (smux.NOP, 0, b"", "0103000000000000"),
    (smux.PSH, 5, b"hello", "0102050005000000" + b"hello".hex()),
    (smux.PSH, 0x01020304, b"\x00" * 0x0102, "01020201" + "04030201" + "00" * 0x0102),
]


@pytest.mark.parametrize("cmd,sid,data,hexed", VECTORS)
def test_vectors_encode_and_parse(cmd, sid, data, hexed):
    wire = bytes.fromhex(hexed)
    assert smux.encode_frame(cmd, sid, data) == wire
    assert smux.parse_frame(wire) == (cmd, sid, data, len(wire))


def test_parse_from_offset_in_a_stream_of_frames():
    wire = smux.encode_frame(smux.SYN, 3) + smux.encode_frame(smux.PSH, 3, b"ab") + b"\x01"
    cmd, sid, data, pos = smux.parse_frame(wire)
    assert (cmd, sid, data, pos) == (smux.SYN, 3, b"", 8)
    assert smux.parse_frame(wire, pos) == (smux.PSH, 3, b"ab", 18)
    with pytest.raises(NeedData):
        smux.parse_frame(wire, 18)


def test_bad_version_and_commands_are_protocol_errors():
    for wire in ("0200000003000000", "0004000003000000", "0104080003000000", "0105000000000000",
                 "01ff000000000000", "ff02000000000000", "0100010003000000", "0103020000000000"):
        with pytest.raises(ProtocolError):
            smux.parse_frame(bytes.fromhex(wire))


def test_payload_too_large_cannot_be_encoded():
    with pytest.raises(ValueError):
        smux.encode_frame(smux.PSH, 3, b"x" * (smux.MAX_PAYLOAD + 1))


@PROPS
@given(st.sampled_from([smux.SYN, smux.FIN, smux.PSH, smux.NOP]), st.integers(0, 2**32 - 1),
       st.binary(max_size=300))
def test_roundtrip_and_every_prefix_needs_data(cmd, sid, data):
    data = data if cmd == smux.PSH else b""
    wire = smux.encode_frame(cmd, sid, data)
    assert smux.parse_frame(wire + b"trailing") == (cmd, sid, data, len(wire))
    every_prefix_needs_data(smux.parse_frame, wire)


@PROPS
@given(st.binary(max_size=200))
def test_garbage_raises_only_needdata_or_protocolerror(buf):
    parse_garbage(smux.parse_frame, buf)


# --- sessions over a socketpair ------------------------------------------------------------

def _pair(**cfg):
    a, b = socket.socketpair()
    config = MuxConfig(keepalive_interval=0, **cfg)
    client = Session(a, client=True, config=config).start()
    server = Session(b, client=False, config=config)
    return client, server


def test_streams_echo_concurrently_and_close_cleans_up():
    client, server = _pair(frame_size=1000)
    g = echo_server(server)
    payload = bytes(range(256)) * 40

    def one(i):
        s = client.open()
        s.sendall(payload + bytes([i]))
        got = bytearray()
        while len(got) < len(payload) + 1:
            got += s.recv(65536)
        s.close()
        return bytes(got)

    jobs = [gevent.spawn(one, i) for i in range(20)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    assert [j.value for j in jobs] == [payload + bytes([i]) for i in range(20)]
    with gevent.Timeout(5):
        while server.streams or client.streams:
            gevent.sleep(0.01)
    client.close()
    g.join(timeout=5)
    assert server.closed and g.dead
    assert server.opened == 20


def test_fin_gives_eof_after_buffered_bytes_and_sendall_then_fails():
    client, server = _pair()
    s = client.open()
    it = server.accept()       # keep the generator: dropping it ends the session
    accepted = next(it)
    accepted.sendall(b"last words")
    accepted.close()
    with gevent.Timeout(5):
        assert s.recv(100) == b"last words"
        assert s.recv(100) == b""
    with pytest.raises(BrokenPipeError):
        s.sendall(b"x")
    s.close()
    client.close()
    it.close()
    assert server.closed


def test_session_death_ends_every_stream_and_opening_fails():
    client, server = _pair()
    s = client.open()
    it = server.accept()
    next(it)
    it.close()                 # the server side goes away
    with gevent.Timeout(5):
        assert s.recv(10) == b""
        while client.alive:
            gevent.sleep(0.01)
    with pytest.raises(OSError):
        client.open()


def test_backpressure_stops_reading_until_a_stream_is_read():
    client, server = _pair(max_receive=4096)
    s = client.open()
    accepted = []
    g = gevent.spawn(lambda: [accepted.append(x) for x in server.accept()])
    sender = gevent.spawn(s.sendall, b"z" * 4000000)
    gevent.sleep(0.2)
    assert not sender.ready(), "the writer must be held back while nobody reads"
    assert server.buffered <= 4096 + READ_SIZE     # at most one read beyond the budget
    got = 0
    with gevent.Timeout(5):
        while got < 4000000:
            got += len(accepted[0].recv(65536))
    sender.join(timeout=5)
    assert sender.successful()
    client.close()
    g.join(timeout=5)


def test_garbage_from_peer_closes_the_session():
    a, b = socket.socketpair()
    server = Session(b, client=False, config=MuxConfig(keepalive_interval=0))
    a.sendall(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ProtocolError):
        list(server.accept())
    assert server.closed
    a.close()


def test_keepalive_timeout_closes_a_silent_session():
    a, b = socket.socketpair()
    server = Session(b, client=False, config=MuxConfig(keepalive_interval=0.05, keepalive_timeout=0.15))
    with gevent.Timeout(5):
        while server.alive:
            gevent.sleep(0.02)
    assert a.recv(8) == smux.encode_frame(smux.NOP, 0)
    a.close()


def test_mux_config_reads_gost3_keys_and_the_old_spellings():
    from gostg.errors import ConfigError
    from gostg.config.metadata import Metadata
    c = MuxConfig.from_md(Metadata({"mux.keepaliveInterval": "3s", "mux.keepaliveTimeout": "9s",
                                    "mux.maxFrameSize": 1000, "mux.maxReceiveBuffer": 65536, "mux.version": 1}))
    assert (c.keepalive_interval, c.keepalive_timeout, c.frame_size, c.max_receive) == (3.0, 9.0, 1000, 65536)
    assert c.max_stream_buffer == 65536      # the default window is capped by a smaller receive buffer
    c = MuxConfig.from_md(Metadata({"muxKeepAliveInterval": "4s", "muxMaxFrameSize": 2000}))
    assert (c.keepalive_interval, c.frame_size) == (4.0, 2000)
    assert MuxConfig.from_md(Metadata({"mux.keepaliveDisabled": True})).keepalive_interval == 0.0
    d = MuxConfig.from_md(Metadata({}))
    assert (d.keepalive_interval, d.keepalive_timeout, d.max_receive) == (10.0, 30.0, 4 * 1024 * 1024)
    assert (d.type, d.version, d.max_stream_buffer) == ("smux", 1, 1 << 20)   # GOST: 65536 (see config.py)
    assert MuxConfig.from_md(Metadata({}), version=2).version == 2        # mtcp's default
    assert MuxConfig.from_md(Metadata({"mux.version": 1}), version=2).version == 1
    y = MuxConfig.from_md(Metadata({"mux.type": "yamux", "mux.maxStreamWindow": 1 << 20}))
    assert (y.type, y.keepalive_interval, y.max_stream_window) == ("yamux", 30.0, 1 << 20)
    # the spellings of GOST's reference pages (muxType, muxMaxStreamWindow, muxMaxStreamBuffer)
    y = MuxConfig.from_md(Metadata({"muxType": "YAMUX", "muxMaxStreamWindow": 1 << 19}))
    assert (y.type, y.max_stream_window) == ("yamux", 1 << 19)
    assert MuxConfig.from_md(Metadata({"muxMaxStreamBuffer": 1 << 17})).max_stream_buffer == 1 << 17
    with pytest.raises(ConfigError, match="mux.version: smux version 3 is not supported"):
        MuxConfig.from_md(Metadata({"mux.version": 3}))
    with pytest.raises(ConfigError, match="mux type 'quic'"):
        MuxConfig.from_md(Metadata({"mux.type": "quic"}))
    with pytest.raises(ConfigError, match="keepalive timeout"):
        MuxConfig.from_md(Metadata({"mux.keepaliveInterval": "20s", "mux.keepaliveTimeout": "5s"}))
    with pytest.raises(ConfigError, match="frame size"):
        MuxConfig.from_md(Metadata({"mux.maxFrameSize": 70000}))
    with pytest.raises(ConfigError, match="at least 262144"):
        MuxConfig.from_md(Metadata({"mux.type": "yamux", "mux.maxStreamWindow": 65536}))
    with pytest.raises(ConfigError, match="stream buffer"):
        MuxConfig.from_md(Metadata({"mux.maxStreamBuffer": 1 << 20, "mux.maxReceiveBuffer": 65536}))


# --- version 2: window updates ------------------------------------------------------------

V2_VECTORS = [
    # VER=2 CMD=UPD LEN=8 SID=3 | CONSUMED=65536 WINDOW=65536 (little endian)
    (3, 65536, 65536, "0204080003000000" "00000100" "00000100"),
    (0xFFFFFFFF, 0xFFFFFFFF, 262144, "02040800ffffffff" "ffffffff" "00000400"),
]


@pytest.mark.parametrize("sid,consumed,window,hexed", V2_VECTORS)
def test_v2_window_update_vectors(sid, consumed, window, hexed):
    wire = bytes.fromhex(hexed)
    assert smux.encode_upd(sid, consumed, window) == wire
    cmd, got_sid, payload, pos = smux.parse_frame(wire, 0, version=2)
    assert (cmd, got_sid, smux.parse_upd(payload), pos) == (smux.UPD, sid, (consumed, window), 16)
    with pytest.raises(ProtocolError):          # no UPD in a version 1 session
        smux.parse_frame(wire.replace(b"\x02", b"\x01", 1), 0, version=1)
    with pytest.raises(ProtocolError):          # and no version 2 frame in one either
        smux.parse_frame(wire, 0, version=1)


def test_v2_upd_of_the_wrong_size_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="UPD of 4 bytes"):
        smux.parse_frame(bytes.fromhex("020404000300000000000000"), 0, version=2)


@PROPS
@given(st.binary(max_size=200))
def test_v2_garbage_raises_only_needdata_or_protocolerror(buf):
    parse_garbage(smux.parse_frame, buf, 2)


def test_v2_slow_reader_holds_back_only_its_own_writer():
    """Nothing read yet: the peer's first guess of our window (262144) is all that arrives;
    once read, our UPD says 64 KiB, so the stream never holds more than the first guess."""
    client, server = _pair(version=2, max_stream_buffer=65536)
    slow_reader_holds_back_only_its_writer(client, server, smux.INITIAL_PEER_WINDOW)


def test_v2_peer_that_ignores_the_window_ends_the_session():
    a, b = socket.socketpair()
    server = Session(b, client=False, config=MuxConfig(version=2, keepalive_interval=0))
    # 1.2 MB (the window it was granted is 1 MiB), never reading an UPD
    flood_ends_the_session(server, a, smux.encode_frame(smux.SYN, 3, version=2),
                           smux.encode_frame(smux.PSH, 3, b"x" * 60000, version=2), 20, "overran its window")


def test_v1_and_v2_peers_do_not_mix():
    a, b = socket.socketpair()
    server = Session(b, client=False, config=MuxConfig(version=2, keepalive_interval=0))
    a.sendall(smux.encode_frame(smux.SYN, 3, version=1))
    with pytest.raises(ProtocolError, match="version 1, expected 2"):
        list(server.accept())
    a.close()


def _wire_after(sock, n, timeout=5):
    got = b""
    with gevent.Timeout(timeout):
        while len(got) < n:
            got += sock.recv(n - len(got))
    return got


def test_open_with_first_bytes_sends_them_with_the_syn_and_the_first_write():
    """Rule 6: SYN, the held bytes and the first write leave in one write, in smux's order."""
    a, b = socket.socketpair()
    client = Session(a, client=True, config=MuxConfig(keepalive_interval=0)).start()
    s = client.open(b"pre")
    gevent.sleep(0.05)
    b.setblocking(False)
    with pytest.raises(BlockingIOError):
        b.recv(100)          # nothing yet: held until the stream writes, reads or closes
    b.setblocking(True)
    s.sendall(b"hello")
    want = (smux.encode_frame(smux.SYN, 3) + smux.encode_frame(smux.PSH, 3, b"pre")
            + smux.encode_frame(smux.PSH, 3, b"hello"))
    assert _wire_after(b, len(want)) == want
    # a stream that only reads (a server-first protocol) sends its opening before it waits
    s2 = client.open(b"x")
    g = gevent.spawn(s2.recv, 10)
    want = smux.encode_frame(smux.SYN, 5) + smux.encode_frame(smux.PSH, 5, b"x")
    assert _wire_after(b, len(want)) == want
    g.kill()
    # one closed unused still says it all, FIN last
    s3 = client.open(b"y")
    s3.close()
    want = smux.encode_frame(smux.SYN, 7) + smux.encode_frame(smux.PSH, 7, b"y") + smux.encode_frame(smux.FIN, 7)
    assert _wire_after(b, len(want)) == want
    client.close()
    b.close()


def test_first_bytes_reach_the_peer_session():
    client, server = _pair()
    g = echo_server(server)
    s = client.open(b"ping ")
    s.sendall(b"pong")
    assert _read_n(s, 9) == b"ping pong"
    s.close()
    client.close()
    g.join(timeout=5)


def _read_n(s, n):
    got = b""
    with gevent.Timeout(5):
        while len(got) < n:
            got += s.recv(n - len(got))
    return got
