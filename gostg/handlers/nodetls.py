"""TLS to a forwarder node (GOST's node ``tls: {serverName, secure}``): the forwarder speaks
plain TCP to its client and TLS to the node, e.g. an HTTP reverse proxy in front of an HTTPS
backend. ``secure`` verifies the node's certificate against the system CAs and its name
(``serverName``, else the node's host name); without it the certificate is not checked, as GOST.
"""
import gevent
from gevent import socket

from ..protocols.addr import is_ip, split_host_port
from ..transport.tls import TLSConn
from ..transport.tlsconf import client_context


class NodeTLS:
    """Built once per node: the client context and the name to send."""

    __slots__ = ("context", "server_name", "secure")

    def __init__(self, settings):
        settings = dict(settings or {})
        self.secure = bool(settings.get("secure"))
        self.server_name = settings.get("serverName") or None
        self.context = client_context({"secure": self.secure, "serverName": self.server_name or "x"}
                                      if self.secure else {})


def wrap_node_tls(conn, tls, addr, timeout):
    """→ ``conn`` with a completed TLS handshake to the node at ``addr`` (OSError on failure)."""
    name = tls.server_name
    if name is None:
        host = split_host_port(addr)[0]
        name = host if host and not is_ip(host) else None
    if tls.secure and name is None:
        raise OSError(f"tls.secure needs tls.serverName for node address {addr}")
    with gevent.Timeout(timeout or None, OSError(f"TLS handshake with {addr}: timeout")):
        if type(conn) is socket.socket:
            return tls.context.wrap_socket(conn, server_hostname=name)
        return TLSConn(conn, tls.context, name).handshake()
