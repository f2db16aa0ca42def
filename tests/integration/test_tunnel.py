"""Reverse proxy tunnel end to end (GOST's reverse-proxy-tunnel tutorial): a gostg tunnel server
with a public entrypoint, gostg clients binding rtcp/rudp services into tunnels, gostg visitors,
curl through the entrypoint by Host and by TLS SNI; refusals (unknown host, private tunnel,
a visitor of another tunnel, no tunnel id, garbage) each with a log line."""
import contextlib
import json
import socket
import struct
import time

import pytest

from .helpers import Gost, free_port, run_gostg, started, wait_for
from .peers import curl_code, wait_log
from .test_reverse_proxy import TagOrigin
from .test_sni import TLSOrigin
from .udppeers import UDPEcho, free_udp_port, udp_ask, wait_udp_service

T_WEB = "4d21094e-b74c-4916-86c1-d9fa36ea677b"     # .example.com
T_ORG = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"     # example.org: no client ever binds it
T_PRIV = "aede1f6a-762b-45da-b937-b6632356555a"    # $srv2.local (private), srv3.local (public)
T_TLS = "381433e1-7980-11ee-bbdb-60f262c1e32d"     # .tls.test
T_UDP = "9fd6c586-86f9-49c1-a03a-d4876851695b"     # dns.local (UDP client only)
T_EP = "9fd6c586-86f9-49c1-a03a-d4876851695a"      # entrypoint.id
ESTABLISHED = r"tunnel={tid}, connector=\S+, weight=\d+ established"


def established(g, tid, count=1, timeout=10.0):
    return len(wait_log(g, ESTABLISHED.format(tid=tid), count, timeout)) >= count


def tagged(port, host, timeout=5):
    """curl http://127.0.0.1:port/ with Host ``host`` → (status, origin tag or body)."""
    rc, status, body = curl_code("-H", f"Host: {host}", f"http://127.0.0.1:{port}/p", timeout=timeout)
    if status == 200:
        try:
            return status, json.loads(body)["tag"]
        except ValueError:
            return status, body
    return status, body


def client(sp, tid, target, kind="rtcp", extra=""):
    return Gost("-L", f"{kind}://:0/{target}", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={tid}{extra}")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """One tunnel server (entrypoint, inline ingress), one client per tunnel, two origins."""
    sp, ep = free_port(), free_port()
    rules = (f".example.com:{T_WEB},example.org:{T_ORG},srv2.local:${T_PRIV},srv3.local:{T_PRIV},"
             f".tls.test:{T_TLS},dns.local:{T_UDP}")
    tls = TLSOrigin(tmp_path_factory.mktemp("tls"), free_port())
    with TagOrigin("a") as a, TagOrigin("b") as b, tls, UDPEcho(b"udp:") as echo:
        server = Gost("-L", f"tunnel://127.0.0.1:{sp}?entrypoint=127.0.0.1:{ep}&entrypoint.id={T_EP}"
                            f"&tunnel={rules}", ports=(sp, ep))
        with server:
            clients = started(client(sp, T_WEB, f"127.0.0.1:{a.port}", extra="&tunnel.weight=1"),
                              client(sp, T_PRIV, f"127.0.0.1:{b.port}"),
                              client(sp, T_TLS, f"127.0.0.1:{tls.port}"),
                              client(sp, T_UDP, echo.addr, kind="rudp"))
            try:
                for tid in (T_WEB, T_PRIV, T_TLS, T_UDP):
                    assert established(server, tid), server.log_text()
                yield {"sp": sp, "ep": ep, "server": server, "a": a, "b": b, "tls": tls, "echo": echo,
                       "clients": clients}
            finally:
                for c in clients:
                    c.stop()


def test_entrypoint_routes_by_http_host(net):
    ep = net["ep"]
    assert tagged(ep, "www.example.com") == (200, "a")
    assert tagged(ep, "example.com") == (200, "a")      # .example.com covers the name itself
    assert tagged(ep, "srv3.local") == (200, "b")
    # a host no rule names: 502, and the server says why
    assert tagged(ep, "nowhere.test")[0] == 502
    assert wait_log(net["server"], r"no route to host nowhere\.test:80")
    # a rule whose tunnel has no client: 503
    assert tagged(ep, "example.org")[0] == 503
    assert wait_log(net["server"], rf"tunnel {T_ORG} not available")


def _private_502_on(c):
    """A private tunnel's host on a kept-alive connection: 502, on the same connection."""
    c.request("GET", "/k", headers={"Host": "srv2.local"})
    r = c.getresponse()
    assert r.status == 502
    r.read()


def test_entrypoint_routes_each_request_by_its_host(net):
    """One kept-alive connection (a load balancer in front does this) whose requests name hosts of
    different tunnels: each goes to its own tunnel, never to the first request's."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", net["ep"], timeout=5)
    try:
        seen = []
        for host in ("www.example.com", "srv3.local", "example.com", "srv3.local"):
            c.request("GET", "/k", headers={"Host": host})
            r = c.getresponse()
            seen.append((r.status, json.loads(r.read())["tag"]))
        assert seen == [(200, "a"), (200, "b"), (200, "a"), (200, "b")]
        _private_502_on(c)
    finally:
        c.close()


def test_entrypoint_kept_alive_requests_to_one_host_then_another(net):
    """The steady state (requests to the Host the connection's stream was opened for, relayed as
    cut) forwards each request as the general path would (hop headers dropped, the rest kept),
    and still routes by each request's own Host: another host, back, a private one."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", net["ep"], timeout=5)
    try:
        seen = []
        for i, host in enumerate(("www.example.com",) * 3 + ("srv3.local", "srv3.local", "www.example.com")):
            c.request("GET", f"/k{i}?q={i}", headers={"Host": host, "X-A": str(i), "Proxy-Connection": "keep-alive"})
            r = c.getresponse()
            body = json.loads(r.read())
            seen.append((r.status, body["tag"], body["path"], body["headers"]["x-a"],
                         "proxy-connection" in body["headers"]))
        assert seen == [(200, t, f"/k{i}?q={i}", str(i), False)
                        for i, t in enumerate("aaabba")]
        _private_502_on(c)
    finally:
        c.close()


def test_entrypoint_routes_by_tls_sni(net):
    ep = net["ep"]
    # the bind answer names the tunnel's endpoint host, md5-derived as GOST's (HA tutorial's example)
    assert wait_log(net["clients"][2], r"bind on b7de88a94729b931:0/tcp OK")
    rc, status, body = curl_code("-k", "--resolve", f"web.tls.test:{ep}:127.0.0.1", f"https://web.tls.test:{ep}/")
    assert status == 200 and b"tls origin sni=web.tls.test" in body, (rc, body)
    # an SNI no rule names: closed, logged
    rc, status, _ = curl_code("-k", "--resolve", f"x.nowhere.test:{ep}:127.0.0.1", f"https://x.nowhere.test:{ep}/")
    assert status == 0 and rc != 0
    assert wait_log(net["server"], r"no route to host x\.nowhere\.test:443")


def test_private_tunnel_only_for_visitors(net):
    sp, ep = net["sp"], net["ep"]
    assert tagged(ep, "srv2.local")[0] == 502
    assert wait_log(net["server"], rf"tunnel {T_PRIV} is private for host srv2\.local")
    vp = free_port()
    with Gost("-L", f"tcp://127.0.0.1:{vp}/srv2.local", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={T_PRIV}",
              ports=(vp,)):
        assert tagged(vp, "anything") == (200, "b")


def test_visitor_of_another_tunnel_refused(net):
    """A visitor reaches only hosts the ingress gives its own tunnel; an unknown id nothing."""
    sp = net["sp"]
    vp, vp2 = free_port(), free_port()
    unknown = "11111111-2222-3333-4444-555555555555"
    v1, v2 = started(Gost("-L", f"tcp://127.0.0.1:{vp}/www.example.com", "-F",
                          f"tunnel://127.0.0.1:{sp}?tunnel.id={T_PRIV}", ports=(vp,)),
                     Gost("-L", f"tcp://127.0.0.1:{vp2}/www.example.com", "-F",
                          f"tunnel://127.0.0.1:{sp}?tunnel.id={unknown}", ports=(vp2,)))
    with v1, v2:
        assert tagged(vp, "www.example.com")[0] == 0
        assert tagged(vp2, "www.example.com")[0] == 0
        assert wait_log(net["server"], rf"no route to host www\.example\.com in tunnel {T_PRIV}")
        assert wait_log(net["server"], rf"no route to host www\.example\.com in tunnel {unknown}")
        assert wait_log(v1, r"status 6 \(host unreachable\)")


def test_external_public_entrypoint(net):
    """A visitor whose tunnel id is entrypoint.id is routed by the ingress, as the entrypoint."""
    sp = net["sp"]
    vp = free_port()
    with Gost("-L", f"tcp://127.0.0.1:{vp}?sniffing=true", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={T_EP}",
              ports=(vp,)):
        assert tagged(vp, "www.example.com") == (200, "a")
        assert tagged(vp, "srv3.local") == (200, "b")
        assert tagged(vp, "srv2.local")[0] in (0, 503)    # private: not for a public entrypoint
        assert wait_log(net["server"], rf"tunnel {T_PRIV} is private for host srv2\.local", 2)


def test_udp_through_rudp_client_and_udp_visitor(net):
    sp = net["sp"]
    up, vp = free_udp_port(), free_port()
    uv, tv = started(Gost("-L", f"udp://127.0.0.1:{up}/dns.local", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={T_UDP}"),
                     Gost("-L", f"tcp://127.0.0.1:{vp}/dns.local", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={T_UDP}",
                          ports=(vp,)))
    with uv, tv:
        wait_udp_service(uv)
        assert udp_ask(up, b"q1") == b"udp:q1"
        assert udp_ask(up, b"q2") == b"udp:q2"
        # the tunnel has only a UDP client: a TCP visitor finds nothing
        assert tagged(vp, "dns.local")[0] == 0
        assert wait_log(net["server"], rf"tunnel {T_UDP} not available")


def test_bad_requests_on_tunnel_port(net):
    """Garbage, a truncated request and a request without a tunnel id: each refused with a log
    line, and the service goes on."""
    sp, server = net["sp"], net["server"]
    for data in (b"\x05\x01\x00GET / HTTP/1.1\r\n\r\n", b"\x01\x01\x00\x20\x02\x00"):
        with socket.create_connection(("127.0.0.1", sp), timeout=5) as c:
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            assert c.recv(100) == b""
    assert wait_log(server, r"protocol error: relay: bad version")
    # CONNECT with an address but no Tunnel feature: BadRequest (status 1)
    addr = b"\x02\x00\x07" + b"\x01\x7f\x00\x00\x01\x00\x50"
    with socket.create_connection(("127.0.0.1", sp), timeout=5) as c:
        c.sendall(b"\x01\x01" + struct.pack("!H", len(addr)) + addr)
        assert c.recv(100)[:2] == b"\x01\x01"
    assert wait_log(server, r"invalid tunnel ID: refused")
    assert tagged(net["ep"], "www.example.com") == (200, "a")


def app_server(sp, ep, tid, *more, ports=()):
    """A tunnel server whose entrypoint sends app.test to tunnel ``tid``."""
    return Gost("-L", f"tunnel://127.0.0.1:{sp}?entrypoint=127.0.0.1:{ep}&tunnel=app.test:{tid}", *more,
                ports=(sp, ep, *ports))


@contextlib.contextmanager
def pool_of_two(tid, extra1="", extra2=""):
    """A tunnel server and two clients of tunnel ``tid`` (origins tagged one, two) → (server, ep, c1)."""
    sp, ep = free_port(), free_port()
    with TagOrigin("one") as o1, TagOrigin("two") as o2, app_server(sp, ep, tid) as server:
        c1, c2 = started(client(sp, tid, f"127.0.0.1:{o1.port}", extra=extra1),
                         client(sp, tid, f"127.0.0.1:{o2.port}", extra=extra2))
        with c1, c2:
            assert established(server, tid, 2)
            yield server, ep, c1


def test_two_clients_one_tunnel_failover():
    """Two clients bind the same tunnel: the entrypoint uses both; one killed, traffic goes on."""
    tid = "0f0e0d0c-0b0a-4908-8706-050403020100"
    with pool_of_two(tid) as (server, ep, c1):
        assert {tagged(ep, "app.test")[1] for _ in range(24)} == {"one", "two"}
        c1.stop()
        assert wait_log(server, rf"tunnel={tid}, connector=\S+ closed")
        assert [tagged(ep, "app.test") for _ in range(6)] == [(200, "two")] * 6


def test_weight_255_takes_over():
    with pool_of_two("0f0e0d0c-0b0a-4908-8706-0504030201ff", "&tunnel.weight=1", "&tunnel.weight=255") as (_, ep, _c):
        assert {tagged(ep, "app.test")[1] for _ in range(10)} == {"two"}


def test_direct_routing():
    """tunnel.direct: a visitor reaches its tunnel by id without any ingress rule."""
    sp, vp = free_port(), free_port()
    tid = "0f0e0d0c-0b0a-4908-8706-0504030201aa"
    with TagOrigin("d") as o:
        with Gost("-L", f"tunnel://127.0.0.1:{sp}?tunnel.direct=true", ports=(sp,)) as server:
            with client(sp, tid, f"127.0.0.1:{o.port}"):
                assert established(server, tid)
                with Gost("-L", f"tcp://127.0.0.1:{vp}/whatever.test:80", "-F",
                          f"tunnel://127.0.0.1:{sp}?tunnel.id={tid}", ports=(vp,)):
                    assert tagged(vp, "whatever.test") == (200, "d")


def rtcp_client_yaml(sp, tid, nodes, connector_md="", dialer="tcp"):
    """The tutorial's client in YAML: an rtcp service with forwarder ``nodes`` (YAML flow lines)
    whose chain's one node has the tunnel connector."""
    return f"""
services:
- name: service-0
  addr: :0
  handler: {{type: rtcp}}
  listener: {{type: rtcp, chain: chain-0}}
  forwarder:
    nodes:
{nodes}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 127.0.0.1:{sp}
      connector: {{type: tunnel, metadata: {{tunnel.id: {tid}{connector_md}}}}}
      dialer: {{type: {dialer}}}
"""


def test_client_routing_by_node_filter_host():
    """The client's forwarder picks its node by the host the visitor asked for (filter.host)."""
    sp, ep = free_port(), free_port()
    tid = "0f0e0d0c-0b0a-4908-8706-0504030201bb"
    with TagOrigin("ex") as o1, TagOrigin("sub") as o2, TagOrigin("fb") as o3:
        cfg = rtcp_client_yaml(sp, tid, f"""\
    - {{name: example-com, addr: "127.0.0.1:{o1.port}", filter: {{host: example.com}}}}
    - {{name: sub-example-com, addr: "127.0.0.1:{o2.port}", filter: {{host: sub.example.com}}}}
    - {{name: fallback, addr: "127.0.0.1:{o3.port}"}}""")
        with Gost("-L", f"tunnel://127.0.0.1:{sp}?entrypoint=127.0.0.1:{ep}&tunnel=.example.com:{tid}",
                  ports=(sp, ep)) as server:
            with Gost("-C", "-", stdin=cfg):
                assert established(server, tid)
                assert tagged(ep, "example.com") == (200, "ex")
                assert tagged(ep, "sub.example.com") == (200, "sub")
                assert tagged(ep, "abc.example.com") == (200, "fb")


def test_cli_forms_print_and_check():
    """-O yaml of the tutorial's server and client command lines, and --check of what it printed."""
    server = ("-L", f"tunnel://:8443?entrypoint=:80&tunnel=.example.com:{T_WEB},example.org:{T_ORG}")
    out = run_gostg(*server, "-O", "yaml")
    assert out.returncode == 0, out.stderr
    assert "type: tunnel" in out.stdout and "entrypoint: :80" in out.stdout and T_ORG in out.stdout
    chk = run_gostg("-C", "-", "--check", stdin=out.stdout)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    cli = ("-L", "rtcp://:0/192.168.1.1:80", "-F", f"tunnel://:8443?tunnel.id={T_WEB}&tunnel.weight=1")
    out = run_gostg(*cli, "-O", "yaml")
    assert out.returncode == 0, out.stderr
    assert "type: tunnel" in out.stdout and "tunnel.id" in out.stdout
    chk = run_gostg("-C", "-", "--check", stdin=out.stdout)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    # a tunnel id that is no UUID is a config error, not a silent new tunnel
    bad = run_gostg("-L", "rtcp://:0/127.0.0.1:80", "-F", "tunnel://:8443?tunnel.id=nope", "--check")
    assert bad.returncode != 0 and "tunnel.id" in bad.stdout + bad.stderr
    # a key GOST reads but gostg does not build is refused, not ignored
    bad = run_gostg("-L", "tunnel://:8443?entrypoint.ProxyProtocol=1", "--check")
    assert bad.returncode != 0 and "entrypoint.ProxyProtocol" in bad.stdout + bad.stderr


def test_yaml_forms_with_an_ingress_object():
    """The tutorial's YAML: the server names an ingress object (a private rule among them), the
    client is an rtcp service whose chain's node has the tunnel connector; tunnel+tls between."""
    sp, ep = free_port(), free_port()
    tid, priv = "7e57ab1e-0000-4000-8000-000000000001", "7e57ab1e-0000-4000-8000-000000000002"
    server = f"""
services:
- name: service-0
  addr: 127.0.0.1:{sp}
  handler:
    type: tunnel
    metadata: {{entrypoint: "127.0.0.1:{ep}", ingress: ingress-0}}
  listener: {{type: tls}}
ingresses:
- name: ingress-0
  rules:
  - {{hostname: ".example.com", endpoint: {tid}}}
  - {{hostname: "srv-2.local", endpoint: "${priv}"}}
"""
    with TagOrigin("y") as origin, Gost("-C", "-", stdin=server, ports=(sp, ep)) as srv:
        cli = rtcp_client_yaml(sp, tid, f'    - {{name: target-0, addr: "127.0.0.1:{origin.port}"}}',
                               ", tunnel.weight: 1", dialer="tls")
        with Gost("-C", "-", stdin=cli):
            assert established(srv, tid)
            assert tagged(ep, "a.example.com") == (200, "y")
            assert tagged(ep, "srv-2.local")[0] == 502


def test_replace_and_delete_through_the_api():
    """PUT the tunnel service (new metadata): the old entrypoint and pool close, the client re-binds
    to the new one; DELETE: the entrypoint port is closed and the process keeps no tunnel."""
    from .helpers import port_closed
    from .peers import Api
    sp, ep, ap = free_port(), free_port(), free_port()
    tid = "0f0e0d0c-0b0a-4908-8706-0504030201cc"
    with TagOrigin("api") as o:
        with app_server(sp, ep, tid, "-api", f"127.0.0.1:{ap}", ports=(ap,)) as server:
            api = Api(ap)
            with client(sp, tid, f"127.0.0.1:{o.port}"):
                assert established(server, tid)
                svc = api.service("service-0")
                svc["handler"]["metadata"]["tunnel"] = f"other.test:{tid}"
                api.put("services", "service-0", svc)
                assert established(server, tid, 2, timeout=15)   # the client bound again, to the new one
                assert wait_for(lambda: tagged(ep, "other.test") == (200, "api"), timeout=5)
                assert tagged(ep, "app.test")[0] == 502
                api.delete("services", "service-0")
                assert wait_for(lambda: port_closed(ep))
                assert wait_for(lambda: port_closed(sp))


def test_slow_peers_time_out():
    """A peer that sends half a request on the tunnel port, or half a request head on the
    entrypoint, is closed after readTimeout / entrypoint.readTimeout, with a log line."""
    sp, ep = free_port(), free_port()
    with Gost("-L", f"tunnel://127.0.0.1:{sp}?readTimeout=0.5s&entrypoint=127.0.0.1:{ep}"
                    f"&entrypoint.readTimeout=0.5s&tunnel=app.test:{T_WEB}", ports=(sp, ep)) as server:
        for port, data in ((sp, b"\x01\x02\x00"), (ep, b"GET / HTTP/1.1\r\nHost: app")):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(data)
                t0 = time.monotonic()
                assert c.recv(100) in (b"", b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                assert time.monotonic() - t0 < 3
        assert wait_log(server, r"handshake timeout")
        assert wait_log(server, r"no whole first message within 0\.5s")


def test_extra_entrypoints():
    """``entrypoints``: more public ports, each with the handler's ingress unless it names one."""
    sp, ep, ep2 = free_port(), free_port(), free_port()
    tid = "0f0e0d0c-0b0a-4908-8706-0504030201dd"
    cfg = f"""
services:
- name: t
  addr: 127.0.0.1:{sp}
  handler:
    type: tunnel
    metadata:
      entrypoint: 127.0.0.1:{ep}
      entrypoints: [{{name: second, addr: "127.0.0.1:{ep2}"}}]
      tunnel: app.test:{tid}
"""
    with TagOrigin("e") as o, Gost("-C", "-", stdin=cfg, ports=(sp, ep, ep2)) as server:
        with client(sp, tid, f"127.0.0.1:{o.port}"):
            assert established(server, tid)
            assert tagged(ep, "app.test") == (200, "e")
            assert tagged(ep2, "app.test") == (200, "e")
    bad = run_gostg("-C", "-", "--check", stdin=cfg.replace("name: second", "nme: second"))
    assert bad.returncode != 0 and "entrypoints[0]" in bad.stdout + bad.stderr


def test_udp_client_routing_by_node_filter_host():
    """The tutorial's UDP service: one rudp client, two DNS-like targets chosen by filter.host,
    two udp visitors naming dns.srv-2.local and dns.srv-3.local through one tunnel."""
    sp = free_port()
    up2, up3 = free_udp_port(), free_udp_port()
    tid = "aede1f6a-762b-45da-b937-b6632356555a"
    with UDPEcho(b"two:") as e2, UDPEcho(b"three:") as e3:
        cli = rtcp_client_yaml(sp, tid, f"""\
    - {{name: dns-1, addr: "{e2.addr}", filter: {{host: dns.srv-2.local}}}}
    - {{name: dns-2, addr: "{e3.addr}", filter: {{host: dns.srv-3.local}}}}""").replace("rtcp", "rudp")
        with Gost("-L", f"tunnel://127.0.0.1:{sp}?tunnel=dns.srv-2.local:{tid},dns.srv-3.local:{tid}",
                  ports=(sp,)) as server, Gost("-C", "-", stdin=cli):
            assert established(server, tid)
            v2, v3 = started(
                Gost("-L", f"udp://127.0.0.1:{up2}/dns.srv-2.local", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={tid}"),
                Gost("-L", f"udp://127.0.0.1:{up3}/dns.srv-3.local", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={tid}"))
            with v2, v3:
                wait_udp_service(v2)
                wait_udp_service(v3)
                assert udp_ask(up2, b"a") == b"two:a"
                assert udp_ask(up3, b"b") == b"three:b"


def test_no_fd_leak_after_clients_and_visitors_go():
    """Concurrent requests through two tunnel connections, then the clients go: the server is back
    to the descriptors it had before any client came (pool, streams, entrypoint conns all closed)."""
    import threading
    from .peers import fd_baseline, fd_settle
    tid = "0f0e0d0c-0b0a-4908-8706-0504030201ee"
    sp, ep = free_port(), free_port()
    with TagOrigin("one") as o1, TagOrigin("two") as o2, app_server(sp, ep, tid) as server:
        base = fd_baseline(server.proc.pid)
        c1, c2 = started(client(sp, tid, f"127.0.0.1:{o1.port}"), client(sp, tid, f"127.0.0.1:{o2.port}"))
        with c1, c2:
            assert established(server, tid, 2)
            got = []

            def worker():
                for _ in range(5):
                    got.append(tagged(ep, "app.test")[0])
            ts = [threading.Thread(target=worker) for _ in range(6)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            assert got == [200] * 30
        assert wait_log(server, rf"tunnel={tid}, connector=\S+ closed", 2)
        assert fd_settle(server.proc.pid, base) <= base
        assert tagged(ep, "app.test")[0] == 503   # still serving: nothing to route to


def test_handler_observer_counts_per_tunnel():
    """The tunnel handler's observer reports stats per tunnel ID (GOST's per-tunnel stats), for
    entrypoint and visitor traffic alike."""
    from .test_observer import Plugin
    sp, ep, vp = free_port(), free_port(), free_port()
    tid = "0f0e0d0c-0b0a-4908-8706-050403020111"
    with Plugin() as plugin, TagOrigin("o") as o:
        cfg = f"""
services:
- name: t
  addr: 127.0.0.1:{sp}
  handler:
    type: tunnel
    observer: obs-0
    metadata: {{entrypoint: "127.0.0.1:{ep}", tunnel: "app.test:{tid}", observer.period: 1s}}
observers:
- {{name: obs-0, plugin: {{type: http, addr: "{plugin.url}"}}}}
"""
        with Gost("-C", "-", stdin=cfg, ports=(sp, ep)) as server, client(sp, tid, f"127.0.0.1:{o.port}"):
            assert established(server, tid)
            assert tagged(ep, "app.test") == (200, "o")
            with Gost("-L", f"tcp://127.0.0.1:{vp}/app.test", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={tid}",
                      ports=(vp,)):
                assert tagged(vp, "app.test") == (200, "o")
            assert plugin.wait(lambda: any(e.get("client") == tid and e["stats"]["totalConns"] >= 2
                                           for e in plugin.events("stats")))


def test_workers_keep_the_tunnel_service_in_one_process():
    """With -workers 2 the tunnel service (its pool, its entrypoint) runs in worker 0 only: every
    request finds the client's connection."""
    tid = "0f0e0d0c-0b0a-4908-8706-050403020122"
    sp, ep = free_port(), free_port()
    with TagOrigin("w") as o, app_server(sp, ep, tid, "-workers", "2") as server:
        with client(sp, tid, f"127.0.0.1:{o.port}"):
            assert established(server, tid)
            assert [tagged(ep, "app.test") for _ in range(10)] == [(200, "w")] * 10
