"""TCP port forwarding (-L tcp://…/targets): target selection and failover, port ranges,
forwarding through a chain, big payloads and half-close, seen from a plain TCP client."""
import hashlib
import random
import socket
import threading
import time

import pytest

from .helpers import Echo, Gost, free_port
from .peers import EchoAt, bind_block, free_port_block, kill_echo, recv_all, wait_log


def _talk(port, payload=b"ping", timeout=5.0):
    """Connect, send ``payload``, half-close, read to EOF. → everything received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data, eof = recv_all(s, time.monotonic() + timeout)
    assert eof, f"no EOF from :{port} (got {data[:40]!r})"
    return data


def _tag(port, timeout=5.0):
    """Connect and read the echo server's tag (it speaks first). → the first byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        return s.recv(1)


@pytest.fixture
def echo_ab():
    with Echo(tag=b"A") as a, Echo(tag=b"B") as b:
        yield a, b


def test_fifo_goes_to_first_target(echo_ab):
    a, b = echo_ab
    p = free_port()
    with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{a.port},127.0.0.1:{b.port}?strategy=fifo", ports=[p]):
        for i in range(4):
            assert _talk(p, b"fifo-%d" % i) == b"A" + b"fifo-%d" % i
    assert b.count == 0


def test_fifo_fails_over_without_client_visible_error():
    a = Echo(tag=b"A").__enter__()
    try:
        with Echo(tag=b"B") as b:
            p = free_port()
            with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{a.port},127.0.0.1:{b.port}?strategy=fifo",
                      ports=[p]):
                assert _talk(p, b"before") == b"Abefore"
                kill_echo(a)  # E1 goes away: its port now refuses
                # every connection, the first one included, is served by E2
                for i in range(4):
                    assert _talk(p, b"after-%d" % i) == b"B" + b"after-%d" % i
                assert b.count == 4
    finally:
        kill_echo(a)


def test_round_robin_alternates(echo_ab):
    a, b = echo_ab
    p = free_port()
    with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{a.port},127.0.0.1:{b.port}?strategy=round", ports=[p]):
        tags = [_tag(p) for _ in range(6)]
    assert tags in ([b"A", b"B"] * 3, [b"B", b"A"] * 3), tags


def test_round_robin_skips_dead_target(echo_ab):
    a, _ = echo_ab
    p, dead = free_port(), free_port()
    with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{dead},127.0.0.1:{a.port}", ports=[p]):
        assert [_talk(p, b"x%d" % i) for i in range(4)] == [b"Ax%d" % i for i in range(4)]


def test_all_targets_dead_closes_client():
    p, d1, d2 = free_port(), free_port(), free_port()
    with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{d1},127.0.0.1:{d2}", ports=[p]) as g:
        with socket.create_connection(("127.0.0.1", p), timeout=5) as s:
            data, eof = recv_all(s, time.monotonic() + 5)
        assert eof and data == b""
        # and the service is still there
        assert wait_log(g, "no target reachable")
        with socket.create_connection(("127.0.0.1", p), timeout=5):
            pass


def test_port_range_maps_one_to_one():
    echo_socks = bind_block(3)
    echos = [EchoAt(s, tag=str(i).encode()).__enter__() for i, s in enumerate(echo_socks)]
    try:
        e = echos[0].port
        p = free_port_block(3)
        with Gost("-L", f"tcp://127.0.0.1:{p}-{p + 2}/127.0.0.1:{e}-{e + 2}", ports=[p, p + 1, p + 2]):
            for i in range(3):
                assert _talk(p + i, b"range") == str(i).encode() + b"range"
            # repeated: still 1:1, not balanced across the targets
            for i in reversed(range(3)):
                assert _tag(p + i) == str(i).encode()
    finally:
        for ec in echos:
            kill_echo(ec)


def test_forward_through_chain():
    with Echo(tag=b"C") as e:
        p, ps = free_port(), free_port()
        with Gost("-D", "-L", f"socks5://127.0.0.1:{ps}", ports=[ps]) as hop, \
                Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{e.port}", "-F", f"socks5://127.0.0.1:{ps}", ports=[p]):
            assert _talk(p, b"via-chain") == b"Cvia-chain"
            # the chain's socks5 server, not the forwarder, connected to the echo server
            assert wait_log(hop, r"<-> 127\.0\.0\.1:%d" % e.port)


def test_forward_through_dead_chain_closes_client():
    with Echo(tag=b"C") as e:
        p, dead = free_port(), free_port()
        with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{e.port}", "-F", f"socks5://127.0.0.1:{dead}", ports=[p]):
            with socket.create_connection(("127.0.0.1", p), timeout=5) as s:
                data, eof = recv_all(s, time.monotonic() + 5)
            assert eof and data == b""
        assert e.count == 0


@pytest.fixture(scope="module")
def fwd():
    with Echo() as e:
        p = free_port()
        with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{e.port}", ports=[p]) as g:
            g.port = p
            yield g


def test_16mib_payload_echoes_byte_exact(fwd):
    payload = random.Random(16).randbytes(16 << 20)
    got = bytearray()
    errors = []
    with socket.create_connection(("127.0.0.1", fwd.port), timeout=20) as s:
        def send():
            try:
                view = memoryview(payload)
                for i in range(0, len(payload), 1 << 20):
                    s.sendall(view[i:i + (1 << 20)])
                s.shutdown(socket.SHUT_WR)
            except OSError as exc:
                errors.append(exc)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            d = s.recv(1 << 20)
            if not d:
                break
            got += d
        t.join(timeout=5)
    assert not errors
    assert len(got) == len(payload)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def test_half_close_keeps_the_other_direction(fwd):
    """Client sends, shuts down its write side, and still gets the whole echo, then EOF."""
    payload = b"half-close " * 5000
    with socket.create_connection(("127.0.0.1", fwd.port), timeout=5) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data, eof = recv_all(s, time.monotonic() + 5)
    assert data == payload
    assert eof


def test_server_half_close_reaches_client():
    """The other direction: the target closes its side first (after a greeting); the client
    sees EOF, can still send, and the target gets what it sent."""
    got = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(5)

    def serve():
        # bounded: Gost's start-up port probe is forwarded here too, then the real client
        for _ in range(4):
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                try:
                    c.sendall(b"bye")
                    c.shutdown(socket.SHUT_WR)
                    data, _ = recv_all(c, time.monotonic() + 5)
                except OSError:
                    continue
                if data:
                    got.append(data)
                    return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = free_port()
        with Gost("-L", f"tcp://127.0.0.1:{p}/127.0.0.1:{srv.getsockname()[1]}", ports=[p]):
            with socket.create_connection(("127.0.0.1", p), timeout=5) as s:
                data, eof = recv_all(s, time.monotonic() + 5)
                assert (data, eof) == (b"bye", True)
                s.sendall(b"late words")
                s.shutdown(socket.SHUT_WR)
                t.join(timeout=5)
        assert got == [b"late words"]
    finally:
        try:
            srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        srv.close()
