"""The Web API's live effect on admissions, climiters and rlimiters: an object replaced with PUT
while the service runs governs the service's next connection (late binding by name, as GOST).

Every gostg is a real ``bin/gostg -api 127.0.0.1:P`` process; every effect is seen by a real
client on 127.0.0.1 (curl, raw CONNECT tunnels, plain proxy requests)."""
import time

import pytest

from .helpers import Echo, Origin, free_port
from .peers import wait_log
from .test_api_live import gostg, served, svc, via_http
from .test_limiter import echo_ok, http_get, tunnel


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


def first_tunnel(port, target, timeout=5.0):
    """A CONNECT tunnel, retried briefly: a slot freed by a just-closed tunnel is given back
    when gostg's relay for it ends, a moment after our close."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = tunnel(port, target)
        if s is not None:
            return s
        time.sleep(0.05)
    return None


def test_admission_put_to_whitelist_refuses_a_client_admitted_before(origin):
    with gostg() as (g, api):
        port = free_port()
        api.post("admissions", {"name": "ad", "matchers": ["10.0.0.0/8"]})   # a blacklist: we are not on it
        api.post("services", svc("s", port, admission="ad"))
        created = api.service("s")["status"]["createTime"]
        assert served(via_http(port, origin.url + "/before"), origin, "/before")

        api.put("admissions", "ad", {"name": "ad", "matchers": ["10.0.0.0/8"], "whitelist": True})
        rc, status, _ = via_http(port, origin.url + "/refused")
        assert rc != 0 and status == 0, f"a client outside the whitelist got through (rc {rc}, status {status})"

        api.put("admissions", "ad", {"name": "ad", "matchers": ["127.0.0.1"], "whitelist": True})
        assert served(via_http(port, origin.url + "/listed"), origin, "/listed")
        assert api.service("s")["status"]["createTime"] == created   # replaced, not restarted


def test_climiter_put_of_one_refuses_a_second_concurrent_tunnel():
    with Echo() as echo, gostg() as (g, api):
        port, target = free_port(), f"127.0.0.1:{echo.port}"
        api.post("climiters", {"name": "cl", "limits": ["$ 10"]})
        api.post("services", svc("s", port, climiter="cl"))
        a, b = first_tunnel(port, target), tunnel(port, target)
        assert a is not None and b is not None and echo_ok(a) and echo_ok(b), "two tunnels under '$ 10'"
        a.close()
        b.close()

        api.put("climiters", "cl", {"name": "cl", "limits": ["$ 1"]})
        assert api.ok("GET", "/config/climiters/cl")["data"]["limits"] == ["$ 1"]
        a = first_tunnel(port, target)
        assert a is not None and echo_ok(a)
        try:
            assert tunnel(port, target) is None, "a second concurrent tunnel passed a '$ 1' limit"
            assert wait_log(g, "connection limit reached")
            assert echo_ok(a), "the admitted tunnel must keep working"
        finally:
            a.close()
        c = first_tunnel(port, target)          # the slot comes back when a's relay ends
        assert c is not None and echo_ok(c)
        c.close()


def test_rlimiter_put_refuses_requests_past_the_new_rate(origin):
    with gostg() as (g, api):
        port = free_port()
        api.post("rlimiters", {"name": "rl", "limits": ["$ 100"]})
        api.post("services", svc("s", port, rlimiter="rl"))
        codes = [http_get(port, origin.url + "/fast") for _ in range(6)]
        assert codes == [200] * 6, codes

        api.put("rlimiters", "rl", {"name": "rl", "limits": ["$ 1"]})
        assert api.ok("GET", "/config/rlimiters/rl")["data"]["limits"] == ["$ 1"]
        # a fresh '$ 1' bucket holds one second of requests plus one (GOST's burst): 2 pass
        codes = [http_get(port, origin.url + "/slow") for _ in range(6)]
        assert codes[:2] == [200, 200] and codes.count(200) <= 3 and codes.count(0) >= 3, codes
        assert wait_log(g, "request rate limit reached")
