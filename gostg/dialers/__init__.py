"""Dialers: the client side of a listener (how a node's address is reached)."""
from . import mux, tcp, tls, ws  # noqa: F401
