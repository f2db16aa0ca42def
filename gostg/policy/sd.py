"""Service discovery (the config object ``sds``; GOST core/sd, concepts/sd): where the other
server nodes of a reverse-proxy tunnel hold a tunnel's connections.

GOST builds an sd from a ``plugin`` only, and so does gostg
(:class:`gostg.plugin.routing.PluginSD`). Its interface, which the tunnel handler calls:

- ``register(svc)``, ``deregister(svc)``, ``renew(svc)`` → True when the plugin took it,
  False when it failed (logged once per change of cause);
- ``get(name)`` → [Service]: the instances of tunnel ``name``. Fail closed: a plugin that does
  not answer yields no service (so nothing is dialled through another node), never a guess.
"""

__all__ = ["Service"]


class Service:
    """One registered tunnel connection: ``id`` (the connection), ``name`` (the tunnel ID),
    ``node`` (the server node's ID), ``network`` (tcp/udp), ``address`` (that node's address)."""

    __slots__ = ("id", "name", "node", "network", "address")

    def __init__(self, id="", name="", node="", network="", address=""):
        self.id, self.name, self.node, self.network, self.address = id, name, node, network, address

    @classmethod
    def of(cls, d):
        return cls(*(str(d.get(k) or "") for k in cls.__slots__))

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __eq__(self, other):
        return isinstance(other, Service) and self.as_dict() == other.as_dict()

    def __hash__(self):
        return hash(tuple(self.as_dict().values()))

    def __repr__(self):
        return f"Service({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items() if v)})"
