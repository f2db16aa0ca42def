#!/usr/bin/env python3
"""DNS proxy rate and latency: gostg's ``dns`` service vs dnsmasq as a forwarder, same run.

Run:  .venv/bin/python bench/bench_dns.py [--duration 3] [--window 1,32] [--names 100]

Both proxies forward over UDP to one upstream: dnsmasq answering ``*.bench.test`` itself
(``--address``, TTL 300, its own cache off). Rows:
- ``no cache``: gostg ``-L dns://:P?dns=udp://UP&ttl=-1s`` vs ``dnsmasq --server=UP --cache-size=0``
  (every query goes upstream)
- ``cached``:   gostg ``-L dns://:P?dns=udp://UP`` vs ``dnsmasq --server=UP --cache-size=10000``
  (warmed first: every query is a cache hit)
The client is this process: ``window`` queries in flight on one UDP socket, ``--names`` names
asked in turn, for ``--duration`` s. Each cell: queries answered per second and the median
(p50) latency. Everything listens on 127.0.0.1; every loop is bounded by time or count.
"""
import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PY = VENV_PY if os.path.exists(VENV_PY) else sys.executable
HOST = "127.0.0.1"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def dnsmasq(port, *extra):
    return [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--pid-file", "--no-resolv", "--no-hosts",
            f"--port={port}", f"--listen-address={HOST}", "--bind-interfaces", "--dns-forward-max=1000", *extra]


def queries(n):
    import dns.message
    return [bytearray(dns.message.make_query(f"n{i}.bench.test", "A").to_wire()) for i in range(n)]


def ask(port, q, timeout=0.5):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(bytes(q), (HOST, port))
        try:
            return s.recv(65535)
        except socket.timeout:
            return None


def wait_ready(port, qs, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ask(port, qs[0]) is not None:
            return
    raise RuntimeError(f"nothing answers on udp {port}")


def rate(port, qs, window, duration):
    """→ (answers per second, p50 latency in ms). Ids are this client's own, so a late answer
    to a query given up on is told from a fresh one."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.connect((HOST, port))
    s.settimeout(1.0)
    sent, lat, done, lost = {}, [], 0, 0
    qid, i = 0, 0

    def send():
        nonlocal qid, i
        qid = (qid + 1) & 0xFFFF
        q = qs[i % len(qs)]
        i += 1
        struct.pack_into("!H", q, 0, qid)
        sent[qid] = time.perf_counter()
        s.send(q)

    end = time.monotonic() + duration
    for _ in range(window):
        send()
    while time.monotonic() < end:
        try:
            data = s.recv(65535)
        except socket.timeout:       # a lost datagram: refill the window
            lost += len(sent)
            sent.clear()
            for _ in range(window):
                send()
            continue
        t = sent.pop(struct.unpack_from("!H", data)[0], None)
        if t is None:
            continue
        lat.append(time.perf_counter() - t)
        done += 1
        send()
    s.close()
    return done / duration, statistics.median(lat) * 1000 if lat else float("nan"), lost


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--window", default="1,32")
    ap.add_argument("--names", type=int, default=100)
    a = ap.parse_args()
    windows = [int(w) for w in a.window.split(",")]
    qs = queries(a.names)
    up = free_port()
    ports = {k: free_port() for k in ("g", "gc", "d", "dc")}
    env = dict(os.environ, GOSTG_STRICT_SCHEMA="0")
    procs = [subprocess.Popen(dnsmasq(up, "--cache-size=0", "--local-ttl=300", "--address=/bench.test/10.1.2.3"),
                              stderr=subprocess.DEVNULL)]
    try:
        gostg = [PY, os.path.join(ROOT, "bin", "gostg"), "-L", f"dns://{HOST}:{ports['g']}?dns=udp://{HOST}:{up}&ttl=-1s",
                 "-L", f"dns://{HOST}:{ports['gc']}?dns=udp://{HOST}:{up}"]
        procs.append(subprocess.Popen(gostg, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
        procs.append(subprocess.Popen(dnsmasq(ports["d"], f"--server={HOST}#{up}", "--cache-size=0"),
                                      stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(dnsmasq(ports["dc"], f"--server={HOST}#{up}", "--cache-size=10000"),
                                      stderr=subprocess.DEVNULL))
        for p in ports.values():
            wait_ready(p, qs)
        for p in (ports["gc"], ports["dc"]):   # warm the caches: every name once
            for q in qs:
                ask(p, q)
        print(f"gostg dns proxy vs dnsmasq {subprocess.run([DNSMASQ, '--version'], capture_output=True, text=True).stdout.split(chr(10))[0]}")
        print(f"{a.names} names, {a.duration:g} s per cell; cell: queries/s (p50 latency ms)\n")
        print("| row | window | gostg | dnsmasq | gostg/dnsmasq |")
        print("|---|---:|---:|---:|---:|")
        for row, g, d in (("no cache", "g", "d"), ("cached", "gc", "dc")):
            for w in windows:
                gr, gl, glost = rate(ports[g], qs, w, a.duration)
                dr, dl, dlost = rate(ports[d], qs, w, a.duration)
                note = f" (lost: gostg {glost}, dnsmasq {dlost})" if glost or dlost else ""
                print(f"| {row} | {w} | {gr:,.0f} ({gl:.3f}) | {dr:,.0f} ({dl:.3f}) | {gr / dr:.2f}{note} |", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


if __name__ == "__main__":
    main()
