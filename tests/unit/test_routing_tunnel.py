"""GOST's routing tunnel in-process: the router connector's request bytes (go-gost/x
connector/router), and the router handler (x/handler/router) routing packets between clients
on socketpairs, with inline routers and ingresses."""
import struct
import uuid

import gevent
import pytest
from hypothesis import given, settings, strategies as st
from gevent import socket

from gostg.config import schema
from gostg.config.metadata import Metadata
from gostg.core.context import Context
from gostg.core.registry import Registries
from gostg.errors import ConfigError, DialError
from gostg.connectors.router import RouterConnector
from gostg.handlers.base import Options
from gostg.handlers.router import RouterHandler
from gostg.config.build import build_object
from gostg.protocols import relay as rp

from .loglines import Log
from .test_ippacket import ipv4, ipv6

H = bytes.fromhex
RID = "e87f56dd-fd57-4921-9ab8-a0847662daae"
RID2 = "ef502590-c5f4-437e-a81f-fe4083505075"


def associate(host, rid=None, src="192.168.123.1"):
    """The request as GOST's router connector writes it, assembled by hand from relay's spec."""
    dom = host.encode()
    feats = (H("04 0002 0002")                                            # Network: ip
             + H("02 0007 01") + bytes(map(int, src.split("."))) + H("0000")   # Addr: src, port 0
             + H("02") + struct.pack("!H", 4 + len(dom)) + H("03") + bytes((len(dom),)) + dom + H("0000"))
    if rid:
        feats += H("03 0014") + uuid.UUID(rid).bytes + bytes(4)           # Tunnel: 20-byte id
    return H("01 03") + struct.pack("!H", len(feats)) + feats


def ctx_for(src="192.168.123.1:0"):
    return Context("svc", src, "", Log())


def test_connector_request_bytes_and_framing():
    cli, srv = socket.socketpair()
    c = RouterConnector(Metadata({"router.id": RID}, schema.component_md("connector", "router")))
    srv.sendall(H("01 00 0017 03 0014") + bytes(20) + H("0003") + b"pkt")   # OK + connector id, a frame
    pc = c.connect(cli, "ip", "host-1", ctx_for())
    want = associate("host-1", RID)
    assert srv.recv(1000) == want
    assert pc.read_from() == (b"pkt", "host-1")
    pc.write_to(b"\x45abc")
    assert srv.recv(100) == H("0004 45") + b"abc"


def test_connector_refusals():
    md = schema.component_md("connector", "router")
    with pytest.raises(ConfigError, match="invalid router ID"):
        RouterConnector(Metadata({"router.id": "nope"}, md))
    c = RouterConnector(Metadata({}, md))
    with pytest.raises(DialError, match="unsupported"):
        c.connect(None, "tcp", "host-1")
    cli, srv = socket.socketpair()
    srv.sendall(H("01 06 0000"))
    with pytest.raises(DialError, match="6 host unreachable"):
        c.connect(cli, "ip", "host-1", ctx_for())
    assert srv.recv(1000) == associate("host-1")   # no Tunnel feature without router.id
    for answer, why in ((b"HTTP/1.1 400 Bad Request\r\n\r\n", "bad version 0x48"), (b"", "closed before answering"),
                        (H("01 00 0005 03 0002 0000"), "tunnel id shorter than 16 bytes")):
        cli, srv = socket.socketpair()
        srv.sendall(answer)
        srv.shutdown(socket.SHUT_WR)
        with pytest.raises(DialError, match=why):
            c.connect(cli, "ip", "host-1", ctx_for())


class Net:
    """A router handler with registries, and clients on socketpairs."""

    def __init__(self, routers=(), ingresses=(), md=None):
        self.reg = Registries()
        for o in routers:
            self.reg.routers.set(o["name"], build_object("routers", o, "routers[0]", self.reg))
        for o in ingresses:
            self.reg.ingresses.set(o["name"], build_object("ingresses", o, "ingresses[0]", self.reg))
        self.h = RouterHandler(Metadata(md or {}, schema.component_md("handler", "router")),
                               Options(None, registries=self.reg))
        self.greenlets = []
        self.logs = []

    def join(self, host, rid=None, src="192.168.123.1", expect=rp.STATUS_OK):
        cli, srv = socket.socketpair()
        ctx = ctx_for(f"{src}:0")
        self.logs.append(ctx.log)
        self.greenlets.append(gevent.spawn(self.h.handle, srv, ctx))
        cli.sendall(associate(host, rid, src))
        head = cli.recv(4)
        assert head[0] == 1 and head[1] == expect
        cli.recv(struct.unpack("!H", head[2:])[0])
        return cli

    def lines(self):
        return [line for log in self.logs for line in log.lines]

    def close(self):
        self.h.close()
        gevent.killall(self.greenlets)


def frame(pkt):
    return struct.pack("!H", len(pkt)) + pkt


def recv_frame(s, timeout=2):
    with gevent.Timeout(timeout):
        n = struct.unpack("!H", s.recv(2))[0]
        return s.recv(n)


def nothing_for(s, t=0.2):
    s.settimeout(t)
    try:
        return s.recv(100) == b""
    except socket.timeout:
        return True
    finally:
        s.settimeout(None)


ROUTES = [{"dst": "192.168.123.1", "gateway": "host-1"}, {"dst": "192.168.123.2", "gateway": "host-2"},
          {"dst": "192.168.200.0/24", "gateway": "host-2"}, {"dst": "fd00::2", "gateway": "host-2"},
          {"dst": "192.168.123.9", "gateway": "host-9"}]


def test_routes_packets_between_hosts_by_default_router():
    net = Net([{"name": "router-0", "routes": ROUTES}], md={"router": "router-0"})
    try:
        a = net.join("host-1")
        b = net.join("host-2", src="192.168.123.2")
        p1 = ipv4("192.168.123.1", "192.168.123.2", b"ping")
        p2 = ipv4("192.168.123.1", "192.168.200.7", b"net")
        p6 = ipv6("fd00::1", "fd00::2", b"six")
        a.sendall(frame(p1) + frame(p2) + frame(p6))
        assert [recv_frame(b) for _ in range(3)] == [p1, p2, p6]
        back = ipv4("192.168.123.2", "192.168.123.1", b"pong")
        b.sendall(frame(back))
        assert recv_frame(a) == back
        # no route, and a route to a host nobody connected as: dropped, one warning each
        a.sendall(frame(ipv4("192.168.123.1", "10.1.1.1")) * 2 + frame(ipv4("192.168.123.1", "192.168.123.9")))
        a.sendall(frame(b"\x00garbage"))
        gevent.sleep(0.2)
        warnings = [m for lvl, m in net.lines() if lvl == "warning"]
        assert "no route to host 10.1.1.1, packet from 192.168.123.1 discarded" in warnings
        assert sum("10.1.1.1" in m for m in warnings) == 1
        assert any("host host-9 is not connected" in m for m in warnings)
        assert any("unknown packet" in m for m in warnings)
        assert nothing_for(b)
    finally:
        net.close()


def test_namespaces_by_router_id():
    net = Net([{"name": RID, "routes": [{"dst": "192.168.123.2", "gateway": "host-2"}]},
               {"name": RID2, "routes": [{"dst": "192.168.123.2", "gateway": "host-2"}]}])
    try:
        a1, b1 = net.join("host-1", RID), net.join("host-2", RID)
        b2 = net.join("host-2", RID2)
        p = ipv4("192.168.123.1", "192.168.123.2", b"ns1")
        a1.sendall(frame(p))
        assert recv_frame(b1) == p
        assert nothing_for(b2)       # the other namespace's host-2 gets nothing
    finally:
        net.close()


def test_ingress_restricts_hosts_to_their_router():
    net = Net([{"name": RID, "routes": ROUTES}],
              [{"name": "ingress-0", "rules": [{"hostname": "host-1", "endpoint": RID}]}], md={"ingress": "ingress-0"})
    try:
        net.join("host-1", RID)
        net.join("host-1", RID2, expect=rp.STATUS_HOST_UNREACHABLE)
        net.join("host-1", expect=rp.STATUS_HOST_UNREACHABLE)
        net.join("host-7")              # no rule and no router id: GOST lets it in
        net.join("host-7", RID, expect=rp.STATUS_HOST_UNREACHABLE)
        assert ("error", "no route to host host-1") in net.lines()
    finally:
        net.close()


def test_missing_ingress_or_router_fails_closed():
    net = Net(md={"ingress": "gone"})
    try:
        net.join("host-1", RID, expect=rp.STATUS_HOST_UNREACHABLE)
        assert any("ingress 'gone' not found" in m for _, m in net.lines())
    finally:
        net.close()
    net = Net(md={"router": "gone"})
    try:
        a = net.join("host-1")
        net.join("host-2", src="192.168.123.2")
        a.sendall(frame(ipv4("192.168.123.1", "192.168.123.2")))
        gevent.sleep(0.2)
        assert any("router 'gone' not found" in m for _, m in net.lines())
    finally:
        net.close()


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\r\n\r\n", H("02 03 0000"), H("01 03 0010 02 0001")])
def test_garbage_closes_without_answer(data):
    net = Net()
    cli, srv = socket.socketpair()
    g = gevent.spawn(net.h.handle, srv, ctx_for())
    cli.sendall(data)
    if len(data) < 20:
        cli.shutdown(socket.SHUT_WR)
    g.join(2)
    assert g.dead and g.exception is not None   # the service logs it as a protocol error
    srv.close()                                 # (the service closes it)
    assert cli.recv(100) == b""                 # nothing was answered


def test_a_client_that_does_not_read_only_loses_its_own_packets():
    net = Net([{"name": "router-0", "routes": [{"dst": "192.168.123.2", "gateway": "host-2"},
                                               {"dst": "192.168.123.3", "gateway": "host-3"}]}],
              md={"router": "router-0"})
    try:
        a = net.join("host-1")
        slow = net.join("host-2", src="192.168.123.2")   # connected, never reads
        c = net.join("host-3", src="192.168.123.3")
        big = ipv4("192.168.123.1", "192.168.123.2", bytes(1400))
        small = ipv4("192.168.123.1", "192.168.123.3", b"x")
        got = []
        reader = gevent.spawn(lambda: [got.append(recv_frame(c, 10)) for _ in range(200)])
        for i in range(2000):
            a.sendall(frame(big) + (frame(small) if i % 10 == 0 else b""))
        reader.join(10)
        assert len(got) == 200 and set(got) == {small}
        assert any("host host-2 is not reading" in m for _, m in net.lines())
        slow.close()
    finally:
        net.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=5))
def test_router_handler_garbage_frames_never_raise(frames):
    """Whatever a client frames, routing it only drops (and logs) or delivers."""
    net = Net([{"name": "router-0", "routes": ROUTES}], md={"router": "router-0"})
    log = Log()
    for data in frames:
        net.h._route(data, bytes(16), "00000000-0000-0000-0000-000000000000", log, set())
    assert all(level in ("warning", "debug") for level, _ in log.lines)


def test_multicast_and_link_local_drops_are_quiet():
    """A TUN device's own chatter (IPv6 router solicitations, MLD, mDNS) is never routable:
    dropped at debug level, not a warning per connection."""
    net = Net([{"name": "router-0", "routes": ROUTES}], md={"router": "router-0"})
    log = Log()
    for src, dst in (("fe80::1", "ff02::2"), ("192.168.123.1", "224.0.0.251"), ("fe80::1", "fe80::2")):
        pkt = ipv6(src, dst) if ":" in dst else ipv4(src, dst)
        net.h._route(pkt, bytes(16), "00000000-0000-0000-0000-000000000000", log, set())
    assert log.lines and all(level == "debug" for level, _ in log.lines)


def test_connector_connect_timeout():
    c = RouterConnector(Metadata({"connectTimeout": "200ms"}, schema.component_md("connector", "router")))
    cli, srv = socket.socketpair()   # a server that never answers
    with pytest.raises(DialError, match=r"router: no answer in 0.2s"):
        c.connect(cli, "ip", "host-1", ctx_for())
