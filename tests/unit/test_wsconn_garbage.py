"""WSConn fed garbage (hypothesis): whatever bytes a peer sends, gostg/wsconn.py raises only what
it documents — ProtocolError from a handshake, and once the tunnel is up nothing at all:
``recv`` returns payload bytes or ``b""`` (EOF: close frame, unparseable frame or closed
socket); writes after EOF raise an OSError (BrokenPipeError). Never a wsproto exception, a
UnicodeError or a hang.

The inner conn is a scripted stand-in (chunks to read, then EOF; writes recorded) so every
example runs in microseconds and a read loop that never ends is caught by counting reads."""
import base64
import hashlib
import os
import re
import struct

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import BytesMessage, CloseConnection, Request

from gostg.errors import ProtocolError
from gostg.transport.ws import WSConn, client_handshake, server_handshake

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: reads past EOF a conn may make before we call it a busy loop
MAX_EOF_READS = 50


class ScriptedConn:
    """Reads return ``chunks`` in order, then ``b""`` forever (counted); writes are kept."""

    def __init__(self, chunks, on_send=None):
        self.chunks = list(chunks)
        self.sent = bytearray()
        self.on_send = on_send
        self.eof_reads = 0
        self.closed = False

    def recv(self, n):
        if self.chunks:
            c = self.chunks.pop(0)
            if len(c) > n:
                self.chunks.insert(0, c[n:])
                c = c[:n]
            return c
        self.eof_reads += 1
        assert self.eof_reads <= MAX_EOF_READS, "WSConn keeps reading a closed conn (busy loop)"
        return b""

    def sendall(self, data):
        if self.closed:
            raise BrokenPipeError("closed")
        self.sent += data
        if self.on_send is not None:
            self.on_send(self, bytes(data))

    def close(self):
        self.closed = True

    def settimeout(self, t):
        pass

    def getpeername(self):
        return ("127.0.0.1", 1)


def upgrade_request(path="/ws"):
    return WSConnection(ConnectionType.CLIENT).send(Request(host="example.com", target=path))


def masked_frame(first, opcode_payload, mask):
    """A client frame: FIN/RSV/opcode byte ``first``, masked ``payload`` (lengths in all three
    encodings), so garbage also reaches wsproto's opcode, control-frame and UTF-8 checks."""
    n = len(opcode_payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((first, 0x80 | 127)) + struct.pack("!Q", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(opcode_payload))
    return head + mask + body


frames = st.builds(masked_frame, st.integers(0, 255), st.binary(max_size=300), st.binary(min_size=4, max_size=4))
junk = st.binary(min_size=1, max_size=200)
chunks = st.lists(st.one_of(frames, junk), min_size=1, max_size=8)


def drain(ws, limit=200):
    """Read until EOF (bounded); → every payload byte received."""
    got = bytearray()
    for _ in range(limit):
        d = ws.recv(4096)
        if not d:
            return bytes(got), True
        got += d
    return bytes(got), False


def assert_eof_is_sticky(ws):
    assert ws.recv(10) == b""
    buf = bytearray(8)
    assert ws.recv_into(buf) == 0
    with pytest.raises(OSError):
        ws.sendall(b"after eof")
    ws.close()                 # best-effort close frame: never raises


# --- server side ----------------------------------------------------------------------------------

@PROPS
@given(chunks, st.booleans())
@example([b"\x88\x80\x00\x00\x00\x00"], False)          # a masked close frame, empty payload
@example([masked_frame(0x81, b"\xff\xfe", b"abcd")], True)   # text frame with invalid UTF-8
@example([masked_frame(0x89, b"x" * 200, b"abcd")], False)   # a ping over 125 bytes
@example([b"\x82\x05hello"], False)                      # unmasked client frame
def test_server_conn_garbage_is_eof_never_an_exception(parts, same_segment):
    head = upgrade_request()
    script = [head + parts[0], *parts[1:]] if same_segment else [head, *parts]
    conn = ScriptedConn(script)
    ws = server_handshake(conn)
    assert isinstance(ws, WSConn) and conn.sent.startswith(b"HTTP/1.1 101")
    _, eof = drain(ws)
    assert eof, "garbage then a closed conn must end in EOF"
    assert_eof_is_sticky(ws)


@PROPS
@given(st.binary(min_size=1, max_size=400), st.integers(1, 64))
@example(b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50", 64)
@example(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 7)
@example(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 64)
def test_server_handshake_garbage_is_protocol_error(data, step):
    conn = ScriptedConn([data[i:i + step] for i in range(0, len(data), step)])
    with pytest.raises(ProtocolError) as info:
        server_handshake(conn)
    assert info.value.reply in (None, 400, 404)
    if info.value.reply == 400:
        assert conn.sent.startswith(b"HTTP/1.1 400")


# --- client side ----------------------------------------------------------------------------------

def accept_answer(extra):
    """An ``on_send`` that answers the client's upgrade request with a correct 101 (its key
    hashed) followed by ``extra`` garbage, as a server would in one segment."""

    def on_send(conn, data):
        m = re.search(rb"sec-websocket-key: *([^\r\n]+)", data, re.I)
        if m is None:
            return
        accept = base64.b64encode(hashlib.sha1(m.group(1).strip() + GUID).digest())
        conn.chunks.append(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + extra[0])
        conn.chunks.extend(extra[1:])

    return on_send


def server_frame(first, payload):
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    return bytes((first, 126)) + struct.pack("!H", n) + payload


client_chunks = st.lists(st.one_of(st.builds(server_frame, st.integers(0, 255), st.binary(max_size=300)), junk),
                         min_size=1, max_size=8)


@PROPS
@given(client_chunks)
@example([b"\x81\x02\xc3\x28"])                # text frame, invalid UTF-8
@example([b"\x82\x85\x00\x00\x00\x00hello"])   # masked frame from a server
@example([b"\x88\x01\x00"])                    # close frame with a 1-byte payload
def test_client_conn_garbage_is_eof_never_an_exception(parts):
    conn = ScriptedConn([])
    conn.on_send = accept_answer(parts)
    ws = client_handshake(conn, "example.com:80")
    conn.on_send = None
    _, eof = drain(ws)
    assert eof
    assert_eof_is_sticky(ws)


@PROPS
@given(st.binary(min_size=1, max_size=400))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
@example(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
def test_client_handshake_garbage_is_protocol_error(data):
    conn = ScriptedConn([])
    conn.on_send = lambda c, d: c.chunks.append(data) if not c.chunks else None
    with pytest.raises(ProtocolError):
        client_handshake(conn, "example.com:80")


def test_scripted_conn_catches_a_read_loop():
    """The busy-loop guard itself: reading a closed conn forever must trip it."""
    conn = ScriptedConn([])
    with pytest.raises(AssertionError, match="busy loop"):
        for _ in range(MAX_EOF_READS + 1):
            conn.recv(1)


def test_valid_traffic_still_passes_the_stand_in():
    """The stand-in is faithful enough that real frames arrive as payload (so the garbage
    tests above could fail on a WSConn that drops or mangles data)."""
    payload = os.urandom(100)
    peer = WSConnection(ConnectionType.CLIENT)
    head = peer.send(Request(host="h", target="/ws"))
    conn = ScriptedConn([head])
    ws = server_handshake(conn)
    peer.receive_data(bytes(conn.sent))
    list(peer.events())
    conn.chunks += [peer.send(BytesMessage(data=payload[:40])), peer.send(BytesMessage(data=payload[40:])),
                    peer.send(CloseConnection(code=1000))]
    got, eof = drain(ws)
    assert got == payload and eof
