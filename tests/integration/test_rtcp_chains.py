"""Remote port forwarding through a chain of two nodes (the port opens on the LAST node, not
the first) and rudp re-binding after its server restarts."""
import socket
import time

from .helpers import Echo, Gost, free_port, wait_port
from .peers import wait_log
from .test_rtcp import BIND_OK, echo_through, owns_port
from .udppeers import UDPEcho, free_udp_port, udp_ask


def test_rtcp_and_rudp_bind_on_the_last_node_of_two():
    a, b, rp, up = free_port(), free_port(), free_port(), free_udp_port()
    chain = ("-F", f"http://127.0.0.1:{a}", "-F", f"socks5://127.0.0.1:{b}")
    with Echo() as echo, UDPEcho(b"U:") as uecho, \
            Gost("-L", f"http://127.0.0.1:{a}", ports=[a]) as first, \
            Gost("-L", f"socks5://127.0.0.1:{b}?bind=true", ports=[b]) as last, \
            Gost("-L", f"rtcp://127.0.0.1:{rp}/127.0.0.1:{echo.port}", *chain) as tcp_cli, \
            Gost("-L", f"rudp://127.0.0.1:{up}/{uecho.addr}", *chain) as udp_cli:
        assert wait_log(tcp_cli, BIND_OK, timeout=10), tcp_cli.log_text()[-2000:]
        assert wait_log(udp_cli, BIND_OK, timeout=10), udp_cli.log_text()[-2000:]
        wait_port(rp)
        assert owns_port(last.proc.pid, rp, "tcp") and owns_port(last.proc.pid, up, "udp")
        for other in (first, tcp_cli, udp_cli):
            assert not owns_port(other.proc.pid, rp, "tcp") and not owns_port(other.proc.pid, up, "udp")
        assert echo_through(rp, b"via two hops") == b"via two hops"
        assert echo_through(rp, b"again") == b"again"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            assert udp_ask(up, b"dgram via two hops", sock=c) == b"U:dgram via two hops"
        assert echo.count >= 2


def test_rudp_rebinds_after_the_server_restarts():
    sp, up = free_port(), free_udp_port()
    srv_args = ("-L", f"socks5://127.0.0.1:{sp}?bind=true")
    with UDPEcho(b"U:") as uecho, \
            Gost("-L", f"rudp://127.0.0.1:{up}/{uecho.addr}", "-F", f"socks5://127.0.0.1:{sp}") as cli:
        with Gost(*srv_args, ports=[sp]) as srv:
            assert wait_log(cli, BIND_OK, timeout=10), cli.log_text()[-2000:]
            assert udp_ask(up, b"before restart") == b"U:before restart"
            assert owns_port(srv.proc.pid, up, "udp")
        assert wait_log(cli, "lost; re-binding", timeout=10), cli.log_text()[-2000:]
        with Gost(*srv_args, ports=[sp]) as srv:
            t0 = time.monotonic()
            assert len(wait_log(cli, BIND_OK, count=2, timeout=10)) == 2, cli.log_text()[-2000:]
            assert time.monotonic() - t0 <= 8.5, "re-bind took longer than the back-off allows"
            deadline = time.monotonic() + 5
            answer = None
            while answer is None and time.monotonic() < deadline:
                answer = udp_ask(up, b"after restart", timeout=0.5)
            assert answer == b"U:after restart"
            assert owns_port(srv.proc.pid, up, "udp")
        assert cli.proc.poll() is None
