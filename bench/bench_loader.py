#!/usr/bin/env python3
"""What a Redis-backed bypass costs per connection, next to the same rules inline.

Run:  .venv/bin/python bench/bench_loader.py [--rules 1000] [--duration 5] [--repeat 3]

One run starts a redis-server of its own (loopback, free port; stopped by PID), the relay
bench's echo server, and two gostg processes with a SOCKS5 service each:

- ``inline``: a bypass whose ``matchers`` are N rules;
- ``redis``:  a bypass reading the same N rules from a Redis SET, ``reload: 1s`` and
  ``pubsub: true`` (what an operator of several instances would run).

Then interleaved rounds of SOCKS5 connections/s (bench.py's driver: connect + CONNECT + 64 B
echo + close; the target matches no rule, so every connection pays a full lookup), and the
Redis commands gostg sent meanwhile. The decision uses the cached rules: the per-connection
path must not touch Redis, so the commands counted are the reload polls only (about one per
second), whatever the connection rate. Prints a markdown table and the ratio.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (free_port, wait_port, Proxy, measure_connrate, bypass_rules, PY)


def redis_calls(port):
    """Commands the Redis server has run so far (INFO stats total_commands_processed)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "stats"], capture_output=True, text=True,
                         timeout=10).stdout
    for line in out.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=1000, help="bypass rules (default 1000)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per conn/s round")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds per column (median reported)")
    ap.add_argument("--conc", type=int, default=50, help="concurrent clients")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    args = ap.parse_args()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("redis-server is not installed (apt install redis-server)")

    tmp = tempfile.mkdtemp(prefix="gostg-bench-loader-")
    B.LOG_DIR[0] = tmp
    rules = B.bypass_rules(args.rules)
    rport, echo_port = B.free_port(), B.free_port()
    procs = []
    try:
        rs = subprocess.Popen([redis_server, "--port", str(rport), "--bind", B.HOST, "--save", "", "--appendonly",
                               "no", "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(rs)
        if not B.wait_port(rport, rs):
            raise RuntimeError("redis-server did not start")
        for i in range(0, len(rules), 500):
            subprocess.run(["redis-cli", "-p", str(rport), "sadd", "gost:bench", *rules[i:i + 500]],
                           check=True, capture_output=True, timeout=30)
        echo = subprocess.Popen([B.PY, os.path.join(HERE, "bench.py"), "_echo", str(echo_port)],
                                preexec_fn=B.other_preexec)
        procs.append(echo)
        if not B.wait_port(echo_port, echo):
            raise RuntimeError("echo helper did not start")

        def cfg_cmd(source):
            def f(p):
                bp = {"name": "bp"}
                if source == "inline":
                    bp["matchers"] = rules
                else:
                    bp.update(reload="1s", redis={"addr": f"{B.HOST}:{rport}", "key": "gost:bench", "pubsub": True})
                cfg = {"services": [{"name": "s", "addr": f"{B.HOST}:{p.socks_port}", "bypass": "bp",
                                     "handler": {"type": "socks5"}, "listener": {"type": "tcp"}}],
                       "bypasses": [bp], "log": {"level": "error"}}
                path = os.path.join(tmp, f"{p.name}.json")
                with open(path, "w") as out:
                    json.dump(cfg, out)
                return [B.PY, os.path.join(B.ROOT, "bin", "gostg"), "-C", path]
            return f

        cols = [B.Proxy("inline", "gostg", cfg_cmd("inline"), has_http=False),
                B.Proxy("redis", "gostg", cfg_cmd("redis"), has_http=False)]
        for p in cols:
            p.start()
            procs.append(p.proc)
        per_conn_cmds = []

        def each(p, rnd, run):
            c0 = redis_calls(rport)
            res = run()
            c1 = redis_calls(rport) - 1   # not counting our INFO
            if p.name == "redis" and res[0]:
                per_conn_cmds.append((c1 - c0) / (res[0] * args.duration))
            print(f"{p.name:7s} round {rnd + 1}: {res[0]:8.0f} conn/s  errors={res[1]}  CPU {B.fmt(res[3])} µs/conn"
                  f"  redis commands {c1 - c0}", flush=True)
            return res

        rates, cpus, errs = B.interleaved_connrate(cols, echo_port, args.duration, args.repeat, args.procs,
                                                   args.conc, each)
        for p in cols:
            if p.proc.poll() is not None:
                raise RuntimeError(f"{p.name} exited early; see {p.log_path}")
        med = {n: statistics.median(v) for n, v in rates.items()}
        cpu = {n: statistics.median(v) if v else None for n, v in cpus.items()}
        print()
        print("| bypass source | conn/s | CPU µs/conn | errors |")
        print("|---|---:|---:|---:|")
        for n in med:
            print(f"| {n} | {B.fmt(med[n])} | {B.fmt(cpu[n])} | {errs[n]} |")
        print()
        print(f"redis/inline conn/s: {B.fmt(B.ratio(med['redis'], med['inline']), 2)}×; CPU per connection "
              f"{B.fmt(B.ratio(cpu['redis'], cpu['inline']), 2)}×; Redis commands per connection (redis column): "
              f"{max(per_conn_cmds) if per_conn_cmds else 0:.5f} (the reload polls only). {args.rules} rules, "
              f"{args.conc} clients in {args.procs} processes, median of {args.repeat} interleaved rounds of "
              f"{args.duration:g}s.")
    finally:
        for pr in reversed(procs):
            B.terminate(pr)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
