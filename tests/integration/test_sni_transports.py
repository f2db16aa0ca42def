"""The sni handler behind a ``tls`` and a ``ws`` listener (``-L sni+tls://…``, ``-L sni+ws://…``)
with a matching gostg client (``-F sni+tls://…?host=cdn.test``, ``-F sni+ws://…``): curl's plain
HTTP request travels disguised over the transport and the sni node restores the real Host.

Real bin/gostg processes and curl on 127.0.0.1; the origin echoes the Host it was asked for."""
import pytest

from .helpers import Gost, free_port
from .peers import FastOrigin, curl_code, wait_log


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


@pytest.mark.parametrize("transport", ["tls", "ws"])
def test_sni_over_transport_round_trip(origin, transport, tmp_path):
    ps, pa = free_port(), free_port()
    env = {"HOME": str(tmp_path)}          # the tls listener's generated certificate lands here
    with Gost("-D", "-L", f"sni+{transport}://127.0.0.1:{ps}", ports=[ps], env=env, cwd=tmp_path) as s, \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"sni+{transport}://127.0.0.1:{ps}?host=cdn.test",
                 ports=[pa], env=env, cwd=tmp_path):
        for i in range(3):                 # each request its own connection through the transport
            rc, status, body = curl_code("-x", f"http://127.0.0.1:{pa}", f"http://127.0.0.1:{origin.port}/t{i}")
            assert (rc, status) == (0, 200), (rc, status, body[:300])
            assert body.startswith(f"hello from origin /t{i} ".encode())
            assert f"host=127.0.0.1:{origin.port}".encode() in body
        assert len(wait_log(s, rf"sni: http host 127.0.0.1:{origin.port}", count=3)) >= 3


@pytest.mark.parametrize("transport", ["tls", "ws"])
def test_plain_client_is_refused_by_the_transport(origin, transport, tmp_path):
    """Without the transport (a bare sni client), the sni+tls / sni+ws service serves nothing:
    the transport really is in the path."""
    ps, pa = free_port(), free_port()
    env = {"HOME": str(tmp_path)}
    with Gost("-L", f"sni+{transport}://127.0.0.1:{ps}", ports=[ps], env=env, cwd=tmp_path), \
            Gost("-L", f"http://127.0.0.1:{pa}", "-F", f"sni://127.0.0.1:{ps}?host=cdn.test", ports=[pa],
                 env=env, cwd=tmp_path):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{pa}", f"http://127.0.0.1:{origin.port}/plain",
                                     timeout=15)
        assert status != 200 and b"hello from origin" not in body, (rc, status, body[:300])
