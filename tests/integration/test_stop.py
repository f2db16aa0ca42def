"""Graceful stop as GOST (issue 12): on SIGTERM/SIGINT every service stops accepting at once and
the process exits within 5 s in total, however many services there are and whatever is open
(idle tunnels, half-sent handshakes); ports are released, hooks run in GOST's order (each
service: preDown → closed → postDown, services in config order), exit status 0."""
import signal
import socket
import time

import pytest
import yaml

from .helpers import Echo, Gost, free_port, port_closed
from .peers import http_connect_open, recv_exact, socks5_greet, socks5_open
from .test_hooks import append_cmd, read_lines

SERVICES = ("socks5", "http", "relay", "ss")


def _config(tmp_path, ports, out):
    services = []
    for kind, port in zip(SERVICES, ports):
        svc = {"name": kind, "addr": f"127.0.0.1:{port}", "handler": {"type": kind},
               "metadata": {"preDown": [append_cmd(out, f"preDown-{kind}")],
                            "postDown": [append_cmd(out, f"postDown-{kind}")]}}
        if kind == "ss":
            svc["handler"]["auth"] = {"username": "aes-128-gcm", "password": "pw"}
        services.append(svc)
    f = tmp_path / "stop.yaml"
    f.write_text(yaml.safe_dump({"services": services}))
    return f


def _idle_tunnel(opener, port, echo_port):
    """A tunnel to the echo server, used once, then left idle."""
    s = opener(port, echo_port)
    s.sendall(b"ping")
    assert recv_exact(s, 4) == b"ping"
    return s


def _half_handshakes(ports):
    """One connection per service that sent the first bytes of its handshake and stopped."""
    partial = {"socks5": b"\x05", "http": b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost:", "relay": b"\x01",
               "ss": b"\x00" * 7}
    out = []
    for kind, port in zip(SERVICES, ports):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(partial[kind])
        out.append(s)
    return out


def _closed_by_peer(s, deadline):
    s.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_is_prompt_with_many_services_and_open_connections(tmp_path, sig):
    ports = [free_port() for _ in SERVICES]
    out = tmp_path / "hooks.txt"
    cfg = _config(tmp_path, ports, out)
    with Echo() as echo, Gost("-C", cfg, ports=ports) as g:
        held = [_idle_tunnel(socks5_open, ports[0], echo.port) for _ in range(5)]
        held += [_idle_tunnel(http_connect_open, ports[1], echo.port) for _ in range(5)]
        held += _half_handshakes(ports)
        t0 = time.monotonic()
        g.signal(sig)
        rc = g.wait(timeout=15)
        took = time.monotonic() - t0
        log = g.log_text()
        assert rc == 0, log
        # today's gostg drained each service 5 s in turn: four services took 20 s
        assert took < 5.0, f"stop took {took:.1f}s\n{log}"
        deadline = time.monotonic() + 2
        assert all(_closed_by_peer(s, deadline) for s in held), "a client connection outlived gostg"
        for s in held:
            s.close()
        for p in ports:
            assert port_closed(p)
            with socket.socket() as s:    # released: the port can be bound again at once
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
        # GOST's order: each service's preDown then postDown, services in config order
        expected = [f"{phase}-{k}" for k in SERVICES for phase in ("preDown", "postDown")]
        assert read_lines(out) == expected
        assert log.count("service closed") == len(SERVICES), log


def test_stop_waits_for_an_active_transfer_within_the_grace_period(tmp_path):
    """The shared grace period is for connections that are still moving data: a response that
    is being sent when SIGTERM arrives completes, and the process still exits promptly."""
    port = free_port()
    slow = socket.socket()
    slow.bind(("127.0.0.1", 0))
    slow.listen(1)
    with slow, Gost("-L", f"socks5://127.0.0.1:{port}", ports=[port]) as g:
        c = socks5_greet(port)
        c.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + slow.getsockname()[1].to_bytes(2, "big"))
        assert recv_exact(c, 10)[:2] == b"\x05\x00"
        up, _ = slow.accept()
        up.sendall(b"first;")
        assert recv_exact(c, 6) == b"first;"
        t0 = time.monotonic()
        g.signal(signal.SIGTERM)
        time.sleep(0.5)             # gostg is stopping: its listener is closed, the tunnel lives
        assert port_closed(port)
        up.sendall(b"second")
        assert recv_exact(c, 6) == b"second"
        up.close()
        assert g.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5.0
        c.close()
