"""Bypass and admission on a live gostg (spec §6.1, §6.2): a service refuses bypassed targets, a
hop bypass sends traffic direct (proved by an upstream gostg that never sees it), a node bypass
leaves a node out, whitelists, ``network``, groups, a rules file edited while running, a Web API
change seen by the next connection, and admission by client address (curl bound to 127.0.0.2).

Names like ``ok.test`` reach 127.0.0.1 through a ``hosts`` mapping; everything stays local."""
import json
import time

import pytest

from .helpers import Gost, Origin, free_port
from .peers import Api, curl_code, relay_lines, wait_log


@pytest.fixture(scope="module")
def origin():
    with Origin() as o:
        yield o


def via(proxy_port, url, *extra, scheme="http"):
    return curl_code(*extra, "-x", f"{scheme}://127.0.0.1:{proxy_port}", url, timeout=6)


def served(result):
    rc, status, body = result
    return rc == 0 and status == 200 and body.startswith(b"hello from origin")


def write_cfg(tmp_path, cfg):
    path = tmp_path / "gostg.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def http_service(name, port, **extra):
    o = {"name": name, "addr": f"127.0.0.1:{port}", "handler": {"type": "http"}, "listener": {"type": "tcp"}}
    o.update(extra)
    return o


def test_service_bypass_refuses(origin):
    o = origin.port
    black, white, socks = free_port(), free_port(), free_port()
    hosts = "ok.test:127.0.0.1,blocked.test:127.0.0.1,a.evil.test:127.0.0.1"
    with Gost("-L", f"http://127.0.0.1:{black}?bypass=blocked.test,.evil.test,localhost:{o}&hosts={hosts}",
              "-L", f"http://127.0.0.1:{white}?bypass=~ok.test,127.0.0.1&hosts={hosts}",
              "-L", f"socks5://127.0.0.1:{socks}?bypass=blocked.test&hosts={hosts}",
              ports=(black, white, socks)) as g:
        # blacklist: a domain, a .domain suffix, a name at one port
        assert served(via(black, f"http://ok.test:{o}/"))
        assert via(black, f"http://blocked.test:{o}/")[1] == 403
        assert via(black, f"http://a.evil.test:{o}/")[1] == 403
        assert via(black, f"http://localhost:{o}/")[1] == 403
        assert served(via(black, f"http://127.0.0.1:{o}/"))
        assert via(black, f"http://BLOCKED.test:{o}/")[1] == 403
        # whitelist (~): only listed targets are served
        assert served(via(white, f"http://ok.test:{o}/"))
        assert served(via(white, f"http://127.0.0.1:{o}/"))
        assert via(white, f"http://localhost:{o}/")[1] == 403
        assert via(white, f"http://blocked.test:{o}/")[1] == 403
        # SOCKS5 refuses with "not allowed by ruleset" (curl exit 97), the allowed name works
        rc, status, _ = via(socks, f"http://blocked.test:{o}/", scheme="socks5h")
        assert rc != 0 and status == 0
        assert served(via(socks, f"http://ok.test:{o}/", scheme="socks5h"))
        assert wait_log(g, r'"msg": "bypass"', count=6)
    assert origin.connections >= 5


def test_hop_bypass_goes_direct(origin):
    o = origin.port
    up, front = free_port(), free_port()
    with Gost("-L", f"http://127.0.0.1:{up}", ports=(up,)) as upstream, \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http://127.0.0.1:{up}?bypass=localhost,.direct.test",
                 ports=(front,)):
        assert served(via(front, f"http://127.0.0.1:{o}/"))           # not bypassed: through the hop
        assert wait_log(upstream, r"<-> 127\.0\.0\.1:%d" % o)
        for _ in range(3):
            assert served(via(front, f"http://localhost:{o}/"))        # bypassed at hop 0: direct
        assert served(via(front, f"http://127.0.0.1:{o}/"))
        assert len(wait_log(upstream, r"<-> 127\.0\.0\.1:%d" % o, count=2)) == 2
        assert relay_lines(upstream, f"localhost:{o}") == 0
        assert "localhost" not in upstream.log_text()


def test_hop_bypass_after_the_first_hop_cuts_the_chain_there(origin):
    """A bypass on hop 1 ends the route at hop 0: that node connects to the target itself."""
    o = origin.port
    up1, up2, front = free_port(), free_port(), free_port()
    with Gost("-L", f"http://127.0.0.1:{up1}", ports=(up1,)) as first, \
            Gost("-L", f"http://127.0.0.1:{up2}", ports=(up2,)) as second, \
            Gost("-L", f"http://127.0.0.1:{front}", "-F", f"http://127.0.0.1:{up1}",
                 "-F", f"http://127.0.0.1:{up2}?bypass=localhost", ports=(front,)):
        assert served(via(front, f"http://127.0.0.1:{o}/"))           # both hops
        assert wait_log(first, r"<-> 127\.0\.0\.1:%d" % up2)
        assert wait_log(second, r"<-> 127\.0\.0\.1:%d" % o)
        for _ in range(2):
            assert served(via(front, f"http://localhost:{o}/"))        # cut before hop 1
        assert len(wait_log(first, r"<-> localhost:%d" % o, count=2)) == 2
        assert "localhost" not in second.log_text()
        assert relay_lines(first, f"127.0.0.1:{up2}") == 1

def test_node_bypass_network_and_groups(origin, tmp_path):
    o = origin.port
    u1, u2, front, front2 = free_port(), free_port(), free_port(), free_port()
    node = lambda name, port, **kw: {"name": name, "addr": f"127.0.0.1:{port}", "connector": {"type": "http"},
                                     "dialer": {"type": "tcp"}, **kw}
    cfg = {
        "services": [http_service("front", front, handler={"type": "http", "chain": "c"}),
                     http_service("front2", front2, handler={"type": "http", "chain": "c2"})],
        "chains": [{"name": "c", "hops": [{
            "name": "hop-0", "selector": {"strategy": "round"},
            "nodes": [node("n1", u1, bypass="local"),                    # never for localhost
                      node("n2", u2, bypass="udp-only")]}]},           # network udp: inactive for tcp
            {"name": "c2", "hops": [{
                "name": "hop-g", "bypasses": ["w", "b"], "nodes": [node("g1", u1)]}]}],
        "bypasses": [{"name": "local", "matchers": ["localhost"]},
                     {"name": "udp-only", "network": "udp", "matchers": ["localhost", "127.0.0.1"]},
                     # group: whitelist w bypasses what it does not list (AND over whitelists),
                     # else blacklist b (OR): localhost and 127.0.0.1:o go direct, via.test not
                     {"name": "w", "whitelist": True, "matchers": ["127.0.0.1", "via.test"]},
                     {"name": "b", "matchers": [f"127.0.0.1:{o}"]}],
    }
    with Gost("-L", f"http://127.0.0.1:{u1}?hosts=via.test:127.0.0.1", ports=(u1,)) as g1, \
            Gost("-L", f"http://127.0.0.1:{u2}", ports=(u2,)) as g2, \
            Gost("-C", write_cfg(tmp_path, cfg), ports=(front, front2)):
        for _ in range(4):
            assert served(via(front, f"http://localhost:{o}/"))
        assert len(wait_log(g2, r"<-> localhost:%d" % o, count=4)) == 4   # n1 excluded every time
        assert relay_lines(g1, f"localhost:{o}") == 0
        for _ in range(4):
            assert served(via(front, f"http://127.0.0.1:{o}/"))        # round robin over both
        assert len(wait_log(g1, r"<-> 127\.0\.0\.1:%d" % o, count=2)) == 2
        assert len(wait_log(g2, r"<-> 127\.0\.0\.1:%d" % o, count=2)) == 2
        # the group on c2's hop
        assert served(via(front2, f"http://via.test:{o}/"))
        assert wait_log(g1, r"<-> via\.test:%d" % o)
        assert served(via(front2, f"http://localhost:{o}/"))
        assert served(via(front2, f"http://127.0.0.1:{o}/"))
        time.sleep(0.2)
        assert relay_lines(g1, f"localhost:{o}") == 0
        assert relay_lines(g1, f"127.0.0.1:{o}") == 2                  # still only front's two


def test_bypass_file_reload(origin, tmp_path):
    o = origin.port
    port = free_port()
    rules = tmp_path / "bypass.txt"
    rules.write_text("# nothing yet\nblocked.test\n")
    cfg = {"services": [http_service("s", port, bypass="bp")],
           "bypasses": [{"name": "bp", "reload": "0.2s", "file": {"path": str(rules)}}]}
    with Gost("-C", write_cfg(tmp_path, cfg), ports=(port,)) as g:
        assert served(via(port, f"http://localhost:{o}/"))
        rules.write_text("blocked.test\nlocalhost  # added while running\n")
        deadline = time.monotonic() + 8
        status = 200
        while status != 403 and time.monotonic() < deadline:
            time.sleep(0.25)
            status = via(port, f"http://localhost:{o}/")[1]
        assert status == 403, g.log_text()[-2000:]
        assert served(via(port, f"http://127.0.0.1:{o}/"))


def test_api_put_bypass_next_connection(origin, tmp_path):
    o = origin.port
    up, front, api_port = free_port(), free_port(), free_port()
    cfg = {"services": [http_service("front", front, handler={"type": "http", "chain": "c"})],
           "chains": [{"name": "c", "hops": [{"name": "hop-0", "bypass": "hb", "nodes": [
               {"name": "u", "addr": f"127.0.0.1:{up}", "connector": {"type": "http"}, "dialer": {"type": "tcp"}}]}]}],
           "bypasses": [{"name": "hb", "matchers": ["nothing.test"]}]}
    with Gost("-L", f"http://127.0.0.1:{up}", ports=(up,)) as upstream, \
            Gost("-C", write_cfg(tmp_path, cfg), "-api", f"127.0.0.1:{api_port}", ports=(front, api_port)):
        api = Api(api_port)
        assert served(via(front, f"http://localhost:{o}/"))
        assert wait_log(upstream, r"<-> localhost:%d" % o)
        api.put("bypasses", "hb", {"name": "hb", "matchers": ["localhost"]})
        for _ in range(3):
            assert served(via(front, f"http://localhost:{o}/"))        # now direct
        assert served(via(front, f"http://127.0.0.1:{o}/"))
        assert wait_log(upstream, r"<-> 127\.0\.0\.1:%d" % o)
        assert relay_lines(upstream, f"localhost:{o}") == 1
        # and a whitelist PUT inverts it: only localhost keeps the chain
        api.put("bypasses", "hb", {"name": "hb", "whitelist": True, "matchers": ["localhost"]})
        assert served(via(front, f"http://localhost:{o}/"))
        assert len(wait_log(upstream, r"<-> localhost:%d" % o, count=2)) == 2


def test_admission_by_client_address(origin):
    o = origin.port
    black, white, named = free_port(), free_port(), free_port()
    with Gost("-L", f"http://127.0.0.1:{black}?admission=127.0.0.2",
              "-L", f"http://127.0.0.1:{white}?admission=~127.0.0.0/30,::1",
              "-L", f"http://127.0.0.1:{named}?admission=~localhost",    # resolved at start
              ports=(black, white, named)) as g:
        url = f"http://127.0.0.1:{o}/"
        refused = via(black, url, "--interface", "127.0.0.2")
        assert refused[0] in (52, 56) and refused[1] == 0                # closed without a reply
        assert served(via(black, url, "--interface", "127.0.0.1"))
        assert served(via(white, url, "--interface", "127.0.0.2"))
        assert via(white, url, "--interface", "127.0.0.5")[0] in (52, 56)
        assert served(via(named, url, "--interface", "127.0.0.1"))
        assert via(named, url, "--interface", "127.0.0.2")[0] in (52, 56)
        assert served(via(black, url))                                    # the service lives on
        assert g.proc.poll() is None
