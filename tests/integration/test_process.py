"""``--`` process groups: each group is a child gostg with its own chain; the parent forwards
signals, and the first child to exit takes the others down."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from .helpers import Gost, Origin, free_port, port_closed, wait_port


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", "-m", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 5)


def children(pid):
    """PIDs whose parent is ``pid`` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return sorted(out)


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    """A process that exists and is not a zombie (a zombie has finished; only its parent's
    bookkeeping is left, and init reaps it once the parent is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def kill_ours(pid):
    """SIGKILL ``pid`` only if it is still a live gostg (a PID may be reused once it is gone)."""
    if alive(pid) and "gostg" in cmdline(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def wait_children(pid, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(pid)
        if len(kids) >= n:
            return kids
        time.sleep(0.05)
    raise TimeoutError(f"{pid} has {children(pid)} children, wanted {n}")


def wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def wait_exit(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.fixture
def reaper():
    """Remember every PID a test sees and make sure all of them are gone afterwards."""
    pids = []
    yield pids
    for p in pids:
        kill_ours(p)


def _start_groups(*args, ports, reaper):
    g = Gost(*args, ports=())
    g.start()
    reaper.append(g.proc.pid)
    try:
        kids = wait_children(g.proc.pid, 2)
        reaper.extend(kids)
        for p in ports:
            wait_port(p, proc=g.proc)
    except Exception:
        reaper.extend(children(g.proc.pid))
        _stop_quietly(g, children(g.proc.pid), grace=0)
        raise
    return g, kids


def _stop_quietly(g, kids, grace=1.5):
    """Teardown that does not depend on the supervisor behaving."""
    if g.proc.poll() is None and grace:
        g.proc.send_signal(signal.SIGTERM)
        wait_exit(g.proc, grace)
    for p in kids:
        kill_ours(p)
    if g.proc.poll() is None:
        g.proc.kill()
        g.proc.wait(timeout=5)
    _drop_log(g)


def _drop_log(g):
    try:
        os.unlink(g.logf.name)
    except OSError:
        pass


def test_two_groups_two_children(reaper):
    p1, p2 = free_port(), free_port()
    with Origin() as origin:
        g, kids = _start_groups("-L", f"http://127.0.0.1:{p1}", "--", "-L", f"socks5://127.0.0.1:{p2}",
                                ports=[p1, p2], reaper=reaper)
        try:
            assert len(kids) == 2, [cmdline(k) for k in kids]
            cmds = [cmdline(k) for k in kids]
            assert any(f"http://127.0.0.1:{p1}" in c and f":{p2}" not in c for c in cmds), cmds
            assert any(f"socks5://127.0.0.1:{p2}" in c and f":{p1}" not in c for c in cmds), cmds
            r = curl("-x", f"http://127.0.0.1:{p1}", origin.url + "/one")
            assert r.returncode == 0 and "hello from origin /one" in r.stdout, r
            r = curl("-x", f"socks5h://127.0.0.1:{p2}", origin.url + "/two")
            assert r.returncode == 0 and "hello from origin /two" in r.stdout, r
        finally:
            _stop_quietly(g, kids)


def test_groups_have_independent_chains(reaper):
    p1, p2 = free_port(), free_port()
    with Origin() as origin:
        g, kids = _start_groups("-L", f"http://127.0.0.1:{p1}", "--",
                                "-L", f"socks5://127.0.0.1:{p2}", "-F", f"http://127.0.0.1:{p1}",
                                ports=[p1, p2], reaper=reaper)
        try:
            # group 0 has no chain: it reaches the origin itself (it would loop if it used P1)
            r = curl("-x", f"http://127.0.0.1:{p1}", origin.url + "/direct")
            assert r.returncode == 0 and "hello from origin /direct" in r.stdout, r
            # group 1 goes through group 0's http proxy
            r = curl("-x", f"socks5h://127.0.0.1:{p2}", origin.url + "/chained")
            assert r.returncode == 0 and "hello from origin /chained" in r.stdout, r

            dst = f"127.0.0.1:{origin.port}"
            deadline = time.monotonic() + 5
            http_relays = socks_relays = 0
            while time.monotonic() < deadline:
                evs = []
                for line in g.log_text().splitlines():
                    try:
                        evs.append(json.loads(line))
                    except ValueError:
                        pass
                http_relays = len({e.get("sid") for e in evs if e.get("handler") == "http" and e.get("dst") == dst})
                socks_relays = len({e.get("sid") for e in evs if e.get("handler") == "socks5" and e.get("dst") == dst})
                if http_relays >= 2 and socks_relays >= 1:
                    break
                time.sleep(0.05)
            # the http service relayed twice: once for curl, once for the socks5 group's chain
            assert http_relays >= 2 and socks_relays >= 1, g.log_text()
        finally:
            _stop_quietly(g, kids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_all_children(sig, reaper):
    p1, p2 = free_port(), free_port()
    g, kids = _start_groups("-L", f"http://127.0.0.1:{p1}", "--", "-L", f"socks5://127.0.0.1:{p2}",
                            ports=[p1, p2], reaper=reaper)
    try:
        t0 = time.monotonic()
        g.proc.send_signal(sig)
        rc = wait_exit(g.proc, 5)
        assert wait_gone(kids, 6), [cmdline(k) for k in kids if alive(k)]
        assert rc is not None, "the supervisor did not exit within 5s of the signal"
        assert rc == 0, g.log_text()[-2000:]
        assert time.monotonic() - t0 < 6
        assert "Traceback" not in g.log_text(), g.log_text()[-2000:]
        assert port_closed(p1) and port_closed(p2)
    finally:
        _stop_quietly(g, kids, grace=0)


def test_killed_child_stops_the_rest(reaper):
    p1, p2 = free_port(), free_port()
    g, kids = _start_groups("-L", f"http://127.0.0.1:{p1}", "--", "-L", f"socks5://127.0.0.1:{p2}",
                            ports=[p1, p2], reaper=reaper)
    try:
        victim = next(k for k in kids if f":{p1}" in cmdline(k))
        other = [k for k in kids if k != victim]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        assert wait_gone(other, 6), "the other child kept running"
        rc = wait_exit(g.proc, 5)
        assert rc is not None, "the supervisor did not exit within 5s of a child's death"
        assert rc != 0
        assert time.monotonic() - t0 < 6
        assert "Traceback" not in g.log_text(), g.log_text()[-2000:]
        assert port_closed(p2)
    finally:
        _stop_quietly(g, kids, grace=0)


def test_child_config_failure_fails_fast(reaper):
    p1 = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p_busy = busy.getsockname()[1]
    g = Gost("-L", f"http://127.0.0.1:{p1}", "--", "-L", f"socks5://127.0.0.1:{p_busy}")
    try:
        t0 = time.monotonic()
        g.start()
        reaper.append(g.proc.pid)
        seen = set()
        deadline = t0 + 6
        while g.proc.poll() is None and time.monotonic() < deadline:
            seen.update(children(g.proc.pid))
            time.sleep(0.02)
        reaper.extend(seen)
        rc = g.proc.poll()
        assert rc is not None, "the supervisor kept running after a child failed on its config"
        assert rc == 1
        assert time.monotonic() - t0 < 6
        assert wait_gone(seen, 3)
        assert port_closed(p1)
        log = g.log_text()
        assert "services[0].addr" in log, log
        assert "Traceback" not in log, log[-2000:]
        errors = [ln for ln in log.splitlines() if ln.startswith("gostg: config error: ")]
        assert errors == [f"gostg: config error: services[0].addr: cannot listen on 127.0.0.1:{p_busy}: "
                          "Address already in use"], log
    finally:
        busy.close()
        if g.proc is not None and g.proc.poll() is None:
            g.proc.kill()
            g.proc.wait(timeout=5)
        _drop_log(g)


def test_run_to_completion_modes_with_groups():
    """-V and -h answer at once (no child); -O in every group prints each group's config in
    turn; --check in any group checks every group."""
    from .helpers import run_gostg

    r = run_gostg("-L", "socks5://127.0.0.1:1", "--", "-V")
    assert r.returncode == 0 and r.stdout.startswith("gostg ") and r.stdout.count("\n") == 1
    r = run_gostg("-L", "socks5://127.0.0.1:1", "--", "-h")
    assert r.returncode == 0 and "Usage:" in r.stdout
    r = run_gostg("-L", "socks5://127.0.0.1:1", "-O", "json", "--", "-L", "http://127.0.0.1:2", "-O", "json")
    assert r.returncode == 0, r.stderr
    outs = [json.loads("{" + part) if not part.startswith("{") else json.loads(part)
            for part in r.stdout.replace("}\n{", "}\n\0{").split("\0")]
    assert [o["services"][0]["handler"]["type"] for o in outs] == ["socks5", "http"]
    r = run_gostg("--check", "-L", "socks5://127.0.0.1:1", "--", "-L", "sock5://127.0.0.1:2")
    assert r.returncode == 1 and "unknown scheme 'sock5'" in r.stderr
