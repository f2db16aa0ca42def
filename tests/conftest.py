import compileall
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A component reading a metadata key its schema does not declare fails the test (in this process
# and in every gostg the tests start), so code and gostg/config/schema.py cannot drift apart.
os.environ["GOSTG_STRICT_SCHEMA"] = "1"
sys.path.insert(0, ROOT)


def pytest_sessionstart(session):
    """The suite starts bin/gostg hundreds of times; with PYTHONDONTWRITEBYTECODE set (as on
    CI machines) each start would compile gostg from source again (~0.25 s). Bytecode written
    once here is read by every one of them."""
    compileall.compile_dir(os.path.join(ROOT, "gostg"), quiet=1)


def pytest_collection_modifyitems(config, items):
    """In CI every peer is installed by .ci/run: a test skipped for a missing tool there would
    hide a "Must work" item, so it fails instead."""
    if not os.environ.get("CI"):
        return
    import pytest
    for item in items:
        for mark in item.iter_markers("skipif"):
            reason = mark.kwargs.get("reason", "")
            if "not installed" in reason and any(bool(c) for c in mark.args):
                raise pytest.UsageError(f"CI must install it (.ci/run): {reason}")
