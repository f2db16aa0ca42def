"""A small GOST HTTP plugin server for tests: a threaded http.server on 127.0.0.1 whose
``routes`` map a path to ``fn(request JSON) -> reply`` (a dict sent as JSON, or bytes sent
as they are). Special answers: ``SLOW`` (never answers within a test), ``garbage`` bytes.
Every request is kept: (path, headers, body JSON or raw bytes). GET serves ``files[path]``.
``rest`` maps ``(METHOD, path)`` to ``fn(request) -> reply`` for GOST's REST-shaped plugins
(ingress, router, sd): the request is the query (a dict of single values) for a GET, the JSON
body otherwise; a reply may be ``(status, body)``. Those calls are kept in ``calls`` as
(method, path, request). ``tls`` (an ``ssl.SSLContext``, server side) serves HTTPS.
"""
import http.server
import json
import ssl
import sys
import threading
import time
from urllib.parse import parse_qsl, urlsplit

from .helpers import HTTPServerThread


class Slow:
    """A route that sleeps ``seconds`` before answering ``{"ok": true}``."""

    def __init__(self, seconds):
        self.seconds = seconds


class PluginServer(HTTPServerThread):
    def __init__(self, routes=None, files=None, rest=None, tls=None):
        box = self
        self.routes = dict(routes or {})
        self.files = dict(files or {})
        self.rest = dict(rest or {})
        self.requests = []
        self.calls = []
        self._lock = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code, body):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def _body(self):
                """The request body: its JSON, or the raw bytes when it is not JSON."""
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    return json.loads(raw)
                except ValueError:
                    return raw

            def _rest(self, method):
                """GOST's REST-shaped plugins → True when ``rest`` had the route."""
                u = urlsplit(self.path)
                fn = box.rest.get((method, u.path))
                if fn is None:
                    return False
                req = dict(parse_qsl(u.query, keep_blank_values=True)) if method == "GET" else self._body()
                with box._lock:
                    box.requests.append((self.path, dict(self.headers), req))
                    box.calls.append((method, u.path, req))
                if isinstance(fn, Slow):
                    time.sleep(fn.seconds)
                    self._send(200, b"{}")
                    return True
                out = fn(req)
                code, out = out if isinstance(out, tuple) else (200, out)
                self._send(code, out if isinstance(out, bytes) else json.dumps(out).encode())
                return True

            def do_PUT(self):
                if not self._rest("PUT"):
                    self._send(404, b"no such plugin")

            def do_DELETE(self):
                if not self._rest("DELETE"):
                    self._send(404, b"no such plugin")

            def do_GET(self):
                if self._rest("GET"):
                    return
                with box._lock:
                    box.requests.append((self.path, dict(self.headers), None))
                body = box.files.get(self.path)
                if body is None:
                    self._send(404, b"not here")
                else:
                    self._send(200, body if isinstance(body, bytes) else json.dumps(body).encode())

            def do_POST(self):
                if self._rest("POST"):
                    return
                req = self._body()
                with box._lock:
                    box.requests.append((self.path, dict(self.headers), req))
                fn = box.routes.get(self.path)
                if fn is None:
                    return self._send(404, b"no such plugin")
                if isinstance(fn, Slow):
                    time.sleep(fn.seconds)
                    return self._send(200, b'{"ok": true}')
                out = fn(req)
                self._send(200, out if isinstance(out, bytes) else json.dumps(out).encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls is not None:
            # the handshake happens on the handler's thread (its first read), not in accept():
            # a client that refuses the certificate cannot hold the accept loop
            assert isinstance(tls, ssl.SSLContext)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
            self.url = f"https://127.0.0.1:{self.port}"
            report = self.server.handle_error

            def handle_error(request, client_address):
                # a client refusing the certificate is what a TLS test expects: no traceback
                if not isinstance(sys.exc_info()[1], ssl.SSLError):
                    report(request, client_address)
            self.server.handle_error = handle_error
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def seen(self, path):
        with self._lock:
            return [r for r in self.requests if r[0] == path]

