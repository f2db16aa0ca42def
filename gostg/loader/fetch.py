"""The three places GOST reads an object's items from: a ``file``, a ``redis`` key, an ``http`` URL.

Each fetcher's ``fetch()`` returns the source's lines or raises (the owning LineSource keeps
the last good lines and logs the reason). Lines are whole items: comments are cut here, by
``strip_comment``, except for raw sources (auth files, where ``#`` may be part of a password).
"""
import os

#: seconds for one http fetch when ``http.timeout`` is not set (GOST: no limit at all; a source
#: that never answers must not hold its poller forever)
HTTP_TIMEOUT = 10.0
#: bytes: a larger http body is refused (as a config URL's)
HTTP_MAX = 10 << 20


def strip_comment(line):
    """``"a.com  # x"`` → ``"a.com"``: GOST's parseLine (``#`` to the end goes, then trim)."""
    return line.split("#", 1)[0].strip()


def split_lines(text, raw=False):
    """Text in GOST's file format → its non-empty lines (``raw``: untouched but for the line end)."""
    if raw:
        return [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    return [s for s in map(strip_comment, text.split("\n")) if s]


class FileFetcher:
    """``file: {path}``: re-read only when its mtime or size changed (``changed()``)."""

    kind = "file"

    def __init__(self, path, raw=False):
        self.path = path
        self.raw = raw
        self._stamp = None
        self.where = path

    def _stat(self):
        st = os.stat(self.path)
        return st.st_mtime_ns, st.st_size

    def changed(self):
        try:
            return self._stat() != self._stamp
        except OSError:
            return True   # a fetch then says why

    def fetch(self):
        stamp = self._stat()
        with open(self.path, encoding="utf-8", errors="replace") as f:
            lines = split_lines(f.read(), self.raw)
        self._stamp = stamp
        return lines

    def close(self):
        pass


# what each object kind reads from Redis: GOST's key types (x/config/parsing/*/parse.go)
REDIS_TYPES = {
    "authers": ("hash",),
    "bypasses": ("set",),
    "admissions": ("set",),
    "hosts": ("set", "list"),
    "limiters": ("set", "list"),
    "climiters": ("set", "list"),
    "rlimiters": ("set", "list"),
    "ingresses": ("hash", "set"),
    "routers": ("hash", "set", "list"),
}
DEFAULT_KEY = "gost"


class RedisFetcher:
    """``redis: {addr, db, username, password, key, type}``: SMEMBERS, LRANGE 0 -1 or HGETALL
    (each ``field value`` pair one ``"field value"`` line, as GOST's hash loader writes them)."""

    kind = "redis"

    def __init__(self, cfg, path, rtype, raw=False):
        from . import redisconn

        self.cfg = cfg
        self.key = str(cfg.get("key") or DEFAULT_KEY)
        self.type = rtype
        self.raw = raw
        self.conn = redisconn.parse(cfg, path)   # (host, port, db, user, password)
        self.client = redisconn.client(cfg, path)
        self.where = f"redis://{self.conn[0]}:{self.conn[1]}/{self.conn[2]} {self.type} {self.key}"

    def changed(self):
        return True

    def fetch(self):
        c = self.client
        if self.type == "hash":
            items = [f"{_s(k)} {_s(v)}" for k, v in c.hgetall(self.key).items()]
        elif self.type == "list":
            items = [_s(v) for v in c.lrange(self.key, 0, -1)]
        else:
            items = sorted(_s(v) for v in c.smembers(self.key))
        if self.raw:
            return [s for s in items if s.strip()]
        return [s for s in map(strip_comment, items) if s]

    def close(self):
        from . import redisconn

        if self.client is not None:
            redisconn.release(self.client)
            self.client = None


def _s(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


class HTTPFetcher:
    """``http: {url, timeout}``: a GET whose 200 body is in the object's file format."""

    kind = "http"

    def __init__(self, url, timeout=0.0, raw=False, limit=HTTP_MAX):
        from ..config.remote import shown

        self.url = url
        self.timeout = timeout if timeout and timeout > 0 else HTTP_TIMEOUT
        self.raw = raw
        self.limit = limit
        self.where = shown(url)

    def changed(self):
        return True

    def fetch(self):
        return split_lines(self.body().decode("utf-8", "replace"), self.raw)

    def body(self):
        """The 200 answer's bytes (at most ``limit``); OSError naming what went wrong."""
        from ..config import remote

        try:
            return remote.get(self.url, self.timeout, self.limit)[0]
        except OSError:
            raise
        except Exception as exc:   # ConfigError: too large
            raise OSError(getattr(exc, "msg", str(exc))) from None

    def close(self):
        pass
