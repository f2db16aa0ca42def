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


def recent(limit=SIZE):
    """The last ``limit`` entries, oldest first, each a dict of the line's fields (GOST's
    names: ``level``, ``time``, ``msg``, ``service``, ``sid`` …)."""
    entries = list(_lines)[-limit:] if limit > 0 else []
    return [_parsed(e) for e in entries]


def clear():
    _lines.clear()
