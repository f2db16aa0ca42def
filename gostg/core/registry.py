"""Type registries (listener/handler/connector/dialer classes found by GOST's type names) and the
named-object registry (chains, hops, … looked up by name at use time: GOST's late binding)."""
import importlib
import threading


class TypeRegistry:
    """Classes of one kind (listener, handler, connector, dialer) by GOST type name. A name can be
    registered lazily (``add_lazy``): its module is imported on first ``get``."""

    def __init__(self, kind):
        self.kind = kind
        self._types = {}
        self._lazy = {}

    def add_lazy(self, name, module):
        self._lazy[name] = module

    def register(self, *names):
        def deco(cls):
            for n in names:
                self._types[n] = cls
            cls.type_names = names
            return cls
        return deco

    def get(self, name):
        cls = self._types.get(name)
        if cls is None and name in self._lazy:
            importlib.import_module(self._lazy[name])
            cls = self._types.get(name)
        return cls

    def names(self):
        return sorted(set(self._types) | set(self._lazy))


listeners = TypeRegistry("listener")
handlers = TypeRegistry("handler")
connectors = TypeRegistry("connector")
dialers = TypeRegistry("dialer")


def by_kind(kind):
    return {"listener": listeners, "handler": handlers, "connector": connectors, "dialer": dialers}[kind]


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
             "hosts", "limiters", "climiters", "rlimiters", "recorders", "observers", "ingresses", "routers")
    #: the owning runtime and its logger (set by Gost; None when built standalone)
    runtime = None
    log = None

    def __init__(self):
        for k in self.KINDS:
            setattr(self, k, Named())
