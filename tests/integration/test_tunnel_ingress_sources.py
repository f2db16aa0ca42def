"""The tunnel entrypoint routed by an ingress whose rules come from Redis (pushed), from an HTTP
source, and from HTTP and gRPC plugins — end to end with a gostg tunnel server, a gostg client
binding an rtcp service into the tunnel, and curl through the public entrypoint. A source or
plugin that cannot answer routes nothing (502), and says so in the log."""
import json

import pytest

from .helpers import Gost, free_port, need_grpc, started, wait_for
from .peers import curl_code, log_records, wait_log
from .pluginserver import PluginServer
from .redisproc import RedisServer
from .test_reverse_proxy import TagOrigin

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
OTHER = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"      # a tunnel no client binds


def tag(port, host):
    rc, status, body = curl_code("-H", f"Host: {host}", f"http://127.0.0.1:{port}/p", timeout=5)
    if status == 200:
        return status, json.loads(body)["tag"]
    return status, None


def server_cfg(tmp_path, sp, ep, ingress):
    cfg = {"services": [{"name": "tun", "addr": f"127.0.0.1:{sp}",
                         "handler": {"type": "tunnel", "metadata": {"entrypoint": f"127.0.0.1:{ep}",
                                                                     "ingress": "ing"}},
                         "listener": {"type": "tcp"}}],
           "ingresses": [{"name": "ing", **ingress}]}
    path = tmp_path / "server.json"
    path.write_text(json.dumps(cfg))
    return path


def tunnel_pair(tmp_path, ingress, origin):
    sp, ep = free_port(), free_port()
    server = Gost("-C", server_cfg(tmp_path, sp, ep, ingress), ports=(sp, ep))
    client = Gost("-L", f"rtcp://:0/127.0.0.1:{origin.port}", "-F", f"tunnel://127.0.0.1:{sp}?tunnel.id={TID}")
    return server, client, ep


def joined(server):
    return wait_log(server, rf"tunnel={TID}, connector=\S+, weight=\d+ established", 1, 10)


def test_ingress_from_redis_hash_pushed(tmp_path):
    """GOST's ingress HASH (hostname → endpoint) in Redis; with pubsub a HSET + PUBLISH on
    gostg:reload reroutes at once (the reload period is far longer than the test). Redis going
    away keeps the rules (logged once); back, its new rules apply (recovery logged)."""
    with RedisServer(tmp_path) as rs, TagOrigin("a") as origin:
        r = rs.client()
        key = "gost:ingresses:ing"
        r.hset(key, mapping={"a.local": TID, "gone.local": OTHER})
        ingress = {"redis": {"addr": rs.addr, "key": key, "type": "hash", "pubsub": True}, "reload": "1h"}
        server, client, ep = tunnel_pair(tmp_path, ingress, origin)
        with server, client:
            assert joined(server), server.log_text()
            assert tag(ep, "a.local") == (200, "a")
            assert tag(ep, "b.local")[0] == 502                  # no rule yet
            assert tag(ep, "gone.local")[0] == 503               # a rule, but no client on that tunnel
            r.hset(key, "b.local", TID)
            r.hdel(key, "a.local")
            r.publish("gostg:reload", key)
            assert wait_for(lambda: tag(ep, "b.local") == (200, "a"), timeout=3), server.log_text()
            assert tag(ep, "a.local")[0] == 502
            # Redis goes away: the last good rules stay in force, and the failure is logged
            rs.stop()
            assert wait_log(server, r"redis push: .*; retrying", 1, 5), server.log_text()[-2000:]
            assert tag(ep, "b.local") == (200, "a")
            assert tag(ep, "a.local")[0] == 502
            assert len(wait_log(server, r"redis push: .*; retrying", 2, 0.5)) == 1   # once, not per retry
            # one subscriber serves every object on that Redis: its line names none of them
            push = [x for x in log_records(server, kind="loader") if x["msg"].startswith("redis push:")]
            assert push and "ingress" not in push[0] and push[0]["source"] == f"redis://{rs.addr}/0", push
            # Redis back (empty) with a new rule: the subscriber reconnects (logged) and re-reads
            rs.start()
            r = rs.client()
            r.hset(key, "c.local", TID)
            r.publish("gostg:reload", key)
            assert wait_for(lambda: tag(ep, "c.local") == (200, "a"), timeout=5), server.log_text()[-2000:]
            assert tag(ep, "b.local")[0] == 502
            assert wait_log(server, r"redis push recovered", 1, 2)
            assert len(wait_log(server, r"redis push recovered", 2, 0.3)) == 1


def test_ingress_from_http_source(tmp_path):
    """An http source's 200 body is the file format ("hostname endpoint" lines, # comments)."""
    with PluginServer(files={"/rules": f"# hostname endpoint\n.web.local {TID}\n".encode()}) as src, \
            TagOrigin("a") as origin:
        ingress = {"http": {"url": f"{src.url}/rules", "timeout": "2s"}, "reload": "1h"}
        server, client, ep = tunnel_pair(tmp_path, ingress, origin)
        with server, client:
            assert joined(server), server.log_text()
            assert tag(ep, "x.web.local") == (200, "a")          # wildcard rule
            assert tag(ep, "web.local") == (200, "a")
            assert tag(ep, "other.local")[0] == 502


def test_ingress_http_plugin_decides_and_fails_closed(tmp_path):
    """GOST's HTTP ingress plugin: GET ?host= → {"endpoint"}; a plugin that is down routes nothing."""
    asked = []

    def get_rule(q):
        asked.append(q.get("host"))
        return {"endpoint": TID if q.get("host", "").startswith("ok.") else ""}

    plugin = PluginServer(rest={("GET", "/ingress"): get_rule})
    with plugin, TagOrigin("a") as origin:
        ingress = {"plugin": {"type": "http", "addr": f"{plugin.url}/ingress", "timeout": "1s"}}
        server, client, ep = tunnel_pair(tmp_path, ingress, origin)
        with server, client:
            assert joined(server), server.log_text()
            assert tag(ep, "ok.example") == (200, "a")
            assert tag(ep, "no.example")[0] == 502
            assert "ok.example:80" in asked and "no.example:80" in asked   # host:port, as GOST asks
            plugin.server.shutdown()
            plugin.server.server_close()
            assert tag(ep, "ok.example")[0] == 502               # fail closed: no rule, no tunnel
            assert wait_log(server, r"ingress plugin ing: .*no rule until it answers", 1, 5)


def test_ingress_grpc_plugin(tmp_path):
    need_grpc()
    from .grpcpeer import PluginServer as GrpcPlugin

    with GrpcPlugin() as plugin, TagOrigin("a") as origin:
        plugin.rules = {"g.example:80": TID}     # GOST asks with host:port
        ingress = {"plugin": {"type": "grpc", "addr": f"127.0.0.1:{plugin.port}", "timeout": "2s"}}
        server, client, ep = tunnel_pair(tmp_path, ingress, origin)
        with server, client:
            assert joined(server), server.log_text()
            assert tag(ep, "g.example") == (200, "a")
            assert tag(ep, "h.example")[0] == 502
            assert plugin.count("GetRule") >= 2
