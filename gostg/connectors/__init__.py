"""Connectors: the client side of a handler (how a node is asked to connect onward)."""
from . import forward, http, socks4, socks5  # noqa: F401
