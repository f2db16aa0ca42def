"""Headless Chromium driven over the DevTools protocol (CDP) for the status page test.

Chromium (apt ``chromium``) starts in its own process group with ``--remote-debugging-port=0``;
the port it took is read from ``DevToolsActivePort`` in its profile directory, the page's
websocket from ``/json/list``, and the protocol spoken with wsproto (already a gostg
dependency) over a plain socket. Stopped by killing its process group (the browser and its
renderer/GPU/zygote children), whatever happened. Every wait has a deadline."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, CloseConnection, Message, Ping, RejectConnection, Request,
                            TextMessage)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """``with Chromium(tmp_path) as b:`` → ``b.page()`` is a :class:`Page` on about:blank."""

    def __init__(self, tmp_path, size=(1280, 900), timeout=15.0):
        self.dir = str(tmp_path / "chromium-profile")
        self.log_path = str(tmp_path / "chromium.log")
        self.size = size
        self.timeout = timeout
        self.proc = None
        self.port = None

    def __enter__(self):
        os.makedirs(self.dir, exist_ok=True)
        try:   # a profile used before: its port file names a browser that is gone
            os.unlink(os.path.join(self.dir, "DevToolsActivePort"))
        except FileNotFoundError:
            pass
        # root in CI: no sandbox; no GPU in a container; a fresh profile, nothing phoning home
        argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={self.dir}", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--metrics-recording-only", "--no-proxy-server",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        try:
            self.port = self._devtools_port()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _devtools_port(self):
        path = os.path.join(self.dir, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"chromium wrote no DevToolsActivePort within {self.timeout}s: {self.log_text()[-2000:]}")

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def page(self):
        deadline = time.monotonic() + self.timeout
        while True:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                c.request("GET", "/json/list")
                targets = json.loads(c.getresponse().read())
            except ConnectionRefusedError:
                targets = []
            finally:
                c.close()
            pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
            if pages:
                return Page(self.port, pages[0]["webSocketDebuggerUrl"])
            if time.monotonic() > deadline:
                raise TimeoutError("chromium shows no page target")
            time.sleep(0.1)

    def __exit__(self, *exc):
        if self.proc is None:
            return
        try:   # the whole group: the browser and every child it started
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class CdpError(Exception):
    pass


class Page:
    """One page target. ``call`` sends a command and returns its result, answering the events
    that arrive meanwhile; ``pump(seconds)`` only answers events. With :meth:`answer_auth`,
    paused requests go on and HTTP auth challenges are answered with the given credentials (as
    a user typing them into the browser's prompt)."""

    def __init__(self, port, ws_url, timeout=10.0):
        self.timeout = timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.next_id = 0
        self.results = {}
        self.credentials = None
        self.auth_challenges = 0
        self._text = []
        self._open = False
        target = ws_url.split(f":{port}", 1)[1]
        self.sock.sendall(self.ws.send(Request(host=f"127.0.0.1:{port}", target=target)))
        deadline = time.monotonic() + timeout
        while not self._open:
            self._read(deadline)

    def close(self):
        try:
            self.sock.sendall(self.ws.send(CloseConnection(code=1000)))
        except Exception:
            pass
        self.sock.close()

    def _read(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        if not data:
            raise CdpError("devtools connection closed")
        self.ws.receive_data(data)
        for ev in self.ws.events():
            if isinstance(ev, AcceptConnection):
                self._open = True
            elif isinstance(ev, RejectConnection):
                raise CdpError(f"devtools refused the websocket: {ev.status_code}")
            elif isinstance(ev, Ping):
                self.sock.sendall(self.ws.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                raise CdpError("devtools closed the websocket")
            elif isinstance(ev, TextMessage):
                self._text.append(ev.data)
                if ev.message_finished:
                    self._dispatch(json.loads("".join(self._text)))
                    self._text = []
            elif isinstance(ev, Message):
                pass

    def _dispatch(self, msg):
        if "id" in msg:
            self.results[msg["id"]] = msg
            return
        method, params = msg.get("method"), msg.get("params") or {}
        if method == "Fetch.requestPaused":
            self.send("Fetch.continueRequest", requestId=params["requestId"])
        elif method == "Fetch.authRequired":
            self.auth_challenges += 1
            user, password = self.credentials or ("", "")
            response = "ProvideCredentials" if self.credentials else "CancelAuth"
            self.send("Fetch.continueWithAuth", requestId=params["requestId"],
                      authChallengeResponse={"response": response, "username": user, "password": password})

    def send(self, method, **params):
        self.next_id += 1
        msg = json.dumps({"id": self.next_id, "method": method, "params": params})
        self.sock.sendall(self.ws.send(TextMessage(data=msg)))
        return self.next_id

    def call(self, method, timeout=None, **params):
        i = self.send(method, **params)
        deadline = time.monotonic() + (timeout or self.timeout)
        while i not in self.results:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to {method}")
            self._read(deadline)
        msg = self.results.pop(i)
        if "error" in msg:
            raise CdpError(f"{method}: {msg['error']}")
        return msg.get("result") or {}

    def pump(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline)
        self.results.clear()   # answers to the continue commands sent meanwhile

    def answer_auth(self, user, password):
        self.credentials = (user, password)
        self.call("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])

    def screenshot(self):
        """→ PNG bytes of the whole page (beyond the window's height)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        return base64.b64decode(data)

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            raise CdpError(f"{expr[:60]}…: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, expr, timeout=10.0):
        """Evaluate ``expr`` until it is truthy (answering events in between) → its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.evaluate(expr)
            if v:
                return v
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never showed: {expr}")
            self.pump(0.2)
