#!/usr/bin/env python3
"""UDP round-trip rate: gostg vs peers, side by side on loopback.

Run:  .venv/bin/python bench/bench_udp.py [--duration 3] [--window 1,32] [--size 64,1200]

Rows (each a path from this client to a UDP echo server on 127.0.0.1):
- ``forward``:  gostg ``-L udp://:P/echo?keepAlive=true``  vs  socat ``UDP-LISTEN … UDP:echo``
- ``socks5``:   SOCKS5 UDP ASSOCIATE datagrams, after the TCP associate: gostg
                ``socks5://?udp=true`` vs Dante ``danted`` 1.4 (C; apt dante-server). pproxy 2.7.9's
                UDP server does not start on Python 3.11 (``'…DatagramTransport' object has no
                attribute 'sockets'``), so it is not a peer here.
- ``ss``:       ``ssu`` AEAD (chacha20-ietf-poly1305) datagrams made by this client with
                gostg's own codec: gostg ``ssu://`` vs ``ss-server -u`` (shadowsocks-libev)
Each cell: round trips per second for ``--duration`` s with ``window`` datagrams in flight
(1 = latency-bound ping-pong), median of ``--repeat`` runs; the ratio column is gostg/peer.
The echo server is a separate process (blocking socket loop). Peers missing on this machine
are reported and skipped. Everything listens on 127.0.0.1; every loop is bounded by time.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PY = VENV_PY if os.path.exists(VENV_PY) else sys.executable
HOST = "127.0.0.1"
SS_METHOD, SS_PASSWORD = "chacha20-ietf-poly1305", "bench-secret"



DANTE_CONF = """logoutput: {log}
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect udpassociate udpreply }}
"""


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def echo_main(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    buf = bytearray(65536)
    while True:
        n, peer = s.recvfrom_into(buf)
        s.sendto(memoryview(buf)[:n], peer)


def start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def wait_tcp(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Path:
    """How the client reaches the echo: ``relay`` = (host, port) to send to, ``wrap``/``unwrap``
    per datagram, ``setup()`` for a TCP associate (kept open while measuring)."""

    def __init__(self, relay, wrap=lambda b: b, unwrap=lambda b: b, setup=None, fresh=False):
        self.relay, self.wrap, self.unwrap, self.setup = relay, wrap, unwrap, setup
        #: wrap every datagram anew (ss: a repeated salt is a replay, and ss-server drops it)
        self.fresh = fresh


def socks5_associate(port):
    c = socket.create_connection((HOST, port), timeout=5)
    c.sendall(b"\x05\x01\x00")
    assert c.recv(2) == b"\x05\x00"
    c.sendall(b"\x05\x03\x00\x01" + socket.inet_aton("0.0.0.0") + b"\0\0")
    rep = c.recv(10)
    assert rep[1] == 0, rep
    return c, (socket.inet_ntoa(rep[4:8]), int.from_bytes(rep[8:10], "big"))


def rate(path, size, window, duration):
    """Round trips per second with ``window`` datagrams in flight for ``duration`` s."""
    # one client socket per path: a SOCKS5 association belongs to one client UDP port
    if getattr(path, "sock", None) is None:
        path.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        path.sock.connect(path.relay)
        path.sock.settimeout(1.0)
    s = path.sock
    payload = os.urandom(size)
    pkt = path.wrap(payload)
    # warm-up: the first datagram opens the session (and may wait for a dial)
    for _ in range(50):
        s.send(path.wrap(payload) if path.fresh else pkt)
        try:
            path.unwrap(s.recv(65536))
            break
        except socket.timeout:
            continue
    else:
        raise RuntimeError("no answer through the path")
    done = lost = 0
    inflight = 0
    t0 = time.monotonic()
    end = t0 + duration
    while True:
        while inflight < window:
            s.send(path.wrap(payload) if path.fresh else pkt)
            inflight += 1
        try:
            path.unwrap(s.recv(65536))
            done += 1
            inflight -= 1
        except socket.timeout:
            lost += inflight     # a lost datagram: refill the window
            inflight = 0
        if time.monotonic() >= end:
            break
    el = time.monotonic() - t0
    # drain answers still in flight so the next cell starts clean
    s.settimeout(0.2)
    try:
        for _ in range(window * 4):
            s.recv(65536)
    except OSError:
        pass
    s.settimeout(1.0)
    return done / el, lost


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--window", default="1,32")
    ap.add_argument("--size", default="64,1200")
    ap.add_argument("--rows", default="forward,socks5,ss")
    ap.add_argument("_echo", nargs="?")
    a = ap.parse_args()
    if a._echo:
        return echo_main(int(a._echo))
    logdir = os.path.join(HERE, "out", "logs", "udp")
    os.makedirs(logdir, exist_ok=True)
    log = open(os.path.join(logdir, "procs.log"), "w")
    procs = []
    quiet = ["-C", '{"log":{"level":"error"}}']
    gostg = [PY, os.path.join(ROOT, "bin", "gostg")]
    echo_port = free_port()
    echo = f"{HOST}:{echo_port}"
    procs.append(start([PY, __file__, str(echo_port)], log))
    rows = {}
    try:
        wanted = a.rows.split(",")
        if "forward" in wanted:
            gp, sp = free_port(), free_port()
            procs.append(start(gostg + ["-L", f"udp://{HOST}:{gp}/{echo}?keepAlive=true&ttl=60s"] + quiet, log))
            if shutil.which("socat"):
                procs.append(start(["socat", f"UDP4-LISTEN:{sp},bind={HOST},reuseaddr,fork", f"UDP4:{echo}"], log))
                rows["forward"] = (Path((HOST, gp)), Path((HOST, sp)), "socat")
            else:
                rows["forward"] = (Path((HOST, gp)), None, "socat (missing)")
        if "socks5" in wanted:
            from gostg.protocols import socks5
            gp, dp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
            procs.append(start(gostg + ["-L", f"socks5://{HOST}:{gp}?udp=true"] + quiet, log))
            wrap = lambda b: socks5.encode_udp_datagram(HOST, echo_port, b)  # noqa: E731
            unwrap = lambda b: socks5.parse_udp_datagram(b)[2]  # noqa: E731
            danted = shutil.which("danted") or (os.path.exists("/usr/sbin/danted") and "/usr/sbin/danted")
            if danted:
                conf = os.path.join(logdir, "danted.conf")
                with open(conf, "w") as f:
                    f.write(DANTE_CONF.format(port=dp, log=os.path.join(logdir, "danted.log")))
                procs.append(start([danted, "-f", conf, "-N", "1"], log))
            rows["socks5"] = ("assoc", gp, dp if danted else None, wrap, unwrap)
        if "ss" in wanted:
            from gostg.protocols import shadowsocks as ss
            cipher = ss.Cipher.new(SS_METHOD, SS_PASSWORD)
            gp, sp = free_port(), free_port()
            procs.append(start(gostg + ["-L", f"ssu://{SS_METHOD}:{SS_PASSWORD}@{HOST}:{gp}"] + quiet, log))
            wrap = lambda b: ss.pack_udp(cipher, HOST, echo_port, b)  # noqa: E731
            unwrap = lambda b: ss.unpack_udp(cipher, b)[2]  # noqa: E731
            if shutil.which("ss-server"):
                procs.append(start(["ss-server", "-s", HOST, "-p", str(sp), "-k", SS_PASSWORD,
                                    "-m", SS_METHOD, "-U"], log))
                rows["ss"] = (Path((HOST, gp), wrap, unwrap, fresh=True), Path((HOST, sp), wrap, unwrap, fresh=True),
                              "ss-server")
            else:
                rows["ss"] = (Path((HOST, gp), wrap, unwrap, fresh=True), None, "ss-server (missing)")
        time.sleep(1.5)
        ctls = []
        if "socks5" in rows:
            _, gp, dp, wrap, unwrap = rows["socks5"]
            paths = []
            for port in (gp, dp):
                if port is None:
                    paths.append(None)
                    continue
                wait_tcp(port)
                ctl, relay = socks5_associate(port)
                ctls.append(ctl)
                paths.append(Path(relay, wrap, unwrap))
            rows["socks5"] = (paths[0], paths[1], "danted" if dp else "danted (missing)")
        print(f"UDP round trips/s, median of {a.repeat} × {a.duration:g} s (window = datagrams in flight)\n")
        print("| path | size | window | gostg | peer | peer rt/s | gostg/peer |")
        print("|---|---|---|---|---|---|---|")
        for name, (gpath, ppath, pname) in rows.items():
            for size in [int(x) for x in a.size.split(",")]:
                for window in [int(x) for x in a.window.split(",")]:
                    g, p = [], []
                    for _ in range(a.repeat):
                        g.append(rate(gpath, size, window, a.duration)[0])
                        if ppath is not None:
                            p.append(rate(ppath, size, window, a.duration)[0])
                    gm = statistics.median(g)
                    pm = statistics.median(p) if p else None
                    ratio = f"{gm / pm:.2f}×" if pm else "–"
                    print(f"| {name} | {size} B | {window} | {gm:,.0f} | {pname} | "
                          f"{'–' if pm is None else f'{pm:,.0f}'} | {ratio} |", flush=True)
        for c in ctls:
            c.close()
    finally:
        for p in procs:
            stop(p)
        log.close()


if __name__ == "__main__":
    main()
