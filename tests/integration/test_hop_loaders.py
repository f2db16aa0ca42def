"""Hop nodes from GOST's loaders: ``file``, ``redis`` (a STRING holding a JSON array) and
``http`` (a 200 body), re-read every ``reload``. A changed list is picked up; a broken one
(not JSON, a node that does not build, a source that is down) keeps the last good list with
a log line. Nodes are tagged echo servers behind ``forward`` connectors, so the first bytes
tell which node a connection went through."""
import json
import time

import yaml

from .helpers import Echo, Gost, free_port, wait_for
from .redisproc import RedisServer
from .pluginserver import PluginServer
from .test_plugins import lines, through_socks

def node(name, echo):
    return {"name": name, "addr": f"127.0.0.1:{echo.port}", "connector": {"type": "forward"}}


def run(tmp_path, hop):
    port = free_port()
    cfg = {"services": [{"name": "s", "addr": f"127.0.0.1:{port}", "handler": {"type": "socks5", "chain": "c"}}],
           "chains": [{"name": "c", "hops": ["h"]}], "hops": [{"name": "h", "reload": "0.3s", **hop}]}
    f = tmp_path / "gostg.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return Gost("-C", f, ports=[port], env={"GOSTG_STRICT_SCHEMA": "1"}), port


def goes_to(port, tag, timeout=5.0):
    """A connection reaches the node tagged ``tag`` within ``timeout`` (the reload is served the
    last good list while it reads, so it may take a connection or two)."""
    return wait_for(lambda: through_socks(port) == tag, timeout=timeout, step=0.1)


def test_file_loader_picks_up_a_changed_list_and_keeps_the_last_good_one(tmp_path):
    nodes = tmp_path / "nodes.json"
    with Echo(b"A") as ea, Echo(b"B") as eb:
        nodes.write_text(json.dumps([node("a", ea)]))
        g, port = run(tmp_path, {"file": {"path": str(nodes)}})
        with g:
            assert through_socks(port) == b"A"
            nodes.write_text(json.dumps([node("b", eb)]))
            assert goes_to(port, b"B")
            nodes.write_text("[{not json")
            assert wait_for(lambda: through_socks(port) == b"B" and lines(g, "not JSON"), step=0.1)
            nodes.write_text(json.dumps([{"name": "no-addr", "connector": {"type": "http"}}]))
            assert wait_for(lambda: through_socks(port) == b"B" and lines(g, "addr: is required"), step=0.1)
            assert len(lines(g, "addr: is required")) == 1   # once per change, not per reload
            nodes.write_text(json.dumps([node("a", ea)]))
            assert goes_to(port, b"A")
            assert lines(g, "loaded again")


def test_http_loader_reads_a_200_body(tmp_path):
    with Echo(b"A") as ea, Echo(b"B") as eb, PluginServer(files={"/nodes": [node("a", ea)]}) as ps:
        g, port = run(tmp_path, {"http": {"url": f"{ps.url}/nodes", "timeout": "1s"}})
        with g:
            assert through_socks(port) == b"A"
            ps.files["/nodes"] = [node("b", eb)]
            assert goes_to(port, b"B")
            del ps.files["/nodes"]   # 404: the last good list stays (read when the hop is used)
            assert wait_for(lambda: through_socks(port) == b"B" and lines(g, "HTTP 404"), step=0.1)


def test_redis_loader_reads_a_string_of_json_and_survives_a_redis_restart(tmp_path):
    """Redis stops: the last good list stays (logged once); Redis back (empty) and a changed
    list written: that list is used, and the recovery is logged."""
    with Echo(b"A") as ea, Echo(b"B") as eb, Echo(b"C") as ec, RedisServer(tmp_path) as rs:
        r = rs.client()
        r.set("gost:hop:h", json.dumps([node("a", ea)]))
        g, port = run(tmp_path, {"redis": {"addr": rs.addr, "key": "gost:hop:h"}})
        with g:
            assert through_socks(port) == b"A"
            r.set("gost:hop:h", json.dumps([node("b", eb)]))
            assert goes_to(port, b"B")
            r.close()
            rs.stop()
            assert wait_for(lambda: through_socks(port) == b"B" and lines(g, "hop nodes from hops[0].redis"),
                            step=0.1)
            for _ in range(4):   # more failed reloads (0.3 s apart), still B, still one line
                assert through_socks(port) == b"B"
                time.sleep(0.15)
            failed = lines(g, "hop nodes from hops[0].redis")
            assert len(failed) == 1 and "keeping the last good list (1 nodes)" in failed[0], failed
            rs.start()
            rs.client().set("gost:hop:h", json.dumps([node("c", ec)]))
            assert goes_to(port, b"C"), g.log_text()[-2000:]
            assert len(lines(g, "hop nodes from hops[0].redis: loaded again (1 nodes)")) == 1


def test_a_hop_whose_source_was_empty_at_start_loads_when_it_appears(tmp_path):
    """No nodes at start (the file is missing): connections are refused (an empty hop is never
    "no hop"), and the nodes are read once the file is there."""
    nodes = tmp_path / "later.json"
    with Echo(b"A") as ea:
        g, port = run(tmp_path, {"file": {"path": str(nodes)}})
        with g:
            assert through_socks(port) == b""
            assert lines(g, "has no nodes")
            nodes.write_text(json.dumps([node("a", ea)]))
            assert goes_to(port, b"A")
