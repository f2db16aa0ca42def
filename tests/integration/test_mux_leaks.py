"""Multiplexed sessions (mtls, mws; mtcp with smux v2 and with yamux) never leak: after
hundreds of tunnels over one session both gostg processes come back to their file descriptor
count, and a client whose server dies and comes back (four times) holds no more descriptors
than before: dead sessions are dropped."""
import os
import signal
import time

import pytest

from .helpers import Echo, Gost, free_port
from .peers import fd_baseline, fd_settle, socks5_open
from .test_leaks import SLACK, one_tunnel, run_batches

QUIET = ("-C", '{"log":{"level":"error"}}')


def _tunnel_when_ready(front, echo, attempts=100):
    """The first tunnel after a server restart (the client notices the dead session on use)."""
    last = None
    for _ in range(attempts):
        try:
            return one_tunnel(socks5_open, front, echo.port, b"ready?")
        except (AssertionError, OSError) as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"no tunnel after the server restarted: {last!r}")


@pytest.mark.parametrize("transport,query", [("mtls", ""), ("mws", ""), ("mtcp", ""), ("mtcp", "?mux.type=yamux")])
def test_mux_tunnels_and_server_restarts_leave_no_fds(transport, query, tmp_path):
    s, front = free_port(), free_port()
    env = {"HOME": str(tmp_path)}
    server_args = ("-L", f"socks5+{transport}://127.0.0.1:{s}{query}", *QUIET)
    with Echo() as echo, \
            Gost("-L", f"socks5://127.0.0.1:{front}", "-F", f"socks5+{transport}://127.0.0.1:{s}{query}", *QUIET,
                 ports=[front], env=env, cwd=tmp_path) as client:
        with Gost(*server_args, ports=[s], env=env, cwd=tmp_path) as server:
            for _ in range(5):   # warm up: the session and what stays for the process lifetime
                one_tunnel(socks5_open, front, echo.port, b"w" * 64)
            c0, s0 = fd_baseline(client.proc.pid), fd_baseline(server.proc.pid)
            payload = os.urandom(256)
            errors = run_batches(lambda i: one_tunnel(socks5_open, front, echo.port, payload), 300)
            assert not errors, errors[:5]
            c1 = fd_settle(client.proc.pid, c0 + SLACK)
            s1 = fd_settle(server.proc.pid, s0 + SLACK)
            assert c1 <= c0 + SLACK and s1 <= s0 + SLACK, f"client {c0}->{c1}, server {s0}->{s1}"
            server.stop(sig=signal.SIGKILL)
        for _ in range(3):
            with Gost(*server_args, ports=[s], env=env, cwd=tmp_path) as server:
                _tunnel_when_ready(front, echo)
                server.stop(sig=signal.SIGKILL)
        with Gost(*server_args, ports=[s], env=env, cwd=tmp_path):
            _tunnel_when_ready(front, echo)
            c2 = fd_settle(client.proc.pid, c0 + SLACK)
            assert c2 <= c0 + SLACK, f"client fds {c0} -> {c2} after 4 server restarts"
        assert client.proc.poll() is None
