"""Late-bound references to named objects, and what happens when one does not resolve.

Rules (fail closed, issue 11 must 4):
1. A name is looked up on every use, so a Web API change is seen by the next connection and an
   object created after the reference (GOST's documented forward reference) takes effect at once.
2. A name that does not resolve never means "no such policy": it raises
   :class:`MissingReference` and the caller refuses the connection (a dial fails, a client is
   not authenticated, a connection is closed at accept). It never degrades to direct,
   unauthenticated, unfiltered or unlimited.
"""
from ..errors import DialError

#: registry kind → the noun used in messages ("chain 'x' not found")
NOUNS = {"chains": "chain", "hops": "hop", "authers": "auther", "admissions": "admission",
         "bypasses": "bypass", "resolvers": "resolver", "hosts": "hosts", "limiters": "limiter",
         "climiters": "climiter", "rlimiters": "rlimiter", "services": "service",
         "recorders": "recorder", "observers": "observer", "ingresses": "ingress", "routers": "router"}


class MissingReference(DialError):
    """A configured name whose object does not exist (now). A DialError, so a handler that
    dials answers its client the usual failure (SOCKS5 reply, HTTP 503) without new code;
    ``kind`` is the registry (``"chains"``), ``name`` the missing name."""

    def __init__(self, kind, name):
        super().__init__(f"{NOUNS.get(kind, kind)} {name!r} not found")
        self.kind = kind
        self.name = name


class UnreadSource(MissingReference):
    """An object whose redis/http source has never been read (down since start): its rules
    are unknown, so it refuses as a missing object does — a service refuses the connection, a
    hop's dial fails; neither goes direct nor lets the client in."""

    def __init__(self, kind, name):
        DialError.__init__(self, f"{NOUNS.get(kind, kind)} {name!r}: its redis/http source has not been read yet")
        self.kind = kind
        self.name = name


class Unanswered(MissingReference):
    """A plugin behind a named object could not decide (down, slow, garbage): handled as a
    missing reference everywhere, so the connection is refused (fail closed)."""

    def __init__(self, kind, name, why):
        DialError.__init__(self, f"{NOUNS.get(kind, kind)} {name!r}: plugin failed: {why}")
        self.kind = kind
        self.name = name


def lookup(registries, kind, name):
    """The live object ``name`` of ``kind``; MissingReference when there is none."""
    obj = getattr(registries, kind).get(name) if registries is not None and name else None
    if obj is None:
        raise MissingReference(kind, name)
    return obj


def refused(log, exc, **fields):
    """The one log line for a connection refused by a missing reference."""
    log.error(f"{exc}: connection refused", **{k: v for k, v in fields.items() if v})


class LateGroup:
    """Members are names looked up on every use, or the objects themselves. A member name that
    does not resolve raises MissingReference (rule 2): a group with a missing member would be
    a weaker policy than the one configured."""

    #: the Registries attribute the names are looked up in
    kind = ""

    def __init__(self, members, registries=None):
        self.members = [m for m in members if m]
        self.registries = registries

    @classmethod
    def of(cls, names, registries):
        """A group for ``names`` (None when there are none, so callers skip the check)."""
        names = [n for n in names if n]
        return cls(names, registries) if names else None

    def _live(self):
        return [lookup(self.registries, self.kind, m) if isinstance(m, str) else m for m in self.members]

    def missing(self):
        """Names of members that do not resolve now."""
        reg = getattr(self.registries, self.kind, None) if self.registries is not None else None
        return [m for m in self.members if isinstance(m, str) and (reg is None or reg.get(m) is None)]

    def check(self):
        """Raise MissingReference for the first member that does not resolve."""
        for m in self.missing():
            raise MissingReference(self.kind, m)

    def __repr__(self):
        return f"{type(self).__name__}({self.members!r})"
