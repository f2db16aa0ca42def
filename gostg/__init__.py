"""gostg: GOST v3 (GO Simple Tunnel) rebuilt in Python on gevent.

Embedding in a (monkey-patched) host application::

    from gevent import monkey; monkey.patch_all()
    import gostg
    g = gostg.Gost("gost.yaml")   # or a dict with GOST's keys
    g.start()
    ...
    g.stop()
"""
__version__ = "0.1.0"

from .errors import ConfigError, GostgError  # noqa: E402
from .runtime import Gost  # noqa: E402

__all__ = ["Gost", "ConfigError", "GostgError", "__version__"]
