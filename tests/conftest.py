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


#: The longest modules (most of a minute down to ~15 s on a quiet 2-core box), run first so that
#: under ``-n N`` (pytest.ini: ``--dist loadfile``, no reordering) no worker is left running one
#: of them alone at the end. A stale entry costs only balance, never a test.
SLOW_FIRST = ("test_api_schema.py", "test_observer.py", "test_transport_matrix.py", "test_mux.py",
              "test_mtcp.py", "test_mux_leaks.py", "test_limiter.py", "test_udp.py", "test_http2.py",
              "test_config_url.py", "test_rtcp.py", "test_ss.py")


def _slow_first(items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FIRST)) if
               item.path.parent.name == "integration" else len(SLOW_FIRST))   # stable: same order otherwise


def pytest_collection_modifyitems(config, items):
    """Slow modules first (see SLOW_FIRST). In CI every peer is installed by .ci/run: a test
    skipped for a missing tool there would hide a "Must work" item, so it fails instead."""
    _slow_first(items)
    if not os.environ.get("CI"):
        return
    import pytest
    for item in items:
        for mark in item.iter_markers("skipif"):
            reason = mark.kwargs.get("reason", "")
            if "not installed" in reason and any(bool(c) for c in mark.args):
                raise pytest.UsageError(f"CI must install it (.ci/run): {reason}")
