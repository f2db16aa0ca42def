"""A real ``redis-server`` (apt) on a free loopback port, started by the test and stopped by PID
(restartable on the same port), and a SOCKS5 probe that says what gostg answered."""
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from .helpers import free_port, stop_process, wait_port

REDIS = shutil.which("redis-server")


class RedisServer:
    """redis-server on 127.0.0.1 without persistence; ``stop``/``start`` keep the port (a restart
    mid-test), and as a context manager it is started and stopped around the block."""

    def __init__(self, tmp_path, port=None):
        need_redis()
        self.dir = tmp_path
        self.port = port or free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, timeout=5)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def client(self, db=0):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, decode_responses=True)


def need_redis():
    if REDIS is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/install installs it)")
        pytest.skip("redis-server is not installed (apt install redis-server)")


@pytest.fixture
def redis_srv(tmp_path):
    need_redis()
    srv = RedisServer(tmp_path).start()
    try:
        yield srv
    finally:
        srv.stop()


def socks5(port, host="127.0.0.1", dport=80, user=None, password=None, timeout=3):
    """One SOCKS5 CONNECT through 127.0.0.1:port → the reply code (0 = connected), or None when
    gostg closed the connection without a reply (admission, auth failure)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    with s:
        try:
            if user is None:
                s.sendall(b"\x05\x01\x00")
            else:
                s.sendall(b"\x05\x01\x02")
            m = s.recv(2)
            if len(m) < 2:
                return None
            if m[1] == 2:
                u, p = user.encode(), (password or "").encode()
                s.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
                a = s.recv(2)
                if len(a) < 2 or a[1] != 0:
                    return None
            s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", dport))
            rep = s.recv(10)
        except OSError:
            return None
        return rep[1] if len(rep) >= 2 else None


def until(pred, timeout=5.0, step=0.02):
    """Poll ``pred`` until true (bounded) → its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def socks_svc(name, port, **extra):
    return {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5"}, "listener": {"type": "tcp"},
            **extra}
