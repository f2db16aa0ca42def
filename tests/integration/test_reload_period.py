"""``-R`` periodic reload (issue 11 must 1: reload validates with the same code as startup).

``bin/gostg -C file -R 0.5s``: a service added to the file starts listening within a bounded
time; a file with a schema error is refused with the error's path and did-you-mean while the
running services keep serving; a warning-only change applies and its warning is logged once,
not once per period."""
import os
import re
import time

import pytest
import yaml

from .helpers import Gost, Origin, free_port, port_closed
from .peers import served, via_http, via_socks5, wait_log

PERIOD = 0.5   # short: the test waits three periods twice


def write(path, cfg):
    """Replace the file atomically: a periodic reload never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.replace(tmp, path)


def svc(name, port, handler="http", **extra):
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": handler}, **extra}


def wait_listening(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_closed(port):
            return True
        time.sleep(0.1)
    return False





@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


def test_periodic_reload_adds_refuses_and_warns_once(tmp_path, origin):
    p1, p2 = free_port(), free_port()
    f = tmp_path / "gost.yaml"
    first = svc("first", p1)
    write(f, {"services": [first]})
    with Gost("-C", f, "-R", f"{PERIOD:g}s", ports=[p1]) as g:
        assert served(via_http(p1, origin.url + "/one"), "/one")
        assert port_closed(p2)

        # 1. a second service in the file listens within a bounded time, with no signal
        second = svc("second", p2, handler="socks5")
        write(f, {"services": [first, second]})
        assert wait_listening(p2), f"-R {PERIOD:g}s: the added service never listened:\n{g.log_text()[-3000:]}"
        assert served(via_socks5(p2, origin.url + "/two"), "/two")

        # 2. a schema error: refused with path and did-you-mean; what runs keeps serving
        bad = {**second, "handler": {"type": "sock5"}}
        write(f, {"services": [first, bad]})
        want = "services[1].handler.type: unknown handler 'sock5' (did you mean 'socks5'?)"
        lines = wait_log(g, r'"msg": "[^"]*reload failed[^"]*' + re.escape(want), timeout=10)
        assert lines, f"no reload-failed line naming {want!r}:\n{g.log_text()[-3000:]}"
        assert served(via_http(p1, origin.url + "/still-one"), "/still-one")
        assert served(via_socks5(p2, origin.url + "/still-two"), "/still-two"), "a refused reload changed service 2"
        assert g.proc.poll() is None
        assert "Traceback" not in g.log_text()
        time.sleep(3 * PERIOD + 0.5)   # the same broken file for three more periods: said once
        log = g.log_text()
        assert log.count("reload failed") == 1, f"reload failure logged {log.count('reload failed')} times"
        assert '"msg": "-R: reload failed' in log, "the failure names -R, not SIGHUP"

        # 3. a warning-only change (a typo'd, non-decisive key) applies and warns once
        warned = {**second, "metdata": {"x": 1}}
        write(f, {"services": [first, warned]})
        warning = "services[1].metdata: unknown key (did you mean 'metadata'?)"
        assert wait_log(g, re.escape(warning), timeout=10), f"no warning {warning!r}:\n{g.log_text()[-3000:]}"
        time.sleep(3 * PERIOD + 0.5)   # three more periods with the same file
        log = g.log_text()
        assert log.count(warning) == 1, f"warning logged {log.count(warning)} times over 3 periods:\n{log[-3000:]}"
        assert served(via_http(p1, origin.url + "/after-one"), "/after-one")
        assert served(via_socks5(p2, origin.url + "/after-two"), "/after-two")
        # the warning-only reload was not an error, and did not keep failing
        after = log.split(warning, 1)[1]
        assert "reload failed" not in after, after[-2000:]
        assert g.proc.poll() is None
