"""A stand-in for gostg's structlog logger in unit tests: ``lines`` records (level, message)."""


class Log:
    def __init__(self):
        self.lines = []

    def bind(self, **kw):
        return self

    def _add(level):
        def log(self, msg, **kw):
            self.lines.append((level, msg))
        return log

    debug, info, warning, error = _add("debug"), _add("info"), _add("warning"), _add("error")
    del _add
