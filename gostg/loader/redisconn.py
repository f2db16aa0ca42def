"""One redis-py client per distinct server and credentials (GOST's redis ``addr``, ``db``,
``username``, ``password``), with short socket timeouts: a Redis that is down or slow costs a
caller a bounded wait, never a hang. redis-py is imported here only, so a config without Redis
never loads it; in a gevent-patched process its sockets are cooperative.

(Minimal version from the ``counters`` part; the ``loaders`` part owns this module.)"""
import threading

from ..errors import ConfigError, ProtocolError
from ..protocols.addr import split_host_port

#: connect and command deadline of every client made here (seconds)
TIMEOUT = 1.0

_clients = {}
_lock = threading.Lock()


def client(cfg, path):
    """The shared ``redis.Redis`` for ``cfg`` (``{addr, db, username, password}``); ``path`` names
    the config place in errors (a bad ``addr`` or ``db``)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    addr = str(cfg.get("addr") or "")
    if not addr:
        raise ConfigError(f"{path}.addr", "a Redis address (host:port) is required")
    try:
        host, port = split_host_port(addr, 6379)
        port = int(port)
        db = int(cfg.get("db") or 0)
    except (TypeError, ValueError, ProtocolError) as exc:
        raise ConfigError(path, f"bad Redis address or db: {exc}") from None
    user = str(cfg.get("username") or "") or None
    password = str(cfg.get("password") or "") or None
    key = (host or "127.0.0.1", port, db, user, password)
    with _lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = redis.Redis(host=key[0], port=port, db=db, username=user, password=password,
                                            socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                                            # one immediate retry (a pooled socket a restarted Redis
                                            # closed), not redis-py's default backoff of seconds
                                            retry=Retry(NoBackoff(), 1))
        return c
