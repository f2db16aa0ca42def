"""Handlers: one protocol each; they authenticate, find the target and relay."""
from . import api, auto, forward, http, http2, relay, sni, socks4, socks5, ss, ssu  # noqa: F401
