"""WSConn: client and server sides talking over a gevent socketpair; handshake rejections;
the wire format is binary messages, as GOST's ws transport."""
import gevent
import pytest
from gevent import socket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Ping, Pong, Request

from gostg.errors import ProtocolError
from gostg.transport.ws import client_handshake, server_handshake


def pair(path="/ws", client_path="/ws", header=None):
    a, b = socket.socketpair()
    srv = gevent.spawn(server_handshake, b, path, header)
    try:
        cli = client_handshake(a, "example.com:80", client_path)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            srv.get(timeout=5)
        a.close()
        b.close()
        raise
    return cli, srv.get(timeout=5)


def read_exactly(conn, n):
    out = bytearray()
    while len(out) < n:
        d = conn.recv(n - len(out))
        if not d:
            break
        out += d
    return bytes(out)


def test_round_trip_both_ways():
    cli, srv = pair()
    cli.sendall(b"hello")
    assert read_exactly(srv, 5) == b"hello"
    srv.sendall(memoryview(b"world!"))
    buf = bytearray(3)
    assert srv is not cli
    assert cli.recv_into(buf) == 3 and buf == b"wor"   # leftovers are kept …
    assert cli.recv(100) == b"ld!"                     # … for the next read
    cli.close()
    assert srv.recv(10) == b""                          # close frame = EOF
    srv.close()


def test_large_transfer_is_byte_exact():
    cli, srv = pair()
    data = bytes(i % 251 for i in range(3 << 20))
    g = gevent.spawn(lambda: [cli.sendall(data[i:i + 100000]) for i in range(0, len(data), 100000)])
    assert read_exactly(srv, len(data)) == data
    g.get(timeout=5)
    cli.close()
    srv.close()


def test_custom_path_and_wrong_path():
    cli, srv = pair(path="/tunnel", client_path="/tunnel")
    cli.sendall(b"x")
    assert srv.recv(1) == b"x"
    with pytest.raises(ProtocolError, match="404"):
        pair(path="/tunnel", client_path="/ws")


def test_non_upgrade_request_gets_400():
    a, b = socket.socketpair()
    g = gevent.spawn(server_handshake, b)
    a.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(ProtocolError):
        g.get(timeout=5)
    assert a.recv(100).startswith(b"HTTP/1.1 4")


def test_garbage_is_protocol_error():
    a, b = socket.socketpair()
    g = gevent.spawn(server_handshake, b)
    a.sendall(b"\x05\x01\x00" + bytes(range(256)) + b"\r\n\r\n")
    with pytest.raises(ProtocolError):
        g.get(timeout=5)


def test_eof_before_request():
    a, b = socket.socketpair()
    g = gevent.spawn(server_handshake, b)
    a.close()
    with pytest.raises(ProtocolError):
        g.get(timeout=5)


def test_extra_headers_and_host_on_the_wire():
    a, b = socket.socketpair()
    g = gevent.spawn(client_handshake, a, "proxy.example:8080", "/p", {"X-Test": "1"})
    head = b.recv(65536)
    assert head.startswith(b"GET /p HTTP/1.1\r\n")
    assert b"host: proxy.example:8080" in head.lower() and b"x-test: 1" in head.lower()
    srv = WSConnection(ConnectionType.SERVER)
    srv.receive_data(head)
    assert isinstance(next(srv.events()), Request)
    # the server's first message arrives in the same segment as the 101
    b.sendall(srv.send(AcceptConnection()) + srv.send(BytesMessage(data=b"early")))
    cli = g.get(timeout=5)
    assert cli.recv(100) == b"early"


def test_binary_frames_ping_and_close_reply():
    """sendall → one binary message; a ping is answered; a close frame gets a close reply."""
    a, b = socket.socketpair()
    peer = WSConnection(ConnectionType.CLIENT)
    a.sendall(peer.send(Request(host="h", target="/ws")))
    g = gevent.spawn(server_handshake, b)
    peer.receive_data(a.recv(65536))
    assert isinstance(next(peer.events()), AcceptConnection)
    conn = g.get(timeout=5)
    conn.sendall(b"abc")
    peer.receive_data(a.recv(65536))
    ev = next(peer.events())
    assert isinstance(ev, BytesMessage) and ev.data == b"abc" and ev.message_finished
    a.sendall(peer.send(Ping(payload=b"p")) + peer.send(BytesMessage(data=b"d")) + peer.send(CloseConnection(code=1000)))
    assert conn.recv(10) == b"d"
    assert conn.recv(10) == b""
    peer.receive_data(a.recv(65536))
    evs = list(peer.events())
    assert isinstance(evs[0], Pong) and evs[0].payload == b"p"
    assert isinstance(evs[1], CloseConnection)
    with pytest.raises(OSError):
        conn.sendall(b"late")
    conn.close()


def test_keepalive_pings_until_close():
    """GOST's dialer ``ws.keepalive``: pings on an idle tunnel, none after close."""
    cli, srv = pair()
    cli.keepalive(0.05)
    srv.conn.settimeout(2)
    pings = 0
    with gevent.Timeout(5):
        while pings < 3:
            srv.ws.receive_data(srv.conn.recv(4096))
            pings += sum(isinstance(ev, Ping) for ev in srv.ws.events())
    cli.close()
    assert cli.pinger.dead or gevent.sleep(0.1) or cli.pinger.dead
    srv.conn.close()


def test_ws_dialer_keepalive_metadata():
    from gostg.dialers.ws import KEEPALIVE_PERIOD, WSDialer
    from gostg.config.metadata import Metadata
    assert WSDialer(Metadata({})).keepalive == 0.0
    assert WSDialer(Metadata({"keepalive": True})).keepalive == KEEPALIVE_PERIOD == 15.0
    assert WSDialer(Metadata({"ws.keepalive": "true", "ttl": "3s"})).keepalive == 3.0
    assert WSDialer(Metadata({"keepalive": True, "keepalive.interval": "7s"})).keepalive == 7.0
