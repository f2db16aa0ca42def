"""GOST's named ``loggers:`` and a service's ``logger:`` / ``loggers:`` (a logger group: every
event goes to each logger of the group, each with its own level, format and output — a file and
stderr at once).

A service names its loggers; a name no logger has is a config error at the service's path with
a did-you-mean (GOST skips it silently, and the service would then log nowhere the operator
looks). A service naming none logs on the global ``log``.
"""
from ..config.validate import _dym, suggest
from ..errors import ConfigError
from .log import from_config


class GroupLogger:
    """Several bound loggers as one: ``bind`` binds each, each level method calls each."""

    __slots__ = ("loggers",)

    def __init__(self, loggers):
        self.loggers = tuple(loggers)

    def bind(self, **kw):
        return GroupLogger([lg.bind(**kw) for lg in self.loggers]) if kw else self

    def new(self, **kw):
        return GroupLogger([lg.new(**kw) for lg in self.loggers])


def _fan_out(name):
    def meth(self, event, *args, **kw):
        for lg in self.loggers:
            getattr(lg, name)(event, *args, **kw)
    meth.__name__ = name
    return meth


for _name in ("debug", "info", "warning", "error", "critical", "exception"):
    setattr(GroupLogger, _name, _fan_out(_name))
GroupLogger.warn, GroupLogger.fatal, GroupLogger.msg = GroupLogger.warning, GroupLogger.critical, GroupLogger.info


def build(cfg):
    """``loggers:`` of a config → {name: logger} (files opened, so errors are config errors)."""
    out = {}
    for i, o in enumerate(cfg.get("loggers") or []):
        if not isinstance(o, dict) or not o.get("name"):
            continue
        try:
            out[o["name"]] = from_config(o.get("log"), o["name"])
        except ConfigError as exc:
            raise ConfigError(f"loggers[{i}].{exc.path}", exc.msg) from None
    return out


def names_of(o):
    """The logger names a service refers to, in order: ``logger`` then ``loggers`` (as GOST)."""
    names = [o["logger"]] if isinstance(o.get("logger"), str) and o["logger"] else []
    more = o.get("loggers")
    if isinstance(more, list):
        names += [n for n in more if isinstance(n, str) and n]
    return names


def for_service(o, path, loggers, default):
    """The logger of service ``o``: its named loggers (one, or a group), else ``default``."""
    names = names_of(o)
    if not names:
        return default
    found = []
    for n in names:
        lg = loggers.get(n)
        if lg is None:
            where = f"{path}.logger" if n == o.get("logger") else f"{path}.loggers[{o['loggers'].index(n)}]"
            s = suggest(n, list(loggers))
            known = f" (loggers: {', '.join(loggers)})" if loggers else " (no loggers are defined)"
            raise ConfigError(where, f"unknown logger {n!r}{_dym(s)}{known}", s)
        if lg not in found:
            found.append(lg)
    return found[0] if len(found) == 1 else GroupLogger(found)


def changed(old_cfg, new_cfg):
    """Names of the loggers whose definition differs between two configs (added or removed too)."""
    old = {o.get("name"): o for o in old_cfg.get("loggers") or [] if isinstance(o, dict)}
    new = {o.get("name"): o for o in new_cfg.get("loggers") or [] if isinstance(o, dict)}
    return {n for n in set(old) | set(new) if old.get(n) != new.get(n)}
