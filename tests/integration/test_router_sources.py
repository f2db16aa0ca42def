"""GOST's routing tunnel server (handler ``router``) taking its routes from Redis (pushed), and
from HTTP and gRPC router plugins: two hosts join over loopback with GOST's association
request, one sends an IP packet, and it arrives at the host the routes name. A source or plugin
that cannot answer routes nothing: the packet is dropped with a log line."""
import socket
import struct

import pytest

from .helpers import Gost, free_port, need_grpc, wait_for
from .peers import wait_log
from .pluginserver import PluginServer
from .redisproc import RedisServer
from .test_tun import _assoc, _ipv4


def server(tmp_path, router):
    port = free_port()
    cfg = tmp_path / "router.yaml"
    import json
    cfg.write_text(json.dumps({
        "services": [{"name": "router-svc", "addr": f"127.0.0.1:{port}",
                      "handler": {"type": "router", "metadata": {"router": "router-0"}},
                      "listener": {"type": "tcp"}}],
        "routers": [{"name": "router-0", **router}]}))
    return Gost("-C", cfg, ports=[port]), port


class Hosts:
    """Hosts joined to the router server as GOST's router connector joins them."""

    def __init__(self, port, *names):
        self.conns = {}
        for name in names:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(_assoc(name))
            assert s.recv(4)[:2] == b"\x01\x00", name
            s.recv(23)
            self.conns[name] = s

    def send(self, src_host, src, dst):
        pkt = _ipv4(src, dst)
        self.conns[src_host].sendall(struct.pack("!H", len(pkt)) + pkt)
        return struct.pack("!H", len(pkt)) + pkt

    def got(self, host, want, timeout=1.0):
        s = self.conns[host]
        s.settimeout(timeout)
        try:
            return s.recv(len(want)) == want
        except socket.timeout:
            return False

    def close(self):
        for s in self.conns.values():
            s.close()


def test_routes_from_redis_hash_pushed(tmp_path):
    """GOST's router HASH (dst → gateway); a HSET + PUBLISH gostg:reload moves a route at once."""
    with RedisServer(tmp_path) as rs:
        r = rs.client()
        key = "gost:routers:router-0"
        r.hset(key, mapping={"192.168.123.2": "host-2", "192.168.100.0/24": "host-2"})
        g, port = server(tmp_path, {"redis": {"addr": rs.addr, "key": key, "pubsub": True}, "reload": "1h"})
        with g:
            h = Hosts(port, "host-1", "host-2", "host-3")
            try:
                assert h.got("host-2", h.send("host-1", "192.168.123.1", "192.168.123.2"))
                assert h.got("host-2", h.send("host-1", "192.168.123.1", "192.168.100.7"))
                r.hset(key, "192.168.100.0/24", "host-3")
                r.publish("gostg:reload", key)

                def moved():
                    return h.got("host-3", h.send("host-1", "192.168.123.1", "192.168.100.7"), 0.3)
                assert wait_for(moved, timeout=3), g.log_text()[-2000:]
                # a destination no route holds: dropped, logged
                assert not h.got("host-2", h.send("host-1", "192.168.123.1", "10.9.9.9"), 0.3)
                assert wait_log(g, r"no route.*10\.9\.9\.9|10\.9\.9\.9.*discarded")
            finally:
                h.close()


def test_routes_from_an_http_plugin_fail_closed(tmp_path):
    """GOST's HTTP router plugin: GET ?dst=…&id=… → {"dst", "gateway"}; down → nothing routed."""
    asked = []

    def get_route(q):
        asked.append(q)
        return {"dst": q["dst"], "gateway": "host-2"} if q["dst"].startswith("192.168.123.") else (404, {})

    plugin = PluginServer(rest={("GET", "/router"): get_route})
    with plugin:
        g, port = server(tmp_path, {"plugin": {"type": "http", "addr": f"{plugin.url}/router", "timeout": "1s"}})
        with g:
            h = Hosts(port, "host-1", "host-2")
            try:
                assert h.got("host-2", h.send("host-1", "192.168.123.1", "192.168.123.2"))
                assert any(q.get("dst") == "192.168.123.2" for q in asked)
                assert not h.got("host-2", h.send("host-1", "192.168.123.1", "10.1.1.1"), 0.3)
                plugin.server.shutdown()
                plugin.server.server_close()
                assert not h.got("host-2", h.send("host-1", "192.168.123.1", "192.168.123.2"), 1.5)
                assert wait_log(g, r"router plugin router-0: .*no route until it answers", 1, 5)
            finally:
                h.close()


def test_routes_from_a_grpc_plugin(tmp_path):
    need_grpc()
    from .grpcpeer import PluginServer as GrpcPlugin

    with GrpcPlugin() as plugin:
        plugin.routes = {"192.168.123.2": ("192.168.123.2", "host-2")}
        g, port = server(tmp_path, {"plugin": {"type": "grpc", "addr": f"127.0.0.1:{plugin.port}",
                                               "timeout": "2s"}})
        with g:
            h = Hosts(port, "host-1", "host-2")
            try:
                assert h.got("host-2", h.send("host-1", "192.168.123.1", "192.168.123.2"))
                assert plugin.count("GetRoute") >= 1
            finally:
                h.close()
