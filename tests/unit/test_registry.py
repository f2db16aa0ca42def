"""Registries never import implementations: gostg/builtins.py names them, and a type's module is
imported the first time a config uses it (GOST's register.go, made lazy)."""
import subprocess
import sys

CODE = """
import sys
from gostg import builtins
from gostg.core import registry
loaded = lambda: sorted(m for m in sys.modules if m.startswith(("gostg.handlers.", "gostg.listeners.",
                                                                 "gostg.connectors.", "gostg.dialers.")))
assert loaded() == [], loaded()
assert "socks5" in registry.handlers.names() and "http2" in registry.handlers.names()
assert loaded() == [], "names() must not import"
cls = registry.handlers.get("socks5")
assert cls.__module__ == "gostg.handlers.socks5", cls
assert "gostg.handlers.http2" not in sys.modules and "gostg.handlers.ss" not in sys.modules, loaded()
assert registry.handlers.get("nope") is None
print("OK")
"""


def test_types_load_on_first_use_only():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr


def test_registry_module_imports_no_implementation():
    import ast
    import os
    src = open(os.path.join(os.path.dirname(__file__), "..", "..", "gostg", "core", "registry.py")).read()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").split(".")[0] in ("handlers", "listeners", "connectors", "dialers")
            assert not any(a.name in ("handlers", "listeners", "connectors", "dialers") for a in node.names
                           if node.level >= 2), ast.dump(node)
