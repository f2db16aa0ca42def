"""Tunnel additions to the relay protocol: tunnel/connector ids (go-gost/relay TunnelID,
ConnectorID), the requests the tunnel connector sends and the stream preamble, byte for byte;
the inline ingress; the pool's weighted pick."""
import uuid

from hypothesis import given, settings, strategies as st

from gostg.config.metadata import Metadata
from gostg.connectors.tunnel import TunnelConnector, _peer_of_response
from gostg.errors import NeedData, ProtocolError
from gostg.handlers.tunnel import shorthand_ingress as from_shorthand
from gostg.policy.ingress import Rule
from gostg.protocols import relay as rp
from gostg.transport.buffered import Stream
from gostg.tunnel.dialer import peer_preamble
from gostg.tunnel.pool import Connection, Pool

TID = "4d21094e-b74c-4916-86c1-d9fa36ea677b"
T2 = "ac74d9dd-3125-442a-a7c1-f9e49e05faca"


def test_tunnel_id_layout():
    raw = uuid.UUID(TID).bytes
    assert rp.parse_tunnel_id(TID) == raw + b"\x00\x00\x00\x00"
    priv = rp.parse_tunnel_id("$" + TID)
    assert priv == raw + b"\x80\x00\x00\x00" and rp.id_private(priv)
    assert rp.id_text(priv) == TID and rp.id_same(priv, rp.parse_tunnel_id(TID))
    assert rp.parse_tunnel_id("") == rp.ZERO_ID == rp.parse_tunnel_id("not-a-uuid")
    assert rp.id_is_zero(rp.ZERO_ID)
    cid = rp.new_id(raw, rp.FLAG_UDP_CONNECTOR, 7)
    assert cid[16:] == b"\x01\x00\x00\x07" and rp.id_udp(cid) and rp.id_weight(cid) == 7
    assert rp.id_with_weight(raw, 255)[19] == 255


def test_tunnel_endpoint_name_is_gosts():
    """GOST's HA tutorial: tunnel 381433e1-… is reachable as b7de88a94729b931.<domain>."""
    from gostg.handlers.tunnel import endpoint_of
    assert endpoint_of("381433e1-7980-11ee-bbdb-60f262c1e32d") == "b7de88a94729b931"


def test_connector_requests_bytes():
    c = TunnelConnector(Metadata({"tunnel.id": TID, "tunnel.weight": 3}))
    tid = uuid.UUID(TID).bytes + b"\x00\x00\x00\x03"
    req = c._request(rp.CMD_CONNECT, "tcp", "127.0.0.1:5000", "srv.local:0")
    feats = (b"\x02\x00\x07\x01\x7f\x00\x00\x01\x13\x88"            # Addr 127.0.0.1:5000
             + b"\x02\x00\x0d\x03\x09srv.local\x00\x00"               # Addr srv.local:0
             + b"\x03\x00\x14" + tid)                                 # Tunnel, 20 bytes
    assert req == b"\x01\x01" + len(feats).to_bytes(2, "big") + feats
    udp = c._request(rp.CMD_BIND, "udp", "127.0.0.1:5000", "0.0.0.0:0")
    parsed, used = rp.parse_request(udp)
    assert used == len(udp) and parsed.cmd == rp.CMD_BIND | rp.FLAG_UDP
    assert parsed.find(rp.Network).name == "udp" and parsed.find(rp.Tunnel).raw == tid


def test_stream_preamble_names_visitor_and_host():
    pre = peer_preamble("10.0.0.1:4000", "app.example.com:80")
    assert pre == (b"\x01\x00\x00\x20" + b"\x02\x00\x07\x01\x0a\x00\x00\x01\x0f\xa0"
                   + b"\x02\x00\x13\x03\x0fapp.example.com\x00\x50")

    class C:
        def __init__(self, data):
            self.data = data

        def recv(self, n):
            d, self.data = self.data[:n], self.data[n:]
            return d
    assert _peer_of_response(Stream(C(pre + b"rest"))) == ("10.0.0.1:4000", "app.example.com:80")


def test_inline_ingress_lookup():
    ing = from_shorthand(f".example.com:{TID},example.org:${TID},bad,*.wild.test:{T2}")
    r = ing.get_rule("a.b.example.com:80")
    assert (r.hostname, r.endpoint) == (".example.com", TID)
    assert ing.get_rule("example.com").endpoint == TID
    assert ing.get_rule("example.org").endpoint == "$" + TID
    assert ing.get_rule("a.example.org") is None
    assert ing.get_rule("x.wild.test").endpoint == T2
    assert ing.get_rule("") is None and from_shorthand("") is None
    assert ing.set_rule(Rule("h", TID)) is False


class _Sess:
    closed = False


def test_pool_pick_by_network_and_weight():
    p = Pool()
    mk = lambda w, udp=False: Connection(rp.new_id(uuid.uuid4().bytes, 1 if udp else 0, w), b"", _Sess(),
                                         "udp" if udp else "tcp")
    a, b, u = mk(1), mk(0), mk(1, udp=True)
    for c in (a, b, u):
        p.tunnels.setdefault(TID, []).append(c)
    assert p.pick("udp", TID) is u
    assert {p.pick("tcp", TID) for _ in range(200)} == {a, b}
    top = mk(255)
    p.tunnels[TID].append(top)
    assert {p.pick("tcp", TID) for _ in range(50)} == {top}
    top.session = type("S", (), {"closed": True})()
    assert p.pick("tcp", TID) in (a, b)
    assert p.pick("tcp", "other") is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_requests_raise_cleanly(data):
    try:
        rp.parse_request(data)
    except (ProtocolError, NeedData):
        pass


@settings(max_examples=200, deadline=None)
@given(st.uuids(), st.booleans(), st.integers(0, 255), st.sampled_from(["tcp", "udp"]),
       st.sampled_from([rp.CMD_CONNECT, rp.CMD_BIND]))
def test_request_round_trip(u, private, weight, network, cmd):
    c = TunnelConnector(Metadata({"tunnel.id": str(u), "tunnel.weight": weight}))
    data = c._request(cmd, network, "[::1]:1", "h.test:2")
    req, used = rp.parse_request(data)
    assert used == len(data) and req.command == cmd
    tid = rp.full_id(req.find(rp.Tunnel).raw)
    assert rp.id_text(tid) == str(u) and rp.id_weight(tid) == weight
    for cut in range(len(data)):
        try:
            rp.parse_request(data[:cut])
            raise AssertionError("a truncated request parsed")
        except NeedData:
            pass
    assert rp.encode_request(req) == data
    assert rp.id_private(rp.parse_tunnel_id(("$" if private else "") + str(u))) == private
