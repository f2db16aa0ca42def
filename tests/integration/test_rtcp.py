"""Remote port forwarding end to end: ``rtcp``/``rudp`` listeners with a chain ask the last
node (a gostg socks5 or relay server with ``bind=true``) to listen for them; peers arrive over
that connection (smux streams / UDP-TUN frames). Also: a server that refuses BIND, the client
re-binding after the server restarts, ``rtcp`` without a chain, and plain SOCKS5 BIND (0x02)
driven by a raw client."""
import hashlib
import os
import socket
import struct
import threading
import time

import pytest

from .helpers import Echo, Gost, free_port, port_closed, wait_port
from .peers import recv_exact, socks5_greet, wait_log
from .udppeers import UDPEcho, free_udp_port, udp_ask, udp_exchange_many

BIND_OK = r"bind on \S+ OK"


def owns_port(pid, port, proto):
    """Does process ``pid`` hold a socket bound to local ``port`` (/proc/net + /proc/pid/fd)?"""
    inodes = set()
    for table in (proto, proto + "6"):
        try:
            with open(f"/proc/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            held.add(link[8:-1])
    return bool(inodes & held)


def echo_through(port, payload, timeout=5.0):
    """Send ``payload`` to 127.0.0.1:port from a thread while reading as many bytes back
    (smux streams have no half-close: read by length, not to EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        err = []

        def send():
            try:
                c.sendall(payload)
            except OSError as exc:
                err.append(exc)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = recv_exact(c, len(payload))
        t.join(timeout)
        assert not err, err
        return got


@pytest.fixture(scope="module", params=[("socks5", ""), ("relay", ""), ("socks5", "&mux.type=yamux"),
                                        ("relay", "&mux.version=2")],
                ids=["socks5", "relay", "socks5-yamux", "relay-smux2"])
def remote(request):
    """A ``scheme`` server with bind=true, an rtcp client and an rudp client bound through it
    (the TCP BIND session is smux v1 as GOST's default, or yamux / smux v2 on both ends)."""
    scheme, mux = request.param
    sp, rp, up = free_port(), free_port(), free_udp_port()
    node = f"{scheme}://127.0.0.1:{sp}" + (f"?{mux[1:]}" if mux else "")
    with Echo() as echo, UDPEcho(b"U:") as uecho, \
            Gost("-L", f"{scheme}://127.0.0.1:{sp}?bind=true{mux}", ports=[sp]) as srv, \
            Gost("-L", f"rtcp://127.0.0.1:{rp}/127.0.0.1:{echo.port}", "-F", node) as tcp_cli, \
            Gost("-L", f"rudp://127.0.0.1:{up}/127.0.0.1:{uecho.port}", "-F", node) as udp_cli:
        assert wait_log(tcp_cli, BIND_OK, timeout=10), tcp_cli.log_text()[-2000:]
        assert wait_log(udp_cli, BIND_OK, timeout=10), udp_cli.log_text()[-2000:]
        wait_port(rp)    # opened by the server, on the client's behalf
        yield dict(scheme=scheme, srv=srv, tcp_cli=tcp_cli, udp_cli=udp_cli, rtcp=rp, rudp=up, echo=echo,
                   uecho=uecho)


def test_rtcp_bound_on_the_server_not_the_client(remote):
    """The rtcp/rudp ports are opened by the server process on the clients' behalf."""
    srv, tcp_cli, udp_cli = remote["srv"], remote["tcp_cli"], remote["udp_cli"]
    assert f"127.0.0.1:{remote['rtcp']}/tcp OK" in srv.log_text(), srv.log_text()[-2000:]
    assert owns_port(srv.proc.pid, remote["rtcp"], "tcp")
    assert not owns_port(tcp_cli.proc.pid, remote["rtcp"], "tcp")
    assert owns_port(srv.proc.pid, remote["rudp"], "udp")
    assert not owns_port(udp_cli.proc.pid, remote["rudp"], "udp")


def test_rtcp_50_concurrent_connections(remote):
    port = remote["rtcp"]
    payloads = [b"%03d:" % i + os.urandom(200 + i * 37) for i in range(50)]
    results = [None] * 50

    def one(i):
        try:
            results[i] = echo_through(port, payloads[i])
        except Exception as exc:   # reported below, with which connection failed
            results[i] = exc

    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    bad = [i for i in range(50) if results[i] != payloads[i]]
    assert not bad, f"{len(bad)} connections wrong, e.g. #{bad[0]}: {results[bad[0]]!r:.200}"


def test_rtcp_one_mebibyte_both_ways(remote):
    data = os.urandom(1 << 20)
    got = echo_through(remote["rtcp"], data, timeout=15)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_rudp_datagrams_answered(remote):
    port = remote["rudp"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        assert udp_ask(port, b"first", sock=c) == b"U:first"
        assert udp_ask(port, b"second", sock=c) == b"U:second"
    big = os.urandom(20000)
    assert udp_ask(port, big, timeout=5) == b"U:" + big


def test_rudp_two_clients_get_their_own_answers(remote):
    answers = udp_exchange_many(remote["rudp"], [b"alice", b"bob"])
    assert answers == [b"U:alice", b"U:bob"]


def test_rtcp_peer_close_releases_the_stream_and_target_connection(remote):
    """GOST closes both sides as soon as one direction ends; a peer that connects, talks and
    closes must not pin the client's stream and target connection until the bind ends."""
    cli = remote["tcp_cli"]
    ended = len(wait_log(cli, ">-<", timeout=0))
    assert echo_through(remote["rtcp"], b"short-lived") == b"short-lived"
    assert len(wait_log(cli, ">-<", count=ended + 1, timeout=4)) > ended


@pytest.mark.parametrize("scheme", ["socks5", "relay"])
def test_server_without_bind_refuses_and_client_keeps_retrying(scheme):
    sp, rp = free_port(), free_port()
    with Echo() as echo, Gost("-L", f"{scheme}://127.0.0.1:{sp}", ports=[sp]) as srv, \
            Gost("-L", f"rtcp://127.0.0.1:{rp}/127.0.0.1:{echo.port}", "-F", f"{scheme}://127.0.0.1:{sp}") as cli:
        fails = wait_log(cli, r"bind on \S+ via chain \S+ failed: .*?; retrying in (\d+)s", count=3, timeout=10)
        assert fails[:3] == ["1", "2", "4"], cli.log_text()[-2000:]   # the back-off doubles
        assert cli.proc.poll() is None
        assert not wait_log(cli, BIND_OK, timeout=0.1)
        assert wait_log(srv, "BIND is disabled")
        assert port_closed(rp)
        assert echo.count == 0


def test_rtcp_rebinds_after_the_server_restarts():
    sp, rp = free_port(), free_port()
    srv_args = ("-L", f"socks5://127.0.0.1:{sp}?bind=true")
    with Echo() as echo, \
            Gost("-L", f"rtcp://127.0.0.1:{rp}/127.0.0.1:{echo.port}", "-F", f"socks5://127.0.0.1:{sp}") as cli:
        with Gost(*srv_args, ports=[sp]):
            assert wait_log(cli, BIND_OK, timeout=10)
            wait_port(rp)
            assert echo_through(rp, b"before restart") == b"before restart"
        assert wait_log(cli, "lost; re-binding", timeout=10), cli.log_text()[-2000:]
        assert port_closed(rp)
        with Gost(*srv_args, ports=[sp]):
            t0 = time.monotonic()
            assert len(wait_log(cli, BIND_OK, count=2, timeout=10)) == 2, cli.log_text()[-2000:]
            wait_port(rp, timeout=2)
            assert time.monotonic() - t0 <= 8.5, "re-bind took longer than the back-off allows"
            assert echo_through(rp, b"after restart") == b"after restart"
        assert cli.proc.poll() is None


def test_rtcp_without_chain_is_a_local_forward():
    rp = free_port()
    with Echo() as echo, Gost("-L", f"rtcp://127.0.0.1:{rp}/127.0.0.1:{echo.port}", ports=[rp]) as g:
        assert owns_port(g.proc.pid, rp, "tcp")
        assert echo_through(rp, b"local") == b"local"
        assert echo_through(rp, b"again") == b"again"


def test_rudp_without_chain_is_a_local_forward():
    up = free_udp_port()
    with UDPEcho(b"L:") as e, Gost("-L", f"rudp://127.0.0.1:{up}/{e.addr}") as g:
        assert wait_log(g, "listening on", timeout=10)
        assert owns_port(g.proc.pid, up, "udp")
        assert udp_ask(up, b"local") == b"L:local"


# --- SOCKS5 BIND (0x02) -----------------------------------------------------------------------

def read_socks5_reply(s):
    head = recv_exact(s, 4)
    assert head[0] == 5, head
    atyp = head[3]
    if atyp == 1:
        host = socket.inet_ntop(socket.AF_INET, recv_exact(s, 4))
    elif atyp == 4:
        host = socket.inet_ntop(socket.AF_INET6, recv_exact(s, 16))
    else:
        host = recv_exact(s, recv_exact(s, 1)[0]).decode()
    (port,) = struct.unpack("!H", recv_exact(s, 2))
    return head[1], host, port


def socks5_bind(port, host="127.0.0.1", bport=0):
    c = socks5_greet(port, timeout=5)
    c.sendall(b"\x05\x02\x00\x01" + socket.inet_aton(host) + struct.pack("!H", bport))
    return c


def test_socks5_plain_bind_with_a_raw_client():
    sp = free_port()
    with Gost("-L", f"socks5://127.0.0.1:{sp}?bind=true", ports=[sp]):
        with socks5_bind(sp) as c:
            rep, bhost, bport = read_socks5_reply(c)
            assert rep == 0 and bhost == "127.0.0.1" and bport > 0
            with socket.create_connection((bhost, bport), timeout=5) as peer:
                rep2, phost, pport = read_socks5_reply(c)
                assert rep2 == 0
                assert (phost, pport) == peer.getsockname()
                peer.sendall(b"from the peer")
                assert recv_exact(c, 13) == b"from the peer"
                c.sendall(b"from the client")
                assert recv_exact(peer, 15) == b"from the client"
                peer.shutdown(socket.SHUT_WR)
                assert c.recv(10) == b""   # the peer's EOF reaches the client


def test_socks5_bind_refused_without_bind_true():
    sp = free_port()
    with Gost("-L", f"socks5://127.0.0.1:{sp}", ports=[sp]) as g:
        with socks5_bind(sp) as c:
            rep, _, _ = read_socks5_reply(c)
            assert rep == 2   # not allowed
        assert wait_log(g, "BIND is disabled")
