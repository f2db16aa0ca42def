"""Recorders (GOST's top-level ``recorders:``): where records go — a file, a TCP or HTTP
endpoint, Redis or an HTTP recorder plugin. What a service records, and when, is
:mod:`gostg.observe.records`.

Never in traffic's way: a file record is one buffered write (as GOST's); TCP, HTTP and Redis
records go into a bounded queue that one greenlet per recorder drains, each send under the
recorder's timeout. A down, slow or garbage-answering endpoint costs a dropped record and one
warning per :data:`WARN_EVERY` seconds per recorder, never a stalled or failed connection.
"""
import collections
import gzip
import logging.handlers
import os
import shutil
import time

import gevent
from gevent import socket, ssl

from ..errors import ConfigError
from ..protocols.addr import split_host_port

#: records a background recorder holds for a slow endpoint before it drops new ones
MAX_QUEUE = 10000
#: seconds between two warnings of one recorder (the ones between are counted, not logged)
WARN_EVERY = 30.0
#: a send without a configured timeout still has one (GOST's would wait for the OS)
DEFAULT_TIMEOUT = 10.0
#: seconds a stop gives queued records when its own deadline has passed
STOP_GRACE = 1.0
#: lumberjack's maxSize default, in MB
DEFAULT_MAX_SIZE = 100
#: an HTTP endpoint's answer is read up to its status line (a plugin's: its end), at most this much
MAX_ANSWER = 65536


class Recorder:
    """One ``recorders[]`` entry. ``record(data, metadata)`` never raises and never blocks
    on the network; failures are logged (rate-limited) on ``log``."""

    kind = ""

    def __init__(self, name, log=None):
        self.name = name
        self.log = log
        self._warned = 0.0
        self._quiet = 0       # failures since the last warning

    def record(self, data, metadata=None):
        raise NotImplementedError

    def close(self, deadline=None):
        """At ``Gost.stop()``: hand over what is pending until ``deadline`` (time.monotonic())."""

    def warn(self, what):
        now = time.monotonic()
        if now - self._warned < WARN_EVERY:
            self._quiet += 1
            return
        self._warned = now
        quiet, self._quiet = self._quiet, 0
        if self.log is not None:
            self.log.warning(f"recorder {self.name}: {what}", kind="recorder", recorder=self.name,
                             **({"suppressed": quiet} if quiet else {}))


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """The stdlib's rotation with GOST's (lumberjack's) keys: ``maxSize`` MB, ``maxBackups``
    (numbered .1, .2 … here, time-stamped in lumberjack), ``maxAge`` days, ``compress`` (gzip)."""

    def __init__(self, path, rotation):
        self.max_age = float(rotation.get("maxAge") or 0)
        backups = int(rotation.get("maxBackups") or 0) or 1000   # lumberjack's 0 keeps all
        size = float(rotation.get("maxSize") or DEFAULT_MAX_SIZE)
        super().__init__(path, mode="ab", maxBytes=int(size * 1024 * 1024), backupCount=backups, delay=True)
        if rotation.get("compress"):
            self.namer = lambda name: name + ".gz"
            self.rotator = self._gzip
        self.terminator = b""

    def _open(self):
        return open(self.baseFilename, "ab")

    @staticmethod
    def _gzip(source, dest):
        with open(source, "rb") as src, gzip.open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.remove(source)

    def doRollover(self):
        super().doRollover()
        if self.max_age > 0:
            cutoff = time.time() - self.max_age * 86400
            d, base = os.path.split(self.baseFilename)
            for n in os.listdir(d or "."):
                p = os.path.join(d, n)
                if n.startswith(base + ".") and os.path.getmtime(p) < cutoff:
                    os.remove(p)

    def write(self, b):
        if self.stream is None:
            self.stream = self._open()
        if self.maxBytes and self.stream.tell() + len(b) > self.maxBytes and self.stream.tell() > 0:
            self.doRollover()
            if self.stream is None:
                self.stream = self._open()
        self.stream.write(b)
        self.stream.flush()


class _AppendFile:
    def __init__(self, path):
        self.path = path
        self.stream = open(path, "ab")

    def write(self, b):
        if self.stream.closed:   # closed by a stop; the same Gost may start again
            self.stream = open(self.path, "ab")
        self.stream.write(b)
        self.stream.flush()

    def close(self):
        self.stream.close()


class FileRecorder(Recorder):
    """Each record, then ``sep`` (GOST: nothing between records unless ``sep`` is set)."""

    kind = "file"

    def __init__(self, name, path, sep="", rotation=None, log=None):
        super().__init__(name, log)
        self.sep = sep.encode()
        try:
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            self.out = _RotatingFile(path, rotation) if rotation is not None else _AppendFile(path)
            if rotation is not None:
                open(path, "ab").close()   # a path that cannot be written is a config error now
        except OSError as exc:
            raise ConfigError("file.path", f"cannot open {path!r}: {exc.strerror or exc}") from None

    def record(self, data, metadata=None):
        try:
            self.out.write(data + self.sep)
        except (OSError, ValueError) as exc:
            self.warn(f"write failed: {exc}")

    def close(self, deadline=None):
        self.out.close()


class _Background(Recorder):
    """A bounded queue drained by one greenlet, started when a record arrives and ended when
    the queue is empty (no greenlet while idle, nothing to stop on reload)."""

    def __init__(self, name, timeout, log=None):
        super().__init__(name, log)
        self.timeout = timeout or DEFAULT_TIMEOUT
        self._q = collections.deque()
        self._worker = None
        self.dropped = 0

    def record(self, data, metadata=None):
        if len(self._q) >= MAX_QUEUE:
            self.dropped += 1
            self.warn(f"{len(self._q)} records waiting for a slow endpoint: records dropped")
            return
        self._q.append((data, metadata))
        if self._worker is None:
            self._worker = gevent.spawn(self._drain)

    def _drain(self):
        q = self._q
        try:
            while q:
                data, metadata = q.popleft()
                try:
                    with gevent.Timeout(self.timeout, TimeoutError(f"no answer in {self.timeout:g}s")):
                        self.send(data, metadata)
                except Exception as exc:   # noqa: BLE001 - an endpoint's failure never ends the worker
                    self.warn(f"{self.kind} send failed: {exc}")
        finally:
            self._worker = None

    def close(self, deadline=None):
        """Let the queue drain until ``deadline`` (the records of the connections a stop just
        ended are in it), then drop the rest."""
        w = self._worker
        if w is not None:
            # past the stop's deadline (connections killed at its end still record): a short grace
            left = deadline - time.monotonic() if deadline is not None else 0.0
            w.join(timeout=max(left, min(STOP_GRACE, self.timeout)))
            w.kill(block=False)
        if self._q:
            self.warn(f"{len(self._q)} records not sent before the stop")
            self._q.clear()

    def send(self, data, metadata):
        raise NotImplementedError


class TCPRecorder(_Background):
    """One connection per record: connect, write it, close (GOST's)."""

    kind = "tcp"

    def __init__(self, name, addr, timeout=0.0, log=None):
        super().__init__(name, timeout, log)
        self.addr = split_host_port(addr)

    def send(self, data, metadata):
        s = socket.create_connection(self.addr, timeout=self.timeout)
        try:
            s.sendall(data)
        finally:
            s.close()


class HTTPRecorder(_Background):
    """``POST url`` with the record as body; Content-Type application/json unless ``header``
    sets one; a status of 400 or more is a failure (GOST's)."""

    kind = "http"

    def __init__(self, name, url, timeout=0.0, header=None, log=None, verify=True, server_name=None):
        super().__init__(name, timeout, log)
        self.verify, self.server_name = verify, server_name
        if "://" not in url:
            url = "http://" + url
        scheme, rest = url.split("://", 1)
        if scheme not in ("http", "https"):
            raise ConfigError("http.url", f"scheme {scheme!r} is not http or https")
        hostport, _, path = rest.partition("/")
        self.tls = scheme == "https"
        self.host = hostport
        self.addr = split_host_port(hostport if ":" in hostport.rsplit("]", 1)[-1]
                                    else f"{hostport}:{443 if self.tls else 80}")
        self.path = "/" + path
        fields = {str(k): str(v) for k, v in (header or {}).items()}
        if not any(k.lower() == "content-type" for k in fields):
            fields["Content-Type"] = "application/json"
        self.head = "".join(f"{k}: {v}\r\n" for k, v in fields.items()
                            if k.lower() not in ("host", "content-length", "connection"))

    def request(self, body):
        return (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n{self.head}"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode("latin-1") + body

    def post(self, body, whole=False):
        """→ (status, body of the answer when ``whole``, else b"")."""
        s = socket.create_connection(self.addr, timeout=self.timeout)
        try:
            if self.tls:
                tls = ssl.create_default_context()
                if not self.verify:
                    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
                s = tls.wrap_socket(s, server_hostname=self.server_name or self.addr[0])
            s.sendall(self.request(body))
            return _answer(s, whole)
        finally:
            s.close()

    def send(self, data, metadata):
        status = self.post(data)[0]
        if status >= 400:
            raise OSError(f"HTTP status {status}")


class PluginRecorder(_Background):
    """GOST's recorder plugin (gostg.plugin, http or grpc): ``{"data": <record, base64>,
    "metadata": <the service's recorder metadata as JSON, base64>}`` (Go's []byte fields, as
    GOST's code sends them), ``Authorization: Bearer <token>`` when set; the answer must be
    ``{"ok": true}``."""

    kind = "plugin"

    def __init__(self, name, cfg, path, timeout=0.0, log=None):
        super().__init__(name, timeout, log)
        from ..plugin import transport
        self.transport = transport(cfg, "recorder", path)

    def send(self, data, metadata):
        from ..plugin import wire
        wire.must_ok(self.transport.call(wire.recorder_request(data, metadata)))

    def close(self, deadline=None):
        super().close(deadline)
        self.transport.close()


class NullRecorder(Recorder):
    """A recorder gostg cannot build (a gRPC plugin): said at build, its records dropped."""

    def record(self, data, metadata=None):
        pass


def _answer(s, whole):
    """→ (status, body) of the HTTP answer on ``s`` (the request said ``Connection: close``);
    the body only when ``whole``, at most MAX_ANSWER bytes, chunked or not."""
    buf = b""
    while len(buf) < MAX_ANSWER:
        if not whole and b"\r\n" in buf:
            break
        chunk = s.recv(MAX_ANSWER - len(buf))
        if not chunk:
            break
        buf += chunk
    parts = buf.split(b"\r\n", 1)[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise OSError(f"not an HTTP answer: {buf[:60]!r}")
    head, _, body = buf.partition(b"\r\n\r\n")
    if whole and b"transfer-encoding: chunked" in head.lower():
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size.split(b";")[0] or b"0", 16)
            if not n:
                break
            out, body = out + rest[:n], rest[n + 2:]
        body = out
    return int(parts[1]), body if whole else b""


class RedisRecorder(_Background):
    """GOST's redis types: ``set`` SADD key record, ``sset`` ZINCRBY key 1 record (the score
    counts how often a record came), ``list`` LPUSH key record. redis-py is imported here only:
    a config without a redis recorder never loads it. Its sockets are the process's: gevent's
    in ``bin/gostg`` (patched), the host's when embedded (patch before using this)."""

    kind = "redis"

    def __init__(self, name, addr, key, type="set", db=0, username="", password="", timeout=0.0, log=None):
        super().__init__(name, timeout, log)
        import redis

        host, port = split_host_port(addr)
        self.key = key
        self.type = type or "set"
        self.client = redis.Redis(host=host or "127.0.0.1", port=port or 6379, db=db or 0,
                                  username=username or None, password=password or None,
                                  socket_timeout=self.timeout, socket_connect_timeout=self.timeout)

    def send(self, data, metadata):
        if self.type == "list":
            self.client.lpush(self.key, data)
        elif self.type == "sset":
            self.client.zincrby(self.key, 1, data)
        else:
            self.client.sadd(self.key, data)

    def close(self, deadline=None):
        super().close(deadline)
        self.client.close()


def build_recorder(o, path, registries=None):
    """``recorders[i]`` → its Recorder. Exactly one of file, tcp, http, redis (GOST takes the
    first it finds; two would be a config silently half-read)."""
    from ..config.metadata import parse_duration

    log = getattr(registries, "log", None)
    name = o["name"]
    kinds = [k for k in ("plugin", "file", "tcp", "http", "redis") if o.get(k) is not None]
    if len(kinds) != 1:
        raise ConfigError(path, "a recorder needs one of plugin, file, tcp, http, redis" if not kinds else
                          f"a recorder has one of plugin, file, tcp, http, redis, not {', '.join(kinds)}")
    kind = kinds[0]
    c = o[kind]
    if not isinstance(c, dict):
        raise ConfigError(f"{path}.{kind}", "must be a mapping")

    def timeout():
        try:
            return parse_duration(c.get("timeout") or 0, f"{path}.{kind}.timeout")
        except ValueError as exc:
            raise ConfigError(f"{path}.{kind}.timeout", str(exc)) from None
    try:
        if kind == "plugin":
            from ..plugin import type_problem
            err = type_problem(c)
            if err:   # observe-only: its records are dropped, the config still runs
                if log is not None:
                    log.warning(f"{path}.plugin.type: {err}; this recorder's records are dropped",
                                kind="recorder", recorder=name)
                return NullRecorder(name, log)
            return PluginRecorder(name, c, f"{path}.plugin", timeout(), log)
        if kind == "file":
            return FileRecorder(name, str(c["path"]), str(c.get("sep") or ""), c.get("rotation"), log)
        if kind == "tcp":
            return TCPRecorder(name, str(c["addr"]), timeout(), log)
        if kind == "http":
            return HTTPRecorder(name, str(c["url"]), timeout(), c.get("header"), log)
        return RedisRecorder(name, str(c["addr"]), str(c["key"]), c.get("type") or "set", int(c.get("db") or 0),
                             c.get("username") or "", c.get("password") or "", timeout(), log)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.path}" if exc.path.startswith(kind) else f"{path}.{kind}.{exc.path}",
                          exc.msg) from None
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path}.{kind}", f"invalid: {exc}") from None
