"""rtcp re-binding after its relay server restarts (the socks5 case is in test_rtcp.py): the
client notices the lost bind, the remote port closes, and once a new ``relay`` server is up the
client binds again within its back-off and peers reach the target through it."""
import time

from .helpers import Echo, Gost, free_port, port_closed, wait_port
from .peers import wait_log
from .test_rtcp import BIND_OK, echo_through


def test_rtcp_rebinds_after_the_relay_server_restarts():
    sp, rp = free_port(), free_port()
    srv_args = ("-L", f"relay://127.0.0.1:{sp}?bind=true")
    with Echo() as echo, \
            Gost("-L", f"rtcp://127.0.0.1:{rp}/127.0.0.1:{echo.port}", "-F", f"relay://127.0.0.1:{sp}") as cli:
        with Gost(*srv_args, ports=[sp]):
            assert wait_log(cli, BIND_OK, timeout=10), cli.log_text()[-2000:]
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
        assert echo.count >= 2
        assert cli.proc.poll() is None
