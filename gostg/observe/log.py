"""structlog setup from GOST's ``log: {level, format, output}``.

We never call ``structlog.configure``: an embedding app keeps its own structlog setup, and
gostg gets a private logger wrapped around its own output.
"""
import logging
import os
import sys
import time

import structlog

from ..errors import ConfigError

LEVELS = {"trace": 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
          "panic": logging.CRITICAL}


_stamp = [0, ""]


def _timestamp(_, __, ev):
    t = time.time()
    sec = int(t)
    if sec != _stamp[0]:  # strftime once a second, not once a line
        _stamp[0], _stamp[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S.{}%z", time.localtime(sec))
    ev["time"] = _stamp[1].format(f"{int(t % 1 * 1000):03d}")
    return ev


def _drop_none(_, __, ev):
    return {k: v for k, v in ev.items() if v is not None}


class _Null:
    def write(self, _):
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


def _output(output):
    if output in ("", "stderr", None):
        return sys.stderr
    if output == "stdout":
        return sys.stdout
    if output == "none":
        return _Null()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        return open(output, "a", buffering=1)
    except OSError as exc:
        # a config problem, reported like every other one (not a traceback)
        raise ConfigError("log.output", f"cannot open log file {output!r}: {exc.strerror or exc}") from None


def make_logger(level="info", fmt="json", output="stderr"):
    lvl = LEVELS.get(str(level or "info").lower(), logging.INFO)
    renderer = (structlog.processors.LogfmtRenderer(key_order=["time", "level", "msg"], drop_missing=True)
                if fmt == "text" else structlog.processors.JSONRenderer())
    return structlog.wrap_logger(
        structlog.PrintLogger(_Safe(_output(output))),
        processors=[
            structlog.processors.add_log_level,
            _drop_none,
            _timestamp,
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("msg"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(max(lvl, logging.DEBUG)),
    )
