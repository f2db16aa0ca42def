#!/usr/bin/env python3
"""Plain HTTP forward proxying: gostg vs pproxy-uvloop vs a gevent floor, in one run.

Run:  python bench/bench_http.py [--duration 5] [--conns 50] [--rounds 3] [--out http.md]

What it measures: absolute-URI keep-alive GETs (``GET http://127.0.0.1:ORIGIN/ HTTP/1.1``)
from ``wrk`` (one thread, ``--conns`` connections, a Lua script setting ``wrk.path``) sent to
each proxy, which forwards them to an nginx origin (temp config, loopback, ``daemon off``,
one worker, a 64-byte body, keep-alive for 1e6 requests). Per proxy: req/s, CPU-ms per request
(utime+stime of the proxy process from /proc/<pid>/stat over the wrk run) and p50/p99 latency
(``wrk --latency``). The proxies are pinned to the last CPU (``taskset``-style affinity), wrk
and nginx to the others. Rounds interleave the proxies; the median round is reported, with
ratios against pproxy-uvloop.

Columns: ``gostg`` (this checkout, default log level ``info``), ``gostg-before`` (only when
$GOSTG_BEFORE names another checkout), ``pproxy-uvloop`` (pproxy on uvloop, bench.py's shim),
``gevent-floor`` (bench/http_floor.py: gevent with nothing of gostg), ``origin`` (wrk straight
at nginx: the harness ceiling; it must be well above every proxy for the figures to mean much).
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (free_port, wait_port, cpu_seconds, PPROXY_SHIM, PY)

ROOT = B.ROOT
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
BODY = b"x" * 64

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {dir}/www; }}
    }}
}}
"""

WRK_LUA = """
wrk.path = "http://127.0.0.1:{port}/"
wrk.headers["Host"] = "127.0.0.1:{port}"
"""


def pin(cpus):
    def f():
        B.raise_nofile()
        if cpus:
            os.sched_setaffinity(0, cpus)
    return f


def cpu_sets():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


def start(cmd, log, cpus, port, env=None):
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin(cpus), cwd=ROOT,
                         env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
    if not B.wait_port(port, p):
        raise RuntimeError(f"{cmd[:3]} did not listen on {port}; see {log.name}")
    return p


def proxies(args):
    """name → argv builder (port → argv)."""
    gostg = lambda root: lambda port: [B.PY, os.path.join(root, "bin", "gostg"), "-L", f"http://127.0.0.1:{port}"]
    out = {"gostg": gostg(ROOT)}
    before = os.environ.get("GOSTG_BEFORE")
    if before:
        out["gostg-before"] = gostg(before)
    out["pproxy-uvloop"] = lambda port: [B.PY, "-c", B.PPROXY_SHIM, "uvloop", "-l", f"http://127.0.0.1:{port}"]
    out["gevent-floor"] = lambda port: [B.PY, os.path.join(HERE, "http_floor.py"), str(port)]
    wanted = args.proxies.split(",") if args.proxies else list(out)
    return {k: v for k, v in out.items() if k in wanted}


def run_wrk(port, lua, duration, conns, cpus):
    cmd = [WRK, "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", lua, f"http://127.0.0.1:{port}/"]
    r = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pin(cpus), timeout=duration + 30)
    out = r.stdout
    m = re.search(r"(\d+) requests in", out)
    if r.returncode or not m:
        raise RuntimeError(f"wrk failed: {out}\n{r.stderr}")
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return {"requests": int(m.group(1)), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": to_ms(lat.get("50")), "p99": to_ms(lat.get("99")), "errors": errs.group(0) if errs else ""}


def to_ms(s):
    if not s:
        return float("nan")
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def measure(name, pid, port, lua, args, other):
    u0, s0 = B.cpu_split(pid) if pid else (0.0, 0.0)
    res = run_wrk(port, lua, args.duration, args.conns, other)
    u1, s1 = B.cpu_split(pid) if pid else (float("nan"), float("nan"))
    n = max(res["requests"], 1)
    res["cpu_ms"] = (u1 - u0 + s1 - s0) * 1e3 / n
    res["user_us"], res["sys_us"] = (u1 - u0) * 1e6 / n, (s1 - s0) * 1e6 / n
    print(f"  {name:14s} {res['rps']:9.0f} req/s  {res['cpu_ms']:.4f} CPU-ms/req (user {res['user_us']:.1f} + sys"
          f" {res['sys_us']:.1f} us)  p50 {res['p50']:.2f} ms  p99 {res['p99']:.2f} ms {res['errors']}", flush=True)
    return res


def report(results, args):
    med = {}
    for name, rounds in results.items():
        rounds = sorted(rounds, key=lambda r: r["rps"])
        med[name] = rounds[len(rounds) // 2]
    ref = med.get("pproxy-uvloop")
    lines = [f"plain HTTP forward, absolute-URI keep-alive GET (64 B body), wrk -t1 -c{args.conns}, "
             f"{args.duration} s × {args.rounds} rounds (median), proxy pinned to one CPU", "",
             "| proxy | req/s | CPU-ms/req | user + sys µs/req | p50 ms | p99 ms | req/s ÷ pproxy-uvloop |"
             " CPU/req ÷ pproxy-uvloop |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in med.items():
        rr = f"{r['rps'] / ref['rps']:.2f}×" if ref else ""
        rc = f"{r['cpu_ms'] / ref['cpu_ms']:.2f}×" if ref and name != "origin" else ""
        cpu, split = ("–", "–") if name == "origin" else (f"{r['cpu_ms']:.4f}",
                                                           f"{r['user_us']:.1f} + {r['sys_us']:.1f}")
        lines.append(f"| {name} | {r['rps']:,.0f} | {cpu} | {split} | {r['p50']:.2f} | {r['p99']:.2f} | {rr} | {rc} |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    os.makedirs(B.OUT, exist_ok=True)
    with open(os.path.join(B.OUT, args.out), "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--proxies", default="", help="comma list (default: all)")
    ap.add_argument("--out", default="http.md", help="file name under bench/out/")
    args = ap.parse_args()
    args.duration = int(args.duration)
    for tool in (NGINX, WRK):
        if not os.path.exists(tool):
            sys.exit(f"{tool} is needed (apt: nginx-light, wrk)")
    tmp = tempfile.mkdtemp(prefix="bench-http-")
    logdir = os.path.join(B.OUT, "logs", os.path.splitext(args.out)[0])
    os.makedirs(logdir, exist_ok=True)
    proxy_cpus, other = cpu_sets()
    procs = {}
    try:
        os.chmod(tmp, 0o755)  # nginx's worker may run as another user
        os.makedirs(os.path.join(tmp, "www"))
        with open(os.path.join(tmp, "www", "index.html"), "wb") as f:
            f.write(BODY)
        origin_port = B.free_port()
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(dir=tmp, port=origin_port))
        lua = os.path.join(tmp, "req.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA.format(port=origin_port))
        procs["origin"] = (start([NGINX, "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
                                 open(os.path.join(logdir, "nginx.log"), "wb"), other, origin_port), origin_port)
        for name, cmd in proxies(args).items():
            port = B.free_port()
            procs[name] = (start(cmd(port), open(os.path.join(logdir, f"{name}.log"), "wb"), proxy_cpus, port), port)
        results = {name: [] for name in procs}
        print("warm-up (1 s each, not measured)")
        for name, (p, port) in procs.items():
            run_wrk(port, lua, 1, args.conns, other)
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}")
            for name, (p, port) in procs.items():
                results[name].append(measure(name, None if name == "origin" else p.pid, port, lua, args, other))
        report(results, args)
    finally:
        for p, _ in procs.values():
            p.send_signal(signal.SIGTERM)
        for p, _ in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
