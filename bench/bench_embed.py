#!/usr/bin/env python3
"""The cost of routing an application's own connections: ``requests.get`` to a local origin,
a new connection per request, in a gevent-patched app, three ways in one run:

- direct:   no routing (the floor);
- gostg:    ``gostg.patch_socket`` with a one-hop chain (socks5 node: ``bin/gostg`` on
            127.0.0.1); the URL names ``origin.bench``, which only the node knows (its hosts
            mapping): fake-ip answers the app's lookup, the node resolves the name;
- pysocks:  PySocks' monkeypatch (``socks.set_default_proxy`` + ``socket.socket =
            socks.socksocket``) to the same node; the URL is the origin's IP (PySocks would
            resolve a name locally: urllib3 calls getaddrinfo before connect).

Run:  .venv/bin/python bench/bench_embed.py [--requests 300] [--rounds 3] [--out embed.md]

Each round runs each mode once in a fresh app process (``--warmup`` unmeasured requests, then
``--requests`` measured, one at a time); rounds interleave the modes so load from other
processes hits all alike. Reported: connections/s (median of the rounds' rates) and the p50 /
p90 latency of all measured requests, and each mode against direct. Everything is on 127.0.0.1.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.integration.helpers import Gost, free_port, wait_port  # noqa: E402

ORIGIN = """\
from gevent import monkey; monkey.patch_all()
import sys
from gevent.server import StreamServer
RESP = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok"
def handle(sock, addr):
    buf = b""
    while b"\\r\\n\\r\\n" not in buf:
        data = sock.recv(4096)
        if not data:
            return
        buf += data
    sock.sendall(RESP)
StreamServer(("127.0.0.1", int(sys.argv[1])), handle, backlog=512).serve_forever()
"""

APP = """\
from gevent import monkey; monkey.patch_all()
import json, statistics, sys, time
mode, url, n, warm, node = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
import requests
if mode == "gostg":
    import gostg
    g = gostg.Gost({"chains": [{"name": "c", "hops": [{"name": "h", "nodes": [
        {"name": "n", "addr": "127.0.0.1:%d" % node, "connector": {"type": "socks5"}}]}]}]})
    gostg.patch_socket(g, chain="c")
elif mode == "pysocks":
    import socket, socks
    socks.set_default_proxy(socks.SOCKS5, "127.0.0.1", node)
    socket.socket = socks.socksocket
samples = []
for i in range(warm + n):
    t0 = time.perf_counter()
    r = requests.get(url, timeout=10)
    dt = time.perf_counter() - t0
    assert r.status_code == 200 and r.text == "ok", (r.status_code, r.text)
    if i >= warm:
        samples.append(dt)
print(json.dumps(samples))
"""


def run_mode(mode, url, args, node):
    out = subprocess.run([sys.executable, "-c", APP, mode, url, str(args.requests), str(args.warmup), str(node)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    if out.returncode != 0:
        raise SystemExit(f"{mode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="also write the table (markdown) here")
    args = ap.parse_args()

    po, pn = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="bench-embed-")
    cfg = os.path.join(tmp, "node.json")
    with open(cfg, "w") as f:
        json.dump({"services": [{"name": "node", "addr": f"127.0.0.1:{pn}", "handler": {"type": "socks5"},
                                 "hosts": "names"}],
                   "hosts": [{"name": "names", "mappings": [{"ip": "127.0.0.1", "hostname": "origin.bench"}]}],
                   "log": {"level": "warn"}}, f)
    origin = subprocess.Popen([sys.executable, "-c", ORIGIN, str(po)], cwd=ROOT)
    try:
        wait_port(po, proc=origin)
        with Gost("-C", cfg, ports=(pn,)):
            urls = {"direct": f"http://127.0.0.1:{po}/", "gostg": f"http://origin.bench:{po}/",
                    "pysocks": f"http://127.0.0.1:{po}/"}
            samples = {m: [] for m in urls}
            rates = {m: [] for m in urls}
            for _ in range(args.rounds):
                for mode, url in urls.items():
                    s = run_mode(mode, url, args, pn)
                    samples[mode] += s
                    rates[mode].append(len(s) / sum(s))
    finally:
        origin.terminate()
        origin.wait(10)

    base_rate = statistics.median(rates["direct"])
    base_p50 = statistics.median(samples["direct"])
    lines = [f"requests.get, new connection each, {args.requests} x {args.rounds} rounds, loopback "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f})", "",
             "| mode | conn/s | vs direct | p50 ms | p90 ms | p50 vs direct |", "|---|---|---|---|---|---|"]
    for mode in urls:
        rate = statistics.median(rates[mode])
        xs = sorted(samples[mode])
        p50, p90 = statistics.median(xs), xs[int(len(xs) * 0.9)]
        lines.append(f"| {mode} | {rate:.0f} | {rate / base_rate:.2f}x | {p50 * 1e3:.2f} | {p90 * 1e3:.2f} | "
                     f"{p50 / base_p50:.2f}x |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
