"""The command line freezes start-up's heap (runtime.freeze_start_up); the first change thaws
it, so a replaced service's garbage can be collected; a host application's own frozen heap is
never touched. Run in a subprocess: freezing the test runner's heap would outlive the test."""
import json
import subprocess
import sys

SCRIPT = r"""
import gc, json, sys
from gevent import monkey; monkey.patch_all()
from gostg import runtime
host_froze = sys.argv[1] == "host"
out = {}
if host_froze:
    gc.freeze()          # the host application's own choice
g = runtime.Gost({"services": [{"name": "s", "addr": "127.0.0.1:0", "handler": {"type": "socks5"}}]})
g.start()
if not host_froze:
    runtime.freeze_start_up()
out["frozen_after_start"] = gc.get_freeze_count() > 0
g.update("services", "s", {"name": "s", "addr": "127.0.0.1:0", "handler": {"type": "http"}})
out["frozen_after_change"] = gc.get_freeze_count() > 0
g.stop(0)
print(json.dumps(out))
"""


def _run(mode):
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_first_change_thaws_what_start_up_froze():
    assert _run("gostg") == {"frozen_after_start": True, "frozen_after_change": False}


def test_a_host_applications_frozen_heap_is_left_alone():
    assert _run("host") == {"frozen_after_start": True, "frozen_after_change": True}
