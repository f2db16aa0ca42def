#!/usr/bin/env python3
"""Reverse tunnels side by side: gostg's `tunnel` (plain and over TLS), gostg's rtcp through a
relay server, and OpenSSH's `ssh -R`, all publishing the same nginx origin, in one run.

Run:  .venv/bin/python bench/bench_tunnel.py [--duration 5] [--repeat 3] [--conns 50] [--size 256MiB]

Each column is a server process and a client process (the client dials out to the server and the
server publishes the origin on a public port), as a user would run them:
- gostg tunnel:     server `-L tunnel://:T?entrypoint=:E&tunnel=bench.local:<id>`,
                    client `-L rtcp://:0/ORIGIN -F tunnel://:T?tunnel.id=<id>`
- gostg tunnel+tls: the same with `-L tunnel+tls://` and `-F tunnel+tls://`
- gostg rtcp:       server `-L relay://:T?bind=true`, client `-L rtcp://:E/ORIGIN -F relay://:T`
- ssh -R:           sshd on loopback, `ssh -N -R E:ORIGIN` (cipher aes128-gcm, like TLS's)
Measures, interleaved over rounds (median reported): wrk keep-alive requests/s (each wrk
connection is one stream through the tunnel), wrk with `Connection: close` (a new stream per
request), and one curl download of a --size file (MB/s). CPU is server + client process time per
request. nginx (the origin) and wrk/curl are the harness and run on the other core when there are
two. With $GOSTG_BEFORE naming another checkout (e.g. a `git worktree add --detach` of main), each
gostg column also runs from there, as "<column> before", interleaved with this checkout's.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402
import bench_http as H  # noqa: E402  (nginx config, wrk runner, CPU pinning)

HOST = "127.0.0.1"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SSH = shutil.which("ssh")
CURL = shutil.which("curl")
TID = str(uuid.UUID(int=0x4d21094eb74c491686c1d9fa36ea677b))


def gostg(*args):
    return [B.PY, os.path.join(B.ROOT, "bin", "gostg"), *args]


def with_before(cols, before):
    """Each gostg column twice: from the checkout ``before`` ("… before") and from this one."""
    def at(root, make):
        def f(tmp):
            old, B.ROOT = B.ROOT, root
            try:
                return make(tmp)
            finally:
                B.ROOT = old
        return f
    out = {f"{name} before": at(before, make) for name, make in cols.items() if name.startswith("gostg")}
    out.update(cols)
    return out


def columns(origin):
    """name → function(tmp) returning (public port, [argv, argv]) of the server and client."""
    def tunnel(scheme):
        def f(tmp):
            t, e = B.free_port(), B.free_port()
            server = gostg("-L", f"{scheme}://{HOST}:{t}?entrypoint={HOST}:{e}&tunnel=bench.local:{TID}")
            client = gostg("-L", f"rtcp://:0/{HOST}:{origin}", "-F", f"{scheme}://{HOST}:{t}?tunnel.id={TID}")
            return e, [server, client]
        return f

    def rtcp(tmp):
        t, e = B.free_port(), B.free_port()
        return e, [gostg("-L", f"relay://{HOST}:{t}?bind=true"),
                   gostg("-L", f"rtcp://{HOST}:{e}/{HOST}:{origin}", "-F", f"relay://{HOST}:{t}")]

    def ssh(tmp):
        s, e = B.free_port(), B.free_port()
        key, host = os.path.join(tmp, "id"), os.path.join(tmp, "host")
        for k in (key, host):
            if not os.path.exists(k):
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k], check=True)
        shutil.copy(key + ".pub", os.path.join(tmp, "authorized_keys"))
        conf = os.path.join(tmp, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"Port {s}\nListenAddress {HOST}\nHostKey {host}\nPermitRootLogin prohibit-password\n"
                    f"AuthorizedKeysFile {tmp}/authorized_keys\nStrictModes no\nUsePAM no\n"
                    f"PasswordAuthentication no\nAllowTcpForwarding yes\nGatewayPorts no\n"
                    f"PidFile {tmp}/sshd.pid\nCiphers aes128-gcm@openssh.com\n")
        os.makedirs("/run/sshd", exist_ok=True)
        server = [SSHD, "-D", "-e", "-f", conf]
        client = [SSH, "-N", "-i", key, "-p", str(s), "-c", "aes128-gcm@openssh.com",
                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes",
                  "-R", f"{HOST}:{e}:{HOST}:{origin}", f"root@{HOST}"]
        return e, [server, client], s

    out = {"gostg tunnel": tunnel("tunnel"), "gostg tunnel+tls": tunnel("tunnel+tls"),
           "gostg rtcp": rtcp}
    if SSH and os.path.exists(SSHD):
        out["ssh -R"] = ssh
    return out


def wait_http(port, host, timeout=20.0):
    """The public port answers only once the client side has joined: GET until 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "2",
                            "-H", f"Host: {host}", f"http://{HOST}:{port}/small"], capture_output=True, text=True)
        if r.stdout == "200":
            return True
        time.sleep(0.2)
    return False


def start_column(name, make, tmp, logdir, proxy_cpus):
    made = make(tmp)
    port, argvs = made[0], made[1]
    procs = []
    for i, argv in enumerate(argvs):
        log = open(os.path.join(logdir, f"{name.replace(' ', '_')}-{i}.log"), "wb")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=B.ROOT,
                                      preexec_fn=H.pin(proxy_cpus), env=dict(os.environ, PYTHONUNBUFFERED="1")))
        if i == 0 and len(made) > 2:  # sshd: wait for its own port before the client dials
            B.wait_port(made[2], procs[0])
        time.sleep(0.3 if i == 0 else 0)
    if not wait_http(port, "bench.local"):
        for p in procs:
            B.terminate(p)
        raise RuntimeError(f"{name}: public port {port} never answered; logs in {logdir}")
    return port, procs


def tree(pid):
    """pid and its descendants: sshd does its work in a forked child per connection."""
    out, todo = [], [pid]
    while todo and len(out) < 1000:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu(procs):
    """CPU seconds of the columns' processes and their children (a child that exits in between
    is missed: sshd's per-connection children live as long as the ssh session here)."""
    total = 0.0
    for p in procs:
        for pid in tree(p.pid):
            try:
                total += B.cpu_seconds(pid)
            except OSError:
                pass
    return total


def wrk_lua(tmp, port, close):
    path = os.path.join(tmp, f"wrk-{port}-{int(close)}.lua")
    with open(path, "w") as f:
        f.write(f'wrk.path = "/small"\nwrk.headers["Host"] = "bench.local"\n'
                + ('wrk.headers["Connection"] = "close"\n' if close else ""))
    return path


def measure_wrk(procs, port, lua, args, other):
    c0 = cpu(procs)
    res = H.run_wrk(port, lua, args.duration, args.conns, other)
    res["cpu_us"] = (cpu(procs) - c0) * 1e6 / max(res["requests"], 1)
    return res


def measure_bulk(procs, port, size, other):
    c0, t0 = cpu(procs), time.monotonic()
    r = subprocess.run([CURL, "-s", "-o", "/dev/null", "-w", "%{size_download}", "-H", "Host: bench.local",
                        f"http://{HOST}:{port}/big"], capture_output=True, text=True, timeout=300,
                       preexec_fn=H.pin(other))
    dt = time.monotonic() - t0
    if int(r.stdout or 0) != size:
        raise RuntimeError(f"bulk download got {r.stdout} of {size} bytes")
    return {"mbps": size / dt / 1e6, "cpu_s_per_gib": (cpu(procs) - c0) * (1 << 30) / size}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", default="256MiB")
    ap.add_argument("--only", default="", help="comma-separated column names")
    args = ap.parse_args()
    size = B.parse_size(args.size)
    for tool in (H.NGINX, H.WRK, CURL):
        if not tool or not os.path.exists(tool):
            sys.exit("nginx, wrk and curl are needed (apt: nginx-light, wrk, curl)")
    B.raise_nofile()
    tmp = tempfile.mkdtemp(prefix="gostg-bench-tunnel-")
    os.chmod(tmp, 0o755)
    logdir = os.path.join(tmp, "logs")
    os.makedirs(os.path.join(tmp, "www"))
    os.makedirs(logdir)
    with open(os.path.join(tmp, "www", "small"), "wb") as f:
        f.write(H.BODY)
    with open(os.path.join(tmp, "www", "big"), "wb") as f:
        f.truncate(size)
    proxy_cpus, other = H.cpu_sets()
    origin = B.free_port()
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(H.NGINX_CONF.format(dir=tmp, port=origin))
    nginx = H.start([H.NGINX, "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
                    open(os.path.join(logdir, "nginx.log"), "wb"), other, origin)
    cols = columns(origin)
    if os.environ.get("GOSTG_BEFORE"):
        cols = with_before(cols, os.path.abspath(os.environ["GOSTG_BEFORE"]))
    if args.only:
        cols = {k: v for k, v in cols.items() if k in args.only.split(",")}
    results = {name: {"ka": [], "close": [], "bulk": []} for name in cols}
    print(f"# bench_tunnel: {len(cols)} columns, {args.repeat} rounds, c={args.conns}, {args.duration}s, "
          f"bulk {args.size}; logs {logdir}", flush=True)
    try:
        for rnd in range(args.repeat):
            for name, make in cols.items():
                port, procs = start_column(name, make, tmp, logdir, proxy_cpus)
                try:
                    ka = measure_wrk(procs, port, wrk_lua(tmp, port, False), args, other)
                    close = measure_wrk(procs, port, wrk_lua(tmp, port, True), args, other)
                    bulk = measure_bulk(procs, port, size, other)
                finally:
                    for p in reversed(procs):
                        B.terminate(p)
                for k, v in (("ka", ka), ("close", close), ("bulk", bulk)):
                    results[name][k].append(v)
                print(f"  round {rnd + 1} {name:24s} keep-alive {ka['rps']:8.0f} req/s {ka['cpu_us']:6.1f} µs"
                      f" | close {close['rps']:7.0f} req/s {close['cpu_us']:6.1f} µs {close['errors']}"
                      f" | bulk {bulk['mbps']:7.1f} MB/s {bulk['cpu_s_per_gib']:.2f} CPU-s/GiB", flush=True)
    finally:
        B.terminate(nginx)
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    print(f"\n| column | keep-alive req/s | CPU µs/req | new stream per request, req/s | CPU µs/req"
          f" | 1 stream MB/s | CPU s/GiB |\n|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {med(r['ka'], 'rps'):,.0f} | {med(r['ka'], 'cpu_us'):.0f}"
              f" | {med(r['close'], 'rps'):,.0f} | {med(r['close'], 'cpu_us'):.0f}"
              f" | {med(r['bulk'], 'mbps'):,.0f} | {med(r['bulk'], 'cpu_s_per_gib'):.2f} |")
    if "ssh -R" in results:
        print("\nratios against ssh -R (req/s, higher is better):")
        for name, r in results.items():
            s = results["ssh -R"]
            print(f"  {name}: keep-alive {med(r['ka'], 'rps') / med(s['ka'], 'rps'):.2f}x,"
                  f" new stream {med(r['close'], 'rps') / med(s['close'], 'rps'):.2f}x,"
                  f" bulk {med(r['bulk'], 'mbps') / med(s['bulk'], 'mbps'):.2f}x")


if __name__ == "__main__":
    main()
