"""gostg: GOST v3 (GO Simple Tunnel) rebuilt in Python on gevent.

Embedding in a gevent (monkey-patched) host application::

    from gevent import monkey; monkey.patch_all()
    import gostg
    g = gostg.Gost("gost.yaml")   # or a dict with GOST's keys
    g.start()
    ...
    g.stop()

Routing the application's own connections through a chain of that Gost (gostg.embed)::

    sock = g.dial(("example.com", 443), chain="egress")      # one connection, a real socket
    gostg.patch_socket(g, chain="egress", bypass="internal")  # every TCP connect of the process
    gostg.restore_socket()
    with gostg.routed(g, chain="egress"):                      # for a block
        ...

In a plain threaded application (never patched), gostg runs its own gevent hub in a background
thread: ``gostg.Gost("gost.yaml", thread=True).start()``; ``start()`` without it raises
:class:`NotPatchedError` there, naming both choices.

The names below load on first use (PEP 562), as h11's do: ``import gostg.protocols.socks5``
loads the codec and ``gostg.errors`` only, no gevent and no structlog, so the wire formats can
be reused and fuzzed on their own.
"""
__version__ = "0.1.0"

#: public name → module that defines it
_EXPORTS = {
    "Gost": "gostg.runtime",
    "ConfigError": "gostg.errors",
    "GostgError": "gostg.errors",
    "patch_socket": "gostg.embed.patch",
    "restore_socket": "gostg.embed.patch",
    "routed": "gostg.embed.patch",
    "RouteError": "gostg.embed.dial",
    "NotPatchedError": "gostg.errors",
    "HubStopped": "gostg.errors",
}

__all__ = ["Gost", "ConfigError", "GostgError", "RouteError", "patch_socket", "restore_socket", "routed",
           "NotPatchedError", "HubStopped", "__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gostg' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value     # once: later lookups do not come here
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
