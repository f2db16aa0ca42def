import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
