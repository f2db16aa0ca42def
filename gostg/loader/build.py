"""An object's ``redis`` and ``http`` blocks → fetchers, each bad key a ConfigError at its path.

GOST reads a ``redis`` block only when its ``addr`` is set and an ``http`` block only when its
``url`` is; gostg requires them instead (a block that is silently not read is a config
misread). GOST also ignores ``type`` where the kind has one key type (authers: hash;
bypasses, admissions: set); gostg accepts that type or none and refuses any other.
"""
from urllib.parse import urlsplit

from ..config.metadata import parse_duration
from ..errors import ConfigError
from .fetch import DEFAULT_KEY, REDIS_TYPES, HTTPFetcher, RedisFetcher
from .redisconn import parse as parse_conn


def redis_type(kind, cfg, path):
    """``type`` of ``kind``'s redis block → the Redis type read (the kind's first by default)."""
    allowed = REDIS_TYPES[kind]
    t = str(cfg.get("type") or "").strip().lower()
    if not t:
        return allowed[0]
    if t not in allowed:
        what = " or ".join(allowed)
        raise ConfigError(f"{path}.type", f"{kind} read a Redis {what}, not {t!r}")
    return t


def check_redis(kind, cfg, path):
    """Validate a redis block without connecting → (type, key)."""
    if not isinstance(cfg, dict):
        raise ConfigError(path, "must be a mapping {addr, db, username, password, key, type}")
    if not str(cfg.get("addr") or "").strip():
        raise ConfigError(f"{path}.addr", "is required (host:port of the Redis server)")
    parse_conn(cfg, path)
    key = cfg.get("key")
    if key is not None and not isinstance(key, str):
        raise ConfigError(f"{path}.key", f"must be a string, not {key!r}")
    return redis_type(kind, cfg, path), key or DEFAULT_KEY


def check_http(cfg, path):
    """Validate an http block → (url, timeout seconds)."""
    if not isinstance(cfg, dict):
        raise ConfigError(path, "must be a mapping {url, timeout}")
    url = str(cfg.get("url") or "").strip()
    if not url:
        raise ConfigError(f"{path}.url", "is required")
    try:
        u = urlsplit(url)
        ok = u.scheme.lower() in ("http", "https") and bool(u.netloc.rpartition("@")[2])
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{path}.url", f"must be an http:// or https:// URL, not {url!r}")
    timeout = parse_duration(cfg.get("timeout"), f"{path}.timeout")
    if timeout < 0:
        raise ConfigError(f"{path}.timeout", "must not be negative")
    return url, timeout


def sources(kind, o, path, log=None):
    """→ {"sources": [RedisFetcher?, HTTPFetcher?], "push": bool} for LineSource."""
    raw = kind == "authers"
    out, push = [], False
    r = o.get("redis")
    if r is not None:
        rtype, _ = check_redis(kind, r, f"{path}.redis")
        push = bool(r.get("pubsub"))
        out.append(RedisFetcher(r, f"{path}.redis", rtype, raw=raw))
    h = o.get("http")
    if h is not None:
        url, timeout = check_http(h, f"{path}.http")
        out.append(HTTPFetcher(url, timeout, raw=raw))
    return {"sources": out, "push": push}
