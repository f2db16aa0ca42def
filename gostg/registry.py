"""Type registries (listener/handler/connector/dialer classes found by GOST's type names) and the
named-object registry (chains, hops, … looked up by name at use time: GOST's late binding)."""
import threading


class TypeRegistry:
    def __init__(self, kind):
        self.kind = kind
        self._types = {}

    def register(self, *names):
        def deco(cls):
            for n in names:
                self._types[n] = cls
            cls.type_names = names
            return cls
        return deco

    def get(self, name):
        _load_builtins()
        return self._types.get(name)

    def names(self):
        _load_builtins()
        return sorted(self._types)


listeners = TypeRegistry("listener")
handlers = TypeRegistry("handler")
connectors = TypeRegistry("connector")
dialers = TypeRegistry("dialer")

_loaded = False


def _load_builtins():
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import listeners as _l, handlers as _h, connectors as _c, dialers as _d  # noqa: F401


class Named:
    """Live objects of one kind by name. Lookups happen per connection, so a replaced
    chain/hop/bypass is seen by every running service on its next connection."""

    def __init__(self):
        self._objs = {}
        self._lock = threading.Lock()

    def get(self, name):
        return self._objs.get(name) if name else None

    def set(self, name, obj):
        with self._lock:
            self._objs = {**self._objs, name: obj}

    def delete(self, name):
        with self._lock:
            objs = dict(self._objs)
            obj = objs.pop(name, None)
            self._objs = objs
            return obj

    def names(self):
        return list(self._objs)

    def items(self):
        return list(self._objs.items())


class Registries:
    """All named objects of one running gostg instance."""

    KINDS = ("services", "chains", "hops", "authers", "admissions", "bypasses", "resolvers",
             "hosts", "limiters", "climiters", "rlimiters")
    #: the owning runtime and its logger (set by Gost; None when built standalone)
    runtime = None
    log = None

    def __init__(self):
        for k in self.KINDS:
            setattr(self, k, Named())
