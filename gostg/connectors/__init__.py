"""Connectors: the client side of a handler (how a node is asked to connect onward)."""
from . import forward, http, http2, relay, sni, socks4, socks5, ss, ssu  # noqa: F401
