"""gostg.core.sockopts / netns: the interface list, the start-up checks, and the hop → node
inheritance of interface / so_mark / netns (GOST's hop parser). Loopback only: 127.0.0.0/8 is
all ours, so 127.0.0.2 is a second source address on any Linux box."""
import os

import pytest
from gevent import socket

from gostg.config.build import build_hop, build_service
from gostg.core import netns
from gostg.core.sockopts import Entry, SockOpts, global_unicast
from gostg.errors import ConfigError


@pytest.mark.parametrize("ip, want", [
    ("10.0.0.1", True), ("192.168.1.1", True), ("8.8.8.8", True), ("2001:db8::1", True),
    ("127.0.0.1", False), ("::1", False), ("fe80::1", False), ("169.254.1.1", False),
    ("224.0.0.1", False), ("0.0.0.0", False), ("::", False), ("255.255.255.255", False)])
def test_global_unicast_as_go(ip, want):
    assert global_unicast(ip) is want


def test_entries():
    so = SockOpts.of(" eth0 , 192.168.0.101!,fd::1 ")
    assert [(str(e), e.strict, e.family) for e in so.entries] == [
        ("eth0", False, None), ("192.168.0.101!", True, socket.AF_INET), ("fd::1", False, socket.AF_INET6)]
    assert Entry("fd::1").fits(socket.AF_INET6) and not Entry("fd::1").fits(socket.AF_INET)
    assert Entry("eth0").fits(socket.AF_INET)
    assert SockOpts.of("", 0, "") is None and SockOpts.of(None, None, None) is None
    assert SockOpts.of(mark="100").mark == 100


@pytest.fixture
def listener():
    ln = socket.socket()
    ln.bind(("127.0.0.1", 0))
    ln.listen(8)
    yield ln
    ln.close()


def _peer_of(ln, so):
    c = so.connect("127.0.0.1", ln.getsockname()[1])
    try:
        peer, _ = ln.accept()
        peer.close()
        return c.getsockname()[0]
    finally:
        c.close()


def test_source_address_and_list_order(listener):
    assert _peer_of(listener, SockOpts.of("127.0.0.2")) == "127.0.0.2"
    # an address that is not ours is skipped; an IPv6 entry does not fit an IPv4 target
    assert _peer_of(listener, SockOpts.of("192.0.2.1,::1,127.0.0.3")) == "127.0.0.3"


def test_strict_entry_stops_the_list(listener):
    with pytest.raises(OSError, match="interface 192.0.2.1: Cannot assign requested address"):
        _peer_of(listener, SockOpts.of("192.0.2.1!,127.0.0.2"))


def test_unknown_device_fails_the_dial():
    with pytest.raises(OSError, match="interface nosuch0: No such device"):
        SockOpts.of("nosuch0").connect("192.0.2.1", 9)   # global unicast: the device is forced


def test_startup_problems():
    assert SockOpts.of("lo,127.0.0.1").problems() == ([], [])
    errors, warnings = SockOpts.of("nosuch0").problems()
    assert [k for k, _ in errors] == ["interface"] and not warnings
    assert errors[0][1].startswith("interface 'nosuch0': no such network interface"), errors
    errors, warnings = SockOpts.of("nosuch0,lo").problems()
    assert errors == [] and len(warnings) == 1 and "nosuch0" in warnings[0][1]
    errors, _ = SockOpts.of(netns_name="gostg-t-none").problems()
    assert errors == [("netns", "network namespace 'gostg-t-none' not found "
                                "(/var/run/netns/gostg-t-none does not exist)")]


def test_netns_path_forms():
    assert netns.path_of("ns1") == "/var/run/netns/ns1"
    assert netns.path_of("/run/netns/ns2") == "/run/netns/ns2"
    with netns.inside(""):   # no namespace: a no-op
        pass


@pytest.mark.skipif(os.geteuid() != 0, reason="entering a namespace needs root")
def test_inside_own_namespace_and_back():
    """Entering the namespace we are in (by path) and leaving restores the thread's own."""
    before = os.stat("/proc/thread-self/ns/net").st_ino
    with netns.inside(f"/proc/{os.getpid()}/ns/net"):
        s = socket.socket()
    s.close()
    assert os.stat("/proc/thread-self/ns/net").st_ino == before


def _hop(hop_extra, node_extra):
    return build_hop({"name": "hop-0", **hop_extra,
                      "nodes": [{"name": "node-0", "addr": "127.0.0.1:1", **node_extra}]}, "hops[0]", None)


def test_node_takes_its_hop_settings_and_its_own_win():
    """GOST's hop parser: a node's metadata key wins; else its (deprecated) field; else the
    hop's, whose metadata wins over its field."""
    def so(hop, node):
        return _hop(hop, node).nodes[0].dialer.sockopts

    assert so({}, {}) is None
    assert so({"interface": "127.0.0.2"}, {}).interface == "127.0.0.2"
    assert so({"interface": "127.0.0.2", "metadata": {"interface": "127.0.0.3"}}, {}).interface == "127.0.0.3"
    assert so({"interface": "127.0.0.2"}, {"interface": "lo"}).interface == "lo"
    assert so({"interface": "127.0.0.2"}, {"interface": "lo", "metadata": {"interface": "127.0.0.4"}}).interface \
        == "127.0.0.4"
    with pytest.raises(ConfigError, match=r"hops\[0\]\.nodes\[0\]\.metadata\.netns: network namespace 'gostg-t-none'"):
        _hop({"metadata": {"netns": "gostg-t-none"}}, {})


@pytest.mark.skipif(os.geteuid() != 0, reason="SO_MARK needs CAP_NET_ADMIN")
def test_hop_sockopts_mark_reaches_the_node():
    assert _hop({"sockopts": {"mark": 5}}, {}).nodes[0].dialer.sockopts.mark == 5
    assert _hop({"sockopts": {"mark": 5}, "metadata": {"so_mark": 7}}, {}).nodes[0].dialer.sockopts.mark == 7


def test_service_settings_reach_its_router():
    import structlog
    log = structlog.get_logger()
    svc = build_service({"name": "s", "addr": "127.0.0.1:0", "interface": "127.0.0.2",
                         "handler": {"type": "http"}}, "services[0]", None, log)
    assert svc.handler.router.sockopts.interface == "127.0.0.2"
    svc = build_service({"name": "s", "addr": "127.0.0.1:0", "interface": "127.0.0.2",
                         "metadata": {"interface": "127.0.0.3"}, "handler": {"type": "http"}},
                        "services[0]", None, log)
    assert svc.handler.router.sockopts.interface == "127.0.0.3"
    with pytest.raises(ConfigError, match=r"services\[0\]\.metadata\.netns\.out: network namespace"):
        build_service({"name": "s", "addr": "127.0.0.1:0", "metadata": {"netns.out": "gostg-t-none"},
                       "handler": {"type": "http"}}, "services[0]", None, log)


def test_packet_socket_source():
    """A direct UDP association: an IP entry binds it; a name leaves it dual-stack on the device."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    try:
        for so, src in ((SockOpts.of("192.0.2.1,127.0.0.2"), "127.0.0.2"), (SockOpts.of("lo"), "127.0.0.1")):
            s = so.packet_socket()
            try:
                s.sendto(b"x", ("127.0.0.1" if s.family == socket.AF_INET else "::ffff:127.0.0.1", rx.getsockname()[1]))
                assert rx.recvfrom(16)[1][0] == src
            finally:
                s.close()
    finally:
        rx.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="entering a namespace needs root")
def test_netns_that_is_not_one(tmp_path):
    """A FIFO or plain file named as a namespace: a clear error, never a blocked process."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for p in (str(fifo), "/etc/hostname"):
        with pytest.raises(OSError, match="not a network namespace"):
            netns.check(p)


def test_garbage_values_are_config_errors():
    """API input may be anything: a NUL in a value is a clear error, not an exception."""
    log = __import__("structlog").get_logger()
    for md, key in (({"interface": "eth\x000"}, "interface"), ({"netns.out": "n\x00s"}, "netns.out"),
                    ({"netns": "n\x00s"}, "netns")):   # a bad so_mark is a validate() error
        with pytest.raises(ConfigError) as e:
            build_service({"name": "s", "addr": "127.0.0.1:0", "metadata": md, "handler": {"type": "http"}},
                          "services[0]", None, log)
        assert e.value.path == f"services[0].metadata.{key}", (md, e.value)
