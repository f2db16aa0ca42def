"""What Prometheus metrics cost a connection, measured in one process.

Two SOCKS5 services of one embedded gostg, metrics on for one and off for the other (same heap,
same process), a client in the same process making SOCKS5 connect + 100 B echo + close; the
rounds alternate between the two and the process CPU per connection is compared. On a shared
box the cross-process ``bench.py --proxies gostg,gostg-metrics`` swings by tens of µs per round;
this pairs the two under the same load and resolves the few µs the metrics add.

    .venv/bin/python bench/bench_metrics.py [--conns 2000] [--rounds 6] [--conc 20]
"""
import gevent.monkey

gevent.monkey.patch_all(thread=False)

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gostg import Gost  # noqa: E402
from gostg.observe import metrics  # noqa: E402


def echo_server():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(512)

    def serve(c):
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)

    def accept():
        while True:
            c, _ = s.accept()
            gevent.spawn(serve, c)
    gevent.spawn(accept)
    return s.getsockname()[1]


def one(proxy, target):
    c = socket.create_connection(("127.0.0.1", proxy))
    with c:
        c.sendall(b"\x05\x01\x00")
        c.recv(2)
        c.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
        c.recv(10)
        c.sendall(b"x" * 100)
        n = 0
        while n < 100:
            n += len(c.recv(100))


def cpu_per_conn(proxy, target, conns, conc):
    """→ process CPU µs per connection (client and proxy together)."""
    def worker(k):
        for _ in range(k):
            one(proxy, target)
    t = time.process_time()
    gevent.joinall([gevent.spawn(worker, conns // conc) for _ in range(conc)])
    return (time.process_time() - t) / (conns // conc * conc) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=2000, help="connections per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--conc", type=int, default=20, help="concurrent clients")
    args = ap.parse_args()
    target = echo_server()
    ports = {}
    for mode in ("off", "on"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports[mode] = s.getsockname()[1]
    g = Gost({"services": [{"name": mode, "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5"}}
                           for mode, port in ports.items()], "log": {"level": "error"}}).start()
    metrics.enable()
    g.services["off"].meter = None   # metrics on for the process, not counted for this service
    assert g.services["on"].meter is not None
    for mode in ("off", "on"):       # warm-up
        cpu_per_conn(ports[mode], target, args.conns // 2, args.conc)
    res = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            res[mode].append(cpu_per_conn(ports[mode], target, args.conns, args.conc))
    g.stop()
    for mode, v in res.items():
        print(f"metrics {mode:3}: CPU µs/conn per round {[round(x) for x in v]}, median {statistics.median(v):.1f}")
    diff = statistics.median([b - a for a, b in zip(res["off"], res["on"])])
    print(f"metrics on − off: {diff:+.1f} µs per connection "
          "(median of paired rounds; client and proxy in one process)")


if __name__ == "__main__":
    main()
