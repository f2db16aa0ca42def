"""One Redis client per GOST ``{addr, db, username, password}`` block.

Clients with the same (addr, db, username, password) share one connection pool, so fifty
bypasses reading one Redis hold a handful of sockets, not fifty. Timeouts are short: a loader
polls in its own greenlet and keeps its last good value, so a Redis that hangs must cost a
failed poll, never a stuck greenlet. redis-py is imported here only: a config without a Redis
block never loads it. Its sockets are the process's (gevent's in ``bin/gostg``, the host's
when embedded).
"""
import threading

from ..errors import ConfigError, ProtocolError
from ..protocols.addr import split_host_port

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 3.0

_pools = {}   # key -> [pool, users]
_lock = threading.Lock()


def parse(cfg, path):
    """``cfg`` → (host, port, db, username, password), or ConfigError naming the bad key."""
    cfg = cfg or {}
    addr = str(cfg.get("addr") or "127.0.0.1:6379").strip()
    try:
        host, port = split_host_port(addr, 6379)
    except ProtocolError as exc:
        raise ConfigError(f"{path}.addr", str(exc)) from None
    if port == 0:
        raise ConfigError(f"{path}.addr", f"port 0 in {addr!r}")
    db = cfg.get("db") or 0
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ConfigError(f"{path}.db", f"must be a database number >= 0, not {db!r}")
    return (host or "127.0.0.1", port, db, str(cfg.get("username") or ""), str(cfg.get("password") or ""))


def client(cfg, path):
    """A ``redis.Redis`` on the shared pool for ``cfg`` (GOST's ``addr`` host:port, default
    127.0.0.1:6379; ``db``; ``username``; ``password``). ``path`` names the block in errors.
    Call ``release(client)`` when done with it: the pool's sockets close with its last user."""
    import redis

    key = parse(cfg, path)
    host, port, db, user, password = key
    with _lock:
        entry = _pools.get(key)
        if entry is None:
            pool = redis.ConnectionPool(host=host, port=port, db=db, username=user or None,
                                        password=password or None, socket_timeout=COMMAND_TIMEOUT,
                                        socket_connect_timeout=CONNECT_TIMEOUT)
            entry = _pools[key] = [pool, 0]
        entry[1] += 1
    c = redis.Redis(connection_pool=entry[0])
    c._gostg_pool_key = key
    return c


def release(c):
    """Drop one user of ``c``'s pool; the last one disconnects its sockets."""
    key = getattr(c, "_gostg_pool_key", None)
    with _lock:
        entry = _pools.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _pools[key]
    entry[0].disconnect()
