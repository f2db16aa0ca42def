"""Host/port strings: GOST's ``[host]:port`` forms, IPv6 brackets and port ranges."""
import ipaddress
import socket

from ..errors import ProtocolError


def split_host_port(addr, default_port=None):
    """``'h:80'`` → ``('h', 80)``; ``'[::1]:80'`` → ``('::1', 80)``; ``':80'`` → ``('', 80)``."""
    addr = addr.strip()
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ProtocolError(f"bad address {addr!r}")
        host, rest = addr[1:end], addr[end + 1:]
        if not rest:
            port = default_port
        elif rest.startswith(":"):
            port = rest[1:]
        else:
            raise ProtocolError(f"bad address {addr!r}")
    elif addr.count(":") == 1:
        host, port = addr.split(":")
    elif addr.count(":") == 0:
        host, port = addr, default_port
    else:  # bare IPv6 without a port
        host, port = addr, default_port
    if port is None or port == "":
        if default_port is None:
            raise ProtocolError(f"missing port in address {addr!r}")
        port = default_port
    try:
        port = int(port)
    except ValueError:
        raise ProtocolError(f"bad port in address {addr!r}") from None
    if not 0 <= port <= 65535:
        raise ProtocolError(f"port out of range in address {addr!r}")
    return host, port


def join_host_port(host, port):
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def expand_port_range(addr):
    """``'h:8000-8003'`` → ``['h:8000', …, 'h:8003']``; a single address → ``[addr]``."""
    if not addr:
        return [addr]
    if addr.startswith("["):
        end = addr.find("]")
        host, port = addr[:end + 1], addr[end + 2:] if end >= 0 else ""
    else:
        host, sep, port = addr.rpartition(":")
        if not sep:
            return [addr]
    if "-" not in port:
        return [addr]
    lo, _, hi = port.partition("-")
    try:
        lo, hi = int(lo), int(hi)
    except ValueError:
        return [addr]
    if lo > hi:
        lo, hi = hi, lo
    if not (0 <= lo and hi <= 65535):
        return [addr]
    return [f"{host}:{p}" for p in range(lo, hi + 1)]


def ip_family(host):
    """AF_INET / AF_INET6 for an IP literal, None for a name (nothing is resolved)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return family
        except OSError:
            pass
    return None
