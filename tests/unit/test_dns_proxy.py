"""The DNS proxy's pure parts: DoH requests, ECS, cache TTLs, truncation, resolv.conf, and the
listener's message conns fed bytes over a socketpair (garbage and truncation included)."""
import base64
import socket as stdsocket

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import gevent
import pytest
from gevent import socket
from hypothesis import given, settings, strategies as st

from gostg.dns import wire
from gostg.errors import ProtocolError
from gostg.handlers.dns import system_nameservers
from gostg.transport.dnsmsg import DoHConn, StreamMessages


def query(name="example.test", rdtype="A", **kw):
    return dns.message.make_query(name, rdtype, **kw)


# --- DoH requests ---------------------------------------------------------------------------

def test_doh_get_and_post():
    q = query().to_wire()
    b64 = base64.urlsafe_b64encode(q).decode().rstrip("=")
    assert wire.parse_doh_request("GET", f"/dns-query?dns={b64}", None, b"") == q
    assert wire.parse_doh_request("GET", f"/any/path?x=1&dns={b64}", None, b"") == q   # GOST: any path
    assert wire.parse_doh_request("POST", "/dns-query", "application/dns-message", q) == q
    assert wire.parse_doh_request("POST", "/", "Application/DNS-Message; charset=x", q) == q


@pytest.mark.parametrize("method,target,ctype,body,status", [
    ("GET", "/dns-query", None, b"", 400),
    ("GET", "/dns-query?dns=!!!", None, b"", 400),
    ("POST", "/dns-query", "text/plain", b"x", 415),
    ("POST", "/dns-query", None, b"x", 415),
    ("POST", "/dns-query", "application/dns-message", b"", 400),
    ("PUT", "/dns-query", "application/dns-message", b"x", 405),
])
def test_doh_bad_requests_carry_their_status(method, target, ctype, body, status):
    with pytest.raises(ProtocolError) as e:
        wire.parse_doh_request(method, target, ctype, body)
    assert e.value.reply == status


@given(st.sampled_from(["GET", "POST", "HEAD", ""]), st.text(max_size=80), st.one_of(st.none(), st.text(max_size=40)),
       st.binary(max_size=64))
def test_doh_request_garbage_is_a_protocol_error_or_bytes(method, target, ctype, body):
    try:
        out = wire.parse_doh_request(method, target, ctype, body)
    except ProtocolError as exc:
        assert exc.reply in (400, 405, 415)
    else:
        assert isinstance(out, bytes) and out


# --- ECS, TTLs, truncation ----------------------------------------------------------------------

def ecs_of(msg):
    return [(o.address, o.srclen) for o in msg.options if isinstance(o, dns.edns.ECSOption)]


def test_client_subnet_added_replaced_and_one_opt_only():
    q = query()                               # no EDNS: switched on
    wire.set_client_subnet(q, "1.2.3.4")
    q2 = dns.message.from_wire(q.to_wire())
    assert ecs_of(q2) == [("1.2.3.0", 24)]
    q = query(use_edns=0, payload=4096, options=[dns.edns.ECSOption("9.9.9.9", 24),
                                                 dns.edns.GenericOption(65001, b"keep")])
    wire.set_client_subnet(q, "2001:db8::1")
    q2 = dns.message.from_wire(q.to_wire())
    assert ecs_of(q2) == [("2001:db8::", 64)]
    assert q2.payload == 4096 and any(o.otype == 65001 for o in q2.options)
    assert q.to_wire().count(b"\x00\x00\x29") == 1   # one OPT record (GOST appends a second)


def response(q, ttl=300, n=1, rcode=dns.rcode.NOERROR, soa_min=None):
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if n:
        r.answer.append(dns.rrset.from_text(q.question[0].name, ttl, "IN", "A",
                                            *[f"10.0.{i // 256}.{i % 256}" for i in range(n)]))
    if soa_min is not None:
        r.authority.append(dns.rrset.from_text(q.question[0].name, 3600, "IN", "SOA", f"ns. h. 1 2 3 4 {soa_min}"))
    return r


def test_message_ttl_smallest_answer_then_soa_then_zero():
    q = query()
    r = response(q, ttl=300)
    r.answer.append(dns.rrset.from_text("example.test.", 30, "IN", "TXT", '"x"'))
    assert wire.message_ttl(r) == 30
    assert wire.message_ttl(response(q, n=0, rcode=dns.rcode.NXDOMAIN, soa_min=120)) == 120
    assert wire.message_ttl(response(q, n=0)) == 0


def test_reply_truncated_to_the_client_size_with_tc():
    q = query()
    big = response(q, n=100)                  # 100 A records: far over 512 bytes
    out = wire.reply_wire(big, 512)
    assert len(out) <= 512
    r = dns.message.from_wire(out)
    assert r.flags & dns.flags.TC and r.id == q.id
    assert not dns.message.from_wire(wire.reply_wire(big, 65535)).flags & dns.flags.TC


def test_is_query():
    q = query()
    assert wire.is_query(q) and not wire.is_query(dns.message.make_response(q))


def test_system_nameservers(tmp_path):
    p = tmp_path / "resolv.conf"
    p.write_text("# c\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\nsearch x\nnameserver\n")
    assert system_nameservers(str(p)) == ["udp://10.0.0.1:53", "udp://[fe80::1]:53"]
    assert system_nameservers(str(tmp_path / "missing")) == []


# --- message conns over a socketpair --------------------------------------------------------------

def pair():
    a, b = socket.socketpair()
    return a, b


def test_stream_messages_frames_pipelined_and_eof():
    a, b = pair()
    q1, q2 = query("a.test").to_wire(), query("b.test").to_wire()
    b.sendall(wire.tcp_frame(q1) + wire.tcp_frame(q2)[:5])
    conn = StreamMessages(a, 2.0, 2.0)
    assert conn.read_message() == q1
    b.sendall(wire.tcp_frame(q2)[5:])
    assert conn.read_message() == q2
    conn.write_message(b"reply")
    assert b.recv(100) == b"\x00\x05reply"
    b.close()
    assert conn.read_message() is None        # clean EOF between messages: a quiet end
    a.close()


def test_stream_messages_truncated_frame_is_a_protocol_error():
    a, b = pair()
    b.sendall(b"\x00\x30abc")
    b.close()
    with pytest.raises(ProtocolError, match="truncated DNS message"):
        StreamMessages(a, 2.0, 2.0).read_message()
    a.close()


def test_stream_messages_slow_partial_frame_times_out():
    a, b = pair()
    b.sendall(b"\x00\x30abc")
    with pytest.raises(ProtocolError, match="no more within"):
        StreamMessages(a, 0.2, 2.0).read_message()
    a.close(), b.close()


def test_stream_messages_silent_client_is_a_quiet_end():
    a, b = pair()
    assert StreamMessages(a, 0.2, 2.0).read_message() is None
    a.close(), b.close()


def test_stream_messages_zero_length_frame():
    a, b = pair()
    b.sendall(b"\x00\x00")
    with pytest.raises(ProtocolError):
        StreamMessages(a, 1.0, 1.0).read_message()
    a.close(), b.close()


def drain_garbage(cls, data, rounds):
    """Feed ``data`` then EOF to a ``cls`` message conn: every read ends in a message, a
    quiet end or a ProtocolError, within ``rounds`` reads."""
    a, b = pair()
    try:
        b.sendall(data)
        b.shutdown(stdsocket.SHUT_WR)
        conn = cls(a, 1.0, 1.0)
        for _ in range(rounds):
            try:
                if conn.read_message() is None:
                    return
            except ProtocolError:
                return
        raise AssertionError("reads did not end")
    finally:
        a.close(), b.close()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_stream_messages_garbage_never_crashes(data):
    drain_garbage(StreamMessages, data, 200)


def test_doh_conn_post_keepalive_then_close():
    a, b = pair()
    q = query().to_wire()
    req = (b"POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message\r\n"
           b"Content-Length: %d\r\n\r\n" % len(q)) + q
    b.sendall(req + req.replace(b"Host: x", b"Host: x\r\nConnection: close"))
    conn = DoHConn(a, 2.0, 2.0)
    assert conn.read_message() == q
    conn.write_message(b"R1")
    assert conn.read_message() == q
    conn.write_message(b"R2")
    assert conn.read_message() is None        # the client asked to close
    conn.close()                              # as the service does when the handler returns
    got = b""
    with gevent.Timeout(2):
        while True:
            chunk = b.recv(4096)
            if not chunk:
                break
            got += chunk
    assert got.count(b"HTTP/1.1 200 OK") == 2 and got.endswith(b"R2")
    assert b"Content-Type: application/dns-message" in got
    b.close()


def test_doh_conn_wrong_media_type_gets_415():
    a, b = pair()
    b.sendall(b"POST / HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nx")
    with pytest.raises(ProtocolError):
        DoHConn(a, 2.0, 2.0).read_message()
    assert b.recv(100).startswith(b"HTTP/1.1 415 ")
    a.close(), b.close()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_doh_conn_garbage_never_crashes(data):
    drain_garbage(DoHConn, data, 20)


# --- handler.dns (where GOST's reference page puts the upstreams) -----------------------------------

def test_handler_dns_key_becomes_metadata_dns_of_a_dns_handler_only():
    from gostg.config.build import _handler_md
    from gostg.errors import ConfigError
    assert _handler_md({"type": "dns", "dns": ["8.8.8.8", "tls://1.1.1.1:853"]}, "h") == {
        "dns": ["8.8.8.8", "tls://1.1.1.1:853"]}
    with pytest.raises(ConfigError, match="only the dns handler"):
        _handler_md({"type": "socks5", "dns": ["8.8.8.8"]}, "services[0].handler")
    with pytest.raises(ConfigError, match="not both"):
        _handler_md({"type": "dns", "dns": ["8.8.8.8"], "metadata": {"DNS": "1.1.1.1"}}, "h")


def test_open_dns_resolver_is_warned():
    from gostg.config.cmdline import from_args
    from gostg.config.refs import open_proxies
    (p,) = open_proxies(from_args(["dns://:10053/1.1.1.1"], []))
    assert p.level == "warning" and p.path == "services[0]"
    assert p.message.startswith("open proxy (DNS) on :10053:") and "amplify" in p.message
    assert open_proxies(from_args(["dns://127.0.0.1:10053/1.1.1.1"], [])) == []
    assert open_proxies(from_args(["dns://:10053/1.1.1.1?admission=127.0.0.1"], [])) == []


def test_with_id_changes_only_the_id():
    q = query()
    r = response(q, n=3)
    out = wire.with_id(r.to_wire(), 0xBEEF)
    r2 = dns.message.from_wire(out)
    assert r2.id == 0xBEEF and r2.answer == r.answer and r2.question == r.question


def test_cached_reply_renders_once_per_second_and_spelling():
    from gostg.handlers.dns import CachedReply
    q = query()
    c = CachedReply(response(q, ttl=300))
    a = c.render(q, 42, 512)
    assert c.render(query(), 42, 512) is a                    # another query, same second: same bytes
    r = dns.message.from_wire(a)
    assert r.answer[0].ttl == 42 and r.rcode() == dns.rcode.NOERROR
    assert dns.message.from_wire(c.render(q, 41, 512)).answer[0].ttl == 41
    mixed = query("Example.TEST")
    assert dns.message.from_wire(c.render(mixed, 41, 512)).question[0].name.to_text() == "Example.TEST."
    assert c.msg.answer[0].ttl == 300                          # the stored reply is never changed
