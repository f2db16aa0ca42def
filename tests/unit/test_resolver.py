"""gostg.dns: nameserver addresses, transport framing (TCP/DoT length prefix, DoH HTTP/1.1),
cache and TTL rules, prefer/only order, nameserver fallback and ``async`` — with a fake clock
and fake nameservers (the sockets are exercised by the integration tests)."""
import base64

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import gevent
import pytest
from hypothesis import given, strategies as st

from gostg.config.build import _build_resolver
from gostg.dns import wire
from gostg.dns.cache import Cache
from gostg.dns.exchange import Nameserver, parse_addr
from gostg.dns.resolver import Resolver, query_order
from gostg.errors import ConfigError, DialError, NeedData, ProtocolError

A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def reply(name, rdtype, ips=(), ttl=300, rcode=dns.rcode.NOERROR, soa_min=None):
    q = dns.message.make_query(name, rdtype)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if ips:
        r.answer.append(dns.rrset.from_text(q.question[0].name, ttl, "IN", dns.rdatatype.to_text(rdtype), *ips))
    if soa_min is not None:
        r.authority.append(dns.rrset.from_text(q.question[0].name, 3600, "IN", "SOA",
                                               f"ns. host. 1 2 3 4 {soa_min}"))
    return r


class FakeNS:
    """A nameserver with a record table {(name, type): ips}; counts queries; may fail."""

    def __init__(self, records=None, prefer="ipv4", only="", ttl=0.0, async_=False, fail=False,
                 rttl=300, rcode=None):
        self.records = records or {}
        self.prefer, self.only, self.ttl, self.async_ = prefer, only, ttl, async_
        self.fail = fail
        self.rttl = rttl
        self.rcode = rcode
        self.asked = []

    def query(self, name, rdtype):
        self.asked.append((name, dns.rdatatype.to_text(rdtype)))
        if self.fail:
            raise DialError("nameserver down")
        ips = self.records.get((name, dns.rdatatype.to_text(rdtype)), [])
        rcode = self.rcode if self.rcode is not None else (dns.rcode.NOERROR if ips else dns.rcode.NXDOMAIN)
        return reply(name, rdtype, ips, ttl=self.rttl, rcode=rcode)

    def __repr__(self):
        return "fake"


# --- addresses ----------------------------------------------------------------------------

@pytest.mark.parametrize("addr,expected", [
    ("1.1.1.1", ("udp", "1.1.1.1", 53, "")),
    ("1.1.1.1:5353", ("udp", "1.1.1.1", 5353, "")),
    ("udp://8.8.8.8:53", ("udp", "8.8.8.8", 53, "")),
    ("tcp://1.1.1.1", ("tcp", "1.1.1.1", 53, "")),
    ("tls://1.1.1.1", ("tls", "1.1.1.1", 853, "")),
    ("dot://1.1.1.1:8853", ("tls", "1.1.1.1", 8853, "")),
    ("https://1.0.0.1/dns-query", ("https", "1.0.0.1", 443, "/dns-query")),
    ("https://dns.google", ("https", "dns.google", 443, "/dns-query")),
    ("https://127.0.0.1:8443/q?x=1", ("https", "127.0.0.1", 8443, "/q?x=1")),
    ("[2001:db8::1]:53", ("udp", "2001:db8::1", 53, "")),
    ("tcp://[::1]", ("tcp", "::1", 53, "")),
])
def test_parse_addr(addr, expected):
    assert parse_addr(addr) == expected


@pytest.mark.parametrize("addr", ["", "quic://1.1.1.1", "sctp://x", "udp://", "udp://:53"])
def test_parse_addr_refuses(addr):
    with pytest.raises(ConfigError):
        parse_addr(addr)


def test_nameserver_settings():
    ns = Nameserver("1.1.1.1", prefer="ipv6", only="ip4", ttl=-1, async_=True)
    assert ns.only == "ipv4" and ns.prefer == "ipv4"   # only sets the preference (GOST)
    assert ns.async_ is False                           # nothing to serve stale without a cache
    assert ns.timeout == 5.0
    ns = Nameserver("1.1.1.1", only="bogus", prefer="bogus")
    assert ns.only == "" and ns.prefer == "ipv4"


def test_client_ip_adds_ecs():
    q = Nameserver("1.1.1.1", client_ip="1.2.3.4").make_query("example.com", A)
    assert q.edns == 0
    assert (q.options[0].address, q.options[0].srclen) == ("1.2.3.4", 24)
    with pytest.raises(ConfigError):
        Nameserver("1.1.1.1", client_ip="nope")


def test_build_resolver_config(tmp_path):
    r = _build_resolver({"name": "resolver-0", "nameservers": [
        {"addr": "udp://8.8.8.8:53", "chain": "chain-0", "prefer": "ipv6", "ttl": "60s", "timeout": "3s"},
        {"addr": "tcp://1.1.1.1:53"},
        {"addr": "tls://1.1.1.1:853", "hostname": "one.one.one.one", "async": True},
        {"addr": "https://1.0.0.1/dns-query", "clientIP": "1.2.3.4", "only": "ipv4"},
        {"addr": ""}]}, "resolvers[0]")
    assert [ns.proto for ns in r.nameservers] == ["udp", "tcp", "tls", "https"]
    ns0 = r.nameservers[0]
    assert (ns0.chain, ns0.prefer, ns0.ttl, ns0.timeout) == ("chain-0", "ipv6", 60.0, 3.0)
    assert r.nameservers[2].hostname == "one.one.one.one" and r.nameservers[2].async_
    assert r.nameservers[3].only == "ipv4" and r.nameservers[3].client_ip == "1.2.3.4"


@pytest.mark.parametrize("ns,path", [
    ({"addr": "quic://1.1.1.1"}, "resolvers[0].nameservers[0].addr"),
    ({"addr": "1.1.1.1", "ttl": "soon"}, "resolvers[0].nameservers[0].ttl"),
    ({"addr": "1.1.1.1", "timeout": "x"}, "resolvers[0].nameservers[0].timeout"),
])
def test_build_resolver_errors(ns, path):
    with pytest.raises(ConfigError) as e:
        _build_resolver({"name": "r", "nameservers": [ns]}, "resolvers[0]")
    assert e.value.path == path


# --- framing ------------------------------------------------------------------------------

def test_tcp_frame_round_trip():
    msg = dns.message.make_query("example.com", A).to_wire()
    framed = wire.tcp_frame(msg)
    assert framed[:2] == len(msg).to_bytes(2, "big")
    assert wire.parse_tcp_frame(framed + b"rest") == (msg, len(framed))
    for cut in range(len(framed)):
        with pytest.raises(NeedData):
            wire.parse_tcp_frame(framed[:cut])
    with pytest.raises(ProtocolError):
        wire.parse_tcp_frame(b"\x00\x00")
    with pytest.raises(ProtocolError):
        wire.tcp_frame(b"x" * 70000)


def test_doh_post_request():
    msg = b"\x00\x01query"
    req = wire.doh_request("/dns-query", "dns.example", msg)
    head, body = req.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /dns-query HTTP/1.1"
    assert b"Host: dns.example" in lines
    assert b"Content-Type: application/dns-message" in lines
    assert b"Content-Length: 7" in lines
    assert body == msg


def test_doh_get_request_rfc8484_example():
    """RFC 8484 §4.1.1: the query for www.example.com A with id 0 encodes as below."""
    q = dns.message.make_query("www.example.com", A)
    q.id = 0
    q.flags = dns.flags.RD
    req = wire.doh_request("/dns-query", "dnsserver.example.net", q.to_wire(), method="GET")
    assert req.startswith(b"GET /dns-query?dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB HTTP/1.1\r\n")


def test_doh_response_lengths_chunked_and_eof():
    body = reply("example.com", A, ["1.2.3.4"]).to_wire()
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert wire.parse_doh_response(ok) == (200, body, len(ok))
    for cut in range(len(ok)):
        with pytest.raises(NeedData):
            wire.parse_doh_response(ok[:cut])
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % 5 + body[:5] + b"\r\n" + b"%x;ext=1\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\n\r\n")
    assert wire.parse_doh_response(chunked) == (200, body, len(chunked))
    with pytest.raises(NeedData):
        wire.parse_doh_response(chunked[:-2])
    noclen = b"HTTP/1.1 200 OK\r\n\r\n" + body
    with pytest.raises(NeedData):
        wire.parse_doh_response(noclen)
    assert wire.parse_doh_response(noclen, eof=True)[1] == body
    with pytest.raises(ProtocolError):
        wire.parse_doh_response(ok[:-3], eof=True)
    assert wire.parse_doh_response(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n")[:2] == (400, b"")
    with pytest.raises(ProtocolError):
        wire.parse_doh_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    with pytest.raises(ProtocolError):
        wire.parse_doh_response(b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n")


def test_answer_ttl_and_negative_ttl():
    r = reply("example.com", A, ["1.2.3.4", "1.2.3.5"], ttl=42)
    assert wire.answer(r, A) == (["1.2.3.4", "1.2.3.5"], 42)
    assert wire.answer(r, AAAA) == ([], 0)
    neg = reply("nx.example.com", A, rcode=dns.rcode.NXDOMAIN, soa_min=30)
    assert wire.answer(neg, A) == ([], 30)
    assert wire.cacheable(neg)
    assert not wire.cacheable(reply("x", A, rcode=dns.rcode.SERVFAIL))
    assert not wire.cacheable(reply("x", A, rcode=dns.rcode.REFUSED))


@given(st.binary(max_size=300))
def test_garbage_framing_raises_only_protocol_errors(data):
    for f in (wire.parse_tcp_frame, wire.parse_doh_response, lambda b: wire.parse_doh_response(b, eof=True),
              wire.parse_message):
        try:
            f(data)
        except (ProtocolError, NeedData):
            pass


@given(st.binary(max_size=2000))
def test_tcp_frame_round_trips(msg):
    if 0 < len(msg):
        assert wire.parse_tcp_frame(wire.tcp_frame(msg)) == (msg, len(msg) + 2)


# --- cache --------------------------------------------------------------------------------

@pytest.mark.parametrize("record_ttl,ttl,kept", [
    (300, 0, 300),    # the record TTL
    (0, 0, 60),       # none in the answer: GOST's 60 s
    (300, 10, 10),    # ttl overrides the record
    (5, 3600, 3600),
])
def test_cache_ttl_rules(record_ttl, ttl, kept):
    clock = Clock()
    c = Cache(clock)
    c.store("k", ["1.1.1.1"], record_ttl, ttl)
    clock.t += kept - 0.5
    ips, left = c.load("k")
    assert ips == ["1.1.1.1"] and left == pytest.approx(0.5)
    clock.t += 1
    assert c.load("k")[1] < 0          # expired, still returned (stale)


def test_cache_negative_ttl_stores_nothing():
    c = Cache(Clock())
    c.store("k", ["1.1.1.1"], 300, -1)
    assert c.load("k") is None


def test_cache_is_bounded():
    clock = Clock()
    c = Cache(clock, max_entries=3)
    for i in range(3):
        c.store(i, [str(i)], 100)
        clock.t += 1
    c.store(3, ["3"], 100)
    assert len(c) == 3 and c.load(0) is None     # the oldest goes
    clock.t += 200                               # all expired: all go before the new one
    c.store(4, ["4"], 100)
    assert len(c) == 1


# --- resolver policy ----------------------------------------------------------------------

def test_query_order():
    assert query_order(FakeNS()) == (A, AAAA)
    assert query_order(FakeNS(prefer="ipv6")) == (AAAA, A)
    assert query_order(FakeNS(only="ipv4")) == (A,)
    assert query_order(FakeNS(only="ipv6")) == (AAAA,)


def test_ip_literal_asks_nobody():
    ns = FakeNS()
    r = Resolver("r", [ns])
    assert r.resolve("10.0.0.1") == ["10.0.0.1"]
    assert r.resolve("::1") == ["::1"]
    assert ns.asked == []


@pytest.mark.parametrize("records,prefer,only,expected,asked", [
    ({("h.test", "A"): ["1.1.1.1"], ("h.test", "AAAA"): ["::1"]}, "ipv4", "", ["1.1.1.1"], ["A"]),
    ({("h.test", "A"): ["1.1.1.1"], ("h.test", "AAAA"): ["::1"]}, "ipv6", "", ["::1"], ["AAAA"]),
    ({("h.test", "AAAA"): ["::1"]}, "ipv4", "", ["::1"], ["A", "AAAA"]),          # fallback
    ({("h.test", "A"): ["1.1.1.1"]}, "ipv6", "", ["1.1.1.1"], ["AAAA", "A"]),
    ({("h.test", "AAAA"): ["::1"]}, "ipv4", "ipv4", None, ["A"]),                # only: no fallback
    ({("h.test", "A"): ["1.1.1.1"]}, "", "ipv6", None, ["AAAA"]),
])
def test_prefer_and_only(records, prefer, only, expected, asked):
    ns = FakeNS(records, prefer=prefer, only=only)
    r = Resolver("r", [ns])
    if expected is None:
        with pytest.raises(DialError, match="does not exist"):
            r.resolve("h.test")
    else:
        assert r.resolve("H.test.") == expected
    assert [t for _, t in ns.asked] == asked


def test_nameservers_in_order_until_one_answers():
    down = FakeNS(fail=True)
    empty = FakeNS({})
    good = FakeNS({("h.test", "A"): ["2.2.2.2"]})
    never = FakeNS({("h.test", "A"): ["9.9.9.9"]})
    r = Resolver("r", [down, empty, good, never])
    assert r.resolve("h.test") == ["2.2.2.2"]
    assert never.asked == [] and down.asked and empty.asked


def test_all_failing_is_a_dial_error_naming_the_causes():
    r = Resolver("r", [FakeNS(fail=True), FakeNS({})])
    with pytest.raises(DialError) as e:
        r.resolve("h.test")
    assert "resolver r" in str(e.value) and "nameserver down" in str(e.value)


def test_cache_honours_record_ttl():
    clock = Clock()
    ns = FakeNS({("h.test", "A"): ["1.1.1.1"]}, rttl=30)
    r = Resolver("r", [ns], clock=clock)
    for _ in range(3):
        assert r.resolve("h.test") == ["1.1.1.1"]
    assert len(ns.asked) == 1
    ns.records[("h.test", "A")] = ["1.1.1.2"]
    clock.t += 29
    assert r.resolve("h.test") == ["1.1.1.1"]
    clock.t += 2
    assert r.resolve("h.test") == ["1.1.1.2"]
    assert len(ns.asked) == 2


def test_ttl_override_and_negative_ttl_disables_cache():
    clock = Clock()
    ns = FakeNS({("h.test", "A"): ["1.1.1.1"]}, rttl=3600, ttl=5)
    r = Resolver("r", [ns], clock=clock)
    r.resolve("h.test")
    clock.t += 6
    r.resolve("h.test")
    assert len(ns.asked) == 2
    off = FakeNS({("h.test", "A"): ["1.1.1.1"]}, ttl=-1)
    r = Resolver("r", [off], clock=clock)
    for _ in range(3):
        r.resolve("h.test")
    assert len(off.asked) == 3 and len(r.cache) == 0


def test_server_trouble_is_not_cached():
    clock = Clock()
    ns = FakeNS({}, rcode=dns.rcode.SERVFAIL)
    r = Resolver("r", [ns], clock=clock)
    with pytest.raises(DialError):
        r.resolve("h.test")
    ns.rcode = None
    ns.records[("h.test", "A")] = ["3.3.3.3"]
    assert r.resolve("h.test") == ["3.3.3.3"]


def test_async_serves_stale_and_refreshes_once():
    clock = Clock()
    ns = FakeNS({("h.test", "A"): ["1.1.1.1"]}, rttl=10, async_=True)
    r = Resolver("r", [ns], clock=clock)
    assert r.resolve("h.test") == ["1.1.1.1"]          # miss: asked synchronously
    ns.records[("h.test", "A")] = ["1.1.1.2"]
    clock.t += 11
    before = len(ns.asked)
    assert r.resolve("h.test") == ["1.1.1.1"]          # stale, served at once
    assert r.resolve("h.test") == ["1.1.1.1"]          # a second caller starts no second refresh
    assert len(r._refreshing) == 1
    gevent.sleep(0)                                    # let the refresh run
    r._pool.join(timeout=2)
    assert len(ns.asked) == before + 1
    assert r.resolve("h.test") == ["1.1.1.2"]          # refreshed
    assert not r._refreshing


def test_async_refresh_failure_keeps_stale_answer():
    clock = Clock()
    ns = FakeNS({("h.test", "A"): ["1.1.1.1"]}, rttl=10, async_=True)
    r = Resolver("r", [ns], clock=clock)
    r.resolve("h.test")
    ns.fail = True
    clock.t += 11
    assert r.resolve("h.test") == ["1.1.1.1"]
    r._pool.join(timeout=2)
    assert not r._refreshing
    assert r.resolve("h.test") == ["1.1.1.1"]


def test_async_refreshes_are_bounded():
    clock = Clock()
    ns = FakeNS({(f"h{i}.test", "A"): ["1.1.1.1"] for i in range(40)}, rttl=1, async_=True)
    r = Resolver("r", [ns], clock=clock)
    for i in range(40):
        r.resolve(f"h{i}.test")
    clock.t += 5
    for i in range(40):
        r.resolve(f"h{i}.test")
    assert len(r._refreshing) <= Resolver.MAX_REFRESHES
    r._pool.join(timeout=2)


def test_bad_names_are_dial_errors():
    r = Resolver("r", [FakeNS()])
    for bad in ("a..b", "x" * 70 + ".test"):
        with pytest.raises(DialError):
            r.resolve(bad)


def test_rfc8484_vector_decodes():
    raw = base64.urlsafe_b64decode("AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB" + "==")
    q = wire.parse_message(raw)
    assert q.question[0].name.to_text() == "www.example.com." and q.question[0].rdtype == A
