"""Inline items plus an optional ``file`` re-read every ``reload`` period (GOST's object
sources for bypasses, admissions, authers, hosts, limiters …).

Reloading is lazy: the first use after the period has passed stats the file and re-parses it
only when its mtime or size changed. No background greenlet exists, so nothing leaks when the
object is replaced, and an idle object costs nothing. A file that vanishes or fails to parse
keeps the last good value (logged once per change), as a running proxy must not lose its
policy because an editor is halfway through a save.
"""
import os
import time


def read_lines(path):
    """Non-empty lines of ``path`` with ``#`` comments removed."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                out.append(line)
    return out


class LineSource:
    """``value()`` → ``parse(inline_items + file_lines)``, re-parsed when the file changes."""

    def __init__(self, items=(), file="", reload=0.0, parse=list, name="", log=None,
                 clock=time.monotonic):
        self.items = list(items)
        self.file = file or ""
        self.reload = float(reload or 0)
        self.parse = parse
        self.name = name
        self.log = log
        self._clock = clock
        self._stamp = None
        self._next = 0.0
        self._value = parse(self.items + self._file_lines(initial=True))
        self._next = clock() + self.reload

    def _file_lines(self, initial=False):
        if not self.file:
            return []
        try:
            st = os.stat(self.file)
            stamp = (st.st_mtime_ns, st.st_size)
            lines = read_lines(self.file)
        except OSError as exc:
            if initial:
                raise ValueError(f"cannot read {self.file}: {exc.strerror or exc}") from None
            raise
        self._stamp = stamp
        return lines

    def value(self):
        if self.reload > 0 and self.file:
            now = self._clock()
            if now >= self._next:
                self._next = now + self.reload
                self._maybe_reload()
        return self._value

    def _maybe_reload(self):
        try:
            st = os.stat(self.file)
            if (st.st_mtime_ns, st.st_size) == self._stamp:
                return
            self._value = self.parse(self.items + self._file_lines())
            if self.log is not None:
                self.log.info("reloaded", kind="source", name=self.name, file=self.file)
        except Exception as exc:  # any parse failure: keep serving with the last good value
            if self.log is not None:
                self.log.warning(f"reload failed, keeping the last good value: {exc}",
                                 kind="source", name=self.name, file=self.file)
