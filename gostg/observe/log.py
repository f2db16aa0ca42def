"""Loggers from GOST's ``log: {level, format, output, rotation}``: one structlog-style event per line.

Outputs: stderr and stdout are written in the caller (one ``write`` per line, as before); a
file path goes to :mod:`.logfile` (a writer thread, rotation, reopen on SIGHUP); ``none``
discards; ``logging`` hands each event to the stdlib logger "gostg" (:mod:`.logstd`).

The default JSON format is rendered by :class:`JsonLogger`, not by a structlog processor chain:
at the default level every connection writes two lines, so a line's cost is part of every
connection's cost. A bound logger keeps its context already rendered as JSON text (encoded once
per ``bind``, not once per event) and an event renders only its own fields, in one ``write``.
The line is what structlog's chain (add_log_level, drop None, time, format_exc_info, event →
msg, JSONRenderer) writes, byte for byte: keys in the same order (context, event fields,
level, time, msg). An event that rebinds a context key or names a key the chain sets itself
(level, time, msg, exc_info) takes the generic path, which builds the same dict the chain did.
The text format (logfmt) stays on structlog, imported only then.

We never call ``structlog.configure``: an embedding app keeps its own structlog setup, and
gostg gets a private logger wrapped around its own output (an app may pass its own structlog
logger instead, or a standard ``logging.Logger``; gostg only calls ``bind`` and the level
methods on it).
"""
import logging
import sys
import time
from json import dumps
from json.encoder import encode_basestring_ascii as _enc_str

from ..errors import ConfigError
from .recent import remember

LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
          "panic": logging.CRITICAL}


_stamp = [0, "", ""]


def _now():
    """Local time with milliseconds and offset, e.g. ``2026-12-06T14:23:04.666+0000``."""
    t = time.time()
    sec = int(t)
    if sec != _stamp[0]:  # strftime once a second, not once a line
        lt = time.localtime(sec)
        _stamp[:] = sec, time.strftime("%Y-%m-%dT%H:%M:%S.", lt), time.strftime("%z", lt)
    return f"{_stamp[1]}{int(t % 1 * 1000):03d}{_stamp[2]}"


def _timestamp(_, __, ev):
    ev["time"] = _now()
    return ev


def _remember(_, __, ev):
    """Text format: warning and above go to the status page's buffer (observe.recent)."""
    if ev.get("level") in ("warning", "error", "critical", "exception"):
        remember({**{k: v for k, v in ev.items() if k != "event"}, "msg": ev.get("event")})
    return ev


def _drop_none(_, __, ev):
    return {k: v for k, v in ev.items() if v is not None}


class _Null:
    def write(self, _):
        pass

    def emit(self, _):
        pass

    def flush(self):
        pass


class _Safe:
    """A log stream whose write errors (a closed pipe, a full disk) never reach the caller:
    losing a log line must not break a connection or a shutdown."""

    __slots__ = ("f", "__weakref__")

    def __init__(self, f):
        self.f = f

    def write(self, s):
        try:
            self.f.write(s)
        except (OSError, ValueError):
            pass

    def flush(self):
        try:
            self.f.flush()
        except (OSError, ValueError):
            pass

    def emit(self, line):
        """One whole line (newline included) in one write, flushed as PrintLogger did."""
        try:
            self.f.write(line)
            self.f.flush()
        except (OSError, ValueError):
            pass


def _output(output, rotation=None):
    if output in ("", "stderr", None):
        return _Safe(sys.stderr)
    if output == "stdout":
        return _Safe(sys.stdout)
    if output in ("none", "null"):
        return _Null()
    from .logfile import sink   # a file: written by a thread of its own, rotated as GOST's
    try:
        return sink(output, rotation)
    except OSError as exc:
        # a config problem, reported like every other one (not a traceback)
        raise ConfigError("log.output", f"cannot open log file {output!r}: {exc.strerror or exc}") from None


def make_logger(level="info", fmt="json", output="stderr", rotation=None, name=None):
    """A logger writing GOST's lines to ``output`` (stderr, stdout, none, a file path, or
    ``logging``: the stdlib logger "gostg"). ``name``: a named logger's, which GOST puts on
    each of its lines as ``logger``."""
    lvl = max(LEVELS.get(str(level or "info").lower(), logging.INFO), logging.DEBUG)
    if output == "logging":
        from .logstd import StdlibLogger
        log = StdlibLogger(logging.getLogger("gostg"), {}, lvl)
        return log.bind(logger=name) if name else log
    out = _output(output, rotation)
    if fmt != "text":
        log = _json_class(lvl)(out, {}, "", True)
    else:
        import structlog   # only the text format needs it

        log = structlog.wrap_logger(
            structlog.PrintLogger(out),
            processors=[
                structlog.processors.add_log_level,
                _drop_none,
                _timestamp,
                structlog.processors.format_exc_info,
                _remember,
                structlog.processors.EventRenamer("msg"),
                structlog.processors.LogfmtRenderer(key_order=["time", "level", "msg"], drop_missing=True),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(lvl),
        )
    return log.bind(logger=name) if name else log


def from_config(log_cfg, name=None):
    """``log: {level, format, output, rotation}`` (the global one or a named logger's) → a logger."""
    from ..config.schema import LOG, normalize   # GOST reads keys case-insensitively
    c = normalize(log_cfg, LOG) if isinstance(log_cfg, dict) else {}
    return make_logger(c.get("level") or "info", c.get("format") or "json", c.get("output") or "stderr",
                       c.get("rotation"), name)


# --- the JSON logger ------------------------------------------------------------------------

#: keys the chain sets on every event itself: an event field of that name takes the generic path
_RESERVED = frozenset(("level", "time", "msg", "exc_info"))


def _fallback(obj):
    """JSONRenderer's ``default``: ``__structlog__()`` when the object has it, else ``repr``."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


def _enc(v):
    t = type(v)
    if t is str:
        return _enc_str(v)
    if t is int:
        return int.__repr__(v)
    if t is float and v - v == 0:   # finite: json writes repr; NaN and ±inf go to dumps
        return float.__repr__(v)
    return dumps(v, default=_fallback)


def _pairs(d):
    """``"k": v, `` for each field that is not None (the chain drops None)."""
    return "".join([f"{_enc_str(k)}: {_enc(v)}, " for k, v in d.items() if v is not None])


def _interpolate(event, args):
    """structlog's positional (or one-mapping) ``%`` interpolation of the event."""
    if not args:
        return event
    if len(args) == 1 and isinstance(args[0], dict) and args[0]:
        return event % args[0]
    return event % args


class JsonLogger:
    """A structlog-compatible bound logger (``bind``, ``new``, ``unbind``, ``try_unbind``, the
    level methods) that writes GOST's JSON lines itself. ``_head`` is the context rendered."""

    __slots__ = ("_out", "_context", "_head", "_plain")
    min_level = logging.DEBUG

    def __init__(self, out, context, head, plain):
        self._out = out
        self._context = context
        self._head = head
        self._plain = plain   # no context key is one the chain sets itself

    def bind(self, **kw):
        if not kw:
            return self
        ctx = self._context
        new = {**ctx, **kw}
        head = self._head + _pairs(kw) if ctx.keys().isdisjoint(kw) else _pairs(new)
        return type(self)(self._out, new, head, self._plain and _RESERVED.isdisjoint(kw))

    def new(self, **kw):
        return type(self)(self._out, {}, "", True).bind(**kw)

    def unbind(self, *keys):
        ctx = dict(self._context)
        for k in keys:
            del ctx[k]
        return self.new(**ctx)

    def try_unbind(self, *keys):
        return self.new(**{k: v for k, v in self._context.items() if k not in keys})

    def is_enabled_for(self, level):
        return level >= self.min_level

    def get_effective_level(self):
        return self.min_level

    def _emit(self, level, event, kw):
        if self._plain and type(event) is str and (not kw or _RESERVED.isdisjoint(kw)
                                                   and self._context.keys().isdisjoint(kw)):
            line = (f'{{{self._head}{_pairs(kw) if kw else ""}"level": "{level}", '
                    f'"time": "{_now()}", "msg": {_enc_str(event)}}}\n')
        else:
            line = self._generic(level, event, kw)
        self._out.emit(line)
        return line

    def _generic(self, level, event, kw):
        """The processor chain step by step, for the events the fast path does not take."""
        ev = self._context.copy()
        ev.update(kw)
        if event is not None:
            ev["event"] = event
        ev["level"] = level
        ev = {k: v for k, v in ev.items() if v is not None}
        ev["time"] = _now()
        if "exc_info" in ev:
            from structlog.processors import format_exc_info
            ev = format_exc_info(None, level, ev)
        ev["msg"] = ev.pop("event")
        return dumps(ev, default=_fallback) + "\n"

    def log(self, level, event, *args, **kw):
        if level < self.min_level:
            return None
        line = self._emit(_NAMES[level], _interpolate(event, args), kw)
        if level >= logging.WARNING:
            remember(line)

    def exception(self, event, *args, **kw):
        kw.setdefault("exc_info", True)
        return self.error(event, *args, **kw)


_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
          logging.ERROR: "error", logging.CRITICAL: "critical"}
_LEVELS_OF = {name: lvl for lvl, name in _NAMES.items()}
_classes = {}


def _nop(self, event, *args, **kw):
    return None


def _method(name):
    if _LEVELS_OF[name] >= logging.WARNING:   # kept for the status page (observe.recent)
        def meth(self, event, *args, **kw):
            remember(self._emit(name, _interpolate(event, args) if args else event, kw))
    else:
        def meth(self, event, *args, **kw):
            self._emit(name, _interpolate(event, args) if args else event, kw)
    meth.__name__ = name
    return meth


def _json_class(min_level):
    """A JsonLogger subclass whose methods below ``min_level`` do nothing (as structlog's
    filtering bound logger: a filtered call costs one call and no formatting)."""
    cls = _classes.get(min_level)
    if cls is None:
        meths = {name: (_method(name) if lvl >= min_level else _nop) for lvl, name in _NAMES.items()}
        meths.update(fatal=meths["critical"], warn=meths["warning"], msg=meths["info"], min_level=min_level,
                     __slots__=())
        cls = _classes[min_level] = type(f"JsonLoggerAt{_NAMES.get(min_level, min_level)}", (JsonLogger,), meths)
    return cls
