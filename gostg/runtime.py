"""One running gostg: its config model, named objects and services."""
import os

from .config import load, model
from .config.build import bind_service, build_object, build_service
from .errors import ConfigError
from .observe.log import make_logger
from .registry import Registries

#: build order: what a later kind may refer to is built first
OBJECT_KINDS = ("authers", "admissions", "bypasses", "resolvers", "hosts", "hops", "chains")


def to_config(config):
    """Accept a dict, a path, a JSON/YAML string or a list of those (merged in order)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return config
    if isinstance(config, (list, tuple)):
        return load.merge(to_config(c) for c in config)
    if isinstance(config, (str, os.PathLike)):
        return load.load_source(str(config))
    raise TypeError(f"config must be a dict, a path or a list of them, not {type(config).__name__}")


class Gost:
    """Build and run a GOST config inside the current process.

    >>> g = Gost({"services": [{"name": "s", "addr": "127.0.0.1:1080", "handler": {"type": "socks5"}}]})
    >>> g.start()   # returns at once; services run in greenlets
    >>> g.stop()
    """

    def __init__(self, config=None, logger=None):
        self.config = to_config(config)
        model.check(self.config)
        log_cfg = self.config.get("log") or {}
        self.log = logger or make_logger(log_cfg.get("level", "info"), log_cfg.get("format", "json"),
                                         log_cfg.get("output", "stderr"))
        self.registries = Registries()
        self.services = {}
        self.started = False

    def _build_objects(self):
        for kind in OBJECT_KINDS:
            for i, o in enumerate(self.config.get(kind) or []):
                getattr(self.registries, kind).set(o["name"], build_object(kind, o, f"{kind}[{i}]", self.registries))

    def build(self):
        """Build every object and bind every service; on any error, close what was bound."""
        self._build_objects()
        built = {}
        for i, o in enumerate(self.config.get("services") or []):
            built[o["name"]] = (build_service(o, f"services[{i}]", self.registries, self.log), f"services[{i}]")
        bound = []
        try:
            for s, path in built.values():
                bind_service(s, path)
                bound.append(s)
        except BaseException:
            for s in bound:
                s.listener.close()
            raise
        built = {name: s for name, (s, _) in built.items()}
        for s in built.values():
            s.pre_up()
        self.services = built
        for name, s in built.items():
            self.registries.services.set(name, s)
        return self

    def start(self):
        if not self.services:
            self.build()
        for s in self.services.values():
            s.start()
        self.started = True
        return self

    def stop(self, timeout=None):
        for s in list(self.services.values()):
            s.stop(timeout)
        self.started = False

    def service(self, name):
        return self.services.get(name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


__all__ = ["Gost", "ConfigError", "to_config"]
