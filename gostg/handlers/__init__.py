"""Handlers: one protocol each; they authenticate, find the target and relay."""
from . import api, auto, forward, http, relay, sni, socks4, socks5  # noqa: F401
