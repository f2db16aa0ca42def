"""Whole-config validation against the schema: every problem at once, as data.

Startup, ``-O``, ``--check``, reload (SIGHUP, ``-R``, ``POST /config/reload``) and every Web API
write go through :func:`validate` (or :func:`check`, which raises on the first error).
"""
from ..errors import ConfigError


class Problem:
    """One finding. ``level`` is ``"error"`` (refuse the config) or ``"warning"`` (run, but say so)."""

    __slots__ = ("level", "path", "message", "suggestion")

    def __init__(self, level, path, message, suggestion=None):
        self.level, self.path, self.message, self.suggestion = level, path, message, suggestion

    def __str__(self):
        return f"{self.path}: {self.message}" if self.path else self.message

    def __repr__(self):
        return f"Problem({self.level!r}, {str(self)!r})"

    def as_error(self):
        return ConfigError(self.path, self.message, self.suggestion)


def validate(cfg):
    """→ list of :class:`Problem` for the config model ``cfg`` (errors and warnings, in path order)."""
    from . import model
    try:
        model.check(cfg)
    except ConfigError as exc:
        return [Problem("error", exc.path, exc.msg)]
    return []


def check(cfg, log=None):
    """Raise ConfigError for the first error; log each warning on ``log``; → the warnings."""
    problems = validate(cfg)
    for p in problems:
        if p.level == "error":
            raise p.as_error()
    if log is not None:
        for p in problems:
            log.warning(f"config: {p}")
    return problems
