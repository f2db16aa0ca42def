"""gRPC plugins for the decisions that route traffic (go-gost/plugin's HostMapper, Resolver,
Hop and Limiter services): bin/gostg asks a real grpcio plugin server (grpcpeer.py) which
address a name has, which upstream node carries a connection and at what rate a client may
transfer; curl sees the result end to end. Each one fails closed: when the plugin is down, the
connection is refused (never resolved elsewhere, sent direct or left unshaped) and one log
line says why."""
import os
import subprocess
import time

import pytest
import yaml

from .helpers import need_grpc

need_grpc(module=True)
import grpc  # noqa: E402

from .grpcpeer import PluginServer  # noqa: E402
from .helpers import Gost, Origin, free_port, started, wait_for  # noqa: E402
from .peers import curl_code, log_records  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/curl") and not os.environ.get("CI"),
                                reason="curl not installed")

TOKEN = "k1nds"
STRICT = {"GOSTG_STRICT_SCHEMA": "1"}


def grpc_plugin(addr, **kw):
    return {"type": "grpc", "addr": addr, "token": TOKEN, "timeout": "1s", **kw}


def start(tmp_path, cfg, ports, name="gostg.yaml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump(cfg))
    return Gost("-C", f, ports=ports, env=STRICT)


def refusals(g, text):
    """Log lines with ``text`` that report the plugin failing (not a connection's own line)."""
    return [ln for ln in g.log_text().splitlines() if text in ln and "plugin failed:" not in ln]


def http_get(port, url, user=None):
    """curl through gostg's HTTP proxy at ``port`` → (HTTP status, body)."""
    proxy = f"http://{user + '@' if user else ''}127.0.0.1:{port}"
    _, status, body = curl_code("-x", proxy, url)
    return status, body


def test_grpc_hosts_and_resolver_plugins_map_names_and_fail_closed(tmp_path):
    """A name only the plugin knows reaches the local origin through gostg (hosts plugin on one
    service, resolver plugin on another); a name it does not map is not reached; once the
    plugin is down, neither name resolves any more (no cached or system answer) and each
    object logs the failure once."""
    ports = [free_port(), free_port()]
    with PluginServer(token=TOKEN) as ps, Origin() as origin:
        ps.hosts = {"mapped.test": ["127.0.0.1"]}
        ps.names = {"resolved.test": ["127.0.0.1"]}
        cfg = {"services": [{"name": "s-hosts", "addr": f"127.0.0.1:{ports[0]}", "hosts": "hp",
                             "handler": {"type": "http"}},
                            {"name": "s-res", "addr": f"127.0.0.1:{ports[1]}", "resolver": "rp",
                             "handler": {"type": "http"}}],
               "hosts": [{"name": "hp", "plugin": grpc_plugin(ps.addr)}],
               "resolvers": [{"name": "rp", "plugin": grpc_plugin(ps.addr)}]}
        with start(tmp_path, cfg, ports) as g:
            status, body = http_get(ports[0], f"http://mapped.test:{origin.port}/by-hosts")
            assert status == 200 and b"/by-hosts" in body, (status, body)
            status, body = http_get(ports[1], f"http://resolved.test:{origin.port}/by-resolver")
            assert status == 200 and b"/by-resolver" in body, (status, body)
            assert http_get(ports[1], f"http://unknown.test:{origin.port}/")[0] != 200
            assert origin.connections == 2
            lookups = [c[1] for c in ps.calls if c[0] == "Lookup"]
            resolves = [c[1] for c in ps.calls if c[0] == "Resolve"]
            assert lookups and lookups[0]["host"] == "mapped.test", lookups
            assert {r["host"] for r in resolves} == {"resolved.test", "unknown.test"}, resolves
            assert all(c[2].get("token") == TOKEN for c in ps.calls)

            ps.server.stop(grace=None).wait(5)      # the plugin goes down
            t0 = time.monotonic()
            assert http_get(ports[0], f"http://mapped.test:{origin.port}/down")[0] != 200
            assert http_get(ports[1], f"http://resolved.test:{origin.port}/down")[0] != 200
            assert time.monotonic() - t0 < 2 * (1 + 0.5) + 2
            assert origin.connections == 2          # nothing got through
            hosts_down = wait_for(lambda: refusals(g, "hosts plugin hp"))
            res_down = wait_for(lambda: refusals(g, "resolver plugin rp"))
            for ln in hosts_down + res_down:
                assert "UNAVAILABLE" in ln and "refusing until it answers" in ln and '"level": "error"' in ln, ln
            assert len(hosts_down) == 1 and len(res_down) == 1, (hosts_down, res_down)


def test_grpc_hop_plugin_sends_each_connection_through_the_upstream_it_picks(tmp_path):
    """Two upstream HTTP proxies (services up-a and up-b of an upstream gostg); the front
    gostg's chain has one hop whose gRPC plugin picks the node: ``localhost`` targets go through
    A, the rest through B. The upstream's log shows which one carried each request. A plugin
    that picks nothing, answers a node that is not JSON, or is down, refuses the connection:
    it never goes direct."""
    front, up_a, up_b, front_down = (free_port() for _ in range(4))
    dead = free_port()

    def pick(r):
        if r["addr"].startswith("localhost:"):
            return {"name": "node-a", "addr": f"127.0.0.1:{up_a}", "connector": {"type": "http"}}
        if r["addr"].startswith("127.0.0.1:"):
            return {"name": "node-b", "addr": f"127.0.0.1:{up_b}", "connector": {"type": "http"}}
        if r["addr"].startswith("garbage.test:"):
            return b"{not a node"
        return None
    with PluginServer(token=TOKEN) as ps, Origin() as origin:
        ps.pick = pick
        upstream = {"services": [{"name": n, "addr": f"127.0.0.1:{p}", "handler": {"type": "http"}}
                                 for n, p in (("up-a", up_a), ("up-b", up_b))]}
        cfg = {"services": [{"name": "front", "addr": f"127.0.0.1:{front}", "handler": {"type": "http", "chain": "c"}},
                            {"name": "front-down", "addr": f"127.0.0.1:{front_down}",
                             "handler": {"type": "http", "chain": "c-down"}}],
               "chains": [{"name": "c", "hops": [{"name": "hp", "plugin": grpc_plugin(ps.addr)}]},
                          {"name": "c-down", "hops": [{"name": "hp-down",
                                                       "plugin": grpc_plugin(f"127.0.0.1:{dead}")}]}]}
        up, g = started(start(tmp_path, upstream, [up_a, up_b], "up.yaml"), start(tmp_path, cfg, [front, front_down]))
        with up, g:
            def carried(service, path):
                return [r for r in log_records(up, service=service) if path in str(r)]

            for i in range(2):
                for host, path in (("localhost", f"/via-a{i}"), ("127.0.0.1", f"/via-b{i}")):
                    status, body = http_get(front, f"http://{host}:{origin.port}{path}")
                    assert status == 200 and path.encode() in body, (status, body)
            assert wait_for(lambda: carried("up-a", f"localhost:{origin.port}"))
            assert wait_for(lambda: carried("up-b", f"127.0.0.1:{origin.port}"))
            assert not carried("up-a", f"127.0.0.1:{origin.port}") and not carried("up-b", f"localhost:{origin.port}")
            before = origin.connections
            # a target the plugin names no node for: refused, not dialled directly
            assert http_get(front, f"http://[::1]:{origin.port}/none")[0] != 200
            assert wait_for(lambda: "the plugin named no node" in g.log_text())
            # a node that is not JSON: refused, and said so
            assert http_get(front, f"http://garbage.test:{origin.port}/garbage")[0] != 200
            assert wait_for(lambda: refusals(g, "node is not JSON"))
            # the plugin is down (another hop's plugin address): refused with one line
            assert http_get(front_down, f"http://localhost:{origin.port}/down")[0] != 200
            assert http_get(front_down, f"http://localhost:{origin.port}/down")[0] != 200
            down = wait_for(lambda: refusals(g, "hop plugin hp-down"))
            assert len(down) == 1 and "UNAVAILABLE" in down[0] and '"level": "error"' in down[0], down
            assert origin.connections == before
    asked = [c[1] for c in ps.calls if c[0] == "Select"]
    assert {a["addr"] for a in asked} >= {f"localhost:{origin.port}", f"127.0.0.1:{origin.port}"}, asked
    assert all(a["network"] == "tcp" and a["src"].startswith("127.0.0.1:") for a in asked), asked


def timed_curl(*args):
    t0 = time.monotonic()
    p = subprocess.run(["curl", "-s", "-m", "15", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", *args],
                       capture_output=True, text=True, timeout=20)
    return p.stdout, time.monotonic() - t0


def test_grpc_limiter_plugin_shapes_a_download_and_an_upload(tmp_path):
    """The handler's ``limiter`` is a gRPC plugin answering ``in`` 64 KiB/s and ``out``
    256 KiB/s for client alice: a 256 KiB download takes about 1 s and a 64 KiB upload about
    1 s (tolerance: 0.6 s to 2.5 s each, the buckets' first burst and CI's jitter included),
    where the same transfers unshaped take a fraction of that. The plugin down: refused,
    one log line."""
    rate_in, rate_out = 64 * 1024, 256 * 1024
    ports = [free_port(), free_port(), free_port()]
    dead = free_port()
    with PluginServer(token=TOKEN) as ps, Origin() as origin:
        ps.rates = (rate_in, rate_out)
        cfg = {"services": [{"name": f"s{i}", "addr": f"127.0.0.1:{p}",
                             "handler": {"type": "socks5", "auther": "users", **({"limiter": lim} if lim else {})}}
                            for i, (p, lim) in enumerate(zip(ports, ("lim", "lim-down", None)))],
               "authers": [{"name": "users", "auths": [{"username": "alice", "password": "pw"}]}],
               "limiters": [{"name": "lim", "plugin": grpc_plugin(ps.addr)},
                            {"name": "lim-down", "plugin": grpc_plugin(f"127.0.0.1:{dead}")}]}
        body = tmp_path / "upload.bin"
        body.write_bytes(os.urandom(64 * 1024))
        with start(tmp_path, cfg, ports) as g:
            def down_up(port):
                proxy = ["-x", f"socks5h://alice:pw@127.0.0.1:{port}"]
                return (timed_curl(*proxy, f"{origin.url}/bytes/{256 * 1024}"),
                        timed_curl(*proxy, "--data-binary", f"@{body}", f"{origin.url}/upload"))
            (down, t_down), (upl, t_up) = down_up(ports[0])
            assert down == f"200 {256 * 1024}", down
            assert upl.startswith("200 "), upl
            assert 0.6 < t_down < 2.5, t_down
            assert 0.6 < t_up < 2.5, t_up
            (down, t_free), (upl, t_free_up) = down_up(ports[2])     # the same, no limiter
            assert down == f"200 {256 * 1024}" and upl.startswith("200 ")
            assert t_free < 0.6 and t_free_up < 0.6, (t_free, t_free_up)
            # the limiter's plugin is down: refused (GOST would leave the client unlimited)
            rc, status, _ = curl_code("-x", f"socks5h://alice:pw@127.0.0.1:{ports[1]}", f"{origin.url}/down")
            assert rc != 0 and status == 0
            down_lines = wait_for(lambda: refusals(g, "limiter plugin lim-down"))
            assert len(down_lines) == 1 and "UNAVAILABLE" in down_lines[0], down_lines
            assert wait_for(lambda: "limiter 'lim-down': plugin failed" in g.log_text())
    asked = [c[1] for c in ps.calls if c[0] == "Limit"]
    assert asked and asked[0]["scope"] == "client" and asked[0]["client"] == "alice" and asked[0]["service"] == "s0"
    assert all(c[2].get("token") == TOKEN for c in ps.calls)


def test_grpc_auth_plugin_over_tls_needs_its_ca_and_its_name(tmp_path):
    """A gRPC plugin serving TLS with a certificate a test CA signed for plugin.test: with
    ``tls: {caFile, serverName: plugin.test}`` the plugin decides; without ``caFile`` (the
    system CAs) or with another ``serverName``, alice is refused, the plugin is never asked
    (the token is not sent) and each auther logs the failure once."""
    from .pki import make_pki

    pki = make_pki(tmp_path, "plugin.test")
    tls = [{"caFile": str(pki["ca"]), "serverName": "plugin.test"},
           {"serverName": "plugin.test"},
           {"caFile": str(pki["ca"]), "serverName": "other.test"}]
    ports = [free_port() for _ in tls]
    ps = PluginServer(token=TOKEN)
    tls_port = ps.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(pki["key_pem"], pki["cert_pem"])]))
    with ps, Origin() as origin:
        cfg = {"services": [{"name": f"s{i}", "addr": f"127.0.0.1:{p}", "handler": {"type": "http", "auther": f"a{i}"}}
                            for i, p in enumerate(ports)],
               "authers": [{"name": f"a{i}", "plugin": grpc_plugin(f"127.0.0.1:{tls_port}", tls=t)}
                           for i, t in enumerate(tls)]}
        with start(tmp_path, cfg, ports) as g:
            assert http_get(ports[0], f"{origin.url}/in", "alice:secret")[0] == 200
            assert http_get(ports[0], f"{origin.url}/in", "alice:wrong")[0] == 407
            for p in ports[1:]:
                assert http_get(p, f"{origin.url}/out", "alice:secret")[0] == 407, p
            assert origin.connections == 1
            # the verification failure, as grpcio words it: the chain (no CA), the name
            for name, why in (("a1", "CERTIFICATE_VERIFY_FAILED"), ("a2", "hostname")):
                failed = wait_for(lambda: refusals(g, f"auth plugin {name}"))
                assert len(failed) == 1 and "UNAVAILABLE" in failed[0] and '"level": "error"' in failed[0], failed
                assert why in failed[0].lower() if why.islower() else why in failed[0], failed
    assert [c[1]["password"] for c in ps.calls if c[0] == "Authenticate"] == ["secret", "wrong"]
