"""Config sources (-C): a file (format by extension), ``-`` for stdin, inline JSON, an http(s)
URL (config/remote.py: format by Content-Type, then extension); several are
merged in order: lists concatenate, singletons (tls, log, api, metrics, profiling) from the
later source win. With no source and no -L, GOST's default files are looked for."""
import json
import os
import sys

from ..errors import ConfigError
from . import remote
from .model import SINGLETONS

DEFAULT_PATHS = ("gost.yaml", "gost.yml", "gost.json", "/etc/gost/gost.yaml", "/etc/gost/gost.yml",
                 "/etc/gost/gost.json", "~/.gost/gost.yaml", "~/.gost/gost.yml", "~/.gost/gost.json")


def parse_text(text, fmt, origin):
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(origin, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    else:
        import yaml   # only a YAML source pays for it (-L/-F and inline JSON do not)

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise ConfigError(origin, f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(origin, f"config must be a mapping, not {type(data).__name__}")
    return data


def load_source(src, stdin=None):
    """→ config dict of one -C source."""
    s = src.strip()
    if s == "-":
        text = (stdin or sys.stdin).read()
        return parse_text(text, "json" if text.lstrip().startswith("{") else "yaml", "stdin")
    if s.startswith("{"):
        return parse_text(s, "json", "inline config")
    if remote.is_url(s):
        text, fmt = remote.fetch(s)
        return parse_text(text, fmt, remote.shown(s))
    path = os.path.expanduser(s)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(src, f"cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(src, f"cannot read config: not UTF-8 text (byte {exc.start})") from None
    fmt = "json" if path.endswith(".json") else "yaml"
    return parse_text(text, fmt, src)


def merge(configs):
    out = {}
    for c in configs:
        for k, v in c.items():
            if v is None and k in out:
                continue  # an empty key in a later source adds nothing
            if k in SINGLETONS or not isinstance(v, list):
                out[k] = v
            else:
                out[k] = list(out.get(k) or []) + v
    return out


def find_default():
    for p in DEFAULT_PATHS:
        p = os.path.expanduser(p)
        if os.path.isfile(p):
            return p
    return None
