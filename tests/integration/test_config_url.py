"""``-C http(s)://…`` (issue 16 must 5): a config read from a URL, as GOST's parser takes it.

A loopback HTTP server in the test serves the document; the test changes what it answers
(body, Content-Type, status, a delay). ``bin/gostg -C URL -R 1s`` serves from it, applies a
change within a couple of periods restarting only the changed service (a tunnel through the
unchanged one lives on), and keeps everything running through a broken document, a 500 and a
timeout, each said once. Start-up failures are one line naming the URL; ``--check`` and ``-O``
fetch too; JSON vs YAML follows the Content-Type, then the extension."""
import base64
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time

import pytest
import yaml

from .helpers import Gost, HTTPServerThread, port_closed, run_gostg, wait_for
from .peers import EchoAt, bind_block, curl_code, log_records, recv_exact, socks5_open, wait_log

PERIOD = 0.5   # short: the reload test waits several periods per step
MAX_SIZE = 10 << 20


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        st = self.server.state
        st["hits"] += 1
        st["auth"].append(self.headers.get("Authorization"))
        if st["delay"]:
            time.sleep(st["delay"])   # a hung config server (bounded: the test sets seconds)
        body = st["body"]
        try:
            self.send_response(st["status"])
            if st["ctype"]:
                self.send_header("Content-Type", st["ctype"])
            if st["length"]:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass   # the client gave up (timeout, size cap): nothing to tell it


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass   # a client that hung up mid-answer is what some tests do on purpose


class ConfigServer(HTTPServerThread):
    """The config server: ``state`` holds what GET answers (body, ctype, status, delay,
    length) and what it saw (hits, auth headers)."""

    def __init__(self, sock, tls=None):
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self.server = _Server(("127.0.0.1", self.port), _Handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = tls.wrap_socket(sock, server_side=True) if tls else sock
        self.server.state = self.state = {"body": b"", "ctype": None, "status": 200, "delay": 0,
                                          "length": True, "hits": 0, "auth": []}
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, body, ctype=None, status=200, delay=0, length=True):
        if isinstance(body, dict):
            body = yaml.safe_dump(body, sort_keys=False)
        self.state.update(body=body.encode() if isinstance(body, str) else body, ctype=ctype,
                          status=status, delay=delay, length=length)

    def url(self, path="/gost.yaml", scheme="http", userinfo=""):
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}{path}"


def svc(name, port, handler):
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": handler}, "listener": {"type": "tcp"}}


@pytest.fixture
def ports():
    """Sockets on consecutive loopback ports below the ephemeral range: [0] the config
    server, [1] an echo server, the rest closed for gostg to bind."""
    socks = bind_block(6)
    free = [s.getsockname()[1] for s in socks[2:]]
    for s in socks[2:]:
        s.close()
    yield socks[:2], free
    for s in socks[:2]:
        s.close()


def echo_round(s, data):
    s.sendall(data)
    return recv_exact(s, len(data))


def failed_lines(g, what):
    return [r for r in log_records(g, msg="-R: reload failed") if what in r["msg"]]


def test_served_from_url_reloads_only_what_changed_and_survives_bad_answers(ports, tmp_path):
    (cfg_sock, echo_sock), (p_keep, p_chg, p_chg2, p_api) = ports
    with ConfigServer(cfg_sock) as srv, EchoAt(echo_sock) as echo:
        doc = {"services": [svc("keep", p_keep, "socks5"), svc("change", p_chg, "http")],
               "api": {"addr": f"127.0.0.1:{p_api}"}}
        srv.serve(doc)
        url = srv.url()
        env = {"GOSTG_CONFIG_URL_TIMEOUT": "1s"}
        with Gost("-C", url, "-R", f"{PERIOD:g}s", ports=[p_keep, p_chg, p_api], env=env) as g:
            # 1. the proxy works from the URL's config: curl fetches the config server through it
            rc, status, body = curl_code("-x", f"http://127.0.0.1:{p_chg}", url, timeout=8)
            assert (rc, status) == (0, 200) and b"name: keep" in body, (rc, status, body[:200])
            tunnel = socks5_open(p_keep, echo.port)   # a long-lived connection through "keep"
            assert echo_round(tunnel, b"before") == b"before"

            # 2. a change on the server: within a couple of periods, only "change" restarts
            doc["services"][1] = svc("change", p_chg2, "http")
            srv.serve(doc)
            t0 = time.monotonic()
            assert wait_for(lambda: not port_closed(p_chg2), timeout=4 * PERIOD + 2), \
                f"the changed service never listened on its new port:\n{g.log_text()[-3000:]}"
            assert time.monotonic() - t0 < 3 * PERIOD + 1.5
            assert wait_for(lambda: port_closed(p_chg), timeout=3), "the old port of the changed service is open"
            reloaded = [r for r in log_records(g, msg="config reloaded") if r.get("changed") or r.get("removed")]
            assert [(r["changed"], r["removed"]) for r in reloaded] == [(["change"], [])], reloaded
            assert echo_round(tunnel, b"after-change") == b"after-change", "the unchanged service's tunnel died"
            rc, status, _ = curl_code("-x", f"http://127.0.0.1:{p_chg2}", url, timeout=8)
            assert (rc, status) == (0, 200)
            listening = len(log_records(g, msg="listening on"))

            # 3. a broken document, then a 500, then a hung server (timeout): each is said once
            #    over several periods, and nothing stops serving
            for label, serve_args, what, wait in (
                    ("broken YAML", dict(body="services:\n  - name: x\n bad: [\n"), "invalid YAML", 3.5 * PERIOD),
                    ("HTTP 500", dict(body="oops", status=500), "HTTP 500 Internal Server Error", 3.5 * PERIOD),
                    # a fetch cycle is the 1 s timeout + a period: the wait covers two more
                    ("timeout", dict(body=yaml.safe_dump(doc), delay=1.5), "cannot fetch config: timed out", 3.5)):
                srv.serve(**serve_args)
                want = f"reload: {url}: "
                assert wait_for(lambda: failed_lines(g, what), timeout=8), \
                    f"{label}: no reload-failed line with {what!r}:\n{g.log_text()[-3000:]}"
                line = failed_lines(g, what)[0]["msg"]
                assert want in line, line
                # meanwhile everything serves: the tunnel, and a new connection made while a
                # fetch hangs (a fetch holds one greenlet, not the process)
                assert echo_round(tunnel, label.encode()) == label.encode(), f"{label}: the tunnel died"
                hits = srv.state["hits"]
                assert wait_for(lambda: srv.state["hits"] > hits, timeout=5), "gostg stopped fetching"
                t0 = time.monotonic()
                with socks5_open(p_keep, echo.port) as fresh:
                    assert echo_round(fresh, b"new") == b"new"
                assert time.monotonic() - t0 < 0.5, f"{label}: a new connection waited for the fetch"
                time.sleep(wait)
                assert len(failed_lines(g, what)) == 1, f"{label}: said {len(failed_lines(g, what))} times"
                if label == "HTTP 500":   # SIGHUP fetches too, and answers each time it is asked
                    g.signal(signal.SIGHUP)
                    assert wait_log(g, r'"msg": "SIGHUP: reload failed[^"]*' + re.escape(what), timeout=5)
            assert not port_closed(p_keep) and not port_closed(p_chg2)
            assert len(log_records(g, msg="listening on")) == listening, "a failed reload restarted a service"

            # 4. the server answers again: said once, and the config is current
            srv.serve(doc)
            assert wait_log(g, r'"msg": "-R: reload works again"', timeout=8), g.log_text()[-2000:]
            time.sleep(2 * PERIOD)
            assert len(log_records(g, msg="-R: reload works again")) == 1

            # 5. POST /config (save) with a URL source: never written to the URL; path= saves
            rc, status, body = curl_code("-X", "POST", f"http://127.0.0.1:{p_api}/config", timeout=8)
            assert status == 400, (rc, status, body)
            answer = json.loads(body)
            assert answer["code"] == 40005 and url in answer["msg"] and "path=" in answer["msg"], answer
            saved = tmp_path / "saved.yaml"
            rc, status, body = curl_code("-X", "POST", f"http://127.0.0.1:{p_api}/config?path={saved}", timeout=8)
            assert status == 200, body
            names = [s["name"] for s in yaml.safe_load(saved.read_text())["services"]]
            assert names == ["keep", "change"]
            assert echo_round(tunnel, b"end") == b"end"
            tunnel.close()
            assert g.proc.poll() is None
            assert "Traceback" not in g.log_text()


def test_json_or_yaml_by_content_type_then_extension(ports):
    (cfg_sock, _), (p1, *_) = ports
    doc = {"services": [svc("one", p1, "socks5")]}
    as_json, as_yaml = json.dumps(doc), yaml.safe_dump(doc)
    with ConfigServer(cfg_sock) as srv:
        for path, body, ctype, ok in (
                ("/config", as_json, "application/json; charset=utf-8", True),   # by Content-Type
                ("/gost.json", as_yaml, "text/yaml", True),          # the type wins over the extension
                ("/gost.yaml", as_yaml, "application/json", False),  # … also when it says JSON
                ("/gost.json", as_yaml, "text/plain", False),         # no known type: the extension
                ("/gost.JSON", as_json, None, True),
                ("/config", as_yaml, "text/plain", True)):           # neither: YAML
            srv.serve(body, ctype=ctype)
            url = srv.url(path)
            p = run_gostg("-O", "json", "-C", url)
            if ok:
                assert p.returncode == 0, (path, ctype, p.stderr)
                assert json.loads(p.stdout)["services"][0]["name"] == "one"
            else:
                assert p.returncode == 1 and p.stderr.startswith(f"gostg: config error: {url}: invalid JSON"), \
                    (path, ctype, p.stderr)


def one_line_error(p, url, what):
    assert p.returncode == 1, p
    assert "Traceback" not in p.stderr
    assert p.stderr.splitlines() == [f"gostg: config error: {url}: {what}"], p.stderr


def test_start_up_failures_are_one_line_naming_the_url(ports):
    (cfg_sock, closed_sock), (p1, *_) = ports
    closed = closed_sock.getsockname()[1]
    closed_sock.close()
    # unreachable: the port refuses
    url = f"http://127.0.0.1:{closed}/gost.yaml"
    one_line_error(run_gostg("-C", url), url, "cannot fetch config: Connection refused")
    with ConfigServer(cfg_sock) as srv:
        doc = {"services": [svc("one", p1, "socks5")]}
        # a status other than 200
        srv.serve("nope", status=404)
        one_line_error(run_gostg("-C", srv.url()), srv.url(), "cannot fetch config: HTTP 404 Not Found")
        # credentials: sent as Basic auth, never printed
        srv.serve("", status=403)
        p = run_gostg("-C", srv.url(userinfo="admin:s%40cret@"))
        one_line_error(p, srv.url(), "cannot fetch config: HTTP 403 Forbidden")
        assert srv.state["auth"][-1] == "Basic " + base64.b64encode(b"admin:s@cret").decode()
        # more than 10 MiB: with a Content-Length, and without one (read until the cap)
        for length in (True, False):
            srv.serve(b"#" * (MAX_SIZE + 1), length=length)
            one_line_error(run_gostg("-C", srv.url()), srv.url(),
                           f"config exceeds the maximum size of {MAX_SIZE} bytes")
        # a hung server: the timeout (GOSTG_CONFIG_URL_TIMEOUT, GOST's 30 s by default)
        srv.serve(doc, delay=4)
        t0 = time.monotonic()
        p = run_gostg("-C", srv.url(), env={"GOSTG_CONFIG_URL_TIMEOUT": "1s"})
        one_line_error(p, srv.url(), "cannot fetch config: timed out")
        # the 1 s timeout, not the server's 4 s (start-up under CI's load takes its share)
        assert time.monotonic() - t0 < 3.8
        # --check fetches and checks the document like a file
        srv.serve(doc)
        p = run_gostg("--check", "-C", srv.url())
        assert (p.returncode, p.stdout.strip()) == (0, "gostg: config OK"), p.stderr
        srv.serve({"services": [{**svc("one", p1, "sock5")}]})
        p = run_gostg("--check", "-C", srv.url())
        assert p.returncode == 1
        assert "services[0].handler.type: unknown handler 'sock5' (did you mean 'socks5'?)" in p.stderr
        # a broken document at start
        srv.serve("services: [\n")
        p = run_gostg("-C", srv.url())
        assert p.returncode == 1 and p.stderr.startswith(f"gostg: config error: {srv.url()}: invalid YAML"), p.stderr
        assert len(p.stderr.splitlines()) == 1


def _require(binary):
    if shutil.which(binary) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is required in CI")
        pytest.skip(f"{binary} not installed")


def test_https_is_verified_against_the_system_store(ports, tmp_path):
    """https: the certificate is verified (the system's CA store; SSL_CERT_FILE names another,
    as for Go). A self-signed server is refused at start; trusted, it serves."""
    _require("openssl")
    import ssl

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem",
                    "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], cwd=tmp_path, check=True, capture_output=True,
                   timeout=30)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    (cfg_sock, _), (p1, *_) = ports
    with ConfigServer(cfg_sock, tls=ctx) as srv:
        srv.serve({"services": [svc("one", p1, "socks5")]})
        url = srv.url(scheme="https")
        p = run_gostg("-O", "json", "-C", url)
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert re.fullmatch(re.escape(f"gostg: config error: {url}: cannot fetch config: TLS certificate not verified: ")
                            + r".*self[- ]signed.*\n", p.stderr), p.stderr
        with Gost("-C", url, ports=[p1], env={"SSL_CERT_FILE": str(tmp_path / "cert.pem")}) as g:
            s = socket.create_connection(("127.0.0.1", p1), timeout=5)
            s.sendall(b"\x05\x01\x00")
            assert recv_exact(s, 2) == b"\x05\x00"
            s.close()
            assert g.proc.poll() is None
