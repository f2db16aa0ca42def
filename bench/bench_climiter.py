#!/usr/bin/env python3
"""What a shared (Redis) connection limiter costs per connection: gostg socks5 with no climiter,
with a local one and with the same limit kept in Redis (``store.redis``), same run.

Run:  .venv/bin/python bench/bench_climiter.py [--duration 3] [--conn-repeat 3] [--conc 50]

Each column is one gostg process; the limit (``$ 100000``) is never reached, so every connection
pays a full admission (local: a dict update; shared: one Lua round trip to a redis-server this
script starts on a free loopback port, plus the release sync). conn/s is bench.py's measure
(connect + SOCKS5 CONNECT + 64 B echo + close) in interleaved rounds; the median is reported.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (bench.py's drivers and Proxy)

REDIS = shutil.which("redis-server")


def gostg_cfg(tmp, store):
    def cmd(p):
        svc = {"name": "s", "addr": f"{B.HOST}:{p.socks_port}", "handler": {"type": "socks5"},
               "listener": {"type": "tcp"}}
        cfg = {"services": [svc], "log": {"level": "error"}}
        if store is not False:
            svc["climiter"] = "c"
            cfg["climiters"] = [{"name": "c", "limits": ["$ 100000"], **({"store": store} if store else {})}]
        path = os.path.join(tmp, f"{p.name}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return [B.PY, os.path.join(B.ROOT, "bin", "gostg"), "-C", path]
    return cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--conn-repeat", type=int, default=3)
    ap.add_argument("--conc", type=int, default=50)
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args()
    if REDIS is None:
        raise SystemExit("redis-server is not installed")
    tmp = tempfile.mkdtemp(prefix="gostg-bench-climiter-")
    B.LOG_DIR[0] = tmp
    B.raise_nofile()
    rport, echo_port = B.free_port(), B.free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([REDIS, "--port", str(rport), "--bind", B.HOST, "--save", "",
                                       "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL))
        procs.append(subprocess.Popen([B.PY, os.path.join(HERE, "bench.py"), "_echo", str(echo_port)]))
        for port, p in ((rport, procs[0]), (echo_port, procs[1])):
            if not B.wait_port(port, p):
                raise RuntimeError(f"helper on {port} did not start")
        store = {"redis": {"addr": f"{B.HOST}:{rport}"}}
        cols = [B.Proxy("none", "gostg", gostg_cfg(tmp, False), has_http=False),
                B.Proxy("local", "gostg", gostg_cfg(tmp, None), has_http=False),
                B.Proxy("redis", "gostg", gostg_cfg(tmp, store), has_http=False)]
        for p in cols:
            p.start()
            procs.append(p.proc)
        def each(p, rnd, run):
            res = run()
            print(f"{p.name:6s} round {rnd + 1}: {res[0]:8.0f} conn/s errors={res[1]} CPU {B.fmt(res[3])} "
                  "µs/conn", flush=True)
            time.sleep(0.3)
            return res

        rates, cpus, errs = B.interleaved_connrate(cols, echo_port, args.duration, args.conn_repeat, args.procs,
                                                   args.conc, each)
        print("\n| climiter `$ 100000` | conn/s | gostg CPU µs/conn | errors |\n|---|---:|---:|---:|")
        for p in cols:
            print(f"| {p.name} | {statistics.median(rates[p.name]):.0f} | {statistics.median(cpus[p.name] or [0]):.0f} "
                  f"| {errs[p.name]} |")
        print(f"\n{args.conc} clients in {args.procs} processes, median of {args.conn_repeat} interleaved rounds "
              f"of {args.duration:g}s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        for p in procs:
            B.terminate(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
