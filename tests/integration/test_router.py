"""The router, seen from clients: hosts mapping, a resolver (a DNS server run by the test),
remote name resolution through a chain, and ignoreChain."""
import time

import pytest

from .helpers import Gost, free_port
from .peers import DNSServer, FastOrigin, curl_code, relay_lines, wait_log


@pytest.fixture(scope="module")
def origin():
    with FastOrigin() as o:
        yield o


def _hello(origin, path, host):
    return f"hello from origin {path} host={host}:{origin.port}\n".encode()


# --- hosts ---------------------------------------------------------------------------------

def test_hosts_mapping(origin):
    ps, ph = free_port(), free_port()
    hosts = "hosts=example.test:127.0.0.1,other.test:127.0.0.1"
    with Gost("-L", f"socks5://127.0.0.1:{ps}?{hosts}", "-L", f"http://127.0.0.1:{ph}?{hosts}", ports=[ps, ph]):
        for args, name in ((["--socks5-hostname", f"127.0.0.1:{ps}"], "example.test"),
                           (["--socks5-hostname", f"127.0.0.1:{ps}"], "other.test"),
                           (["-x", f"http://127.0.0.1:{ph}"], "example.test"),
                           (["-p", "-x", f"http://127.0.0.1:{ph}"], "other.test")):
            rc, status, body = curl_code(*args, f"http://{name}:{origin.port}/hosts")
            assert (rc, status) == (0, 200), (args, name, body)
            assert body == _hello(origin, "/hosts", name)


# --- resolver ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dns_server():
    with DNSServer({"example.resolved": "127.0.0.1"}) as d:
        yield d


def test_resolver(origin, dns_server):
    ps, ph = free_port(), free_port()
    r = f"resolver=udp://127.0.0.1:{dns_server.port}"
    with Gost("-L", f"socks5://127.0.0.1:{ps}?{r}", "-L", f"http://127.0.0.1:{ph}?{r}", ports=[ps, ph]):
        rc, status, body = curl_code("--socks5-hostname", f"127.0.0.1:{ps}",
                                     f"http://example.resolved:{origin.port}/dns")
        assert (rc, status) == (0, 200), body
        assert body == _hello(origin, "/dns", "example.resolved")
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{ph}", f"http://example.resolved:{origin.port}/dns2")
        assert (rc, status) == (0, 200), body
        assert body == _hello(origin, "/dns2", "example.resolved")
    assert ("example.resolved", "A") in dns_server.queries


def test_resolver_unknown_name_fails_fast(origin, dns_server):
    ps, ph = free_port(), free_port()
    r = f"resolver=udp://127.0.0.1:{dns_server.port}"
    with Gost("-L", f"socks5://127.0.0.1:{ps}?{r}", "-L", f"http://127.0.0.1:{ph}?{r}", ports=[ps, ph]):
        t0 = time.monotonic()
        rc, status, _ = curl_code("--socks5-hostname", f"127.0.0.1:{ps}", f"http://nowhere.resolved:{origin.port}/")
        assert rc != 0
        rc, status, _ = curl_code("-x", f"http://127.0.0.1:{ph}", f"http://nowhere.resolved:{origin.port}/")
        assert status == 503
        assert time.monotonic() - t0 < 8
    assert ("nowhere.resolved", "A") in dns_server.queries


# --- remote resolution through a chain -----------------------------------------------------

@pytest.fixture(scope="module")
def remote_hop():
    """A socks5 hop that knows one name of its own (only.remote → 127.0.0.1)."""
    pb = free_port()
    with Gost("-D", "-L", f"socks5://127.0.0.1:{pb}?hosts=only.remote:127.0.0.1", ports=[pb]) as b:
        b.port = pb
        yield b


@pytest.mark.parametrize("front", ["socks5", "http"])
def test_name_is_resolved_by_the_last_hop(origin, remote_hop, front):
    pa = free_port()
    with Gost("-L", f"{front}://127.0.0.1:{pa}", "-F", f"socks5://127.0.0.1:{remote_hop.port}", ports=[pa]):
        args = ["--socks5-hostname", f"127.0.0.1:{pa}"] if front == "socks5" else ["-x", f"http://127.0.0.1:{pa}"]
        rc, status, body = curl_code(*args, f"http://localhost:{origin.port}/remote-{front}")
        assert (rc, status) == (0, 200), body
        assert body == _hello(origin, f"/remote-{front}", "localhost")
        # the hop got the *name*, not an address the first gostg looked up
        assert wait_log(remote_hop, r"localhost:%d" % origin.port)
        # a name only the hop can resolve works too
        rc, status, body = curl_code(*args, f"http://only.remote:{origin.port}/only-{front}")
        assert (rc, status) == (0, 200), body
        assert body == _hello(origin, f"/only-{front}", "only.remote")


def test_local_resolver_sends_address_to_the_hop(origin, remote_hop, dns_server):
    """With a resolver on the service, the name is resolved before the chain: the hop sees an IP."""
    pa = free_port()
    before = relay_lines(remote_hop, f"127.0.0.1:{origin.port}")
    with Gost("-L", f"socks5://127.0.0.1:{pa}?resolver=udp://127.0.0.1:{dns_server.port}",
              "-F", f"socks5://127.0.0.1:{remote_hop.port}", ports=[pa]):
        rc, status, body = curl_code("--socks5-hostname", f"127.0.0.1:{pa}", f"http://example.resolved:{origin.port}/l")
        assert (rc, status) == (0, 200), body
    deadline = time.monotonic() + 5
    while relay_lines(remote_hop, f"127.0.0.1:{origin.port}") == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay_lines(remote_hop, f"127.0.0.1:{origin.port}") == before + 1
    assert "example.resolved" not in remote_hop.log_text()


# --- ignoreChain ---------------------------------------------------------------------------

def test_ignore_chain(origin):
    p1, p2, dead = free_port(), free_port(), free_port()
    with Gost("-L", f"http://127.0.0.1:{p1}?ignoreChain=true", "-L", f"socks5://127.0.0.1:{p2}",
              "-F", f"socks5://127.0.0.1:{dead}", ports=[p1, p2]):
        rc, status, body = curl_code("-x", f"http://127.0.0.1:{p1}", f"{origin.url}/direct")
        assert (rc, status) == (0, 200), body
        assert body == _hello(origin, "/direct", "127.0.0.1")
        rc, status, body = curl_code("--socks5", f"127.0.0.1:{p2}", f"{origin.url}/chained")
        assert rc == 97 and body == b"", rc
