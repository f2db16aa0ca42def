#!/usr/bin/env python3
"""2-hop chain latency: gostg A > gostg B against v2ray A > v2ray B, same run, loopback.

Run:  .venv/bin/python bench/bench_chain.py [--samples 2000] [--out chain.md]

Per chain, two proxy processes: A listens for SOCKS5 and forwards every connection through
B (the hop protocol of the row), B connects to the echo server. The client (this process,
blocking stdlib sockets, TCP_NODELAY) takes one sample at a time, concurrency 1: connect to
A, SOCKS5 greeting + CONNECT (waiting for each reply, as a client does), send 32 bytes, read
the echo; the time to the echo is the sample; then close and wait ``--gap`` so the proxies'
teardown does not overlap the next sample. Samples interleave the chains (one of each in
turn) after ``--warmup`` unmeasured rounds, so load from other processes hits all alike.

Rows (A's -F / v2ray A's outbound):
- socks5:      gostg ``-F socks5://B``      v2ray socks outbound  → B socks inbound
- socks5-pipeline: gostg ``-F socks5://B?pipeline=true`` (greeting and request in one
               write), compared with v2ray's socks5 row
- http:        gostg ``-F http://B``        v2ray http outbound   → B http inbound
- relay:       gostg ``-F relay://B``       v2ray vmess outbound  → B vmess inbound (v2ray's
               own hop protocol: no relay in v2ray; both send the request with the payload)
- socks5+tls:  gostg ``-F socks5+tls://B``  v2ray socks outbound over TLS → B socks inbound, TLS
- direct:      the client straight to the echo server (the floor of the harness)
``gostg-before`` (opt-in, ``--before``): bin/gostg of the checkout in $GOSTG_BEFORE, same rows.
gostg runs at its default log level (info: GOST's lines per connection, to a file); v2ray
with its defaults (access log to stdout, to a file). Everything is on 127.0.0.1.

``--dial-cpu`` measures instead the CPU of ``Router.dial`` in one process (gostg's dialling
code, plus a scripted SOCKS5 hop and a sink in the same process): direct, through a socks5 hop,
and with ``pipeline=true``; with ``--before`` also $GOSTG_BEFORE's code.
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
import uuid

import bench as B   # the relay bench's helpers: ports, echo server, SOCKS5 client

HOST = B.HOST
V2RAY = shutil.which("v2ray") or "/usr/bin/v2ray"
MESSAGE = b"0123456789abcdef" * 2
#: seconds per socket operation of one sample; a sample that takes longer is an error
SAMPLE_TIMEOUT = 5.0
#: row → (gostg -F scheme, query on A's -F)
GOSTG_HOPS = {"socks5": ("socks5", ""), "socks5-pipeline": ("socks5", "?pipeline=true"), "http": ("http", ""),
              "relay": ("relay", ""), "socks5+tls": ("socks5+tls", "")}
#: v2ray's hop for each row: (A outbound protocol, B inbound protocol, over TLS)
V2RAY_HOPS = {"socks5": ("socks", "socks", False), "http": ("http", "http", False),
              "relay": ("vmess", "vmess", False), "socks5+tls": ("socks", "socks", True)}


class Pair:
    """One chain: processes A (and B) and the port the client dials."""

    def __init__(self, impl, hop, procs, port):
        self.impl, self.hop, self.procs, self.port = impl, hop, procs, port

    @property
    def name(self):
        return f"{self.impl} {self.hop}"


def start(cmd, port, log_path, env=None):
    logf = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=B.ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
                            preexec_fn=B.raise_nofile)
    logf.close()
    if not B.wait_port(port, proc):
        raise RuntimeError(f"{cmd[:3]} did not listen on {port}; see {log_path}")
    return proc


def gostg_pair(impl, root, hop, tmp, logs, level):
    """gostg B (-L hop) and A (-L socks5 -F hop); the TLS hop uses the run's certificate."""
    gostg = os.path.join(root, "bin", "gostg")
    pa, pb = B.free_port(), B.free_port()
    scheme, query = GOSTG_HOPS[hop]
    cert = f"?certFile={tmp}/cert.pem&keyFile={tmp}/key.pem" if "tls" in scheme else ""
    extra = ["-C", json.dumps({"log": {"level": level}})] if level else []
    tag = f"{impl}-{hop}".replace("+", "-")
    env = {"HOME": tmp}
    b = start([B.PY, gostg, "-L", f"{scheme}://{HOST}:{pb}{cert}"] + extra, pb, f"{logs}/{tag}-B.log", env)
    a = start([B.PY, gostg, "-L", f"socks5://{HOST}:{pa}", "-F", f"{scheme}://{HOST}:{pb}{query}"] + extra,
              pa, f"{logs}/{tag}-A.log", env)
    return Pair(impl, hop, [a, b], pa)


def v2ray_configs(hop, pa, pb, tmp):
    """(A, B) v2ray 4 JSON configs: A socks inbound → hop outbound; B hop inbound → freedom."""
    out_proto, in_proto, tls = V2RAY_HOPS[hop]
    user = str(uuid.uuid4())
    in_settings = {"socks": {"auth": "noauth", "udp": False}, "http": {},
                   "vmess": {"clients": [{"id": user, "alterId": 0}]}}[in_proto]
    server = {"address": HOST, "port": pb}
    out_settings = {"socks": {"servers": [server]}, "http": {"servers": [server]},
                    "vmess": {"vnext": [dict(server, users=[{"id": user, "alterId": 0, "security": "aes-128-gcm"}])]}
                    }[out_proto]
    inbound = {"listen": HOST, "port": pb, "protocol": in_proto, "settings": in_settings}
    outbound = {"protocol": out_proto, "settings": out_settings}
    if tls:
        inbound["streamSettings"] = {"network": "tcp", "security": "tls", "tlsSettings": {
            "certificates": [{"certificateFile": f"{tmp}/cert.pem", "keyFile": f"{tmp}/key.pem"}]}}
        outbound["streamSettings"] = {"network": "tcp", "security": "tls",
                                      "tlsSettings": {"allowInsecure": True, "serverName": "localhost"}}
    a = {"inbounds": [{"listen": HOST, "port": pa, "protocol": "socks",
                       "settings": {"auth": "noauth", "udp": False}}], "outbounds": [outbound]}
    b = {"inbounds": [inbound], "outbounds": [{"protocol": "freedom"}]}
    return a, b


def v2ray_pair(hop, tmp, logs):
    pa, pb = B.free_port(), B.free_port()
    tag = f"v2ray-{hop}".replace("+", "-")
    procs = []
    for side, cfg, port in zip("BA", reversed(v2ray_configs(hop, pa, pb, tmp)), (pb, pa)):
        path = f"{tmp}/{tag}-{side}.json"
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        procs.append(start([V2RAY, "-config", path], port, f"{logs}/{tag}-{side}.log"))
    return Pair("v2ray", hop, procs, pa)


def make_cert(tmp):
    """One self-signed P-256 certificate for every TLS hop (gostg and v2ray alike)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", f"{tmp}/key.pem",
                    "-out", f"{tmp}/cert.pem"], check=True, capture_output=True, timeout=30)


def sample(pair, echo_port):
    """Seconds from connect to the echo, through ``pair`` (None: straight to the echo server)."""
    t0 = time.perf_counter()
    s = B.open_tunnel("socks5" if pair else "direct", pair.port if pair else 0, echo_port, timeout=SAMPLE_TIMEOUT)
    try:
        s.sendall(MESSAGE)
        if B.recv_exact(s, len(MESSAGE)) != MESSAGE:
            raise ConnectionError("echo mismatch")
        return time.perf_counter() - t0
    finally:
        s.close()


DIAL_CPU = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import gevent
from gevent.server import StreamServer
import gostg
from gostg.core.context import Context

def socks(c, _):   # a SOCKS5 next hop that answers each message (pipelined or not)
    try:
        buf = b""
        while len(buf) < 3:
            buf += c.recv(64) or b"!!!"
        c.sendall(b"\x05\x00")
        while len(buf) < 13:
            buf += c.recv(64) or b"!" * 13
        c.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x01")
        c.recv(64)
    except OSError:
        pass
    finally:
        c.close()

hop = StreamServer(("127.0.0.1", 0), socks); hop.start()
sink = StreamServer(("127.0.0.1", 0), lambda c, _: (c.recv(1), c.close())); sink.start()
node = {"name": "n", "addr": "127.0.0.1:%d" % hop.server_port, "connector": {"type": "socks5"}}
if sys.argv[3] == "pipeline":
    node["connector"]["metadata"] = {"pipeline": True}
svc = {"addr": "127.0.0.1:0", "handler": {"type": "socks5"}, "listener": {"type": "tcp"}}
g = gostg.Gost({"services": [dict(svc, name="direct"), dict(svc, name="chain", handler={"type": "socks5", "chain": "c"})],
                "chains": [{"name": "c", "hops": [{"name": "h", "nodes": [node]}]}], "log": {"level": "error"}})
# unpatched, this script runs gevent's hub itself: started from a greenlet gostg sees that (and
# an older checkout, --before, has no start(thread=False))
gevent.spawn(g.start).get()
service = g.service(sys.argv[2])
router = service.handler.router

def one():
    ctx = Context(service.name, "127.0.0.1:1", "127.0.0.1:2", service.log, service.stats)
    router.dial("tcp", "127.0.0.1:%d" % sink.server_port, ctx).close()
    gevent.sleep(0)   # let the sink accept (a dial that never waits would starve it)

for _ in range(300):
    one()
t0 = time.process_time()
for _ in range(int(sys.argv[4])):
    one()
print((time.process_time() - t0) / int(sys.argv[4]) * 1e6)
g.stop()
"""


def dial_cpu(args):
    """CPU µs per Router.dial in one process (next hop and sink in-process too): direct, through
    a socks5 hop, and with pipeline=true; this checkout and, with --before, $GOSTG_BEFORE."""
    roots = [("gostg", B.ROOT)] + ([("gostg-before", B.BEFORE_ROOT)] if args.before else [])
    cases = [("direct", "direct", ""), ("socks5 hop", "chain", ""), ("socks5 hop, pipeline=true", "chain", "pipeline")]
    res = {}
    for rnd in range(3):   # interleaved rounds; the median is shown
        for label, root in roots:
            for case, svc, mode in cases:
                if mode and label != "gostg":
                    continue
                out = subprocess.run([B.PY, "-c", DIAL_CPU, root, svc, mode, str(args.dials)], capture_output=True,
                                     text=True, timeout=600, cwd=root)
                res.setdefault((case, label), []).append(float(out.stdout.split()[-1]))
    lines = ["| Router.dial | " + " | ".join(lbl for lbl, _ in roots) + " |", "|---|" + "---:|" * len(roots)]
    for case, _, _ in cases:
        cells = [f"{statistics.median(res[(case, lbl)]):.0f}" if (case, lbl) in res else "–" for lbl, _ in roots]
        lines.append(f"| {case}: CPU µs per dial | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\n- {args.dials} dials per run, 3 interleaved runs, median; the "
                                 "scripted hop and the sink run in the same process and are counted too\n")


def quantiles(xs):
    xs = sorted(xs)

    def q(p):
        return xs[min(len(xs) - 1, int(p * len(xs)))]
    return {"p50": statistics.median(xs), "p90": q(0.90), "p99": q(0.99), "max": xs[-1]}


def report(res, pairs, args, env):
    ms = 1e3
    lines = ["| chain | p50 ms | p90 ms | p99 ms | max ms | CPU µs/conn (A+B) | errors | p50 / v2ray | p99 / v2ray |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in pairs:
        name = p.name if p else "direct (no proxy)"
        r = res[name]
        if not r["t"]:
            lines.append(f"| {name} | – | – | – | – | – | {r['err']} | | |")
            continue
        q = quantiles(r["t"])
        peer = res.get(f"v2ray {p.hop.replace('-pipeline', '')}") if p and p.impl != "v2ray" else None
        ratios = ["", ""]
        if peer and peer["t"]:
            pq = quantiles(peer["t"])
            ratios = [f"{q[k] / pq[k]:.2f}×" for k in ("p50", "p99")]
        lines.append(f"| {name} | {q['p50'] * ms:.2f} | {q['p90'] * ms:.2f} | {q['p99'] * ms:.2f} | "
                     f"{q['max'] * ms:.2f} | {r['cpu'] * 1e6 / len(r['t']):.0f} | {r['err']} | " + " | ".join(ratios) + " |")
    notes = [f"- {args.samples} samples per chain after {args.warmup} warm-up rounds, interleaved, "
             f"concurrency 1, {len(MESSAGE)}-byte echo, {args.gap * 1e3:g} ms gap after each close",
             f"- gostg log level: {args.level or 'default (info)'}; v2ray: {env['v2ray']}; "
             f"Python {env['python']}, {os.cpu_count()} CPUs (shared with the client and echo server)",
             f"- gostg code: sha256 {env['code'][0]}, newest file {env['code'][1]} UTC",
             "- CPU µs/conn: utime+stime of both chain processes over the measured rounds / samples "
             "(/proc, 10 ms ticks: read it as a trend); the direct row has no proxy"]
    if args.before:
        notes.append(f"- gostg-before: {B.BEFORE_ROOT}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2000, help="measured samples per chain")
    ap.add_argument("--warmup", type=int, default=200, help="unmeasured rounds first")
    ap.add_argument("--gap", type=float, default=0.002, help="seconds to wait after each close")
    ap.add_argument("--hops", default=",".join(GOSTG_HOPS), help="comma list of rows (socks5,http,relay,socks5+tls)")
    ap.add_argument("--impls", default="gostg,v2ray", help="comma list: gostg, v2ray")
    ap.add_argument("--before", action="store_true", help="add gostg-before ($GOSTG_BEFORE's bin/gostg)")
    ap.add_argument("--level", default="", help="gostg log level (default: gostg's own, info)")
    ap.add_argument("--out", default="chain.md", help="file name under bench/out/")
    ap.add_argument("--dial-cpu", action="store_true",
                    help="instead: CPU per Router.dial in one process (direct, socks5 hop, pipeline)")
    ap.add_argument("--dials", type=int, default=3000, help="dials per --dial-cpu run")
    args = ap.parse_args()
    if args.dial_cpu:
        text = dial_cpu(args)
        print(text)
        with open(os.path.join(B.OUT, args.out), "w") as f:
            f.write(text)
        return
    hops = [h for h in args.hops.split(",") if h]
    impls = [i for i in args.impls.split(",") if i] + (["gostg-before"] if args.before else [])
    logs = os.path.join(B.OUT, "logs", os.path.splitext(args.out)[0])
    os.makedirs(logs, exist_ok=True)
    B.raise_nofile()
    tmp = tempfile.mkdtemp(prefix="bench-chain-")
    env = {"python": sys.version.split()[0], "code": B.code_fingerprint(),
           "v2ray": subprocess.run([V2RAY, "-version"], capture_output=True, text=True).stdout.split("\n")[0]}
    procs, pairs = [], [None]
    try:
        echo_port = B.free_port()
        procs.append(start([B.PY, os.path.join(B.HERE, "bench.py"), "_echo", str(echo_port)], echo_port,
                           f"{logs}/echo.log"))
        if any("tls" in h for h in hops):
            make_cert(tmp)
        for hop in hops:
            for impl in impls:
                if impl != "gostg" and hop not in (V2RAY_HOPS if impl == "v2ray" else ()) and GOSTG_HOPS[hop][1]:
                    continue   # v2ray's row is the plain one; gostg-before may not have the knob
                if impl == "v2ray":
                    pair = v2ray_pair(hop, tmp, logs)
                else:
                    root = B.BEFORE_ROOT if impl == "gostg-before" else B.ROOT
                    pair = gostg_pair(impl, root, hop, tmp, logs, args.level)
                procs += pair.procs
                pairs.append(pair)
        res = {p.name if p else "direct (no proxy)": {"t": [], "err": 0, "cpu": 0.0} for p in pairs}
        for rnd in range(args.warmup + args.samples):
            if rnd == args.warmup:
                cpu0 = {p.name: sum(B.cpu_seconds(x.pid) for x in p.procs) for p in pairs if p}
            for p in pairs:
                r = res[p.name if p else "direct (no proxy)"]
                try:
                    t = sample(p, echo_port)
                except OSError as exc:
                    r["err"] += 1
                    if r["err"] <= 3:
                        print(f"{p.name if p else 'direct'}: {exc}", file=sys.stderr)
                    continue
                finally:
                    time.sleep(args.gap)
                if rnd >= args.warmup:
                    r["t"].append(t)
        for p in pairs[1:]:
            res[p.name]["cpu"] = sum(B.cpu_seconds(x.pid) for x in p.procs) - cpu0[p.name]
        text = report(res, pairs, args, env)
        print(text)
        with open(os.path.join(B.OUT, args.out), "w") as f:
            f.write(text)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
