"""Connectors: the client side of a handler (how a node is asked to connect onward)."""
from . import forward, http, relay, sni, socks4, socks5  # noqa: F401
