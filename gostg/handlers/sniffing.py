"""Peeking at a tunnelled stream (``sniffing=true``): read just enough of the client's first
message to know its protocol and host, then hand back a conn that replays those bytes.

A client that sends too little in ``sniffing.timeout`` (default: the handler's readTimeout),
closes early, or sends more than a first message may hold is not an error: its stream is
forwarded unsniffed (GOST does the same), with a log line saying why.
"""
import gevent

from ..errors import NeedData, ProtocolError
from ..protocols import http, sniff as sp
from ..protocols.addr import join_host_port, split_host_port
from ..transport.buffered import BufferedConn

_DEFAULT_PORT = {sp.PROTO_TLS: 443, sp.PROTO_HTTP: 80}

#: bytes read at most while waiting for a first message (a TLS hello may span records)
LIMIT = http.MAX_HEAD + 16 * 1024


def peek(conn, ctx, timeout):
    """→ ``(conn, Sniffed)``: ``conn`` replays everything read. Never raises for the
    client's bytes; an OSError of the socket itself passes up."""
    buf = bytearray()
    why = ""
    timer = gevent.Timeout(timeout or None)
    timer.start()
    try:
        while True:
            if buf:
                try:
                    found = sp.sniff(buf)
                    break
                except NeedData:
                    pass
            if len(buf) >= LIMIT:
                found, why = sp.UNKNOWN, f"first message over {LIMIT} bytes"
                break
            data = conn.recv(16384)
            if not data:
                # a close before any byte has nothing to say; one mid-message is worth a line
                found, why = sp.UNKNOWN, "client closed before a whole first message" if buf else ""
                break
            buf += data
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        found, why = sp.UNKNOWN, f"no whole first message within {timeout:g}s"
    finally:
        timer.close()
    if why:
        ctx.log.info(f"sniffing: {why}; forwarding unsniffed", read=len(buf))
    elif found.proto:
        ctx.log.debug(f"sniffing: {found.proto} host {found.host or '-'}", host=found.host, proto=found.proto)
    return (BufferedConn(conn, bytes(buf)) if buf else conn), found


def sniffed_target(found):
    """``host:port`` of what sniffing found: port 443 for TLS, 80 for HTTP unless the name
    carries one ("" when it found no usable host)."""
    if not found.host:
        return ""
    try:
        host, port = split_host_port(found.host, _DEFAULT_PORT.get(found.proto, 0))
    except ProtocolError:   # a Host header that is no address: nothing to route by
        return ""
    return join_host_port(host, port) if host else ""


def bypassed(router, found, ctx):
    """Bind the sniffed host to ``ctx.log`` and judge it by the service bypass: → True (and a
    log line) when the bypass refuses it; the caller closes the connection."""
    if not found.host:
        return False
    ctx.log = ctx.log.bind(host=found.host, proto=found.proto)
    target = sniffed_target(found)
    if target and router.bypassed(target):
        ctx.log.info(f"bypass: sniffed {found.proto} host {target}: closed", dst=target)
        return True
    return False
