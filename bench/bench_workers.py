#!/usr/bin/env python3
"""``-workers 1`` vs ``-workers 2`` (or any list): SOCKS5 connections/s and 1-stream and
8-stream download throughput through one gostg command line, in one run.

    .venv/bin/python bench/bench_workers.py [--workers 1,2] [--duration 5] [--size 512MiB]
                                            [--conc 50] [--procs 2] [--repeat 3]

It reuses bench.py's helper processes (sink/source, echo, conn/s drivers) and client code; each
gostg is started as a user starts it (``bin/gostg -L socks5://… -workers N``), log level error.
conn/s runs interleave the worker counts (``--repeat`` rounds, median). CPU figures are left
out: with workers the proxy is several processes (bench.py's per-process CPU does not apply).
Loopback only; every wait is bounded.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench as B  # noqa: E402


def gostg_workers_cmd(n):
    def f(p):
        return [B.PY, os.path.join(B.ROOT, "bin", "gostg"), "-L", f"socks5://{B.HOST}:{p.socks_port}",
                "-C", '{"log": {"level": "error"}}', "-workers", str(n)]
    return f


def tree(pid):
    """``pid`` and its children (the supervisor and its workers), from /proc."""
    out = [pid]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def cpu(pids):
    total = 0.0
    for p in pids:
        try:
            total += B.cpu_seconds(p)
        except (OSError, ValueError):
            pass
    return total


GOCONN = os.path.join(B.OUT, "goconn")


def build_goconn():
    """Build bench/goconn (Go's standard library only; golang-go from apt) → its path."""
    env = dict(os.environ, GO111MODULE="off", GOCACHE=os.path.join(B.OUT, "gocache"),
               GOPATH=os.path.join(B.OUT, "gopath"))
    subprocess.run(["go", "build", "-o", GOCONN, os.path.join(HERE, "goconn", "main.go")], env=env, check=True,
                   timeout=600)
    return GOCONN


def go_connrate(proxy, echo_port, duration, conc, echo_pid):
    """SOCKS5 conn/s with the Go driver (one process, ``conc`` goroutines) → (rate, errors,
    CPU µs per connection of the clients and the echo server together)."""
    e0 = B.cpu_seconds(echo_pid)
    start_at = time.time() + 0.3
    d = subprocess.Popen([GOCONN, "conn", str(proxy.socks_port), str(echo_port), str(conc), repr(start_at),
                          str(duration)], stdout=subprocess.PIPE)
    try:
        out, _ = d.communicate(timeout=duration + 30)
    finally:
        if d.poll() is None:
            d.kill()
            d.wait(5)
    r = json.loads(out.decode().strip().splitlines()[-1])
    peer = (r["cpu"] + B.cpu_seconds(echo_pid) - e0) / max(1, r["ok"]) * 1e6
    return r["ok"] / duration, r["err"], peer


def streams(proxy, n, size, sink_port):
    """``n`` concurrent SOCKS5 downloads of ``size`` bytes in all → MB/s (all streams together)."""
    errors = []
    per = size // n

    def one():
        try:
            s = B.open_tunnel("socks5", proxy.socks_port, sink_port)
            with s:
                s.sendall(B.HDR.pack(b"DNLD", per))
                buf = bytearray(B.CHUNK)
                got = 0
                while got < per:
                    k = s.recv_into(buf, min(B.CHUNK, per - got))
                    if not k:
                        raise ConnectionError(f"EOF after {got}/{per}")
                    got += k
        except Exception as exc:   # noqa: BLE001 - reported with the figure
            errors.append(exc)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(B.IO_TIMEOUT * 4)
    dt = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} stream(s) failed: {errors[0]!r}")
    return per * n / dt / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2", type=lambda s: [int(x) for x in s.split(",") if x])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per conn/s round")
    ap.add_argument("--conc", type=int, default=50, help="concurrent clients for conn/s")
    ap.add_argument("--procs", type=int, default=2, help="client driver processes for conn/s")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per figure (median)")
    ap.add_argument("--size", type=B.parse_size, default=512 << 20, help="bytes per throughput run")
    ap.add_argument("--driver", choices=("py", "go"), default="py",
                    help="conn/s clients and echo server: bench.py's gevent drivers (py) or bench/goconn "
                         "(go: a tenth of the CPU per connection, so that on a 2-core box the proxy, not "
                         "the clients, is what runs out of CPU)")
    args = ap.parse_args()
    B.raise_nofile()
    B.LOG_DIR[0] = os.path.join(B.OUT, "logs", "workers")
    os.makedirs(B.LOG_DIR[0], exist_ok=True)
    sink_port, echo_port = B.free_port(), B.free_port()
    helpers = [subprocess.Popen([B.PY, os.path.join(HERE, "bench.py"), "_sinksrc", str(sink_port)])]
    if args.driver == "go":
        build_goconn()
        helpers.append(subprocess.Popen([GOCONN, "echo", str(echo_port)]))
    else:
        helpers.append(subprocess.Popen([B.PY, os.path.join(HERE, "bench.py"), "_echo", str(echo_port)]))
    proxies = {}
    try:
        for port in (sink_port, echo_port):
            if not B.wait_port(port):
                raise RuntimeError("helper server did not start")
        for n in args.workers:
            p = B.Proxy(f"gostg-workers-{n}", "gostg", gostg_workers_cmd(n), has_http=False)
            p.start()
            proxies[n] = p
        for n, p in proxies.items():   # every worker started (the port opens with the first one)
            deadline = time.monotonic() + 30
            while len(tree(p.pid)) < (n + 1 if n > 1 else 1) and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(1.0)   # … and listening
        res = {n: {"conn": [], "cpu": [], "1": [], "8": [], "peer": []} for n in args.workers}
        for _ in range(args.repeat):
            for n, p in proxies.items():
                pids = tree(p.pid)
                c0 = cpu(pids)
                if args.driver == "go":
                    rate, err, peer = go_connrate(p, echo_port, args.duration, args.conc, helpers[1].pid)
                    res[n]["peer"].append(peer)
                else:
                    rate, err, _, _ = B.measure_connrate(p, echo_port, args.duration, args.procs, args.conc)
                res[n]["conn"].append(rate)
                # all the proxy's processes: CPU µs per connection (the window includes the
                # drivers' 1.5 s start, when the proxy is idle)
                res[n]["cpu"].append((cpu(pids) - c0) / max(1, rate * args.duration) * 1e6)
                if err:
                    print(f"workers {n}: {err} connection errors", file=sys.stderr)
                res[n]["1"].append(streams(p, 1, args.size, sink_port))
                res[n]["8"].append(streams(p, 8, args.size, sink_port))
        base = args.workers[0]
        print("| workers | SOCKS5 conn/s | × | proxy CPU µs/conn | 1 stream MB/s | 8 streams MB/s | × |")
        print("|---|---|---|---|---|---|---|")
        med = {n: {k: statistics.median(v) if v else None for k, v in r.items()} for n, r in res.items()}
        for n in args.workers:
            m = med[n]
            print(f"| {n} | {m['conn']:.0f} | {m['conn'] / med[base]['conn']:.2f} | {m['cpu']:.0f} | {m['1']:.0f} "
                  f"| {m['8']:.0f} | {m['8'] / med[base]['8']:.2f} |")
        drivers = "the Go driver" if args.driver == "go" else f"{args.procs} driver processes"
        for n in args.workers:   # where the box's CPU went: is the proxy the limit?
            m = med[n]
            busy = m["conn"] * m["cpu"] / 1e6
            line = f"workers {n}: the proxy kept {busy:.2f} of {os.cpu_count()} cores busy"
            if m["peer"] is not None:
                line += (f"; clients + echo server {m['peer']:.0f} µs per connection "
                         f"({m['conn'] * m['peer'] / 1e6:.2f} cores)")
            print(line)
        print(f"\n({os.cpu_count()} CPUs; conc {args.conc}, {drivers}, {args.duration:g}s "
              f"rounds, {args.size >> 20} MiB per throughput run, median of {args.repeat})")
    finally:
        for p in proxies.values():
            B.terminate(p.proc)
        for h in helpers:
            B.terminate(h)


if __name__ == "__main__":
    main()
