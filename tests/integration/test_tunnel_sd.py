"""Reverse proxy tunnel high availability (GOST's reverse-proxy-tunnel-ha tutorial): two tunnel
server nodes share their tunnels through an HTTP sd plugin (a small registry in this test). A
client bound to node 1 is reached through node 2's entrypoint and through a visitor of node 2;
the client's connection is registered, renewed and deregistered. Also: the relay path of an
entrypoint is refused on a node without sd, and an ingress name that does not resolve routes
nothing."""
import http.server
import json
import socket
import threading
from urllib.parse import parse_qs, urlsplit

from gostg.protocols import relay as rp

from .helpers import Gost, HTTPServerThread, _ThreadingHTTP, free_port, started, wait_for
from .peers import wait_log
from .test_reverse_proxy import TagOrigin
from .test_tunnel import client, established, tagged

TID = "5b1e8c2a-7d3f-4e61-9a0b-c4d5e6f70819"


class SDRegistry(HTTPServerThread):
    """GOST's HTTP sd plugin protocol: POST register, DELETE deregister, PUT renew (a JSON
    service each), GET ?name= → {"services": [...]}. ``calls`` keeps (method, service id)."""

    def __init__(self):
        box = self
        self.services = {}
        self.calls = []
        self.lock = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _svc(self):
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}")

            def do_POST(self):
                s = self._svc()
                with box.lock:
                    box.services[s["id"]] = s
                    box.calls.append(("register", s["id"]))
                self._answer({"ok": True})

            def do_DELETE(self):
                s = self._svc()
                with box.lock:
                    box.services.pop(s["id"], None)
                    box.calls.append(("deregister", s["id"]))
                self._answer({"ok": True})

            def do_PUT(self):
                s = self._svc()
                with box.lock:
                    box.calls.append(("renew", s["id"]))
                self._answer({"ok": True})

            def do_GET(self):
                name = parse_qs(urlsplit(self.path).query).get("name", [""])[0]
                with box.lock:
                    found = [s for s in box.services.values() if s["name"] == name]
                    box.calls.append(("get", name))
                self._answer({"services": found})

        self.server = _ThreadingHTTP(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/sd"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def node_config(sp, ep, sd_url, ttl="1s"):
    return f"""
services:
- name: tunnel
  addr: 127.0.0.1:{sp}
  handler:
    type: tunnel
    metadata:
      entrypoint: 127.0.0.1:{ep}
      tunnel: app.test:{TID}
      sd: sd-0
      tunnel.ttl: {ttl}
  listener:
    type: tcp
sds:
- name: sd-0
  plugin:
    type: http
    addr: {sd_url}
"""


def test_two_nodes_share_a_tunnel_through_sd():
    sp1, ep1, sp2, ep2, vp = (free_port() for _ in range(5))
    with SDRegistry() as sd, TagOrigin("far") as origin:
        n1, n2 = started(Gost("-C", "-", stdin=node_config(sp1, ep1, sd.url), ports=(sp1, ep1)),
                         Gost("-C", "-", stdin=node_config(sp2, ep2, sd.url), ports=(sp2, ep2)))
        with n1, n2:
            with client(sp1, TID, f"127.0.0.1:{origin.port}"):
                assert established(n1, TID)
                assert wait_for(lambda: any(m == "register" for m, _ in sd.calls))
                [svc] = sd.services.values()
                assert svc["name"] == TID and svc["network"] == "tcp" and svc["address"] == f"127.0.0.1:{ep1}"
                # node 2 holds no connection of the tunnel: it asks sd and goes through node 1
                assert tagged(ep2, "app.test") == (200, "far")
                assert ("get", TID) in sd.calls
                assert tagged(ep1, "app.test") == (200, "far")
                # a visitor of node 2 too (node 1's entrypoint takes node 2's relay request)
                with Gost("-L", f"tcp://127.0.0.1:{vp}/app.test", "-F", f"tunnel://127.0.0.1:{sp2}?tunnel.id={TID}",
                          ports=(vp,)):
                    assert tagged(vp, "app.test") == (200, "far")
                assert wait_for(lambda: any(m == "renew" for m, _ in sd.calls), timeout=5)
            # the client is gone: deregistered, and node 2 finds nothing
            assert wait_for(lambda: any(m == "deregister" for m, _ in sd.calls))
            assert not sd.services
            assert tagged(ep2, "app.test")[0] == 503


def test_entrypoint_relay_path_needs_sd_and_missing_ingress_fails_closed():
    sp, ep = free_port(), free_port()
    with TagOrigin("x") as origin:
        with Gost("-L", f"tunnel://127.0.0.1:{sp}?entrypoint=127.0.0.1:{ep}&ingress=nope",
                  ports=(sp, ep)) as server:
            with client(sp, TID, f"127.0.0.1:{origin.port}"):
                assert established(server, TID)
                assert tagged(ep, "app.test")[0] == 502
                assert wait_log(server, r"ingress 'nope' not found: routing nothing")
                # a relay request on the public port: refused (only sd nodes send them)
                req = rp.encode_request(rp.Request(rp.CMD_CONNECT, (
                    rp.Addr("1.2.3.4", 1), rp.Addr("app.test", 80), rp.Tunnel(rp.parse_tunnel_id(TID)))))
                with socket.create_connection(("127.0.0.1", ep), timeout=5) as s:
                    s.sendall(req)
                    assert s.recv(4)[:2] == bytes((rp.VERSION, rp.STATUS_FORBIDDEN))
                assert wait_log(server, r"relay request refused")


def test_stale_sd_entries_cannot_make_a_loop():
    """sd says each node's tunnel is on the other (stale entries, no client anywhere): an HTTP
    request comes back to a node that passed it on (Gost-Forwarded-Node) and gets 503; a visitor
    handed to another node is served from that node's pool only (ServiceUnavailable)."""
    sp1, ep1, sp2, ep2, vp = (free_port() for _ in range(5))
    with SDRegistry() as sd:
        for i, ep in ((1, ep2), (2, ep1)):
            sd.services[f"stale-{i}"] = {"id": f"stale-{i}", "name": TID, "node": f"gone-{i}", "network": "tcp",
                                         "address": f"127.0.0.1:{ep}"}
        n1, n2 = started(Gost("-C", "-", stdin=node_config(sp1, ep1, sd.url), ports=(sp1, ep1)),
                         Gost("-C", "-", stdin=node_config(sp2, ep2, sd.url), ports=(sp2, ep2)))
        with n1, n2:
            assert tagged(ep1, "app.test", timeout=10)[0] == 503
            assert wait_for(lambda: wait_log(n1, "forwarding loop detected", timeout=0)
                            or wait_log(n2, "forwarding loop detected", timeout=0), timeout=5)
            with Gost("-L", f"tcp://127.0.0.1:{vp}/app.test", "-F", f"tunnel://127.0.0.1:{sp2}?tunnel.id={TID}",
                      ports=(vp,)):
                assert tagged(vp, "app.test", timeout=10)[0] == 0
                # either node may say it: poll both at once (one node's full wait first costs 5 s)
                assert wait_for(lambda: wait_log(n1, rf"tunnel {TID} not available", timeout=0)
                                or wait_log(n2, rf"tunnel {TID} not available", timeout=0), timeout=5)
