"""observe/httppost.py against loopback servers that misbehave, and observe/observer.py's
reporting rules (GOST's: report on change, resetTraffic deltas, a refused report sent again)
with a stand-in service and a recording POST."""
import json
import time

import gevent
import pytest
from gevent import socket

from gostg.observe import observer as obs
from gostg.observe.httppost import PluginError, Target, post_json


def _server(answer):
    """A loopback server that reads one request and runs ``answer(conn, request bytes)``."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    seen = []

    def serve():
        c, _ = srv.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(4096)
        seen.append(data)
        answer(c, data)
        c.close()
    g = gevent.spawn(serve)
    return srv, g, seen


@pytest.mark.parametrize("reply, why", [
    (b"garbage\r\n\r\n", "bad HTTP reply"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n" + b"x" * 70000, "larger than"),
    (b"", "closed"),
])
def test_post_json_garbage_is_a_plugin_error(reply, why):
    srv, g, _ = _server(lambda c, _: c.sendall(reply))
    try:
        with pytest.raises(PluginError, match=why):
            post_json(Target(f"127.0.0.1:{srv.getsockname()[1]}/x", timeout=2), b"{}")
    finally:
        g.kill()
        srv.close()


def test_post_json_silent_plugin_times_out_and_sends_token():
    srv, g, seen = _server(lambda c, _: gevent.sleep(5))
    try:
        t0 = time.monotonic()
        with pytest.raises(PluginError, match="no answer within 0.3s"):
            post_json(Target(f"http://127.0.0.1:{srv.getsockname()[1]}/obs", token="tok", timeout=0.3), b"{}")
        assert time.monotonic() - t0 < 1.5
        head = seen[0].decode()
        assert head.startswith("POST /obs HTTP/1.1\r\n")
        assert "Authorization: Bearer tok\r\n" in head and "Content-Type: application/json\r\n" in head
    finally:
        g.kill()
        srv.close()


def test_post_json_refused_and_bad_addresses():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PluginError):
        post_json(Target(f"127.0.0.1:{port}", timeout=2), b"{}")
    for bad in ("ftp://x/y", "http://", "http://h:99999/"):
        with pytest.raises(ValueError):
            Target(bad)


def test_https_plugin_is_verified():
    """A self-signed plugin without caFile is refused (GOST would skip verification)."""
    import os
    import tempfile

    from gostg.transport.tlsconf import _generate   # a self-signed pair for localhost
    d = tempfile.mkdtemp()
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    _generate(cert, key)
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen(2)

    def serve():
        c, _ = raw.accept()
        try:
            from gevent import ssl
            sc = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            sc.load_cert_chain(cert, key)
            s = sc.wrap_socket(c, server_side=True)
            s.recv(4096)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
            s.close()
        except OSError:
            c.close()
    port = raw.getsockname()[1]
    g = gevent.spawn(serve)
    try:
        with pytest.raises(PluginError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            post_json(Target(f"https://127.0.0.1:{port}/", timeout=3), b"{}")
        g.join(2)
        g = gevent.spawn(serve)
        code, body = post_json(Target(f"https://127.0.0.1:{port}/", timeout=3, server_name="localhost",
                                      ca_file=cert), b"{}")
        assert (code, json.loads(body)) == (200, {"ok": True})
    finally:
        g.kill()
        raw.close()


# --- reporting rules, with a stand-in service --------------------------------------------------

class _Stats:
    total_conns = total_errs = input_bytes = output_bytes = 0


class _Handler:
    client_stats = None


class _Service:
    def __init__(self, name, reset=False):
        self.name, self.state, self.stats, self.handler = name, "ready", _Stats(), _Handler()
        self.observer, self.enable_stats, self.observer_period, self.observer_reset = "o", True, 1.0, reset
        self.current_conns = 0
        self.observed = None


class _Registries:
    def __init__(self, *services):
        from gostg.core.registry import Named
        self.services = Named()
        for s in services:
            self.services.set(s.name, s)


def _observer(*services, answers=None):
    """An Observer whose POST is recorded (``answers``: an iterator of True/False)."""
    o = obs.Observer("o", Target("127.0.0.1:1"), _Registries(*services))
    posts = []

    def post(events):
        posts.append(json.loads(json.dumps(events)))
        if answers is not None and not next(answers):
            raise PluginError("down")
    o._post = post
    return o, posts


def _tick(o, now):
    events = o._collect(now)
    if events:
        o._deliver(events)


def test_stats_only_on_change_and_totals_by_default():
    s = _Service("s")
    o, posts = _observer(s)
    _tick(o, 0)                       # first sight: due one period on
    _tick(o, 1.0)
    assert posts == []                # nothing happened: nothing sent
    s.stats.total_conns, s.stats.output_bytes, s.current_conns = 2, 500, 1
    _tick(o, 1.5)
    assert posts == []                # not due yet
    _tick(o, 2.0)
    assert posts == [[{"kind": "service", "service": "s", "type": "stats", "stats": {
        "totalConns": 2, "currentConns": 1, "inputBytes": 0, "outputBytes": 500, "totalErrs": 0}}]]
    _tick(o, 3.0)
    assert len(posts) == 1            # unchanged
    s.stats.output_bytes = 800
    _tick(o, 4.0)
    assert posts[-1][0]["stats"]["outputBytes"] == 800


def test_reset_traffic_deltas_survive_a_refused_report():
    s = _Service("s", reset=True)
    o, posts = _observer(s, answers=iter([False, True, True]))
    _tick(o, 0)
    s.stats.total_conns, s.stats.input_bytes, s.stats.output_bytes = 1, 100, 1000
    _tick(o, 1.0)                     # refused
    s.stats.output_bytes = 1500       # more traffic while the plugin is down
    _tick(o, 2.0)                     # the refused report again, unchanged
    assert posts[0] == posts[1]
    assert posts[1][0]["stats"]["outputBytes"] == 1000
    _tick(o, 3.0)                     # then the delta since it
    assert posts[2][0]["stats"]["outputBytes"] == 500 and posts[2][0]["stats"]["inputBytes"] == 0
    assert posts[2][0]["stats"]["totalConns"] == 1     # conns stay totals


def test_status_events_are_bounded_and_kept_until_taken():
    o, posts = _observer(answers=iter([False] * 5 + [True] * 5))
    o.start = lambda: None            # no greenlet: ticks by hand
    for i in range(obs.MAX_STATUS + 3):
        o.status("s", "ready")
    assert len(o._status) == obs.MAX_STATUS and o._dropped == 3
    _tick(o, 0)
    assert len(o._status) == obs.MAX_STATUS      # refused: kept
    for _ in range(5):
        _tick(o, 1)
    assert not o._status and o._dropped == 0


def test_handler_client_stats_per_client_and_omitempty():
    s = _Service("s")
    s.enable_stats = False
    s.handler.client_stats = cs = obs.ClientStats("o", "s", 1.0, reset=True)
    o, posts = _observer(s)
    _tick(o, 0)
    a = cs.begin("alice")
    anon = cs.begin("")
    cs.end(a, 10, 100)
    _tick(o, 1.0)
    got = {e.get("client", "-"): e for e in posts[0]}
    assert got["alice"]["kind"] == "handler" and got["alice"]["stats"] == {
        "totalConns": 1, "currentConns": 0, "inputBytes": 10, "outputBytes": 100, "totalErrs": 0}
    assert "client" not in got["-"] and got["-"]["stats"]["currentConns"] == 1
    cs.end(anon, 1, 2)
    _tick(o, 2.0)
    assert [e.get("client", "") for e in posts[1]] == [""]   # alice did not change
    assert posts[1][0]["stats"]["outputBytes"] == 2


def test_greenlet_reports_status_at_once_and_close_ends_it():
    o, posts = _observer()
    o.status("s", "running")
    o.status("s", "ready")
    deadline = time.monotonic() + 2
    while not posts and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert [e["status"]["state"] for e in posts[0]] == ["running", "ready"]
    g = o._greenlet
    o.close(flush=0.5)
    assert g.dead and o._greenlet is None
    o.status("s", "closed")           # after close: nothing starts again
    assert o._greenlet is None


def test_a_bug_in_reading_does_not_end_reporting():
    s = _Service("s")
    o, posts = _observer(s)
    o.log = _Log()
    calls = []

    def boom():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return (1, 0, 0, 0, 0)
    obs_totals = obs.service_totals
    obs.service_totals = lambda svc: boom()
    try:
        s.observer_period = 1.0
        o.start()
        deadline = time.monotonic() + 4
        while not posts and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert posts and o.log.lines and "boom" in o.log.lines[0]
    finally:
        obs.service_totals = obs_totals
        o.close(0)


class _Log:
    def __init__(self):
        self.lines = []

    def exception(self, msg, **kw):
        self.lines.append(msg)

    warning = info = debug = exception
