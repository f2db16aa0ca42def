"""Errors say whose fault it was, and carry the reply a handler should send.

- ``ProtocolError``: the peer sent bytes we cannot accept (garbage, truncated, wrong version).
- ``AuthError``: the peer's credentials were refused.
- ``DialError``: the target or an upstream node could not be reached (upstream's fault).
- ``ConfigError``: our configuration is wrong; ``path`` names where (``services[1].handler.type``).
"""


class GostgError(Exception):
    """Root of every error gostg raises on purpose."""


class ProtocolError(GostgError):
    """The peer broke the protocol. ``reply`` is a hint for the handler (SOCKS REP / HTTP status)."""

    def __init__(self, msg, reply=None):
        super().__init__(msg)
        self.reply = reply


class NeedData(GostgError):
    """A codec ran out of bytes before a complete message: read more and try again."""


class AuthError(GostgError):
    """Credentials refused."""


class DialError(GostgError):
    """Could not reach the target or an upstream node. ``target`` is the address asked for,
    ``node`` the chain node that failed (None: the direct dial), ``cause`` the underlying error."""

    def __init__(self, msg, node=None, target=None, cause=None):
        super().__init__(msg)
        self.node = node
        self.target = target
        self.cause = cause


class BypassError(DialError):
    """The target is refused by a bypass rule."""


class ConfigError(GostgError):
    """Bad configuration. ``path`` locates the offending key (``services[1].handler.type``),
    ``key`` is its last part, ``suggestion`` a did-you-mean name (or None)."""

    def __init__(self, path, msg, suggestion=None):
        super().__init__(f"{path}: {msg}" if path else msg)
        self.path = path
        self.msg = msg
        self.suggestion = suggestion

    @property
    def key(self):
        return self.path.rsplit(".", 1)[-1].split("[", 1)[0] if self.path else ""


class ChangeError(GostgError):
    """A refused config change (Web API, reload), with GOST's API code and HTTP status."""

    INVALID, DUPLICATE, FAILED, NOT_FOUND, SAVE_FAILED = 40001, 40002, 40003, 40004, 40005
    STATUS = {INVALID: 400, DUPLICATE: 400, FAILED: 409, NOT_FOUND: 400, SAVE_FAILED: 500}

    def __init__(self, code, msg, status=None):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status or self.STATUS.get(code, 500)


class NotPatchedError(GostgError, RuntimeError):
    """``Gost.start()`` in a process whose sockets are not gevent's, with no hub of gostg's own:
    nothing would ever run the services. The message names the two ways out."""


class HubStopped(GostgError, RuntimeError):
    """A call into gostg's hub thread (thread mode) that cannot run: gostg is not started, or
    it stopped before the call finished."""
