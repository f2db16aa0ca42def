"""The tun handler's packet loops in-process (fake device and peer): what reaches the device and
the peer, what is dropped with a log line, when a session ends."""
import gevent
import pytest
from gevent.queue import Queue

from gostg.handlers import tun
from gostg.listeners.tundev import DeviceGone
from gostg.protocols import tunkeepalive

from .loglines import Log
from .test_ippacket import ipv4, ipv6


class Ctx:
    def __init__(self):
        self.log = Log()
        self.stats = []

    def stats_bytes(self, inp, out):
        self.stats.append((inp, out))


class Dev:
    """Reads come from ``feed``; writes are kept. ``gone()`` fails it as a closed device does."""
    closed = False

    def __init__(self, *packets):
        self.q = Queue()
        for p in packets:
            self.q.put(p)
        self.written = []

    def read(self):
        p = self.q.get()
        if p is None:
            raise DeviceGone("tun device gone")
        return p

    def write(self, p):
        self.written.append(bytes(p))


class Peer:
    def __init__(self, *datagrams, fail=None):
        self.q = Queue()
        for d in datagrams:
            self.q.put(d)
        self.fail = fail
        self.sent = []

    def read_from(self):
        d = self.q.get()
        if d is None:
            raise EOFError("peer closed")
        return d, "server:1"

    def write_to(self, data, addr=None):
        self.sent.append((bytes(data), addr))


def test_device_to_peer_only_ip_packets():
    ctx, n = Ctx(), [0, 0]
    good = ipv4("10.0.0.1", "10.0.0.2", b"x")
    dev, peer = Dev(b"\x50" + bytes(30), good, b"", None), Peer()
    with pytest.raises(DeviceGone):
        tun._up(dev, peer.write_to, ctx, n)()
    assert peer.sent == [(good, None)] and n[0] == len(good)
    assert [m for _, m in ctx.log.lines] == ["unknown packet, discarded(31)", "unknown packet, discarded(0)"]


def test_peer_to_device_checks_headers_and_skips_keepalive_answers():
    ctx, n = Ctx(), [0, 0]
    good = ipv6("fd00::1", "fd00::2", b"y")
    peer = Peer(b"\x45\x00", tunkeepalive.encode_reply("10.0.0.9"), b"junk", good, None)
    dev = Dev()
    with pytest.raises(EOFError):
        tun._down(dev, peer, ctx, n)()
    assert dev.written == [good] and n[1] == len(good)
    assert ("warning", "ipv4: header too short (2 bytes)") in ctx.log.lines
    assert ("debug", "keepalive received at 10.0.0.9") in ctx.log.lines


def test_keepalive_deadline_ends_a_silent_session():
    ctx = Ctx()
    peer, dev = Peer(), Dev()
    deadline = [0.0]   # long past
    with pytest.raises(tun.KeepaliveLost, match="no keepalive answer in 0.3s"):
        tun._down(dev, peer, ctx, [0, 0], deadline, 0.1)()


def test_session_device_gone_ends_handler_peer_error_retries():
    ctx = Ctx()
    dev = Dev(None)
    assert tun.session(dev, ctx, lambda n: [tun._up(dev, Peer().write_to, ctx, n),
                                            tun._down(dev, Peer(), ctx, n)], "tun: x") is False
    dev2, peer2 = Dev(), Peer(None)
    assert tun.session(dev2, ctx, lambda n: [tun._up(dev2, peer2.write_to, ctx, n),
                                             tun._down(dev2, peer2, ctx, n)], "tun: x") is True
    assert ("error", "tun: x: peer closed") in ctx.log.lines
    assert ctx.stats == [(0, 0), (0, 0)]
    gevent.sleep(0)   # (no greenlet left behind: pump killed the other loop)
