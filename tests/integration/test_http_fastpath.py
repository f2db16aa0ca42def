"""The callback-driven steady state of plain HTTP forwarding (gostg/handlers/httpfast.py), on
the wire: kept-alive requests to one target after the first, with responses of every size and
framing, pipelining, target switches, peers closing at awkward moments, stats and log lines as
the greenlet path writes them; embedded runs check the debug counters (no watcher restart per
request), the idle timeout and a service stop with requests in flight (no fd or greenlet left)."""
import json
import socket
import textwrap
import threading
import time

import pytest

from .helpers import Gost, free_port
from .peers import fd_baseline, fd_settle, recv_all
from .test_embed import run_script


def body(path, n):
    """The deterministic body the origin sends for ``path``."""
    unit = path.encode() + b"|"
    return (unit * (n // len(unit) + 1))[:n]


class ScriptOrigin:
    """A keep-alive origin on raw sockets. ``GET /len/N``: N bytes with Content-Length;
    ``/chunk/N``: N bytes chunked; ``/eof/N``: N bytes until close; ``/bye/N``: N bytes with
    Content-Length, then the connection closes; ``/slow/MS/N``: as len, after MS ms. A request
    body (Content-Length) is read and echoed back. Counts connections, records request heads."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.heads = []
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.heads.append(head)
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                cl = [int(v) for k, _, v in (x.partition(": ") for x in lines[1:]) if k.lower() == "content-length"]
                if cl:
                    while len(buf) < cl[0]:
                        buf += c.recv(65536)
                    payload, buf = buf[:cl[0]], buf[cl[0]:]
                parts = path.strip("/").split("/")
                kind, n = parts[0], int(parts[-1])
                data = payload if cl else body(path, n)
                if kind == "slow":
                    time.sleep(int(parts[1]) / 1000)
                if kind == "chunk":
                    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    for i in range(0, len(data), 7000):
                        piece = data[i:i + 7000]
                        out += b"%x\r\n%s\r\n" % (len(piece), piece)
                    c.sendall(out + b"0\r\n\r\n")
                elif kind == "eof":
                    c.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + data)
                    return
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Path: %s\r\n\r\n%s"
                              % (len(data), path.encode(), data))
                    if kind == "bye":
                        return
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.lsock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client:
    """One client connection to the proxy, reading responses off it with their own framing."""

    def __init__(self, port, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.sent = self.got = 0

    def send(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def get(self, url, extra=""):
        self.send(f"GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n{extra}\r\n".encode())

    def small_requests(self, origin, n, tag):
        """``n`` small requests to ``origin``: after the first, the fast path's."""
        for i in range(n):
            self.get(origin.url + f"/len/{tag}{i}/3")
            assert self.response()[2] == body(f"/len/{tag}{i}/3", 3)

    def _fill(self):
        d = self.sock.recv(1 << 20)
        if not d:
            raise EOFError(self.buf[:200])
        self.got += len(d)
        self.buf += d

    def response(self):
        """→ (status line, {lower-cased name: value}, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, _, v in (x.partition(": ") for x in lines[1:])}
        if headers.get("transfer-encoding") == "chunked":
            out = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size, _, self.buf = self.buf.partition(b"\r\n")
                n = int(size, 16)
                while len(self.buf) < n + 2:
                    self._fill()
                out, self.buf = out + self.buf[:n], self.buf[n + 2:]
                if n == 0:
                    return lines[0], headers, out
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return lines[0], headers, data

    def closed_by_peer(self, timeout=5):
        data, eof = recv_all(self.sock, time.monotonic() + timeout)
        self.got += len(data)
        return eof

    def close(self):
        self.sock.close()


def _log(g):
    return [json.loads(line) for line in g.log_text().splitlines() if line.startswith("{")]


def _relay_lines(g):
    return [m for m in _log(g) if " <-> " in m.get("msg", "") or " >-< " in m.get("msg", "")]


SIZES = [0, 1, 100, 16383, 16384, 16385, 65536, 65537, 300_000, 4_000_000, 7, 200_000]


@pytest.fixture
def proxy():
    port = free_port()
    with Gost("-L", f"http://127.0.0.1:{port}", ports=[port]) as g:
        g.port = port
        yield g


def test_many_requests_of_every_size_on_one_upstream_with_exact_stats(proxy):
    with ScriptOrigin() as o:
        c = Client(proxy.port)
        for rnd in range(3):
            for i, n in enumerate(SIZES):
                kind = "chunk" if i % 3 == 2 else "len"
                path = f"/{kind}/{rnd}{i}/{n}"
                c.get(o.url + path)
                status, headers, data = c.response()
                assert status == "HTTP/1.1 200 OK", (path, status)
                assert data == body(path, n), path
        c.close()
        assert o.connections == 1
        assert len(o.heads) == 3 * len(SIZES)
        # the origin got origin-form requests without the proxy's hop headers
        assert all(h.startswith(b"GET /") and b"proxy-connection" not in h.lower() for h in o.heads)
        deadline = time.monotonic() + 5
        while len(_relay_lines(proxy)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = _relay_lines(proxy)
        assert len(lines) == 2, lines
        end = lines[1]
        assert (end["inputBytes"], end["outputBytes"]) == (c.sent, c.got)


def test_pipelined_requests_in_one_segment(proxy):
    with ScriptOrigin() as o:
        c = Client(proxy.port)
        c.get(o.url + "/len/first/10")                    # the greenlet path's; then the fast path
        assert c.response()[2] == body("/len/first/10", 10)
        paths = [f"/{'chunk' if i % 2 else 'len'}/p{i}/{n}" for i, n in enumerate([5, 70_000, 0, 3, 1_000_000, 9] * 3)]
        c.send(b"".join(f"GET {o.url}{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths))
        for p in paths:
            status, _, data = c.response()
            assert status == "HTTP/1.1 200 OK" and data == body(p, int(p.rsplit("/", 1)[1])), p
        c.get(o.url + "/len/last/4", "Connection: close\r\n")
        status, headers, data = c.response()
        assert headers.get("connection") == "close" and data == body("/len/last/4", 4)
        assert c.closed_by_peer()
        assert o.connections == 1


def test_switching_targets_and_back(proxy):
    with ScriptOrigin() as a, ScriptOrigin() as b:
        c = Client(proxy.port)
        plan = [a, a, a, b, b, a, a, b, a]
        for i, o in enumerate(plan):
            path = f"/len/s{i}/{1000 * i}"
            c.get(o.url + path)
            status, headers, data = c.response()
            assert headers["x-path"] == path and data == body(path, 1000 * i)
        c.close()
        # one upstream per run of requests to the same target, as the greenlet path does
        assert (a.connections, b.connections) == (3, 2)


def test_request_with_body_and_malformed_requests_go_the_greenlet_way(proxy):
    with ScriptOrigin() as o:
        c = Client(proxy.port)
        c.small_requests(o, 2, "w")
        c.send(f"POST {o.url}/len/post/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".encode())
        assert c.response()[2] == b"hello"
        c.get(o.url + "/len/after/6")
        assert c.response()[2] == body("/len/after/6", 6)
        c.send(b"GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = c.response()
        assert status.startswith("HTTP/1.1 400") and headers.get("connection") == "close"
        assert c.closed_by_peer()
        assert o.connections == 1


def test_until_close_response_after_fast_requests(proxy):
    with ScriptOrigin() as o:
        c = Client(proxy.port)
        c.small_requests(o, 3, "u")
        c.get(o.url + "/eof/u/50000")
        while b"\r\n\r\n" not in c.buf:
            c._fill()
        assert c.closed_by_peer()
        assert c.buf.endswith(body("/eof/u/50000", 50000)) and c.buf.startswith(b"HTTP/1.1 200 OK")


def test_upstream_closing_while_idle_is_retried_or_502(proxy):
    with ScriptOrigin() as o:
        c = Client(proxy.port)
        c.get(o.url + "/len/a/5")
        c.response()
        c.get(o.url + "/bye/b/5")                        # the origin closes after this one
        assert c.response()[2] == body("/bye/b/5", 5)
        time.sleep(0.3)                                  # the proxy sees the FIN while idle
        c.get(o.url + "/len/c/70000")                    # a GET: tried again on a fresh upstream
        assert c.response()[2] == body("/len/c/70000", 70000)
        assert o.connections == 2
        c.get(o.url + "/bye/d/5")
        c.response()
        time.sleep(0.3)
        c.send(f"POST {o.url}/len/e/0 HTTP/1.1\r\nHost: x\r\n\r\n".encode())   # not safe to repeat
        status, _, _ = c.response()
        assert status.startswith("HTTP/1.1 502")
        assert c.closed_by_peer()
        assert any(m.get("msg") == "upstream closed without a response" for m in _log(proxy))


def test_client_closing_mid_response_leaks_nothing(proxy):
    with ScriptOrigin() as o:
        pid = proxy.proc.pid
        c = Client(proxy.port)
        c.get(o.url + "/len/warm/1")
        c.response()
        c.close()
        start = fd_baseline(pid)
        for i in range(20):
            c = Client(proxy.port)
            c.small_requests(o, 3, f"k{i}-")
            c.get(o.url + f"/len/big{i}/20000000")       # far more than the socket buffers
            c._fill()
            c.close()
        end = fd_settle(pid, start)
        assert end <= start, f"fds {start} -> {end}"
        c = Client(proxy.port)                          # and the proxy still serves
        c.get(o.url + "/len/alive/5")
        assert c.response()[2] == body("/len/alive/5", 5)
        c.close()
        assert proxy.proc.poll() is None


# --- embedded runs: the debug counters, the idle timeout, a stop with requests in flight -----

PRELUDE = """\
import gc, json, os, time
import gevent, greenlet
from gostg.handlers import http as H, httpfast

def serving(port):
    g = gostg.Gost({"services": [{"name": "h", "addr": "127.0.0.1:%d" % port, "handler": {"type": "http"}}],
                    "log": {"level": "error"}})
    g.start()
    return g

def client(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)

def get(c, url, n):
    c.sendall(("GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % url).encode())
    buf = b""
    while True:
        head, sep, rest = buf.partition(b"\\r\\n\\r\\n")
        if sep and len(rest) >= n:
            return head, rest
        d = c.recv(1 << 20)
        if not d:
            return None, buf
        buf += d

def fds():
    return len(os.listdir("/proc/self/fd"))

def greenlets():
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet) and not o.dead)
"""


def run_embedded(body_text, tmp_path, timeout=60):
    """test_embed's monkey-patched script with PRELUDE and ``body_text``; → its last line as JSON."""
    r = run_script(PRELUDE + textwrap.dedent(body_text), tmp_path, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_steady_state_starts_no_watcher_per_request(tmp_path):
    port = free_port()
    with ScriptOrigin() as o:
        out = run_embedded(f"""
            g = serving({port})
            c = client({port})
            for i in range(300):
                head, rest = get(c, "{o.url}/len/r%d/%d" % (i, i * 37), i * 37)
                assert head.startswith(b"HTTP/1.1 200"), head
            print(json.dumps(httpfast.counters))
            c.close()
            g.stop()
        """, tmp_path)
    sessions, requests, starts = out
    assert (sessions, requests) == (1, 299)   # the first request is the greenlet path's
    assert starts == 2                         # both read watchers, once for the session


def test_idle_timeout_closes_and_a_slow_response_is_not_idle(tmp_path):
    port = free_port()
    with ScriptOrigin() as o:
        out = run_embedded(f"""
            H.HTTPHandler.idle_timeout = 0.5
            g = serving({port})
            c = client({port})
            res = {{}}
            for i in range(8):                  # activity every 0.2 s keeps it open past 0.5 s
                head, _ = get(c, "{o.url}/len/i%d/5" % i, 5)
                assert head, i
                time.sleep(0.2)
            # waiting 0.9 s for the upstream's answer is not idleness
            head, _ = get(c, "{o.url}/slow/900/s/5", 5)
            res["slow"] = head.split(b"\\r\\n")[0].decode()
            t0 = time.monotonic()
            c.settimeout(5)
            res["eof"] = c.recv(10) == b""
            res["after"] = round(time.monotonic() - t0, 2)
            res["fast"] = httpfast.counters[1]
            print(json.dumps(res))
            c.close()
            g.stop()
        """, tmp_path)
    assert out["slow"] == "HTTP/1.1 200 OK"
    assert out["eof"] and 0.4 <= out["after"] <= 2.0, out
    assert out["fast"] == 8


def test_stop_with_requests_in_flight_leaves_no_fd_or_greenlet(tmp_path):
    port = free_port()
    with ScriptOrigin() as o:
        out = run_embedded(f"""
            # a first run, for what stays for the process lifetime (hub threads, resolver, imports)
            g = serving({port})
            c = client({port})
            get(c, "{o.url}/len/warm/5", 5)
            get(c, "{o.url}/len/warm2/5", 5)
            c.close()
            g.stop()
            gevent.sleep(0.2)
            base_fds, base_gl = fds(), greenlets()
            g = serving({port})
            conns = []
            for i in range(20):
                c = client({port})
                get(c, "{o.url}/len/w%d/5" % i, 5)
                get(c, "{o.url}/len/x%d/5" % i, 5)                     # the fast path's
                c.sendall(("GET {o.url}/slow/3000/y%d/5 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % i).encode())
                conns.append(c)
            for i in range(20):                  # and some waiting for their next request
                c = client({port})
                get(c, "{o.url}/len/z%d/5" % i, 5)
                get(c, "{o.url}/len/q%d/5" % i, 5)
                conns.append(c)
            gevent.sleep(0.3)
            in_flight = httpfast.counters[0] - 1
            t0 = time.monotonic()
            g.stop()
            took = time.monotonic() - t0
            closed = sum(1 for c in conns if c.recv(100) == b"")
            for c in conns:
                c.close()
            gevent.sleep(0.2)
            leaked = {{"fds": fds() - base_fds, "greenlets": greenlets() - base_gl}}
            # the fd numbers come back for new sockets: a watcher left started on one would
            # leave them deaf
            g = serving({port})
            served = 0
            for i in range(40):
                c = client({port})
                c.settimeout(5)
                for j in range(3):
                    head, _ = get(c, "{o.url}/len/n%d%d/5" % (i, j), 5)
                    served += head is not None and head.startswith(b"HTTP/1.1 200")
                c.close()
            g.stop()
            print(json.dumps({{"sessions": in_flight, "took": took, "closed": closed, "served": served,
                              **leaked}}))
        """, tmp_path)
    assert out["sessions"] == 40
    assert out["closed"] == 40, out
    assert out["served"] == 120, out
    assert out["took"] < 5, out
    assert out["fds"] <= 0 and out["greenlets"] <= 0, out
