"""Listeners: a bound socket plus the transport that turns an accepted socket into a conn."""
from . import h2, http2, mux, remote, tcp, tls, udp, ws  # noqa: F401
