"""Reloading the config file of a running gostg (spec §4 ``POST /config/reload``, §2.1 SIGHUP):
only services whose config changed are restarted; unchanged ones keep their listener, their
createTime and their open connections; a broken file changes nothing; removed services stop,
new ones start. Real ``bin/gostg -C cfg.yaml -api …`` processes, real traffic on 127.0.0.1."""
import contextlib
import json
import signal
import socket
import time

import pytest
import socks
import yaml

from .helpers import Echo, Gost, Origin, free_port, port_closed
from .peers import Api, curl_code


def svc(name, port, handler="http", **extra):
    """A service object; ``handler`` is a type name or a full handler object."""
    handler = handler if isinstance(handler, dict) else {"type": handler}
    o = {"name": name, "addr": f"127.0.0.1:{port}", "handler": handler, "listener": {"type": "tcp"}}
    o.update(extra)
    return o


def write(path, services, **extra):
    path.write_text(yaml.safe_dump({"services": services, **extra}, sort_keys=False))


def without_volatile(cfg):
    """The config with each status reduced to what must not change when nothing is reloaded."""
    cfg = json.loads(json.dumps(cfg))
    for s in cfg.get("services") or []:
        st = s.pop("status", {})
        s["_kept"] = (st.get("createTime"), st.get("state"))
    return cfg


def without_status(cfg):
    cfg = json.loads(json.dumps(cfg))
    for s in cfg.get("services") or []:
        s.pop("status", None)
    return cfg


def served(port, origin, path, scheme="http"):
    rc, status, body = curl_code("-x", f"{scheme}://127.0.0.1:{port}", origin.url + path, timeout=8)
    return rc == 0 and status == 200 and body.startswith(f"hello from origin {path} ".encode())


def tunnel(port, echo_port):
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, "127.0.0.1", port)
    s.settimeout(5)
    s.connect(("127.0.0.1", echo_port))
    return s


def roundtrip(sock, payload, timeout=5.0):
    sock.sendall(payload)
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < len(payload) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        got += d
    return got


def wait_for(pred, timeout=8.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


@contextlib.contextmanager
def running(tmp_path, services, **extra):
    """gostg -C cfg.yaml -api … with ``services`` written to cfg.yaml → (Gost, Api, cfg path)."""
    cfg = tmp_path / "cfg.yaml"
    write(cfg, services, **extra)
    api_port = free_port()
    ports = [int(s["addr"].rsplit(":", 1)[1]) for s in services]
    g = Gost("-C", cfg, "-api", f"127.0.0.1:{api_port}", ports=[api_port, *ports], cwd=tmp_path)
    with g:
        yield g, Api(api_port), cfg
        assert g.proc.poll() is None, "gostg died:\n" + g.log_text()[-3000:]


@pytest.mark.parametrize("how", ["api", "sighup"])
def test_reload_restarts_only_the_changed_service(tmp_path, origin, how):
    pa, pb, pb2 = free_port(), free_port(), free_port()
    a, b = svc("A", pa, "socks5"), svc("B", pb, "http")
    with Echo() as echo, running(tmp_path, [a, b]) as (g, api, cfg):
        before = api.services()
        t = tunnel(pa, echo.port)
        try:
            assert roundtrip(t, b"before") == b"before"
            assert served(pb, origin, "/b-http")
            write(cfg, [a, svc("B", pb2, "socks5")])
            if how == "api":
                status, js, raw = api.reload()
                assert status == 200, raw
            else:
                g.signal(signal.SIGHUP)
                assert wait_for(lambda: api.services()["B"]["handler"]["type"] == "socks5"), g.log_text()[-2000:]
            after = api.services()
            # B: rebuilt on its new port with its new protocol; the old port is gone
            assert after["B"]["addr"] == f"127.0.0.1:{pb2}" and after["B"]["handler"]["type"] == "socks5"
            assert after["B"]["status"]["state"] == "ready"
            assert served(pb2, origin, "/b-socks5", scheme="socks5h")
            assert port_closed(pb)
            # A: untouched — same instance, same listener, the open tunnel still echoes
            assert after["A"]["status"]["createTime"] == before["A"]["status"]["createTime"]
            assert after["A"]["status"]["state"] == "ready"
            assert roundtrip(t, b"after-reload" * 50) == b"after-reload" * 50
        finally:
            t.close()
        assert served(pa, origin, "/a-again", scheme="socks5h")
        assert without_status(api.config()) == without_status(
            {**yaml.safe_load(cfg.read_text()), "api": {"addr": f"127.0.0.1:{api.port}"}})


BROKEN = {
    "invalid-yaml": ("services:\n  - name: A\n    addr: [unclosed\n", ["yaml"]),
    "unknown-handler": (None, ["no-such-handler"]),
    "duplicate-name": (None, ["duplicate"]),
}


def _broken_text(kind, a, b):
    text, _ = BROKEN[kind]
    if text is not None:
        return text
    if kind == "unknown-handler":
        return yaml.safe_dump({"services": [a, {**b, "handler": {"type": "no-such-handler"}}]})
    return yaml.safe_dump({"services": [a, b, {**b, "addr": f"127.0.0.1:{free_port()}"}]})


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_is_refused_and_nothing_changes(tmp_path, origin, kind):
    pa, pb = free_port(), free_port()
    a, b = svc("A", pa, "socks5"), svc("B", pb, "http")
    with Echo() as echo, running(tmp_path, [a, b]) as (g, api, cfg):
        t = tunnel(pa, echo.port)
        try:
            before = without_volatile(api.config())
            cfg.write_text(_broken_text(kind, a, b))
            status, js, raw = api.reload()
            assert 400 <= status < 500, f"broken file: reload answered {status} {raw!r}"
            msg = (js or {}).get("msg", "")
            assert any(w in msg.lower() for w in BROKEN[kind][1]), f"the error does not say why: {msg!r}"
            assert without_volatile(api.config()) == before
            assert roundtrip(t, b"still-open") == b"still-open"
        finally:
            t.close()
        assert served(pa, origin, "/a", scheme="socks5h")
        assert served(pb, origin, "/b")
        # SIGHUP with the same broken file: logged, nothing changes, the process lives on
        g.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload failed" in g.log_text(), timeout=5), g.log_text()[-2000:]
        assert without_volatile(api.config()) == before
        assert served(pb, origin, "/b-after-hup")


def test_reload_stops_removed_and_starts_new_services(tmp_path, origin):
    pa, pb, pc = free_port(), free_port(), free_port()
    down = tmp_path / "b-post-down"
    a = svc("A", pa, "http")
    b = svc("B", pb, "http", metadata={"postDown": [f"touch {down}"]})
    with running(tmp_path, [a, b]) as (g, api, cfg):
        created_a = api.services()["A"]["status"]["createTime"]
        write(cfg, [a, svc("C", pc, "socks5")])
        status, js, raw = api.reload()
        assert status == 200, raw
        assert port_closed(pb), "the removed service still listens"
        assert wait_for(down.exists, timeout=5), "the removed service's postDown hook did not run"
        assert served(pc, origin, "/c", scheme="socks5h")
        assert served(pa, origin, "/a")
        svcs = api.services()
        assert sorted(svcs) == ["A", "C"]
        assert svcs["A"]["status"]["createTime"] == created_a
        assert svcs["C"]["status"]["state"] == "ready"
        assert api.ok("GET", "/config/services/B") == {"data": {}}


def test_reload_accepts_forward_reference_like_startup(tmp_path, origin):
    """A file whose service names a chain that is not defined loads at startup (late binding,
    spec §1.7); the same file must reload too. Fail closed: the service refuses connections
    until the chain exists, never goes direct."""
    pa, pb = free_port(), free_port()
    a = svc("A", pa, "http")
    with running(tmp_path, [a, svc("B", pb, {"type": "http", "chain": "not-yet"})]) as (g, api, cfg):
        assert not served(pb, origin, "/b-refused")
        write(cfg, [{**a, "handler": {"type": "http", "chain": "not-yet"}}, svc("B", pb, "http")])
        status, js, raw = api.reload()
        assert status == 200, f"reload refused a file that loads at startup: {status} {raw!r}"
        assert "services[0].handler.chain: chain 'not-yet' does not exist" in js["data"]["warnings"][0]
        assert not served(pa, origin, "/a-refused")
        assert served(pb, origin, "/b-direct")
