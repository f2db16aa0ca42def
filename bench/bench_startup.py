#!/usr/bin/env python3
"""gostg start-up benchmark: time from exec to a listening port (or to exit), with peers.

Run:  .venv/bin/python bench/bench_startup.py [--runs 15] [--pyc both] [--out startup.md]

Each round starts every subject once, in turn (so gostg, its peers and the baselines share
whatever load the box has), and the median of the rounds is reported:

- servers (gostg ``-L socks5://…``, two ``--`` groups, v2ray, pproxy on uvloop): from just before the
  exec to the first TCP connect that succeeds on every port the subject listens on (polled
  every millisecond), then the process is killed;
- run-to-completion commands (``--check``, ``-O yaml``, the python baselines): exec to exit.

The python baselines show the floor the interpreter and gevent set: ``python -c pass`` and
``python -c 'from gevent import monkey; monkey.patch_all()'``. ``gostg-before`` (opt-in, as in
bench/bench.py) is ``bin/gostg`` of another checkout, ``$GOSTG_BEFORE`` (default
/tmp/gostg-before), for an A/B in one run. Everything listens on 127.0.0.1 only.
"""
import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench import PPROXY_SHIM   # pproxy on uvloop, started as bench/bench.py starts it

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
VENV = os.path.join(ROOT, ".venv", "bin")
PY = os.path.join(VENV, "python") if os.path.exists(os.path.join(VENV, "python")) else sys.executable
V2RAY = "/usr/bin/v2ray"
HOST = "127.0.0.1"
BEFORE_ROOT = os.environ.get("GOSTG_BEFORE", "/tmp/gostg-before")
#: a subject that has not listened (or exited) by then counts as failed
DEADLINE = 10.0


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def v2ray_config(tmp, port):
    path = os.path.join(tmp, f"v2ray-{port}.json")
    cfg = {"log": {"loglevel": "warning"},
           "inbounds": [{"listen": HOST, "port": port, "protocol": "socks",
                         "settings": {"auth": "noauth", "udp": False}}],
           "outbounds": [{"protocol": "freedom"}]}
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def gostg(root=ROOT):
    return [PY, os.path.join(root, "bin", "gostg")]


#: label → (kind, number of ports, ports → argv); kind "listen" waits for the ports, "exit"
#: for the process to end (status 0 required)
def subjects(tmp, names):
    table = {
        "python -c pass": ("exit", 0, lambda p: [PY, "-c", "pass"]),
        "python + gevent patch_all": ("exit", 0, lambda p: [PY, "-c", "from gevent import monkey; monkey.patch_all()"]),
        "gostg -L socks5": ("listen", 1, lambda p: gostg() + ["-L", f"socks5://{HOST}:{p[0]}"]),
        "gostg -L socks5 -- -L socks5": ("listen", 2, lambda p: gostg() + [
            "-L", f"socks5://{HOST}:{p[0]}", "--", "-L", f"socks5://{HOST}:{p[1]}"]),
        "gostg --check -L socks5": ("exit", 1, lambda p: gostg() + ["--check", "-L", f"socks5://{HOST}:{p[0]}"]),
        "gostg -O yaml -L socks5": ("exit", 1, lambda p: gostg() + ["-O", "yaml", "-L", f"socks5://{HOST}:{p[0]}"]),
        "gostg-before -L socks5": ("listen", 1, lambda p: gostg(BEFORE_ROOT) + ["-L", f"socks5://{HOST}:{p[0]}"]),
        **{f"gostg@{label} -L socks5": ("listen", 1, lambda p, root=root: gostg(root) + ["-L", f"socks5://{HOST}:{p[0]}"])
           for label, root in EXTRA.items()},
        "v2ray socks": ("listen", 1, lambda p: [V2RAY, "-config", v2ray_config(tmp, p[0])]),
        "pproxy-uvloop -l socks5": ("listen", 1, lambda p: [PY, "-c", PPROXY_SHIM, "uvloop", "-l",
                                                            f"socks5://{HOST}:{p[0]}"]),
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown subject(s) {unknown}; known: {list(table)}")
    return [(n, *table[n]) for n in names]


def _accepts(port):
    with socket.socket() as s:
        s.settimeout(1.0)
        try:
            s.connect((HOST, port))
            return True
        except OSError:
            return False


def time_one(kind, nports, argv_of, env):
    """→ seconds from exec to listening (or to exit), or None if it failed."""
    ports = [free_port() for _ in range(nports)]
    argv = argv_of(ports)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        if kind == "exit":
            # a blocking wait sees the exit at once (wait(timeout) polls, up to 50 ms apart)
            watchdog = threading.Timer(DEADLINE, proc.kill)
            watchdog.start()
            try:
                rc = proc.wait()
            finally:
                watchdog.cancel()
            return time.perf_counter() - t0 if rc == 0 else None
        waiting = list(ports)
        while waiting and time.perf_counter() - t0 < DEADLINE:
            if proc.poll() is not None:
                return None
            if _accepts(waiting[0]):
                waiting.pop(0)
            else:
                time.sleep(0.001)
        return None if waiting else time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)   # the -- supervisor's children too
            except OSError:
                pass
        proc.wait()


def mode_envs(modes, tmp):
    """Bytecode modes → the environment the subjects run in.

    ``cache``: a bytecode cache of their own (PYTHONPYCACHEPREFIX), written by the warm-up
    round, as an installed package has (pip compiles on install): what a user's start costs.
    ``env``: the environment as it is; this box sets PYTHONDONTWRITEBYTECODE=1 and its venv's
    site-packages has no .pyc, so gevent, dnspython, yaml … compile from source on every start
    (gostg itself too, unless a test run's compileall wrote gostg/__pycache__: the table says
    which checkouts have it)."""
    envs = {}
    for m in modes:
        env = dict(os.environ)
        if m == "cache":
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
        envs[m] = env
    return envs


MODE_TITLES = {"cache": "bytecode cached", "env": "this box's env (no .pyc)"}
REFS = ("v2ray socks", "pproxy-uvloop -l socks5")


#: --extra label=path: more checkouts' bin/gostg, each a row of its own
EXTRA = {}


def run(args):
    names = args.subjects
    if os.path.isdir(BEFORE_ROOT) and args.before and "gostg-before -L socks5" not in names:
        names = names + ["gostg-before -L socks5"]
    for spec in args.extra:
        label, _, root = spec.partition("=")
        EXTRA[label] = os.path.abspath(root)
        names = names + [f"gostg@{label} -L socks5"]
    modes = ["cache", "env"] if args.pyc == "both" else [args.pyc]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gostg-startup-") as tmp:
        subs = subjects(tmp, names)
        envs = mode_envs(modes, tmp)
        times = {(m, n): [] for m in modes for n, *_ in subs}
        for m in modes:   # one unmeasured round: page cache and the bytecode cache warm for everyone
            for sub in subs:
                time_one(*sub[1:], envs[m])
        for r in range(args.runs):
            for m in modes:
                for name, kind, nports, argv_of in subs:
                    t = time_one(kind, nports, argv_of, envs[m])
                    if t is not None:
                        times[m, name].append(t * 1000)
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr)
    roots = {"gostg": ROOT, **({"gostg-before": BEFORE_ROOT} if "gostg-before -L socks5" in names else {}),
             **{f"gostg@{k}": v for k, v in EXTRA.items()}}
    text = table(times, modes, [n for n, *_ in subs], args.runs, roots, load0)
    print(text)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, args.out), "w") as f:
        f.write(text)
    print(f"written to {os.path.join(OUT, args.out)}")


def _has_pycache(root):
    return os.path.isdir(os.path.join(root, "gostg", "__pycache__"))


def table(times, modes, names, runs, roots, load0):
    med = {k: statistics.median(v) if v else None for k, v in times.items()}
    head = ["what"]
    for m in modes:
        head += [f"{MODE_TITLES[m]}: median ms (min–max)", "× v2ray", "× pproxy"]
    lines = [f"Start-up: exec → port accepting (servers) or exec → exit (the others); median of {runs} "
             f"interleaved rounds. {platform.python_implementation()} {platform.python_version()}, "
             f"{os.cpu_count()} CPUs, load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
             + ("" if "env" not in modes else " gostg/__pycache__ (used by the env columns): " + ", ".join(
                 f"{k} {'yes' if _has_pycache(v) else 'no'}" for k, v in roots.items()) + "."), "",
             "| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name in names:
        cells = [name]
        for m in modes:
            v, mm = times[m, name], med[m, name]
            failed = runs - len(v)
            cells.append(f"{mm:.0f} ({min(v):.0f}–{max(v):.0f})" + (f", {failed} failed" if failed else "")
                         if v else f"all {runs} failed")
            cells += [f"{mm / med[m, r]:.2f}" if mm and med.get((m, r)) else "–" for r in REFS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


DEFAULT = ["python -c pass", "python + gevent patch_all", "gostg -L socks5", "gostg -L socks5 -- -L socks5",
           "gostg --check -L socks5", "gostg -O yaml -L socks5", "v2ray socks", "pproxy-uvloop -l socks5"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="interleaved rounds (median reported)")
    ap.add_argument("--subjects", default=DEFAULT, type=lambda s: [x for x in s.split(",") if x],
                    help="comma list of row labels (default: all but gostg-before)")
    ap.add_argument("--pyc", choices=("cache", "env", "both"), default="both",
                    help="bytecode: a cache of the run's own (as installed), the environment as it is, or both")
    ap.add_argument("--before", action="store_true",
                    help="add 'gostg-before -L socks5': bin/gostg of $GOSTG_BEFORE (default /tmp/gostg-before)")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=PATH",
                    help="add 'gostg@LABEL -L socks5': bin/gostg of the checkout at PATH (repeatable)")
    ap.add_argument("--out", default="startup.md", help="file name under bench/out/")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
