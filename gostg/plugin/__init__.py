"""GOST's plugins: a decision (auth, admission, bypass, hosts, resolver, hop, traffic limit) or
a sink (recorder, observer) delegated to another process over HTTP or gRPC.

``transport(cfg, kind, path)`` → an object with ``call(request: dict) -> dict`` and ``close()``.
Requests and replies are dicts with GOST's JSON field names for ``kind`` (:mod:`.wire` maps
them); ``call`` raises :class:`PluginError` on a timeout, a transport failure or a reply that
is not what the kind expects. What a failure means is the consumer's (:mod:`.consumers`):
every decision fails closed.

``type: http`` is :mod:`gostg.plugin.http`; ``type: grpc`` (GOST's default when ``type`` is
unset) is ``gostg.plugin.grpc.Transport(cfg, kind)`` — when gostg was built without it, a
gRPC plugin is a config error, never quietly an HTTP one.
"""
import importlib.util

from ..errors import ConfigError

#: the kinds of GOST's plugins (go-gost/x */plugin)
KINDS = frozenset(("auth", "admission", "bypass", "hosts", "resolver", "hop", "limiter", "recorder",
                   "ingress", "router", "sd", "observer"))
#: a plugin call without a configured ``timeout`` still has one (GOST's would wait for the OS)
DEFAULT_TIMEOUT = 10.0


class PluginError(OSError):
    """The plugin could not be reached, timed out, or answered something unusable (an OSError:
    to whoever sends, a plugin that fails is a peer that fails)."""


def plugin_type(cfg):
    """``type`` as GOST reads it: case-insensitive, ``grpc`` when unset."""
    return str((cfg or {}).get("type") or "grpc").strip().lower()


def grpc_built():
    """True when this gostg has the gRPC transport (gostg/plugin/grpc.py)."""
    return importlib.util.find_spec(__name__ + ".grpc") is not None


def type_problem(cfg):
    """Why ``cfg``'s type cannot be built here, or None."""
    t = plugin_type(cfg)
    if t == "http" or (t == "grpc" and grpc_built()):
        return None
    if t == "grpc":
        why = "is not set, and GOST's default (grpc)" if not str((cfg or {}).get("type") or "").strip() else "grpc"
        return f"{why}: gRPC plugins are not built in this gostg: set type: http (GOST's HTTP plugin protocol)"
    return f"unknown plugin type {t!r} (http or grpc)"


def transport(cfg, kind, path):
    """The transport for plugin block ``cfg`` (GOST's ``{type, addr, tls, timeout, token}``) of
    ``kind``; ``path`` names the block in a ConfigError."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}")
    if not isinstance(cfg, dict):
        raise ConfigError(path, "must be a mapping")
    err = type_problem(cfg)
    if err:
        raise ConfigError(f"{path}.type", err)
    if not str(cfg.get("addr") or "").strip():
        raise ConfigError(f"{path}.addr", "is required (e.g. http://127.0.0.1:8000/auth)")
    if plugin_type(cfg) == "http":
        from .http import Transport
        return Transport(cfg, kind, path)
    from .grpc import Transport   # noqa: F811 - the other transport, same interface
    return Transport(cfg, kind, path)
