"""GOST metadata maps: free-form, with case-insensitive keys and loosely typed values."""
import math
import os
import re

from ..errors import ConfigError

#: refuse reads of undeclared keys (the test suite sets GOSTG_STRICT_SCHEMA=1 for every process
#: it starts; in production a gap in the schema must not cost a user their connection)
STRICT = os.environ.get("GOSTG_STRICT_SCHEMA") == "1"

_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(v, path=""):
    """Go durations (``"1m30s"``, ``"500ms"``) or plain numbers of seconds → float seconds."""
    if v is None or v == "":
        return 0.0
    if isinstance(v, bool):
        raise ConfigError(path, f"bad duration {v!r}")
    if isinstance(v, (int, float)):
        if not math.isfinite(v):
            raise ConfigError(path, f"bad duration {v!r}")
        return float(v)
    s = str(v).strip()
    try:
        f = float(s)
    except ValueError:
        pass
    else:
        if not math.isfinite(f):
            raise ConfigError(path, f"bad duration {v!r}")
        return f
    neg = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    total, pos = 0.0, 0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ConfigError(path, f"bad duration {v!r}")
    return -total if neg else total


def format_duration(seconds):
    return f"{seconds:g}s"


class Metadata:
    """Read-only view of a metadata dict with case-insensitive lookup and typed getters.

    Built with ``spec`` (the component's declared keys, :func:`gostg.config.schema.component_md`),
    a read of a key the schema does not declare for that component raises KeyError: a component
    cannot read what the schema does not know, so warnings, docs and code never drift apart.
    Values were checked by :mod:`gostg.config.validate` before any component was built."""

    __slots__ = ("_m", "_spec")

    def __init__(self, m=None, spec=None):
        self._m = {str(k).lower(): v for k, v in (m or {}).items()}
        self._spec = spec

    def __contains__(self, key):
        return key.lower() in self._m

    def declares(self, key):
        """May this component read ``key``? (Always, without a spec.)"""
        return self._spec is None or key.lower() in self._spec

    def raw(self, *keys):
        if self._spec is not None and STRICT:
            for k in keys:
                if k.lower() not in self._spec:
                    raise KeyError(f"metadata key {k!r} is not declared for this component in gostg.config.schema")
        for k in keys:
            k = k.lower()
            if k in self._m and self._m[k] is not None:
                return self._m[k]
        return None

    def map(self, *keys):
        """A mapping value (e.g. GOST's ``header``), or None when unset or not a mapping."""
        v = self.raw(*keys)
        return v if isinstance(v, dict) else None

    def str(self, *keys, default=""):
        v = self.raw(*keys)
        return default if v is None else str(v)

    def bool(self, *keys, default=False):
        v = self.raw(*keys)
        if v is None:
            return default
        if isinstance(v, bool):
            return v
        if isinstance(v, (int, float)):
            return v != 0
        return str(v).strip().lower() in ("true", "1", "yes", "on", "t")

    def int(self, *keys, default=0):
        v = self.raw(*keys)
        if v is None or v == "":
            return default
        try:
            return int(float(v)) if not isinstance(v, bool) else int(v)
        except (TypeError, ValueError, OverflowError):
            return default

    def float(self, *keys, default=0.0):
        v = self.raw(*keys)
        try:
            f = default if v is None or v == "" else float(v)
        except (TypeError, ValueError):
            return default
        return f if math.isfinite(f) else default

    def duration(self, *keys, default=0.0):
        v = self.raw(*keys)
        if v is None or v == "":
            return default
        try:
            return parse_duration(v)
        except ConfigError:
            return default

    def list(self, *keys):
        """A list value, or a comma-separated string split into one."""
        v = self.raw(*keys)
        if v is None or v == "":
            return []
        if isinstance(v, (list, tuple)):
            return [str(x) for x in v]
        return [s.strip() for s in str(v).split(",") if s.strip()]
