"""Live connections over the Web API (issue 14, must 6; beyond GOST): ``GET /api/connections``
lists the open tunnels with their route and live byte counts, ``DELETE
/api/connections/<sid>`` closes one, under the API's pathPrefix and auth.

One real ``bin/gostg`` (a YAML config: a SOCKS5 service through a 2-hop chain, a plain HTTP
proxy, an HTTPS proxy, an API with a pathPrefix and Basic auth) and a second one holding the
chain's two nodes. Clients are real: curl through each proxy, and a raw socket that speaks
SOCKS5 and then stays silent (an idle tunnel, which leaves its greenlet: relay/tcp.py rule 6).
The origin streams 1 KiB every 50 ms, so byte counts move while the test reads them; it stops
after STREAM_SECONDS in any case. Every wait is bounded."""
import base64
import json
import os
import shutil
import socket
import socketserver
import struct
import subprocess
import threading
import time

import pytest

from . import peers
from .helpers import Gost, free_port
from .udppeers import UDPEcho, free_udp_port, udp_ask

USER, PASSWORD = "admin", "s3cret"
PREFIX = "/gapi"
#: the longest an origin stream runs (the test closes or ends them well before)
STREAM_SECONDS = 40
CHUNK = 1024

pytestmark = pytest.mark.skipif(shutil.which("curl") is None and not os.environ.get("CI"),
                                reason="curl not installed")


class _Slow(socketserver.BaseRequestHandler):
    """``GET /slow``: a long body, 1 KiB every 50 ms. Anything else (a raw tunnel): read,
    never answer, until the peer closes."""

    def handle(self):
        c = self.request
        c.settimeout(STREAM_SECONDS)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = c.recv(4096)
                if not data:
                    return
                head += data
                if not head.startswith(b"GET "):
                    while c.recv(4096):   # the silent origin of an idle tunnel
                        pass
                    return
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (CHUNK * 100000))
            deadline = time.monotonic() + STREAM_SECONDS
            while time.monotonic() < deadline and not self.server.stop.is_set():
                c.sendall(b"x" * CHUNK)
                time.sleep(0.05)
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _basic(user=USER, password=PASSWORD):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Api(peers.Api):
    """peers.Api under the pathPrefix, with Basic credentials (or ``auth``: False, or a header value)."""

    def __init__(self, port, prefix=PREFIX):
        super().__init__(port)
        self.prefix = prefix

    def request(self, method, path, auth=True, prefix=True, body=None):
        """→ (status, response headers, parsed JSON or None)."""
        headers = {"Authorization": auth if isinstance(auth, str) else _basic()} if auth else {}
        status, js, _ = super().request(method, (self.prefix if prefix else "") + path, body, 10, headers)
        return status, self.headers, js

    def connections(self, query=""):
        status, _, js = self.request("GET", "/api/connections" + query)
        assert status == 200, js
        assert js["data"]["count"] == len(js["data"]["list"])
        return js["data"]["list"]

    def current_conns(self, service):
        status, _, js = self.request("GET", f"/config/services/{service}")
        assert status == 200, js
        return js["data"]["status"]["stats"]["currentConns"]


def _fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def _until(what, timeout=10.0, step=0.05):
    """Poll ``what()`` until it is truthy (→ its value) or ``timeout`` (→ the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = what()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conns")
    srv = _Server(("127.0.0.1", 0), _Slow)
    srv.stop = threading.Event()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    origin = srv.server_address[1]
    n1, n2, socks, http_, https, api, raced, dead = (free_port() for _ in range(8))
    udp = free_udp_port()
    echo = UDPEcho(b"E:")
    cfg = {
        "services": [
            {"name": "socks", "addr": f"127.0.0.1:{socks}", "handler": {"type": "socks5", "chain": "two-hops"},
             "listener": {"type": "tcp"}},
            {"name": "web", "addr": f"127.0.0.1:{http_}", "handler": {"type": "http"}, "listener": {"type": "tcp"}},
            {"name": "secure", "addr": f"127.0.0.1:{https}", "handler": {"type": "http"}, "listener": {"type": "tls"}},
            {"name": "raced", "addr": f"127.0.0.1:{raced}", "handler": {"type": "socks5", "chain": "race"},
             "listener": {"type": "tcp"}},
            {"name": "dgram", "addr": f"127.0.0.1:{udp}", "handler": {"type": "udp"},
             "listener": {"type": "udp", "metadata": {"keepAlive": True, "ttl": "30s"}},
             "forwarder": {"nodes": [{"name": "echo", "addr": echo.addr}]}},
        ],
        "chains": [{"name": "two-hops", "hops": [
            {"name": "hop-1", "nodes": [{"name": "node-a", "addr": f"127.0.0.1:{n1}", "connector": {"type": "socks5"}}]},
            {"name": "hop-2", "nodes": [{"name": "node-b", "addr": f"127.0.0.1:{n2}", "connector": {"type": "http"}}]},
        ]}, {"name": "race", "hops": [{"name": "hop-r", "selector": {"strategy": "parallel"}, "nodes": [
            {"name": "dead", "addr": f"127.0.0.1:{dead}", "connector": {"type": "socks5"}},
            {"name": "node-a", "addr": f"127.0.0.1:{n1}", "connector": {"type": "socks5"}}]}]}],
        "api": {"addr": f"127.0.0.1:{api}", "pathPrefix": PREFIX, "auth": {"username": USER, "password": PASSWORD}},
    }
    path = tmp / "gost.yaml"
    path.write_text(json.dumps(cfg))   # JSON is YAML
    nodes = Gost("-L", f"socks5://127.0.0.1:{n1}", "-L", f"http://127.0.0.1:{n2}", ports=(n1, n2))
    main = Gost("-C", str(path), ports=(socks, http_, https, api, raced))
    with echo, nodes, main:
        yield {"config": cfg, "origin": origin, "socks": socks, "http": http_, "https": https, "udp": udp, "echo": echo.addr, "raced": raced, "api": Api(api),
               "gost": main}
        assert main.proc.poll() is None, main.log_text()[-3000:]
    srv.stop.set()
    srv.shutdown()
    srv.server_close()


def _curl(*args):
    return subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", "--max-time",
                             str(STREAM_SECONDS + 5), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _socks5_idle(port, origin):
    """A SOCKS5 tunnel to the silent origin, opened and left idle → the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", origin))
    rep = s.recv(10)
    assert rep[:2] == b"\x05\x00", rep
    s.sendall(b"hello")   # 5 bytes in, then silence both ways
    return s


def _by_service(items):
    return {t["service"]: t for t in items}


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def test_lists_tunnels_with_route_and_moving_bytes_and_closes_one(setup):
    api, origin, gost = setup["api"], setup["origin"], setup["gost"]
    pid = gost.proc.pid
    assert _until(lambda: api.connections() == [], 5)
    fds0 = _fds(pid)
    url = f"http://127.0.0.1:{origin}/slow"
    procs = [_curl("-x", f"socks5h://127.0.0.1:{setup['socks']}", url),            # via the 2-hop chain
             _curl("-x", f"http://127.0.0.1:{setup['http']}", url),                # plain HTTP proxying
             _curl("-p", "-x", f"https://127.0.0.1:{setup['https']}", "--proxy-insecure", url)]  # CONNECT in TLS
    try:
        t0 = time.time()
        first = _until(lambda: (lambda c: c if len(c) == 3 and all(t["outputBytes"] > CHUNK for t in c) else None)(
            api.connections()), 15)
        assert first, api.connections()
        byname = _by_service(first)
        assert set(byname) == {"socks", "web", "secure"}
        for t in first:
            assert t["target"] == f"127.0.0.1:{origin}"
            assert t["client"].startswith("127.0.0.1:") and t["remote"] == t["client"]
            assert t["inputBytes"] > 0          # the request (SOCKS5 sends it through the tunnel)
            assert 0 < t["age"] < 15 and t["startTime"] / 1e9 >= t0 - 1
            assert t["sid"] and t["local"]
        assert byname["socks"]["route"] == ["node-a", "node-b"]
        assert byname["web"]["route"] == [] and byname["secure"]["route"] == []
        # oldest first
        assert [t["startTime"] for t in first] == sorted(t["startTime"] for t in first)

        # the counts move while the tunnels run (1 KiB / 50 ms)
        time.sleep(0.6)
        later = _by_service(api.connections())
        for name, t in byname.items():
            assert later[name]["sid"] == t["sid"]
            assert later[name]["outputBytes"] >= t["outputBytes"] + 4 * CHUNK, (name, t, later[name])
            assert later[name]["age"] > t["age"]

        # filters
        assert [t["service"] for t in api.connections("?service=socks")] == ["socks"]
        assert api.connections("?service=nope") == []
        assert len(api.connections("?client=127.0.0.1")) == 3
        assert [t["sid"] for t in api.connections("?client=" + byname["web"]["client"])] == [byname["web"]["sid"]]
        assert api.connections("?client=10.9.9.9") == []

        # DELETE one: its client sees the end at once, the others flow on
        sid = byname["socks"]["sid"]
        status, _, js = api.request("DELETE", f"/api/connections/{sid}")
        assert (status, js) == (200, {"msg": "OK"})
        # curl ends at once, short of the announced length: 18 "partial file" (56 "recv failure"
        # when the close came as a reset)
        assert procs[0].wait(timeout=5) in (18, 56)
        got = int(procs[0].stdout.read() or 0)
        assert CHUNK < got < CHUNK * 100000
        left = _by_service(api.connections())
        assert set(left) == {"web", "secure"}
        time.sleep(0.4)
        again = _by_service(api.connections())
        for name in ("web", "secure"):
            assert again[name]["outputBytes"] > left[name]["outputBytes"], name
            assert procs[1 if name == "web" else 2].poll() is None
        # gone: a second DELETE is a 404
        status, _, js = api.request("DELETE", f"/api/connections/{sid}")
        assert status == 404 and js["code"] == 40004 and sid in js["msg"]
        # the ending was logged as any other, with its bytes and the reason
        log = [json.loads(x) for x in gost.log_text().splitlines() if x.startswith("{") and sid in x]
        assert any(e["msg"] == "closed through the Web API" for e in log), log
        end = [e for e in log if ">-<" in e["msg"]]
        assert end and end[0]["outputBytes"] >= got, log

        # close the rest: the plain HTTP one (its own relay, not relay/tcp.py) and the TLS one
        # (the generic pump): no socket and no connection slot is left behind
        for name in ("web", "secure"):
            status, _, _ = api.request("DELETE", f"/api/connections/{again[name]['sid']}")
            assert status == 200
        for p in procs:
            p.wait(timeout=5)
        assert _until(lambda: api.connections() == [], 5)
        assert _until(lambda: _fds(pid) <= fds0, 5), (fds0, os.listdir(f"/proc/{pid}/fd"))
        for name in ("socks", "web", "secure"):
            assert api.current_conns(name) == 0
    finally:
        _stop(procs)


def test_idle_detached_tunnel_is_listed_and_closed(setup):
    """An idle SOCKS5 tunnel runs without a greenlet (relay/tcp.py rule 6): still listed, with
    its route and the bytes it moved, and a DELETE ends it (the client gets EOF at once)."""
    api, pid = setup["api"], setup["gost"].proc.pid
    assert _until(lambda: api.connections() == [], 5)
    fds0 = _fds(pid)
    socks_ = [_socks5_idle(setup["socks"], setup["origin"]) for _ in range(3)]
    try:
        items = _until(lambda: (lambda c: c if len(c) == 3 and all(t["inputBytes"] == 5 for t in c) else None)(
            api.connections()), 5)
        assert items, api.connections()
        assert all(t["route"] == ["node-a", "node-b"] and t["outputBytes"] == 0 for t in items)
        assert api.current_conns("socks") == 3
        victim = items[1]
        s = socks_[1]
        s.settimeout(5)
        t0 = time.monotonic()
        status, _, js = api.request("DELETE", f"/api/connections/{victim['sid']}")
        assert (status, js) == (200, {"msg": "OK"})
        try:
            assert s.recv(10) == b""   # the client sees its connection closed
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 2
        assert sorted(t["sid"] for t in api.connections()) == sorted(t["sid"] for t in (items[0], items[2]))
        assert api.current_conns("socks") == 2
        # the others still carry bytes
        socks_[0].sendall(b"more")
        assert _until(lambda: _by_sid(api.connections()).get(items[0]["sid"], {}).get("inputBytes") == 9, 5)
    finally:
        for s in socks_:
            s.close()
    assert _until(lambda: api.connections() == [], 5)
    assert api.current_conns("socks") == 0
    assert _until(lambda: _fds(pid) <= fds0, 5), (fds0, os.listdir(f"/proc/{pid}/fd"))


def _by_sid(items):
    return {t["sid"]: t for t in items}


def test_auth_prefix_and_errors(setup):
    api = setup["api"]
    s = _socks5_idle(setup["socks"], setup["origin"])
    try:
        sid = _until(lambda: [t["sid"] for t in api.connections()], 5)[0]
        for auth in (False, _basic(PASSWORD, USER)):
            for method, path in (("GET", "/api/connections"), ("DELETE", f"/api/connections/{sid}")):
                status, headers, js = api.request(method, path, auth=auth)
                assert status == 401 and js == {"code": 401, "msg": "Unauthorized"}, (method, auth, js)
                assert headers["www-authenticate"].startswith("Basic")
        # outside the pathPrefix: not found (and nothing closed)
        status, _, js = api.request("GET", "/api/connections", prefix=False)
        assert status == 404
        status, _, js = api.request("DELETE", f"/api/connections/{sid}", prefix=False)
        assert status == 404
        assert [t["sid"] for t in api.connections()] == [sid]
        # unknown sid, unknown route, wrong method
        status, _, js = api.request("DELETE", "/api/connections/no-such-sid")
        assert status == 404 and js == {"code": 40004, "msg": "connection 'no-such-sid' not found"}
        assert api.request("GET", "/api/nothing")[0] == 404
        assert api.request("GET", f"/api/connections/{sid}/x")[0] == 404
        assert api.request("PUT", "/api/connections")[0] == 405
        assert [t["sid"] for t in api.connections()] == [sid]
    finally:
        s.close()
    assert _until(lambda: api.connections() == [], 5)


def test_udp_session_is_listed_with_datagram_bytes_and_closed(setup):
    """A UDP port-forward session is a connection too: listed with the datagram bytes each way
    (read live from the UDP relay's counts) and closed by DELETE (the next datagram from the
    same client makes a new session)."""
    api = setup["api"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        assert udp_ask(setup["udp"], b"ping", sock=c) == b"E:ping"
        assert udp_ask(setup["udp"], b"pong!", sock=c) == b"E:pong!"
        client = f"127.0.0.1:{c.getsockname()[1]}"
        items = _until(lambda: (lambda c: c if c and c[0]["outputBytes"] == 13 else None)(
            api.connections("?service=dgram")), 5)
        assert items, api.connections()
        (t,) = items
        assert (t["client"], t["inputBytes"], t["outputBytes"], t["route"]) == (client, 9, 13, [])
        assert t["target"] == setup["echo"]
        status, _, _ = api.request("DELETE", f"/api/connections/{t['sid']}")
        assert status == 200
        assert _until(lambda: api.connections("?service=dgram") == [], 5)
        assert api.current_conns("dgram") == 0
        # the service goes on: a new session for the next datagram
        assert udp_ask(setup["udp"], b"again", sock=c) == b"E:again"
        (n,) = _until(lambda: api.connections("?service=dgram"), 5)
        assert n["sid"] != t["sid"] and n["client"] == client
        assert api.request("DELETE", f"/api/connections/{n['sid']}")[0] == 200
    assert _until(lambda: api.connections() == [], 5), api.connections()


def test_route_names_the_node_that_won_a_race(setup):
    """A ``parallel`` hop races its nodes: the route shows the one that won (here the only
    live one), not the hop's candidates."""
    api = setup["api"]
    s = _socks5_idle(setup["raced"], setup["origin"])
    try:
        (t,) = _until(lambda: api.connections("?service=raced"), 5)
        assert t["route"] == ["node-a"]
    finally:
        s.close()
    assert _until(lambda: api.connections("?service=raced") == [], 5), api.connections()


def test_replaced_service_tunnels_stay_listed_until_they_end(setup):
    """A service replaced through the API keeps its open tunnels running (the old version
    drains): they stay listed, under the service's name, next to the new version's, and a
    DELETE still ends them. (Runs last: it replaces the "socks" service.)"""
    api = setup["api"]
    old = _socks5_idle(setup["socks"], setup["origin"])
    new = None
    try:
        (before,) = _until(lambda: api.connections("?service=socks"), 5)
        body = dict(setup["config"]["services"][0], metadata={"readTimeout": "14s"})
        status, _, js = api.request("PUT", "/config/services/socks", body=body)
        assert status == 200, js
        new = _socks5_idle(setup["socks"], setup["origin"])
        both = _until(lambda: (lambda c: c if len(c) == 2 else None)(api.connections("?service=socks")), 5)
        assert both and both[0]["sid"] == before["sid"], both
        assert both[0]["inputBytes"] == 5 and both[0]["route"] == ["node-a", "node-b"]
        old.settimeout(5)
        assert api.request("DELETE", f"/api/connections/{before['sid']}")[0] == 200
        try:
            assert old.recv(10) == b""
        except ConnectionResetError:
            pass
        assert [t["sid"] for t in api.connections("?service=socks")] == [both[1]["sid"]]
    finally:
        old.close()
        if new is not None:
            new.close()
    assert _until(lambda: api.connections("?service=socks") == [], 5), api.connections()
