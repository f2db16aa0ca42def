"""Authenticators (GOST ``authers``): who may use a service, and the client ID they get.

Rules (go-gost/x auth/auth.go, auth/whitelist.go, config/parsing/auth):
1. An auther's table is its inline ``auths`` overlaid by the ``user pass`` lines of its
   ``file``, then its ``redis`` HASH (field user, value password), then its ``http`` source
   (all re-read every ``reload``; later wins); a line with no password maps the user to "".
2. A user whose password is "" passes with any password; an empty table refuses everyone.
3. A passing user's name is the client ID (it feeds the hash selector).
4. A group passes when any member passes; members are looked up by name at use time, so an
   auther replaced through the Web API is seen by the next connection. A member name that does
   not resolve refuses every client (fail closed), skipauth networks included.
5. ``skipauth`` (handler metadata): clients whose IP is in one of the listed IPs/CIDRs/ranges pass
   without credentials and get no client ID.
Passwords are compared in constant time, and unknown users cost the same compare, so timing
reveals neither a password prefix nor which user names exist.
"""
import hmac

from .group import LateGroup, Unanswered
from .matcher import Matcher, is_ip_rule
from .source import LineSource


def parse_auth_lines(lines):
    """``user [pass]`` lines → {user: password}; tabs count as spaces, the password is the rest
    of the line (so it may hold spaces or ``#``); lines starting with ``#`` are comments."""
    users = {}
    for line in lines:
        line = line.replace("\t", " ").strip()
        if not line or line.startswith("#"):
            continue
        user, _, password = line.partition(" ")
        users[user] = password.strip()
    return users


def read_raw_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\r\n") for line in f]


def _check(users, username, password):
    """→ client ID or None, in time independent of which part failed."""
    want = users.get(username)
    # "" in the table means any password; compare anyway so the time does not tell
    ok = hmac.compare_digest((want if want else "\0").encode(), (password or "").encode())
    if want is None:
        return None
    return username if (ok or want == "") else None


class Auther:
    """One named auther: inline ``users`` ({user: password}) plus file/redis/http sources."""

    def __init__(self, name, users=None, file="", reload=0.0, log=None, clock=None, sources=(), push=False):
        self.name = name
        inline = dict(users or {})
        kw = {"clock": clock} if clock is not None else {}
        # inline entries first, then file, redis, http lines: later ones win (GOST's merge
        # order). Raw lines: in an auth file ``#`` is a comment only at the start of a line (a
        # password may contain it), unlike in bypass lists.
        self.source = LineSource([], file=file, reload=reload, name=name, log=log, raw=True,
                                  parse=lambda lines: {**inline, **parse_auth_lines(lines)},
                                  sources=sources, push=push, **kw)

    def close(self):
        self.source.close()

    @property
    def users(self):
        return self.source.value()

    def authenticate(self, username, password, client=None, ctx=None):
        """→ client ID (the user name) or None."""
        users = self.source.value()
        if not users:
            return None
        return _check(users, username or "", password)


class AutherGroup(LateGroup):
    """Any member passes (GOST's group rule); member names are looked up at use time. A member
    that does not resolve raises MissingReference: the handler refuses every client."""

    kind = "authers"

    def __init__(self, names, registries):
        super().__init__(names, registries)

    @property
    def names(self):
        return self.members

    def authenticate(self, username, password, client=None, ctx=None):
        """A member whose plugin cannot answer does not stop the others; if none passes,
        that failure is raised (the caller refuses with its reason)."""
        failed = None
        for a in self._live():
            try:
                cid = a.authenticate(username, password, client, ctx)
            except Unanswered as exc:
                failed = exc
                continue
            if cid is not None:
                return cid
        if failed is not None:
            raise failed
        return None


class SkipAuth:
    """Wraps an auther: clients from ``patterns`` (IPs, CIDRs, IP ranges; anything else is
    ignored, as GOST does) pass with no credentials and ID ""."""

    def __init__(self, auther, patterns):
        self.auther = auther
        self.networks = Matcher([p for p in map(str, patterns) if is_ip_rule(p)])

    def skips(self, client):
        return bool(client) and self.networks.match(client.strip("[]").split("%", 1)[0])

    def check(self):
        """A missing auther refuses skipped clients too (fail closed)."""
        check = getattr(self.auther, "check", None)
        if check is not None:
            check()

    def authenticate(self, username, password, client=None, ctx=None):
        if self.skips(client):
            self.check()
            return ""
        return self.auther.authenticate(username, password, client, ctx) if self.auther is not None else None


def first_credentials(path):
    """GOST 3.1 client ``auth.file``: the first ``user [pass]`` line → (user, pass) or None."""
    try:
        lines = read_raw_lines(path)
    except OSError:
        return None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, _, password = line.partition(" ")
        return user.strip(), password.strip()
    return None
