"""The last warning and error lines of the log, for the status page (``GET /api/status``).

Fed from the logging path (gostg.observe.log) with the line as written: a JSON line is kept as
text and parsed only when someone reads the buffer (the status page polls; the log writes far
more often), a text-format event as its dict. Bounded twice: at most :data:`SIZE` entries (a
deque drops the oldest) and at most :data:`MAX_LINE` characters each (a traceback can be long).
Only warning and above reach it: the level methods below warning never call :func:`remember`.

One buffer per process: every gostg logger writes into it, so two ``Gost`` instances embedded
in one process show each other's errors (their services are named in each entry).
"""
import collections
import json

#: entries kept
SIZE = 100
#: characters kept of one line
MAX_LINE = 4096

_lines = collections.deque(maxlen=SIZE)


def remember(line):
    """Keep one log line (a JSON text line, or an event dict of the text format)."""
    if type(line) is str and len(line) > MAX_LINE:
        line = line[:MAX_LINE]
    _lines.append(line)


def _parsed(entry):
    if isinstance(entry, dict):
        return {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in entry.items()}
    try:
        ev = json.loads(entry)
    except ValueError:   # cut at MAX_LINE: still show what it says
        ev = None
    return ev if isinstance(ev, dict) else {"msg": entry.rstrip("\n")}


def _fanned_out(a, b):
    """Is ``b`` the same event as ``a`` written by another logger of a service's logger group
    (``loggers: [file, console]``): same fields but ``logger`` and ``time``?"""
    la, lb = a.get("logger"), b.get("logger")
    if la is None or lb is None or la == lb or len(a) != len(b):
        return False
    return all(v == b.get(k) for k, v in a.items() if k not in ("logger", "time"))


def recent(limit=SIZE):
    """The last ``limit`` events, oldest first, each a dict of the line's fields (GOST's
    names: ``level``, ``time``, ``msg``, ``service``, ``sid`` …). An event a logger group
    wrote to several loggers is listed once."""
    out = []
    for entry in list(_lines):
        ev = _parsed(entry)
        if not (out and _fanned_out(out[-1], ev)):
            out.append(ev)
    return out[-limit:] if limit > 0 else []


def clear():
    _lines.clear()
