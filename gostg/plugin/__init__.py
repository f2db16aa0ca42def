"""GOST's plugins (``plugin: {type, addr, token, timeout, tls}``): a decision delegated to an
external server over gRPC (GOST's default type) or HTTP.

:func:`transport` gives an object with ``call(request: dict) -> dict`` (GOST's JSON field
names for that kind; raises :class:`PluginError` on timeout, transport failure or garbage)
and ``close()``.
"""
from ..errors import ConfigError

KINDS = ("auth", "admission", "bypass", "hosts", "resolver", "hop", "limiter", "recorder", "ingress",
         "router", "sd", "observer")


class PluginError(OSError):
    """The plugin could not be reached, timed out, or answered something unusable: whoever
    asked fails closed."""


def transport(cfg, kind, path="plugin", log=None):
    """The transport of one ``plugin:`` mapping (``type`` grpc when unset, as GOST)."""
    t = str(cfg.get("type") or "grpc").strip().lower()
    if t == "grpc":
        from .grpc import Transport

        return Transport(cfg, kind, path, log=log)
    if t == "http":
        from .http import Transport     # the HTTP plugin transport (gostg/plugin/http.py)

        return Transport(cfg, kind, path, log=log)
    raise ConfigError(f"{path}.type", f"must be grpc or http, not {t!r}")
