"""GOST's HTTP plugin protocol: one JSON POST per call to the plugin's ``addr``.

Rules:
1. Cooperative whether or not the host app patched: gevent's socket and ssl, never the
   stdlib's ``http.client`` (it blocks the hub in an unpatched embedding app).
2. One deadline for the whole exchange (connect, TLS, request, reply): a slow plugin costs
   its caller ``timeout`` seconds at most (default 10 s; GOST: none), never a stuck greenlet.
3. The reply is parsed by h11 (a state machine over bytes), and its body is capped: a plugin
   answering garbage or an endless body is a :class:`PluginError`, never a crash.
4. TLS to an ``https://`` plugin (or any plugin with a ``tls`` block) is verified (the system
   CAs, or ``tls.caFile``): the request carries the plugin token. GOST skips verification
   unless ``tls.secure`` is true; gostg does not send a token to an unverified peer.
5. A new connection per POST: plugins answer small JSON documents, and a kept connection
   would add a stale-connection case to every decision.
6. ``Authorization: Bearer <token>`` when ``token`` is set; ``Content-Type: application/json``.
"""
import copy
import json
from urllib.parse import parse_qs, urlencode, urlsplit

import gevent
import h11
from gevent import socket, ssl

from . import DEFAULT_TIMEOUT, PluginError
from ..config.metadata import parse_duration
from ..errors import ConfigError

#: largest reply body read from a plugin (GOST's replies are a few bytes: ``{"ok":true}``)
MAX_REPLY = 65536


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

    def check_ca(self):
        """ValueError when ``tls.caFile`` cannot be used (unreadable, no certificate in it):
        said when the config is built, as the gRPC transport does, not at every call."""
        if self.ca_file:
            try:
                self.context()
            except OSError as exc:      # ssl.SSLError too: a file that holds no certificate
                raise ValueError(f"cannot use {self.ca_file!r}: {exc.strerror or exc}") from None

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
    return exchange(target, "POST", body)


def exchange(target, method, body=None, limit=MAX_REPLY):
    """One request to ``target`` (GET without a body: the hop loader's ``http``) → (status
    code, reply body bytes), under ``target.timeout``; any failure is a PluginError."""
    timer = gevent.Timeout(target.timeout or None)
    timer.start()
    sock = None
    try:
        sock = socket.create_connection((target.host, target.port))
        if target.https:
            sock = target.context().wrap_socket(sock, server_hostname=target.server_name)
        conn = h11.Connection(h11.CLIENT)
        headers = [("Host", target.host_header()), ("User-Agent", "gostg")]
        if body is not None:
            headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers.append(("Connection", "close"))
        if target.token:
            headers.append(("Authorization", f"Bearer {target.token}"))
        out = conn.send(h11.Request(method=method, target=target.path, headers=headers))
        if body is not None:
            out += conn.send(h11.Data(data=body))
        sock.sendall(out + conn.send(h11.EndOfMessage()))
        return _reply(conn, sock, limit)
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


def _reply(conn, sock, limit=MAX_REPLY):
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
            if size > limit:
                raise PluginError(f"reply body larger than {limit} bytes")
            chunks.append(bytes(ev.data))
        elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
            if status is None:
                raise PluginError("connection closed before a reply")
            return status, b"".join(chunks)
        # an InformationalResponse (1xx) is skipped


def json_object(code, reply):
    """A plugin's answer → its JSON object; another status than 200, or a body that is not a
    JSON object, is a PluginError."""
    if code != 200:
        raise PluginError(f"HTTP {code}")
    try:
        out = json.loads(reply)
    except ValueError:
        raise PluginError(f"reply is not JSON ({reply[:64]!r})") from None
    if not isinstance(out, dict):
        raise PluginError(f"reply is not a JSON object ({reply[:64]!r})")
    return out


class Transport:
    """``call(request) -> reply``: POST the request as JSON, want HTTP 200 and a JSON object."""

    def __init__(self, cfg, kind, path):
        self.kind = kind
        addr = str(cfg.get("addr") or "").strip()
        tls = cfg.get("tls")
        tls = tls if isinstance(tls, dict) else None
        if tls is not None and "://" not in addr:
            addr = "https://" + addr   # a tls block on a scheme-less addr: GOST dials TLS
        try:
            timeout = parse_duration(cfg.get("timeout"), f"{path}.timeout")
        except ValueError as exc:
            raise ConfigError(f"{path}.timeout", str(exc)) from None
        try:
            self.target = Target(addr, str(cfg.get("token") or ""), timeout or DEFAULT_TIMEOUT,
                                 str((tls or {}).get("serverName") or ""), str((tls or {}).get("caFile") or ""))
        except ValueError as exc:
            raise ConfigError(f"{path}.addr", str(exc)) from None
        try:
            self.target.check_ca()
        except ValueError as exc:
            raise ConfigError(f"{path}.tls.caFile", str(exc)) from None

    def call(self, request):
        return json_object(*post_json(self.target, json.dumps(request).encode()))

    def request(self, method, query=None, body=None):
        """GOST's REST-shaped plugins (ingress, router, sd): ``method`` to the plugin's URL with
        ``query`` set on its query string (Go's ``url.Values.Encode``: keys sorted) and ``body``
        (a dict) as JSON → (status, reply bytes). Transport failures raise PluginError."""
        target = self.target
        if query:
            target = copy.copy(target)
            path, _, qs = target.path.partition("?")
            values = parse_qs(qs, keep_blank_values=True)
            values.update({k: [v] for k, v in query.items()})
            target.path = f"{path}?{urlencode(sorted(values.items()), doseq=True)}"
        return exchange(target, method, None if body is None else json.dumps(body).encode())

    def close(self):
        """Nothing is kept open between calls (rule 5)."""
