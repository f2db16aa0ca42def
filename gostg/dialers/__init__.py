"""Dialers: the client side of a listener (how a node's address is reached)."""
from . import h2, http2, mux, tcp, tls, udp, ws  # noqa: F401
