"""``import gostg`` and the sans-IO codecs load no gevent and no structlog (DESIGN.md: the
public API is exported lazily, so codecs can be reused and fuzzed on their own)."""
import os
import pkgutil
import subprocess
import sys

import gostg
import gostg.protocols

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("gevent", "structlog")


def _loads(code):
    """Run ``code`` in a fresh interpreter; → the heavy modules it left in sys.modules."""
    out = subprocess.run([sys.executable, "-c", code + f"\nimport sys; print(*[m for m in {HEAVY!r} if m in sys.modules])"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_the_codecs_load_no_gevent_and_no_structlog():
    assert _loads("import gostg.protocols.socks5, gostg.protocols.http, gostg.protocols.relay") == []


def test_every_protocols_module_loads_no_gevent_and_no_structlog():
    names = [f"gostg.protocols.{m.name}" for m in pkgutil.iter_modules(gostg.protocols.__path__)]
    assert "gostg.protocols.smux" in names and "gostg.protocols.tls_hello" in names
    assert _loads("import " + ", ".join(names)) == []


def test_import_gostg_alone_is_light_and_the_names_load_on_use():
    assert _loads("import gostg; gostg.ConfigError; gostg.__version__") == []
    assert "gevent" in _loads("import gostg; gostg.Gost")
    assert "gevent" in _loads("import gostg; gostg.patch_socket")


def test_public_names():
    assert set(gostg.__all__) == {"Gost", "ConfigError", "GostgError", "RouteError", "patch_socket",
                                  "restore_socket", "routed", "NotPatchedError", "HubStopped", "__version__"}
    from gostg.errors import ConfigError, GostgError, HubStopped, NotPatchedError
    from gostg.runtime import Gost
    assert (gostg.Gost, gostg.ConfigError, gostg.GostgError) == (Gost, ConfigError, GostgError)
    assert (gostg.NotPatchedError, gostg.HubStopped) == (NotPatchedError, HubStopped)
    assert set(gostg.__all__) <= set(dir(gostg))
    try:
        gostg.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("gostg.NoSuchThing did not raise AttributeError")
