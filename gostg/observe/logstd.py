"""gostg's log events on a standard :class:`logging.Logger`: ``Gost(config, logger=logging.getLogger(…))``
and ``log: {output: logging}`` (the stdlib logger ``"gostg"``).

Each event becomes one ``LogRecord``: its message is GOST's ``msg``, its level the stdlib level
(``trace`` is 5), and every GOST field (service, handler, sid, remote, local, client, dst,
duration, inputBytes …) is in ``record.gost``, one dict — not spread over the record, where
names such as ``name`` would collide with LogRecord's own attributes. :class:`GostJsonFormatter`
renders such a record as GOST's JSON line, for an app that wants the lines as gostg writes them.
"""
import json
import logging

from .log import _fallback, _interpolate, _now
from .recent import remember

TRACE = 5
_LEVELS = (("debug", logging.DEBUG), ("info", logging.INFO), ("warning", logging.WARNING),
           ("error", logging.ERROR), ("critical", logging.CRITICAL))


class StdlibLogger:
    """The bound-logger face gostg calls (``bind`` and the level methods) over a stdlib logger.
    ``min_level``: gostg's own level on top of the logger's (``log.level`` of ``output: logging``)."""

    __slots__ = ("logger", "context", "min_level")

    def __init__(self, logger, context=None, min_level=0):
        self.logger = logger
        self.context = context or {}
        self.min_level = min_level

    def bind(self, **kw):
        return StdlibLogger(self.logger, {**self.context, **kw}, self.min_level) if kw else self

    def new(self, **kw):
        return StdlibLogger(self.logger, dict(kw), self.min_level)

    def unbind(self, *keys):
        ctx = dict(self.context)
        for k in keys:
            del ctx[k]
        return StdlibLogger(self.logger, ctx, self.min_level)

    def try_unbind(self, *keys):
        return StdlibLogger(self.logger, {k: v for k, v in self.context.items() if k not in keys}, self.min_level)

    def is_enabled_for(self, level):
        return level >= self.min_level and self.logger.isEnabledFor(level)

    def log(self, level, event, *args, **kw):
        if level < self.min_level or not self.logger.isEnabledFor(level):
            return
        exc_info = kw.pop("exc_info", None)
        fields = {k: v for k, v in {**self.context, **kw}.items() if v is not None}
        msg = _interpolate(event, args)
        # stacklevel: the record names gostg's caller, not this adapter
        self.logger.log(level, msg, exc_info=exc_info, extra={"gost": fields}, stacklevel=3)
        if level >= logging.WARNING:   # the status page's recent errors, as the other loggers do
            remember({**fields, "level": _name(level), "time": _now(), "msg": msg})

    def trace(self, event, *args, **kw):
        self.log(TRACE, event, *args, **kw)

    def exception(self, event, *args, **kw):
        kw.setdefault("exc_info", True)
        self.log(logging.ERROR, event, *args, **kw)


def _method(lvl):
    def meth(self, event, *args, **kw):
        self.log(lvl, event, *args, **kw)
    return meth


for _name, _lvl in _LEVELS:
    setattr(StdlibLogger, _name, _method(_lvl))
StdlibLogger.warn = StdlibLogger.warning
StdlibLogger.fatal = StdlibLogger.critical
StdlibLogger.msg = StdlibLogger.info


def _name(levelno):
    """A stdlib level number → GOST's level name."""
    if levelno <= TRACE:
        return "trace"
    return logging.getLevelName(levelno).lower() if levelno in _NUMBERS else "info"


_NUMBERS = frozenset(lvl for _, lvl in _LEVELS)


class GostJsonFormatter(logging.Formatter):
    """A record from :class:`StdlibLogger` → GOST's JSON line (fields, level, time, msg)."""

    def format(self, record):
        ev = dict(getattr(record, "gost", None) or {})
        ev["level"] = _name(record.levelno)
        ev["time"] = _now()
        if record.exc_info:
            ev["exception"] = self.formatException(record.exc_info)
        ev["msg"] = record.getMessage()
        return json.dumps(ev, default=_fallback)


def adapt(logger, min_level=0):
    """A stdlib Logger → :class:`StdlibLogger`; anything else (a structlog logger) as it is."""
    if isinstance(logger, logging.Logger):
        return StdlibLogger(logger, {}, min_level)
    return logger
