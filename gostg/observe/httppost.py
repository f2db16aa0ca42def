"""One JSON POST to a GOST HTTP plugin (observers; recorders and other plugins may share it).

Rules:
1. Cooperative whether or not the host app patched: gevent's socket and ssl, never the
   stdlib's ``http.client`` (it blocks the hub in an unpatched embedding app).
2. One deadline for the whole exchange (connect, TLS, request, reply): a slow plugin costs
   its caller ``timeout`` seconds at most, never a stuck greenlet.
3. The reply is parsed by h11 (a state machine over bytes), and its body is capped: a plugin
   answering garbage or an endless body is a :class:`PluginError`, never a crash.
4. TLS to an ``https://`` plugin is verified (the system CAs, or ``caFile``): the request
   carries the plugin token. GOST skips verification unless ``tls.secure`` is true.
5. A new connection per POST: an observer posts once per period, so keeping one open would
   only add a stale-connection case to handle.
"""
import json
from urllib.parse import urlsplit

import gevent
import h11
from gevent import socket, ssl

#: largest reply body read from a plugin (GOST's replies are a few bytes: ``{"ok":true}``)
MAX_REPLY = 65536


class PluginError(OSError):
    """The plugin could not be reached, timed out, or answered something unusable (an OSError:
    to whoever sends, a plugin that fails is a peer that fails)."""


def plugin_ok(code, reply):
    """GOST's plugin answer: HTTP 200 with ``{"ok": true}``; anything else is a PluginError."""
    if code != 200:
        raise PluginError(f"HTTP {code}")
    try:
        ok = json.loads(reply).get("ok") is True
    except (ValueError, AttributeError):
        raise PluginError(f"reply is not GOST's JSON ({reply[:64]!r})") from None
    if not ok:
        raise PluginError("plugin answered ok: false")


class Target:
    """Where and how to POST: GOST's plugin ``addr`` (``http://`` is prepended when it has no
    scheme, as GOST), ``token`` (``Authorization: Bearer``), ``timeout`` and ``tls``."""

    __slots__ = ("url", "host", "port", "path", "https", "token", "timeout", "server_name", "ca_file", "_ctx")

    def __init__(self, addr, token="", timeout=10.0, server_name="", ca_file=""):
        if "://" in addr and not addr.startswith(("http://", "https://")):
            raise ValueError(f"bad plugin address {addr!r}: http:// or https:// only")
        url = addr if addr.startswith("http") else "http://" + addr
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"bad plugin address {addr!r} (e.g. http://127.0.0.1:8000/observer)")
        try:
            port = u.port
        except ValueError:
            raise ValueError(f"bad port in plugin address {addr!r}") from None
        self.url = url
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, port or (443 if self.https else 80)
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.token, self.timeout = token, timeout
        self.server_name, self.ca_file = server_name or self.host, ca_file
        self._ctx = None

    def host_header(self):
        h = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.https else 80
        return h if self.port == default else f"{h}:{self.port}"

    def context(self):
        """gevent's own SSLContext (``ssl.create_default_context`` gives the stdlib's, whose
        handshake blocks the hub in an unpatched app): the chain and the name are checked."""
        if self._ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self.ca_file:
                ctx.load_verify_locations(self.ca_file)
            else:
                ctx.load_default_certs()
            self._ctx = ctx
        return self._ctx


def post_json(target, body):
    """POST ``body`` (bytes, JSON) to ``target`` → (status code, reply body bytes).
    Raises :class:`PluginError` on any failure, after at most ``target.timeout`` seconds."""
    timer = gevent.Timeout(target.timeout or None)
    timer.start()
    sock = None
    try:
        sock = socket.create_connection((target.host, target.port))
        if target.https:
            sock = target.context().wrap_socket(sock, server_hostname=target.server_name)
        conn = h11.Connection(h11.CLIENT)
        headers = [("Host", target.host_header()), ("User-Agent", "gostg"),
                   ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("Connection", "close")]
        if target.token:
            headers.append(("Authorization", f"Bearer {target.token}"))
        sock.sendall(conn.send(h11.Request(method="POST", target=target.path, headers=headers))
                     + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        return _reply(conn, sock)
    except gevent.Timeout as t:
        if t is not timer:
            raise
        raise PluginError(f"no answer within {target.timeout:g}s") from None
    except h11.ProtocolError as exc:
        raise PluginError(f"bad HTTP reply: {exc}") from None
    except (OSError, ValueError) as exc:   # ssl.SSLError is an OSError
        raise PluginError(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) from None
    finally:
        timer.close()
        if sock is not None:
            sock.close()


def _reply(conn, sock):
    status, chunks, size = None, [], 0
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA:
            data = sock.recv(16384)
            if not data and status is None:
                raise PluginError("connection closed before a reply")
            conn.receive_data(data)
        elif isinstance(ev, h11.Response):
            status = ev.status_code
        elif isinstance(ev, h11.Data):
            size += len(ev.data)
            if size > MAX_REPLY:
                raise PluginError(f"reply body larger than {MAX_REPLY} bytes")
            chunks.append(bytes(ev.data))
        elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
            if status is None:
                raise PluginError("connection closed before a reply")
            return status, b"".join(chunks)
        # an InformationalResponse (1xx) is skipped
