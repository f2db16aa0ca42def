"""Issue 15, musts 1 and 2: a gevent-patched application routes its *own* connections through
a 2-hop chain of two real ``bin/gostg`` processes (A: socks5 on [::1] when the box has IPv6;
B: relay, the only one that knows the name ``origin.test``, through its hosts mapping).

The application runs as a subprocess that calls ``monkey.patch_all()`` first (this test
process stays unpatched). Its resolver (gevent's hub resolver, replaced by one that sends DNS
queries with dnspython: gevent's own dnspython resolver cannot be given a port) asks a DNS
stub here, which
answers every name with 127.0.0.1 and records the questions: the stub hearing ``control.test``
(looked up before patching) proves the wiring; it must never hear ``origin.test``."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from . import embedworld
from .embedworld import HAS_V6, a_targets, b_targets, run_app
from .helpers import ROOT, free_port, wait_for

world = embedworld.world      # the module's fixture: the chain, the origins, the DNS stub


def test_dial_returns_sockets_routed_by_the_chain(world):
    """Must 1: ``g.dial`` / ``g.create_connection`` through the 2-hop chain, used with
    makefile, http.client and SSLContext.wrap_socket; a 1-hop socks5 route gives the tunnel's
    own socket; an unknown chain is an error, never a direct connection."""
    port, tls_port = world["origin"].port, world["tls_port"]
    res = run_app(world, f"""
        s = g.dial(("origin.test", {port}), chain="egress")
        s.sendall(b"GET /dial HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("makefile", s.makefile("rb").read().decode().splitlines()[-1])
        s.close()

        s = g.create_connection("origin.test:{port}", timeout=5, chain="egress")
        out("timeout", s.gettimeout())
        c = http.client.HTTPConnection("origin.test", {port})
        c.sock = s
        c.request("GET", "/http-client")
        out("http_client", body(c.getresponse()))

        ctx = ssl.create_default_context(cafile={world["cafile"]!r})
        with ctx.wrap_socket(g.dial(("origin.test", {tls_port}), chain="egress", timeout=5),
                             server_hostname="origin.test") as t:
            out("tls_peer_cert_cn", dict(x[0] for x in t.getpeercert()["subject"])["commonName"])
            t.sendall(b"GET /tls HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
            out("tls", t.makefile("rb").read().decode().splitlines()[-1])

        s = g.dial(("127.0.0.1", {port}), chain="one")
        out("one_hop_is_the_tunnel", [type(s).__name__, "%s" % s.getpeername()[0]])
        s.close()

        try:
            g.dial(("origin.test", {port}), chain="nope")
        except gostg.GostgError as exc:
            out("unknown_chain", str(exc))
        try:
            g.create_connection(("origin.test", {port}), source_address=("127.0.0.2", 0), chain="egress")
        except ValueError as exc:
            out("source_address", str(exc))
        try:
            g.dial(("127.0.0.1", {free_port()}), chain="one", timeout=10)   # A is refused there
        except gostg.RouteError as exc:
            out("route_error", [isinstance(exc, OSError), exc.errno, str(exc)])
    """)
    assert res["makefile"] == "hello from origin /dial host=origin.test"
    assert res["timeout"] == 5
    assert res["http_client"] == f"hello from origin /http-client host=origin.test:{port}"
    assert res["tls"] == "hello from origin /tls host=origin.test"
    assert res["tls_peer_cert_cn"] == "origin.test"
    # a 1-hop socks5 route over TCP: the socket is the tunnel itself, connected to node A
    assert res["one_hop_is_the_tunnel"] == ["socket", "::1" if HAS_V6 else "127.0.0.1"]
    assert res["unknown_chain"] == "chain 'nope' not found"
    assert "interface" in res["source_address"]
    ok, code, text = res["route_error"]
    assert ok and code == 111 and "via chain 'one'" in text and "socks5 CONNECT" in text, text
    # the chain's last node got the name, and resolved it itself
    dsts = b_targets(world)
    assert f"origin.test:{port}" in dsts and f"origin.test:{tls_port}" in dsts
    assert world["stub"].names.count("control.test") >= 1
    assert "origin.test" not in world["stub"].names


def test_patched_app_routes_every_connect_without_dns_leaks(world):
    """Must 2: urllib.request, http.client, requests (urllib3 2.x resolves before it
    connects) and raw IPv4/IPv6 sockets go through the chain with the name; the app's
    resolver hears nothing for routed names; bypass goes direct (and resolves locally);
    loopback is never routed; restore_socket puts back the exact functions."""
    port = world["origin"].port
    a_before = a_targets(world).count(f"127.0.0.1:{port}")
    res = run_app(world, f"""
        import requests
        ORIG = {{n: getattr(socket, n) for n in ("create_connection", "getaddrinfo", "gethostbyname",
                                                 "gethostbyname_ex")}}
        ORIG["connect"], ORIG["connect_ex"] = socket.socket.connect, socket.socket.connect_ex
        try:
            gostg.patch_socket(g, chain="nope")
        except gostg.GostgError as exc:
            out("unknown_chain", str(exc))
        out("still_unpatched", socket.socket.connect is ORIG["connect"])

        gostg.patch_socket(g, chain="egress", bypass="internal")
        url = "http://origin.test:{port}"
        out("urllib", body(urllib.request.urlopen(url + "/urllib", timeout=10)))
        c = http.client.HTTPConnection("origin.test", {port}, timeout=10)
        c.request("GET", "/http-client")
        out("http_client", body(c.getresponse()))
        session = requests.Session()
        session.trust_env = False
        out("requests", session.get(url + "/requests", timeout=10).text.strip())
        out("requests_again", session.get(url + "/keepalive", timeout=10).text.strip())
        # HTTPS: urllib3 checks the certificate against the name, not the fake address
        out("requests_https", session.get("https://origin.test:{world['tls_port']}/https", timeout=10,
                                          verify={world['cafile']!r}).text.strip())

        out("gai4", socket.getaddrinfo("origin.test", {port}, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
        ai6 = socket.getaddrinfo("origin.test", {port}, socket.AF_INET6, socket.SOCK_STREAM)[0]
        out("gai6", ai6[4][0])
        out("gethostbyname", socket.gethostbyname("origin.test"))
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.settimeout(10)
        s6.connect(ai6[4])
        s6.sendall(b"GET /v6 HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("v6", s6.makefile("rb").read().decode().splitlines()[-1])
        s4 = socket.socket()
        out("connect_ex", s4.connect_ex(("origin.test", {port})))
        s4.sendall(b"GET /connect-ex HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("connect_ex_body", s4.makefile("rb").read().decode().splitlines()[-1])

        tls_ctx = ssl.create_default_context(cafile={world["cafile"]!r})
        with tls_ctx.wrap_socket(socket.socket(), server_hostname="origin.test") as t:   # wrapped, then connected
            t.settimeout(10)
            t.connect(("origin.test", {world["tls_port"]}))
            t.sendall(b"GET /ssl-socket HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
            out("ssl_socket", t.makefile("rb").read().decode().splitlines()[-1])

        import os
        def fds():
            return len(os.listdir("/proc/self/fd"))
        before = fds()
        def get(i):
            with requests.get(url + "/many/%d" % i, timeout=20) as r:
                return r.text.strip() == "hello from origin /many/%d host=origin.test:{port}" % i
        jobs = [gevent.spawn(get, i) for i in range(30)]
        gevent.joinall(jobs, timeout=60)
        out("concurrent", sum(bool(j.value) for j in jobs))
        gevent.sleep(0.2)      # relay greenlets see the EOF and close their ends
        out("fds_back", fds() - before)

        out("literal_not_faked", socket.getaddrinfo("127.0.0.1", 80, socket.AF_INET)[0][4][0])
        out("loopback", body(urllib.request.urlopen("http://127.0.0.1:{port}/loopback", timeout=10)))
        out("bypass", body(urllib.request.urlopen("http://direct.test:{port}/bypass", timeout=10)))
        try:
            socket.create_connection(("198.18.7.7", 80), timeout=5)
        except OSError as exc:
            out("unlent_fake", exc.errno)

        gostg.restore_socket()
        out("restored", [getattr(socket, n) is ORIG[n] for n in ORIG if n not in ("connect", "connect_ex")]
            + [socket.socket.connect is ORIG["connect"], socket.socket.connect_ex is ORIG["connect_ex"],
               "connect" not in vars(socket.socket)])

        with gostg.routed(g, chain="egress"):
            out("routed_block", session.get("http://origin.test:{port}/routed", timeout=10).text.strip())
            with gostg.routed(g, chain="one", hosts="local"):     # nested: A alone, name mapped here
                out("nested", requests.get("http://origin.test:{port}/nested", timeout=10).text.strip())
            out("outer_again", requests.get("http://origin.test:{port}/outer-again", timeout=10).text.strip())
        out("routed_restored", socket.socket.connect is ORIG["connect"] and socket.getaddrinfo is ORIG["getaddrinfo"])
    """)
    assert res["unknown_chain"] == "chain 'nope' not found" and res["still_unpatched"] is True
    for key, path in (("urllib", "/urllib"), ("http_client", "/http-client"), ("requests", "/requests"),
                      ("requests_again", "/keepalive"), ("routed_block", "/routed"), ("requests_https", "/https"),
                      ("nested", "/nested"), ("outer_again", "/outer-again")):
        assert res[key].startswith(f"hello from origin {path} host=origin.test"), (key, res[key])
    assert res["gai4"].startswith("198.18.") and res["gethostbyname"] == res["gai4"]
    assert res["gai6"].startswith("2001:2::")
    assert res["v6"] == "hello from origin /v6 host=origin.test"
    assert res["connect_ex"] == 0 and res["connect_ex_body"] == "hello from origin /connect-ex host=origin.test"
    assert res["ssl_socket"] == "hello from origin /ssl-socket host=origin.test"
    assert res["concurrent"] == 30
    assert res["fds_back"] <= 0, res["fds_back"]     # no socket left behind by 30 routed requests
    assert res["literal_not_faked"] == "127.0.0.1"
    assert res["loopback"] == f"hello from origin /loopback host=127.0.0.1:{port}"
    assert res["bypass"] == f"hello from origin /bypass host=direct.test:{port}"
    assert res["unlent_fake"] == 113            # EHOSTUNREACH: never dialled
    assert all(res["restored"]), res["restored"]
    assert res["routed_restored"] is True

    # (B writes a tunnel's line once its relay first waits: give the last ones a moment)
    wait_for(lambda: b_targets(world).count(f"origin.test:{port}") >= 37, timeout=5)
    dsts = b_targets(world)
    assert dsts.count(f"origin.test:{port}") >= 37, dsts
    assert f"origin.test:{world['tls_port']}" in dsts
    # the nested block's request went through A alone, to the address its hosts mapped
    assert a_targets(world).count(f"127.0.0.1:{port}") == a_before + 1      # every routed request, by name
    assert not any(d.startswith(("198.18.", "[2001:2:", "127.0.0.1:%d" % port, "direct.test")) for d in dsts), dsts
    names = world["stub"].names
    assert "control.test" in names          # the app's resolver does ask the stub …
    assert "direct.test" in names           # … and a bypassed name is resolved as without gostg
    assert "origin.test" not in names       # … but a routed name never reaches it


def _has_thread_mode():
    import inspect

    from gostg.runtime import Gost as _G
    return "thread" in inspect.signature(_G.__init__).parameters


@pytest.mark.skipif(not _has_thread_mode(), reason="thread mode (issue 15 must 3) is not in this tree")
def test_patch_socket_in_an_unpatched_threaded_app(world, tmp_path):
    """Must 2 in thread mode: a plain threaded app (never patched) routes urllib, http.client
    from 8 threads and a raw socket through the 2-hop chain; what reaches the C resolver is
    recorded in-process (no DNS stub can be given to the system resolver): never origin.test."""
    port = world["origin"].port
    script = tmp_path / "threaded_app.py"
    script.write_text(textwrap.dedent(f"""
        import _socket, http.client, json, socket, threading, urllib.request
        asked = []
        real_gai = _socket.getaddrinfo
        def recording_gai(host, *a, **kw):
            asked.append(host.decode() if isinstance(host, bytes) else host)
            return real_gai(host, *a, **kw)
        _socket.getaddrinfo = recording_gai       # what the stdlib resolver is asked
        import gostg
        def out(key, value):
            print(key + "=" + json.dumps(value), flush=True)
        g = gostg.Gost({{"chains": [{{"name": "egress", "hops": [
            {{"name": "h1", "nodes": [{{"name": "a", "addr": "{world['a_addr']}", "connector": {{"type": "socks5"}}}}]}},
            {{"name": "h2", "nodes": [{{"name": "b", "addr": "127.0.0.1:{world['pb']}", "connector": {{"type": "relay"}}}}]}}]}}]}},
            thread=True)
        g.start()
        orig = socket.socket.connect, socket.create_connection, socket.getaddrinfo
        gostg.patch_socket(g, chain="egress")
        out("urllib", urllib.request.urlopen("http://origin.test:{port}/threaded", timeout=10).read().decode().strip())
        got = []
        def worker(i):
            c = http.client.HTTPConnection("origin.test", {port}, timeout=10)
            c.request("GET", "/t%d" % i)
            got.append(c.getresponse().read().decode().strip() == "hello from origin /t%d host=origin.test:{port}" % i)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join(30) for t in threads]
        out("threads", sum(got))
        s = socket.socket()
        s.settimeout(10)
        s.connect(("origin.test", {port}))
        s.sendall(b"GET /raw HTTP/1.0\\r\\nHost: origin.test\\r\\n\\r\\n")
        out("raw", [type(s).__module__, s.gettimeout(), s.makefile("rb").read().decode().splitlines()[-1]])
        gostg.restore_socket()
        out("restored", (socket.socket.connect, socket.create_connection, socket.getaddrinfo) == orig)
        g.stop()
        out("asked", asked)
    """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90,
                       env=dict(os.environ, PYTHONPATH=ROOT), cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    res = {k: json.loads(v) for k, v in (ln.split("=", 1) for ln in r.stdout.splitlines()
                                         if "=" in ln and not ln.startswith("{"))}
    assert res["urllib"] == f"hello from origin /threaded host=origin.test:{port}"
    assert res["threads"] == 8
    assert res["raw"] == ["socket", 10.0, "hello from origin /raw host=origin.test"]
    assert res["restored"] is True
    assert "origin.test" not in res["asked"], res["asked"]
    assert f"origin.test:{port}" in b_targets(world)
