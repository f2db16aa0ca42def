"""``-workers N``: N worker processes share each port (SO_REUSEPORT) under one supervisor that
runs the Web API, reloads and hooks once for the group. Started as a user would (bin/gostg);
every process is checked and stopped by PID."""
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.request

import pytest

from .helpers import Echo, Gost, free_port, run_gostg, wait_for, wait_port
from .peers import log_records
from .test_process import alive, children, reaper, wait_children, wait_gone  # noqa: F401 (reaper: a fixture)


def socks5_echo(port, dst_port, payload=b"ping", timeout=5.0):
    """One SOCKS5 CONNECT through 127.0.0.1:port to the echo server → what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"\x05\x01\x00")
        assert s.recv(2) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", dst_port))
        rep = b""
        while len(rep) < 10:
            chunk = s.recv(10 - len(rep))
            assert chunk, "proxy closed during the reply"
            rep += chunk
        assert rep[1] == 0, f"SOCKS5 reply {rep[1]}"
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got
            got += chunk


def api(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def workers_serving(g, service, since=0):
    """{worker id} whose connection lines (``<->``) name ``service``, from log line ``since``."""
    return {e.get("worker") for e in log_records(g)[since:]
            if e.get("service") == service and "<->" in str(e.get("msg"))}


def served_by_both(g, port, service, echo_port, n=40):
    """``n`` SOCKS5 round trips through ``port``, every one answered; both workers served some."""
    mark = len(log_records(g))
    for _ in range(n):
        assert socks5_echo(port, echo_port) == b"ping"
    assert wait_for(lambda: workers_serving(g, service, mark) == {0, 1}), workers_serving(g, service, mark)


def wait_listening(g, service):
    """Until both workers log that they listen for ``service`` (a reload reaches them in
    parallel: the port opens with the first)."""
    assert wait_for(lambda: {e.get("worker") for e in log_records(g, service=service, msg="listening on")} == {0, 1},
                    timeout=10), g.log_text()[-2000:]


def listening_sockets(port):
    """How many TCP sockets listen on ``port`` (the kernel's /proc/net/tcp, tcp6): one per
    worker of a shared service."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n


def listen_lines(g, service, worker):
    """How many times worker ``worker`` (an index: a restarted worker keeps it) logged that it
    listens for ``service``."""
    return sum(1 for e in log_records(g, service=service, msg="listening on") if e.get("worker") == worker)


def stop_all(g):
    """SIGTERM to the supervisor: exit 0 and every process of the group gone (by PID)."""
    pids = [g.proc.pid] + children(g.proc.pid)
    assert g.stop() == 0
    assert wait_gone(pids, 5), [p for p in pids if alive(p)]


def _start(cfg_path, tmp_path, reaper, *extra, ports=()):
    g = Gost("-C", cfg_path, *extra, ports=())
    g.start()
    reaper.append(g.proc.pid)
    kids = wait_children(g.proc.pid, 2, timeout=20)
    reaper.extend(kids)
    for p in ports:
        wait_port(p, proc=g.proc, timeout=20)
    # the supervisor says so once every worker listens
    assert wait_for(lambda: "workers running" in g.log_text(), timeout=20), g.log_text()
    return g, kids


def _config(tmp_path, s5, http_port, api_port, hooks):
    cfg = {
        "workers": 2,
        "services": [
            {"name": "s5", "addr": f"127.0.0.1:{s5}", "handler": {"type": "socks5"}, "listener": {"type": "tcp"},
             "metadata": {"preUp": [f"sh -c 'echo up >> {hooks}'"],
                          "postDown": [f"sh -c 'echo down >> {hooks}'"]}},
            {"name": "web", "addr": f"127.0.0.1:{http_port}", "handler": {"type": "http"},
             "listener": {"type": "tcp"}},
        ],
        "api": {"addr": f"127.0.0.1:{api_port}"},
    }
    path = tmp_path / "gost.json"
    path.write_text(json.dumps(cfg))
    return path, cfg


def test_workers_share_ports_restart_and_stop(tmp_path, reaper):
    """Connections land on both workers; GET /config sums their stats; a killed worker is
    restarted and logged while traffic goes on; preUp/postDown run once; SIGTERM leaves no
    process behind."""
    s5, web, api_port = free_port(), free_port(), free_port()
    hooks = tmp_path / "hooks.txt"
    path, _ = _config(tmp_path, s5, web, api_port, hooks)
    with Echo() as echo:
        g, kids = _start(path, tmp_path, reaper, ports=(s5, web, api_port))
        n = 40
        for i in range(n):
            assert socks5_echo(s5, echo.port, b"x%d" % i) == b"x%d" % i
        assert wait_for(lambda: workers_serving(g, "s5") == {0, 1}), workers_serving(g, "s5")
        # the http service too, through curl, as a user would
        for _ in range(16):
            r = subprocess.run(["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-x",
                                f"http://127.0.0.1:{web}", f"http://127.0.0.1:{api_port}/config"],
                               capture_output=True, text=True, timeout=10)
            assert r.stdout == "200", r.stderr
        assert wait_for(lambda: workers_serving(g, "web") == {0, 1}), workers_serving(g, "web")

        def total():
            st = api(api_port, "GET", "/config")["services"][0]["status"]["stats"]
            return st["totalConns"] if st["currentConns"] == 0 else None
        assert wait_for(lambda: total() == n + 1), total()   # + the start-up's port check
        assert hooks.read_text().split() == ["up"]   # once for the group, not per worker

        # kill -9 one worker: logged, restarted (new pid), traffic goes on meanwhile
        victim = kids[0]
        os.kill(victim, signal.SIGKILL)
        # connections queued on its socket as it died are reset, as with any killed server
        # (net.ipv4.tcp_migrate_req=0): wait until the kernel has dropped its listening socket
        assert wait_gone([victim], 5)
        assert wait_for(lambda: listening_sockets(s5) == 1, timeout=5), listening_sockets(s5)
        # from then on no connection is reset, while the restarted worker comes up and after:
        # it binds each listener once (a restart never closes a socket the kernel queued on)
        for i in range(22):
            assert socks5_echo(s5, echo.port) == b"ping"
        assert wait_for(lambda: "worker restarted" in g.log_text(), timeout=15), g.log_text()[-3000:]
        assert wait_for(lambda: listening_sockets(s5) == 2, timeout=5), listening_sockets(s5)
        exited = [e for e in log_records(g) if str(e.get("msg", "")).startswith("worker exited")]
        assert exited and exited[0]["pid"] == victim and exited[0]["code"] == -9, exited
        # the restarted worker listened once on each port: twice in all for that worker index
        assert listen_lines(g, "s5", exited[0]["worker"]) == 2, g.log_text()[-3000:]
        now = wait_for(lambda: [k for k in children(g.proc.pid) if k not in kids])
        assert len(now) == 1 and len(children(g.proc.pid)) == 2, (kids, children(g.proc.pid))
        reaper.extend(now)
        # the status page: the workers' sums, and the supervisor's word about the dead one
        page = api(api_port, "GET", "/api/status")
        assert any(str(e.get("msg", "")).startswith("worker exited") for e in page["errors"]), page["errors"]
        assert sorted(page["workers"]) == sorted(children(g.proc.pid))
        # the killed worker's connections stay counted (its last report): the totals never go back
        assert next(x for x in page["services"] if x["name"] == "s5")["stats"]["totalConns"] >= n + 1 + 22
        assert api(api_port, "GET", "/config")["services"][0]["status"]["stats"]["totalConns"] >= n + 1 + 22
        served_by_both(g, s5, "s5", echo.port)
        stop_all(g)
        assert hooks.read_text().split() == ["up", "down"]


def test_workers_api_change_and_sighup_reach_every_worker(tmp_path, reaper):
    """A service POSTed to the Web API and one added to the file then SIGHUP are served by
    both workers; a change the supervisor refuses reaches none."""
    s5, web, api_port, added, reloaded = (free_port() for _ in range(5))
    path, cfg = _config(tmp_path, s5, web, api_port, tmp_path / "hooks.txt")
    with Echo() as echo:
        g, _ = _start(path, tmp_path, reaper, ports=(s5, api_port))
        r = api(api_port, "POST", "/config/services", {"name": "added", "addr": f"127.0.0.1:{added}",
                                                      "handler": {"type": "socks5"}})
        assert r.get("msg") == "OK", r
        # every connection succeeds: both workers listen when the API answers
        served_by_both(g, added, "added", echo.port)

        # a port taken by another program: refused by the supervisor, as a single gostg would
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            req = {"name": "clash", "addr": f"127.0.0.1:{taken.getsockname()[1]}", "handler": {"type": "socks5"}}
            with pytest.raises(urllib.error.HTTPError) as err:
                api(api_port, "POST", "/config/services", req)
            assert "cannot listen" in err.value.read().decode()

        cfg["services"].append({"name": "reloaded", "addr": f"127.0.0.1:{reloaded}", "handler": {"type": "socks5"}})
        path.write_text(json.dumps(cfg))
        g.signal(signal.SIGHUP)
        wait_listening(g, "reloaded")
        served_by_both(g, reloaded, "reloaded", echo.port)
        names = [s["name"] for s in api(api_port, "GET", "/config")["services"]]
        assert names == ["s5", "web", "reloaded"], names   # the file's content; the API's POST is gone

        # a change made while a worker is down (or starting again) reaches it all the same
        late = free_port()
        kid = children(g.proc.pid)[0]
        os.kill(kid, signal.SIGKILL)
        r = api(api_port, "POST", "/config/services", {"name": "late", "addr": f"127.0.0.1:{late}",
                                                      "handler": {"type": "socks5"}})
        assert r.get("msg") == "OK", r
        assert wait_for(lambda: "worker restarted" in g.log_text(), timeout=15)
        reaper.extend(children(g.proc.pid))
        served_by_both(g, late, "late", echo.port)
        # the change reached the restarting worker as its init config or as one push after
        # it: either way its unchanged services were bound once, not rebuilt by the push
        recs = log_records(g)
        died = next(i for i, e in enumerate(recs) if str(e.get("msg", "")).startswith("worker exited"))
        index = recs[died]["worker"]
        assert listen_lines(g, "s5", index) == 2 and listen_lines(g, "late", index) == 1, g.log_text()[-3000:]
        reloads = [e for e in recs[died:] if e.get("msg") == "config reloaded" and e.get("worker") == index]
        assert all(e["changed"] == ["late"] for e in reloads), reloads
        stop_all(g)


def test_workers_die_with_the_supervisor(tmp_path, reaper):
    """kill -9 of the supervisor: no worker outlives it (PR_SET_PDEATHSIG)."""
    port = free_port()
    g = Gost("-L", f"socks5://127.0.0.1:{port}", "-workers", "2", ports=(port,))
    g.start()
    reaper.append(g.proc.pid)
    kids = wait_children(g.proc.pid, 2, timeout=20)
    reaper.extend(kids)
    os.kill(g.proc.pid, signal.SIGKILL)
    g.proc.wait(timeout=5)
    assert wait_gone(kids, 10), [k for k in kids if alive(k)]


def test_workers_refused_values_and_a_taken_port(tmp_path):
    """-workers 0 / a word: a config error; a port another program holds: exit 1, no process left."""
    for bad in ("0", "many", "-1"):
        r = run_gostg("-L", f"socks5://127.0.0.1:{free_port()}", "-workers", bad)
        assert r.returncode == 1 and "-workers" in r.stderr, r.stderr
    (tmp_path / "w.yaml").write_text(f"workers: lots\nservices:\n- name: a\n  addr: 127.0.0.1:{free_port()}\n"
                                     "  handler: {type: socks5}\n")
    r = run_gostg("-C", tmp_path / "w.yaml")
    assert r.returncode == 1 and "workers: must be a number of processes or auto" in r.stderr, r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = run_gostg("-L", f"socks5://127.0.0.1:{taken.getsockname()[1]}", "-workers", "2")
    assert r.returncode == 1 and "cannot listen" in r.stderr, r.stderr


def test_workers_sum_metrics_list_connections_and_keep_udp_in_worker_0(tmp_path, reaper):
    """/metrics sums the workers' counters (as GET /config does); /api/connections lists and
    ends tunnels of every worker; a UDP service runs in worker 0 only, and works."""
    from .udppeers import UDPEcho, free_udp_port, udp_ask

    s5, api_port, mport, uport = free_port(), free_port(), free_port(), free_udp_port()
    with Echo() as echo, UDPEcho(b"u:") as uecho:
        cfg = {"services": [
            {"name": "s5", "addr": f"127.0.0.1:{s5}", "handler": {"type": "socks5"}},
            {"name": "u", "addr": f"127.0.0.1:{uport}", "handler": {"type": "udp"}, "listener": {"type": "udp"},
             "forwarder": {"nodes": [{"name": "t", "addr": uecho.addr}]}}],
            "api": {"addr": f"127.0.0.1:{api_port}"}, "metrics": {"addr": f"127.0.0.1:{mport}"}}
        path = tmp_path / "gost.json"
        path.write_text(json.dumps(cfg))
        g, _ = _start(path, tmp_path, reaper, "-workers", "2", ports=(s5, api_port, mport))
        for _ in range(30):
            assert socks5_echo(s5, echo.port) == b"ping"
        assert wait_for(lambda: workers_serving(g, "s5") == {0, 1})

        def totals():
            st = api(api_port, "GET", "/config")["services"][0]["status"]["stats"]
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
                text = r.read().decode()
            m = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("gost_service_requests_total{") and 'service="s5"' in line)
            return st["totalConns"], m, text
        assert wait_for(lambda: totals()[0] >= 30 and totals()[0] == totals()[1]), totals()[:2]
        text = totals()[2]
        assert text.count("# TYPE gost_service_requests_total ") == 1
        # the group's services, counted once (worker 0 runs both; worker 1 only s5): not summed
        services = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("gost_services")]
        assert services == [2.0], services

        # open tunnels of both workers, listed and ended through the supervisor's API
        held = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", s5), timeout=5)
            s.sendall(b"\x05\x01\x00")
            s.recv(2)
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port))
            assert len(s.recv(10)) == 10
            held.append(s)
        try:
            listing = wait_for(lambda: (lambda d: d if d["count"] == 8 else None)(
                api(api_port, "GET", "/api/connections?service=s5")["data"]))
            assert listing and listing["count"] == 8, listing
            sid = listing["list"][0]["sid"]
            assert api(api_port, "GET", f"/api/connections/{sid}")["data"]["sid"] == sid
            assert api(api_port, "DELETE", f"/api/connections/{sid}").get("msg") == "OK"
            assert wait_for(lambda: api(api_port, "GET", "/api/connections?service=s5")["data"]["count"] == 7)
        finally:
            for s in held:
                s.close()

        assert udp_ask(uport, b"hi") == b"u:hi"
        owners = {e.get("worker") for e in log_records(g)
                  if e.get("service") == "u" and str(e.get("msg", "")).startswith("listening on")}
        assert owners == {0}, owners

        # a worker killed: its counts stay in the sums, so the group's counters never go back
        # (Prometheus would read a drop as a counter reset); the restarted one adds to them
        before = totals()[1]
        victim = children(g.proc.pid)[-1]
        os.kill(victim, signal.SIGKILL)
        assert wait_gone([victim], 5)
        assert wait_for(lambda: "worker restarted" in g.log_text(), timeout=15), g.log_text()[-3000:]
        reaper.extend(children(g.proc.pid))
        assert totals()[1] >= before, (totals()[1], before)
        for _ in range(6):
            assert socks5_echo(s5, echo.port) == b"ping"
        assert wait_for(lambda: totals()[1] >= before + 6), (totals()[1], before)
        stop_all(g)


def test_workers_inside_process_groups(reaper):
    """``--`` groups and -workers combine: each group supervises its own workers."""
    a, b = free_port(), free_port()
    with Echo() as echo:
        g = Gost("-L", f"socks5://127.0.0.1:{a}", "-workers", "2", "--", "-L", f"socks5://127.0.0.1:{b}",
                 ports=(a, b))
        g.start()
        reaper.append(g.proc.pid)
        groups = wait_children(g.proc.pid, 2)
        reaper.extend(groups)
        workers = wait_for(lambda: [k for p in groups for k in children(p)] or None)
        reaper.extend(workers or [])
        assert len(workers) == 2, workers   # group 0's two workers; group 1 runs in one process
        for port in (a, b):
            for _ in range(5):
                assert socks5_echo(port, echo.port) == b"ping"
        everything = [g.proc.pid] + groups + workers
        assert g.stop() == 0
        assert wait_gone(everything, 8), [p for p in everything if alive(p)]


def test_workers_config_url_is_fetched_by_the_supervisor_once_per_period(tmp_path, reaper):
    """-C http://… -R: the supervisor fetches (workers never do: one GET per period for the
    group) and a changed document reaches both workers."""
    from .test_config_url import ConfigServer

    a, b = free_port(), free_port()
    with socket.socket() as cs, Echo() as echo:
        cs.bind(("127.0.0.1", 0))
        with ConfigServer(cs) as srv:
            doc = {"services": [{"name": "a", "addr": f"127.0.0.1:{a}", "handler": {"type": "socks5"}}]}
            srv.serve(doc)
            g = Gost("-C", srv.url(), "-R", "0.3s", "-workers", "2", ports=())
            g.start()
            reaper.append(g.proc.pid)
            reaper.extend(wait_children(g.proc.pid, 2, timeout=20))
            wait_port(a, proc=g.proc, timeout=20)
            assert wait_for(lambda: "workers running" in g.log_text(), timeout=20)
            hits0, t0 = srv.state["hits"], time.monotonic()
            doc["services"].append({"name": "b", "addr": f"127.0.0.1:{b}", "handler": {"type": "socks5"}})
            srv.serve(doc)
            wait_listening(g, "b")
            served_by_both(g, b, "b", echo.port, 30)
            time.sleep(0.6)
            periods = (time.monotonic() - t0) / 0.3
            # one fetch per period (two workers fetching would be three per period)
            assert srv.state["hits"] - hits0 <= periods + 2, (srv.state["hits"] - hits0, periods)
            stop_all(g)


def test_workers_split_a_connection_limit(tmp_path, reaper):
    """climiters ``$ 2`` with two workers: each worker admits its share (1), so the group never
    holds more than the configured 2 at once."""
    port = free_port()
    cfg = {"workers": 2, "climiters": [{"name": "c", "limits": ["$ 2"]}],
           "services": [{"name": "s", "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5"}, "climiter": "c"}]}
    path = tmp_path / "gost.json"
    path.write_text(json.dumps(cfg))
    with Echo() as echo:
        g, _ = _start(path, tmp_path, reaper, ports=(port,))
        held, admitted = [], 0
        try:
            for _ in range(12):
                s = socket.create_connection(("127.0.0.1", port), timeout=3)
                held.append(s)
                try:
                    s.sendall(b"\x05\x01\x00")
                    if s.recv(2) != b"\x05\x00":
                        continue
                    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo.port))
                    rep = s.recv(10)
                    if len(rep) == 10 and rep[1] == 0:
                        admitted += 1
                except OSError:
                    pass
            assert 1 <= admitted <= 2, admitted
        finally:
            for s in held:
                s.close()
        stop_all(g)


def test_workers_api_and_metrics_services_run_in_the_supervisor(reaper):
    """``-L api://…`` and ``-L metrics://…`` act for the whole group, so the supervisor serves
    them (in a worker they would change or count that worker only)."""
    a, b, p_api, p_metrics = (free_port() for _ in range(4))
    with Echo() as echo:
        g = Gost("-L", f"socks5://127.0.0.1:{a}", "-L", f"api://127.0.0.1:{p_api}",
                 "-L", f"metrics://127.0.0.1:{p_metrics}", "-workers", "2", ports=())
        g.start()
        reaper.append(g.proc.pid)
        reaper.extend(wait_children(g.proc.pid, 2, timeout=20))
        for p in (a, p_api, p_metrics):
            wait_port(p, proc=g.proc, timeout=20)
        assert wait_for(lambda: "workers running" in g.log_text(), timeout=20)
        r = api(p_api, "POST", "/config/services", {"name": "b", "addr": f"127.0.0.1:{b}",
                                                    "handler": {"type": "socks5"}})
        assert r.get("msg") == "OK", r
        served_by_both(g, b, "b", echo.port, 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{p_metrics}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("gost_service_requests_total{") and 'service="b"' in line)
        assert served >= 30, served
        listening = {(e.get("service"), e.get("worker")) for e in log_records(g, msg="listening on")}
        assert ("service-1", None) in listening and not any(s == "service-1" and w is not None for s, w in listening)
        stop_all(g)


def test_workers_report_to_the_observer_the_supervisor_does_not(tmp_path, reaper):
    """Each worker reports its service's state to the observer; the supervisor's copy, which
    never serves, reports nothing."""
    from .test_observer import Plugin, config

    port = free_port()
    with Plugin() as plugin:
        cfg = config(tmp_path, port, plugin.url)
        g, _ = _start(cfg, tmp_path, reaper, "-workers", "2", ports=(port,))

        def states(state):
            return [e for e in plugin.events("status") if e["status"]["state"] == state]
        assert plugin.wait(lambda: len(states("ready")) == 2), plugin.events("status")
        time.sleep(0.5)
        assert len(states("running")) == 2 and len(states("ready")) == 2, plugin.events("status")
        stop_all(g)
        assert plugin.wait(lambda: len(states("closed")) == 2), plugin.events("status")
