"""Out of file descriptors: a listener that cannot accept says so once per burst (a structured
warning, no Python traceback), backs off, and serves again once descriptors are free."""
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time

from .helpers import GOSTG, Echo, free_port, wait_port

NOFILE = 48          # gostg needs ~10 descriptors of its own
CLIENTS = 120        # far more than it can hold


def _limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _socks5_echo(port, echo_port, payload=b"ping"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"\x05\x01\x00")
        assert c.recv(2) == b"\x05\x00"
        c.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo_port))
        rep = b""
        while len(rep) < 10:
            rep += c.recv(10 - len(rep))
        assert rep[1] == 0, rep
        c.sendall(payload)
        assert c.recv(64) == payload


def test_emfile_one_warning_per_burst_and_recovery():
    port = free_port()
    logf = tempfile.NamedTemporaryFile(prefix="gostg-emfile-", suffix=".log")
    proc = subprocess.Popen([sys.executable, GOSTG, "-L", f"socks5://127.0.0.1:{port}"], stdout=logf,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_limit)
    clients = []
    try:
        with Echo() as echo:
            wait_port(port, proc=proc)
            for _ in range(CLIENTS):   # idle clients: each holds one descriptor in gostg
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(2.5)            # a burst of failed accepts, over more than one warn period
            assert proc.poll() is None
            for c in clients:
                c.close()
            clients = []
            deadline = time.monotonic() + 15
            while True:                # the backlog drains; then the proxy serves again
                try:
                    _socks5_echo(port, echo.port)
                    break
                except (OSError, AssertionError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            _socks5_echo(port, echo.port, b"again")
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        proc.wait(timeout=10)
    log = open(logf.name, errors="replace").read()
    assert "Traceback" not in log, log[-3000:]
    warnings = [ln for ln in log.splitlines() if "too many open files" in ln]
    assert warnings, log[-3000:]
    assert re.search(r'"level": "warning".*accept: too many open files \(EMFILE\), backing off', warnings[0])
    assert len(warnings) <= 8, "\n".join(warnings)
