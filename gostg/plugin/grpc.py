"""GOST's gRPC plugins (``plugin: {type: grpc, addr, token, timeout, tls}``, GOST's default
plugin type): one unary call per decision to a server implementing go-gost/plugin's protos.

Rules:
1. grpcio runs in its gevent mode (``grpc.experimental.gevent``): a blocking call parks the
   calling greenlet while a native thread waits on gRPC's completion queue. Those threads
   come from a pool of their own (:data:`THREADS`), not the hub's: the hub's pool is also
   the one ``getaddrinfo`` uses, and a plugin that hangs would otherwise hold every thread
   of it until the deadline, stalling name lookups of connections that need no plugin at all.
2. Every call has a deadline (``timeout``, :data:`DEFAULT_TIMEOUT` when unset: GOST sets
   none on gRPC plugins), passed to gRPC and also kept by a ``gevent.Timeout`` a little
   later: gRPC's deadline can overshoot when its threads are all busy. A call that fails,
   times out or answers garbage raises :class:`~gostg.plugin.PluginError`; the caller fails
   closed.
3. grpcio is imported when the config is built; its channel is made on the first call, in
   the process that makes it: gRPC's threads do not survive ``fork`` (``workers`` forks
   after the config is built), so a channel made before a fork is never used after it; a
   forked process makes its own. While any channel is open, gRPC's gevent mode keeps one
   thread of the pool polling.
4. A plugin that was down is tried again within :data:`RECONNECT_MAX` (gRPC's own backoff
   grows to 120 s: that long a restarted plugin would go on being refused).
5. The token goes as the ``token`` metadata entry of each call, as GOST's plugin client
   sends it. TLS (``tls`` present) is always verified: against ``tls.caFile`` or the system
   CAs, with ``tls.serverName`` as the name checked (GOST skips verification unless
   ``secure: true``; grpcio has no way to skip it, and a token should not go to anyone).
6. A failure is raised, not logged: the object using the plugin logs each change of
   answering once, not per call (plugin.consumers, plugin.routing, observe.observer).
"""
import importlib.util
import os
import threading

import gevent

from ..errors import ConfigError
from . import PluginError, protos

#: call deadline when ``timeout`` is not set (GOST: none)
DEFAULT_TIMEOUT = 10.0
#: extra time the gevent.Timeout gives gRPC's own deadline before the greenlet gives up
MARGIN = 0.5
#: native threads waiting on gRPC completion queues (grows on demand; a call beyond it
#: waits for a thread, within its own deadline)
THREADS = 64
#: longest wait, in ms, before a channel tries a plugin that was down again (rule 4)
RECONNECT_MAX = 2000
#: gRPC channel options: reconnect soon after a plugin comes back (rule 4)
OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
           ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX)]
#: what a config naming a gRPC plugin needs installed
PIP = "pip install 'gostg[grpc]'"

#: seconds an idle gRPC thread waits for work before it ends (no thread outlives its use)
IDLE = 5.0

_init_lock = threading.Lock()
_mode = None    # (hub, pid) gRPC was last switched to gevent mode for


def available():
    """True when grpcio and protobuf are installed (without importing them)."""
    try:
        return importlib.util.find_spec("grpc") is not None and importlib.util.find_spec("google.protobuf") is not None
    except ModuleNotFoundError:     # no ``google`` package at all
        return False


def _load_grpc():
    """Import grpcio and switch it to gevent mode for this thread's hub (rule 1): once per
    process, and again when gostg serves from another hub (thread mode started again) or in
    a forked process (the pool's threads stayed in the parent)."""
    global _mode
    import grpc

    mode = (gevent.get_hub(), os.getpid())
    if _mode == mode:
        return grpc
    with _init_lock:
        if _mode != mode:
            hub = mode[0]
            import grpc.experimental.gevent as grpc_gevent
            from gevent.threadpool import ThreadPool

            # init_gevent() takes the hub's threadpool as gRPC's for good: hand it a pool of
            # its own for that moment, then give the hub its pool back.
            own = hub.threadpool
            hub.threadpool = ThreadPool(THREADS, hub=hub, idle_task_timeout=IDLE)
            try:
                grpc_gevent.init_gevent()
            finally:
                hub.threadpool = own
            _mode = mode
    return grpc


def _duration(cfg, path):
    from ..config.metadata import parse_duration

    try:
        return parse_duration(cfg.get("timeout") or 0, f"{path}.timeout")
    except ValueError as exc:
        raise ConfigError(f"{path}.timeout", str(exc)) from None


def _read(path, key, tls):
    name = tls.get(key)
    if not name:
        return None
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{path}.tls.{key}", f"cannot read {name!r}: {exc.strerror}") from None


class Transport:
    """One gRPC plugin of one ``kind`` (see :data:`gostg.plugin.protos.KINDS`)."""

    def __init__(self, cfg, kind, path="plugin"):
        if kind not in protos.SERVICES:
            raise ValueError(f"unknown plugin kind {kind!r}")
        if not available():
            raise ConfigError(f"{path}.type", f"gRPC plugins need grpcio and protobuf, not installed: {PIP}")
        self.kind = kind
        self.path = path
        self.addr = str(cfg.get("addr") or "").strip()
        if not self.addr:
            raise ConfigError(f"{path}.addr", "is required: the plugin server's host:port")
        if "://" in self.addr:
            raise ConfigError(f"{path}.addr", f"a gRPC plugin address is host:port, not {self.addr!r}")
        self.token = str(cfg.get("token") or "")
        if any(not " " <= c <= "~" for c in self.token):
            # gRPC metadata values are printable ASCII: anything else fails every call
            raise ConfigError(f"{path}.token", "a gRPC plugin token is printable ASCII (no control characters)")
        self.timeout = _duration(cfg, path) or DEFAULT_TIMEOUT
        tls = cfg.get("tls")
        self.tls = None
        if tls is not None:
            if not isinstance(tls, dict):
                raise ConfigError(f"{path}.tls", "must be a mapping")
            self.tls = (_read(path, "caFile", tls), _read(path, "keyFile", tls), _read(path, "certFile", tls),
                        str(tls.get("serverName") or ""))
        # the imports and the message classes (~0.15 s) now, while the config is built, not
        # in the hub on the first call (importing grpcio starts nothing: fork stays safe).
        # gRPC's C core writes its own errors to stderr, outside gostg's log and again on each
        # reconnect; the failure gostg logs carries the status and details. GRPC_VERBOSITY set
        # by the user (e.g. ERROR) still wins.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        import grpc  # noqa: F401

        protos.load()
        self._metadata = (("token", self.token),) if self.token else ()
        self._pid = None
        self._channel = None
        self._calls = {}

    def __repr__(self):
        return f"grpc.Transport({self.kind!r}, {self.addr!r})"

    def _stub(self, path, rep_name):
        """The callable for one method on this process's channel (rule 3)."""
        grpc = _load_grpc()
        if self._channel is None or self._pid != os.getpid():
            if self.tls is not None:
                ca, key, cert, server_name = self.tls
                creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
                options = OPTIONS + ([("grpc.ssl_target_name_override", server_name),
                                      ("grpc.default_authority", server_name)] if server_name else [])
                self._channel = grpc.secure_channel(self.addr, creds, options=options)
            else:
                self._channel = grpc.insecure_channel(self.addr, options=OPTIONS)
            self._pid = os.getpid()
            self._calls = {}
        call = self._calls.get(path)
        if call is None:
            call = self._calls[path] = self._channel.unary_unary(
                path, request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=protos.message_class(rep_name).FromString)
        return call

    def call(self, request, op=None):
        """``request`` (GOST's JSON field names for this kind) → the reply as a dict.
        ``op`` names the method where a kind has several (sd; ingress SetRule)."""
        try:
            path, msg, rep_name = protos.encode(self.kind, request, op)
        except ValueError as exc:     # a request this kind cannot carry: refused, not a crash
            raise PluginError(str(exc)) from None
        try:
            stub = self._stub(path, rep_name)
            with gevent.Timeout(self.timeout + MARGIN, PluginError(f"no answer within {self.timeout:g}s")):
                reply = stub(msg, timeout=self.timeout, metadata=self._metadata)
            out = protos.decode(self.kind, rep_name, reply)
        except PluginError:
            raise
        except ValueError as exc:       # a reply we cannot use (hop node JSON)
            raise PluginError(str(exc)) from None
        except Exception as exc:        # grpc.RpcError and anything grpcio raises
            raise PluginError(_rpc_error(exc)) from None
        return out

    def close(self):
        """Close the channel (its connection, and gRPC's polling thread once no channel is
        left). Call it from the hub that made calls; a call after it opens a new channel."""
        ch, self._channel = self._channel, None
        if ch is not None and self._pid == os.getpid():
            ch.close()


def _rpc_error(exc):
    code = getattr(exc, "code", None)
    if callable(code):
        try:
            c = code()
            details = exc.details() or ""
        except Exception:       # noqa: BLE001 - an RpcError without status
            return f"gRPC error: {type(exc).__name__}"
        name = getattr(c, "name", str(c))
        # a deadline's details carry no per-call data; an unavailable server's may carry the
        # errno text: keep its first line only
        return f"gRPC {name}: {details.splitlines()[0] if details else ''}".rstrip(": ")
    return f"gRPC error: {type(exc).__name__}: {exc}"
