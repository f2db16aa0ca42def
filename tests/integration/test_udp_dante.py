"""gostg's SOCKS5 connector with ``relay=udp`` against a third-party SOCKS5 server (Dante):
standard UDP ASSOCIATE, datagrams straight to Dante's relay address."""
import os
import shutil
import tempfile

import pytest

from .helpers import Gost, free_port
from .peers import PeerProcess
from .udppeers import UDPEcho, free_udp_port, udp_ask, wait_udp_service

DANTED = shutil.which("danted") or ("/usr/sbin/danted" if os.path.exists("/usr/sbin/danted") else None)
pytestmark = pytest.mark.skipif(DANTED is None, reason="Dante (danted) is not installed (apt install dante-server)")

CONF = """logoutput: {log}
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect udpassociate udpreply }}
"""


@pytest.fixture
def dante():
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "danted.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(port=port, log=os.path.join(d, "danted.log")))
        with PeerProcess([DANTED, "-f", conf, "-N", "1"], port=port):
            yield port


def test_udp_forward_through_dante_with_relay_udp(dante):
    with UDPEcho(b"D:") as echo:
        p = free_udp_port()
        with Gost("-L", f"udp://127.0.0.1:{p}/{echo.addr}?keepAlive=true",
                  "-F", f"socks5://127.0.0.1:{dante}?relay=udp") as g:
            wait_udp_service(g)
            assert udp_ask(p, b"third party") == b"D:third party"
            big = os.urandom(8000)
            assert udp_ask(p, big) == b"D:" + big


def test_without_relay_udp_a_third_party_server_refuses_udp_tun(dante):
    """GOST's UDP-TUN (0xF3) is a GOST extension: Dante refuses it, which is why relay=udp exists."""
    with UDPEcho(b"D:") as echo:
        p = free_udp_port()
        with Gost("-L", f"udp://127.0.0.1:{p}/{echo.addr}", "-F", f"socks5://127.0.0.1:{dante}") as g:
            wait_udp_service(g)
            assert udp_ask(p, b"tun", timeout=1.5) is None
