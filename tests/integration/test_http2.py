"""GOST's HTTP/2 family through real bin/gostg processes: the ``http2`` proxy (listener +
handler, dialer + connector), driven by curl through a gostg front and by a client written
with the h2 library; the ``h2``/``h2c`` stream tunnels under other handlers; a later hop; many
tunnels over one connection; garbage on the port."""
import base64
import hashlib
import os
import re
import signal
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import h2.config
import h2.connection
import h2.events
import pytest

from .helpers import Echo, Gost, free_port
from .peers import FastOrigin, body_of, connect_tunnel, curl, curl_code, wait_log

QUIET = ("-C", '{"log":{"level":"warn"}}')
N = 16 << 20
TUNNELS = 50


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.fixture(scope="module")
def echo():
    with Echo() as e:
        yield e


def env_of(tmp_path):
    return {"HOME": str(tmp_path)}


def assert_download(front, origin, *extra):
    p = curl(*extra, "-x", f"http://127.0.0.1:{front}", f"{origin.url}/bytes/{N}", timeout=60)
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(body_of(N)).digest()


def assert_upload(front, origin, tmp_path, *extra):
    data = os.urandom(N)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    rc, status, body = curl_code(*extra, "-x", f"http://127.0.0.1:{front}", "--data-binary", f"@{f}",
                                 "-H", "Content-Type: application/octet-stream", f"{origin.url}/up", timeout=60)
    assert (rc, status) == (0, 200)
    assert body.decode() == hashlib.sha256(data).hexdigest()


class H2Client:
    """A blocking HTTP/2 client over TLS (ALPN h2) or cleartext, made with the h2 library."""

    def __init__(self, port, tls=True):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.status, self.headers, self.data, self.ended = {}, {}, {}, set()

    def flush(self):
        self.sock.sendall(self.conn.data_to_send())

    def pump(self, until, rounds=2000):
        """Read frames until ``until()`` holds (bounded by ``rounds`` reads and the socket timeout)."""
        for _ in range(rounds):
            if until():
                return
            d = self.sock.recv(65536)
            if not d:
                break
            for ev in self.conn.receive_data(d):
                if isinstance(ev, h2.events.ResponseReceived):
                    hd = dict(ev.headers)
                    self.status[ev.stream_id] = int(hd[":status"])
                    self.headers[ev.stream_id] = hd
                elif isinstance(ev, h2.events.DataReceived):
                    self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    self.ended.add(ev.stream_id)
            self.flush()
        assert until(), "no answer"

    def request(self, headers, end_stream=False):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, headers, end_stream=end_stream)
        self.flush()
        self.pump(lambda: sid in self.status)
        return sid, self.status[sid]

    def send(self, sid, data, end_stream=False):
        self.conn.send_data(sid, data, end_stream=end_stream)
        self.flush()

    def close(self):
        self.sock.close()


def test_curl_through_an_http2_hop_16mib_both_ways(origin, tmp_path):
    s, front = free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"http2://127.0.0.1:{s}", *QUIET, ports=[s], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http2://127.0.0.1:{s}", *QUIET,
                 ports=[front], env=env, cwd=tmp_path):
        for mode in ((), ("-p",)):   # forwarded plain request; CONNECT tunnel
            assert_download(front, origin, *mode)
            assert_upload(front, origin, tmp_path, *mode)
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front}", f"{origin.url}/hello?a=1")
        assert (rc, status) == (0, 200) and b"/hello?a=1 host=127.0.0.1:" in body


def test_h2_library_client_connect_auth_and_plain_forward(origin, echo, tmp_path):
    s = free_port()
    with Gost("-L", f"http2://alice:s3cret@127.0.0.1:{s}", *QUIET, ports=[s], env=env_of(tmp_path), cwd=tmp_path):
        c = H2Client(s)
        try:
            target = f"127.0.0.1:{echo.port}"
            sid, status = c.request([(":method", "CONNECT"), (":authority", target)])
            assert status == 407
            assert c.headers[sid]["proxy-authenticate"] == 'Basic realm="gost"'
            bad = "Basic " + base64.b64encode(b"alice:wrong").decode()
            assert c.request([(":method", "CONNECT"), (":authority", target), ("proxy-authorization", bad)])[1] == 407
            good = "Basic " + base64.b64encode(b"alice:s3cret").decode()
            sid, status = c.request([(":method", "CONNECT"), (":authority", target), ("proxy-authorization", good)])
            assert status == 200
            payload = os.urandom(200_000)
            c.send(sid, payload, end_stream=True)
            c.pump(lambda: sid in c.ended)
            assert bytes(c.data[sid]) == payload       # echoed back, then END_STREAM
            sid, status = c.request([(":method", "GET"), (":scheme", "http"), (":path", "/via-h2"),
                                     (":authority", f"127.0.0.1:{origin.port}"), ("proxy-authorization", good)],
                                    end_stream=True)
            assert status == 200
            c.pump(lambda: sid in c.ended)
            assert bytes(c.data[sid]).startswith(b"hello from origin /via-h2 host=127.0.0.1:")
            assert "connection" not in c.headers[sid]
        finally:
            c.close()


@pytest.mark.parametrize("scheme,listen_q,node_q", [
    ("socks5+h2", "", ""),
    ("relay+h2c", "?path=/tun", "?path=/tun"),
])
def test_h2_tunnels_carry_any_handler(scheme, listen_q, node_q, origin, tmp_path):
    s, front = free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"{scheme}://127.0.0.1:{s}{listen_q}", *QUIET, ports=[s], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"{scheme}://127.0.0.1:{s}{node_q}", *QUIET,
                 ports=[front], env=env, cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front}", origin.url + "/plain")
        assert (rc, status) == (0, 200) and b"/plain" in body
        assert_download(front, origin, "-p")


def test_h2_listener_answers_what_gost_answers(tmp_path):
    """h2c without path: CONNECT only (405 otherwise); with path: that path only (400)."""
    a, b = free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"relay+h2c://127.0.0.1:{a}", *QUIET, ports=[a], env=env, cwd=tmp_path), \
            Gost("-L", f"relay+h2c://127.0.0.1:{b}?path=/tun", *QUIET, ports=[b], env=env, cwd=tmp_path):
        c = H2Client(a, tls=False)
        try:
            get = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/tun")]
            assert c.request(get, end_stream=True)[1] == 405
            assert c.request([(":method", "CONNECT"), (":authority", "x:1")])[1] == 200
        finally:
            c.close()
        c = H2Client(b, tls=False)
        try:
            assert c.request([(":method", "CONNECT"), (":authority", "x:1")])[1] == 400
            assert c.request([(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/no")])[1] == 400
            assert c.request([(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/tun")])[1] == 200
        finally:
            c.close()


def test_http2_as_a_later_hop(origin, tmp_path):
    a, b, front = free_port(), free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"socks5://127.0.0.1:{a}", *QUIET, ports=[a], env=env, cwd=tmp_path), \
            Gost("-L", f"http2://127.0.0.1:{b}", *QUIET, ports=[b], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"socks5://127.0.0.1:{a}", "-F", f"http2://127.0.0.1:{b}",
                 *QUIET, ports=[front], env=env, cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front}", origin.url + "/two-hops")
        assert (rc, status) == (0, 200) and b"/two-hops" in body
        assert_download(front, origin, "-p")


def test_50_tunnels_share_one_connection(echo, tmp_path):
    s, front = free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"http2://127.0.0.1:{s}", "-D", ports=[s], env=env, cwd=tmp_path) as server, \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http2://127.0.0.1:{s}", *QUIET,
                 ports=[front], env=env, cwd=tmp_path):
        with ThreadPoolExecutor(TUNNELS) as ex:
            results = list(ex.map(lambda i: connect_tunnel(front, echo.port, i), range(TUNNELS)))
        assert results == [True] * TUNNELS
        streams = wait_log(server, r'"msg": "mux: stream \d+ [^"]* >< ', count=TUNNELS, timeout=10)
        assert len(streams) == TUNNELS
        # "<>" is logged once a connection finished its TLS handshake (the wait_port probe did
        # not): the client made exactly one HTTP/2 connection for all the tunnels
        conns = re.findall(r'"msg": "127\.0\.0\.1:\d+ <> 127\.0\.0\.1:%d"' % s, server.log_text())
        assert len(conns) == 1


def test_garbage_is_closed_and_the_service_keeps_serving(origin, tmp_path):
    s, front = free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"http2://127.0.0.1:{s}", ports=[s], env=env, cwd=tmp_path) as server, \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http2://127.0.0.1:{s}", *QUIET,
                 ports=[front], env=env, cwd=tmp_path):
        with socket.create_connection(("127.0.0.1", s), timeout=5) as c:   # no TLS at all
            c.sendall(os.urandom(512))
            try:
                while c.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", s), timeout=5)) as c:   # h2, then garbage
            # a SETTINGS frame whose length is no multiple of 6: a connection error
            c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000005 04 00 00000000") + b"12345")
            got = b""
            try:
                while True:
                    d = c.recv(4096)
                    if not d:
                        break
                    got += d
            except (ConnectionResetError, ssl.SSLError):
                pass
            assert b"HTTP/1.1 200" not in got
        rc, status, _ = curl_code("--http1.1", "-k", f"https://127.0.0.1:{s}/")   # not a proxy request
        assert status != 200
        assert wait_log(server, r"protocol error: h2: ")
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{front}", origin.url + "/still")
        assert (rc, status) == (0, 200) and b"/still" in body


def test_the_http2_connection_is_made_again_after_the_server_dies(origin, tmp_path):
    s, front = free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http2://127.0.0.1:{s}", *QUIET,
              ports=[front], env=env, cwd=tmp_path):
        with Gost("-L", f"http2://127.0.0.1:{s}", *QUIET, ports=[s], env=env, cwd=tmp_path) as server:
            rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{front}", origin.url + "/one")
            assert (rc, status) == (0, 200) and b"/one" in body
            server.stop(sig=signal.SIGKILL)   # the shared connection dies with its server
        with Gost("-L", f"http2://127.0.0.1:{s}", *QUIET, ports=[s], env=env, cwd=tmp_path):
            deadline = time.monotonic() + 10
            while True:   # the dialer notices the dead connection and makes a new one
                rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{front}", origin.url + "/two")
                if (rc, status) == (0, 200) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert (rc, status) == (0, 200) and b"/two" in body


def test_the_http2_connector_sends_the_node_credentials(origin, tmp_path):
    s, good, bad = free_port(), free_port(), free_port()
    env = env_of(tmp_path)
    with Gost("-L", f"http2://bob:pw@127.0.0.1:{s}", *QUIET, ports=[s], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{good}", "-F", f"http2://bob:pw@127.0.0.1:{s}", *QUIET,
                 ports=[good], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{bad}", "-F", f"http2://bob:nope@127.0.0.1:{s}", *QUIET,
                 ports=[bad], env=env, cwd=tmp_path):
        rc, status, body = curl_code("-p", "-x", f"http://127.0.0.1:{good}", origin.url + "/authed")
        assert (rc, status) == (0, 200) and b"/authed" in body
        rc, status, _ = curl_code("-x", f"http://127.0.0.1:{bad}", origin.url + "/refused")
        assert status == 503   # the front could not get through: the server answered 407


def test_http1_clients_on_the_http2_listener(origin, echo, tmp_path):
    """curl -x https:// (HTTP/1.1 chosen by ALPN) on an ``http2://`` proxy, as on GOST's: plain
    requests, CONNECT tunnels and the proxy's auth; HTTP/2 clients keep working beside it."""
    p = free_port()
    with Gost("-L", f"http2://u:pw@127.0.0.1:{p}", *QUIET, ports=[p], env=env_of(tmp_path), cwd=tmp_path):
        proxy = ("--proxy-insecure", "-x", f"https://u:pw@127.0.0.1:{p}")
        rc, status, body = curl_code(*proxy, f"{origin.url}/h1")
        assert (rc, status) == (0, 200) and b"/h1" in body
        rc, status, body = curl_code("-p", *proxy, f"{origin.url}/h1-tunnel")
        assert (rc, status) == (0, 200) and b"/h1-tunnel" in body
        rc, status, _ = curl_code("--proxy-insecure", "-x", f"https://127.0.0.1:{p}", f"{origin.url}/no-auth")
        assert status == 407
        c = H2Client(p)
        try:
            good = "Basic " + base64.b64encode(b"u:pw").decode()
            assert c.request([(":method", "CONNECT"), (":authority", f"127.0.0.1:{echo.port}"),
                              ("proxy-authorization", good)])[1] == 200
        finally:
            c.close()
