"""The supervisor ↔ worker control socket: length-prefixed pickled dicts over a socketpair.

Pickle, not JSON: the config model holds what YAML produced (a date stays a date), and both ends
are the same program, parent and child, over a socketpair nobody else holds. Both ends are gevent
sockets: a message in flight never blocks the hub."""
import pickle
import struct

_HEADER = struct.Struct("!I")
#: a bound on one message (a config with thousands of services is a few MB)
MAX_MESSAGE = 256 << 20


class ChannelClosed(EOFError):
    """The other end is gone (its process exited) or sent something that is not a message."""


def send(sock, msg):
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _read(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ChannelClosed("control socket closed")
        buf += chunk
    return bytes(buf)


def recv(sock):
    """→ the next message (a dict); ChannelClosed at the end or on garbage."""
    try:
        (n,) = _HEADER.unpack(_read(sock, _HEADER.size))
        if n > MAX_MESSAGE:
            raise ChannelClosed(f"control message of {n} bytes")
        msg = pickle.loads(_read(sock, n))
    except ChannelClosed:
        raise
    except OSError as exc:
        raise ChannelClosed(str(exc)) from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise ChannelClosed(f"bad control message: {exc}") from None
    if not isinstance(msg, dict):
        raise ChannelClosed("bad control message")
    return msg
