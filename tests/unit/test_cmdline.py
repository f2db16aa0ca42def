"""gostg.config.cmdline.from_args: GOST's -L / -F rules (spec §2.2–2.4, go-gost/x config/cmd/cmd.go)."""
import base64

import pytest
from hypothesis import example, given, settings, strategies as st

from gostg.config.cmdline import URL, from_args
from gostg.errors import ConfigError
from gostg.config.metadata import parse_duration


@pytest.fixture(autouse=True)
def _no_gost_id(monkeypatch):
    monkeypatch.delenv("_GOST_ID", raising=False)


def svc(arg, nodes=()):
    cfg = from_args([arg], list(nodes))
    assert len(cfg["services"]) == 1
    return cfg["services"][0]


def node(arg):
    cfg = from_args([":1"], [arg])
    (hop,) = cfg["chains"][0]["hops"]
    return hop["nodes"][0]


def b64(s, urlsafe=False, pad=True):
    out = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(s.encode()).decode()
    return out if pad else out.rstrip("=")


# --- -L: handler / listener ---------------------------------------------------------------------

@pytest.mark.parametrize("arg,handler,listener,addr", [
    (":8080", "auto", "tcp", ":8080"),
    ("127.0.0.1:8080", "auto", "tcp", "127.0.0.1:8080"),
    ("http://:8080", "http", "tcp", ":8080"),
    ("HTTP://:8080", "http", "tcp", ":8080"),
    ("socks5://:1080", "socks5", "tcp", ":1080"),
    ("socks://:1080", "socks", "tcp", ":1080"),
    ("tls://:443", "auto", "tls", ":443"),
    ("https://:443", "http", "tls", ":443"),
    ("socks5+tls://:1080", "socks5", "tls", ":1080"),
    ("relay+ws://:8420", "relay", "ws", ":8420"),
    ("http+wss://:443", "http", "wss", ":443"),
    ("ss://:8338", "ss", "tcp", ":8338"),
    ("ssu://:8338", "ssu", "udp", ":8338"),
    ("kcp://:8388", "auto", "kcp", ":8388"),
    ("tcp://:1", "tcp", "tcp", ":1"),
    ("sni://:443", "sni", "tcp", ":443"),
    ("http://[::1]:8080", "http", "tcp", "[::1]:8080"),
])
def test_service_types(arg, handler, listener, addr):
    s = svc(arg)
    assert (s["handler"]["type"], s["listener"]["type"], s["addr"]) == (handler, listener, addr)
    assert s["name"] == "service-0"
    assert "forwarder" not in s and "chain" not in s["handler"]


@pytest.mark.parametrize("arg, where, message", [
    (["-L", "bogus://:1"], "-L bogus://:1", "unknown scheme 'bogus'"),
    (["-L", "sock5://:1"], "-L sock5://:1", "did you mean 'socks5'?"),
    (["-L", "http+bogus://:1"], "-L http+bogus://:1", "unknown transport 'bogus'"),
    (["-L", "ssu+bogus://:1"], "-L ssu+bogus://:1", "unknown transport 'bogus'"),
    (["-L", "htp+tls://:1"], "-L htp+tls://:1", "unknown handler 'htp' in scheme 'htp+tls' (did you mean 'http'?)"),
    (["-F", "bogus://h:1"], "-F bogus://h:1", "unknown scheme 'bogus' (a connector, a dialer"),
    (["-F", "socks5+bogus://h:1"], "-F socks5+bogus://h:1", "unknown transport 'bogus'"),
    (["-F", "a+b+c://h:1"], "-F a+b+c://h:1", "at most connector+dialer"),
])
def test_unknown_scheme_is_an_error_not_a_default(arg, where, message):
    """GOST turns an unknown scheme into its default (``bogus://`` = an http connector); a typo
    must not silently become some other proxy."""
    services = [arg[1]] if arg[0] == "-L" else [":1"]
    nodes = [arg[1]] if arg[0] == "-F" else []
    with pytest.raises(ConfigError) as ei:
        from_args(services, nodes)
    assert ei.value.path == where and message in ei.value.msg


def test_services_are_numbered_in_order():
    cfg = from_args(["http://:1", "  ", "socks5://:2", ":3"], [])
    assert [(s["name"], s["addr"]) for s in cfg["services"]] == [
        ("service-0", ":1"), ("service-1", ":2"), ("service-2", ":3")]
    assert "chains" not in cfg


def test_nothing():
    assert from_args([], []) == {}


# --- -L: auth ---------------------------------------------------------------------------------

def test_userinfo_is_handler_auth():
    s = svc("http://user:pa%40ss@:8080")
    assert s["handler"]["auth"] == {"username": "user", "password": "pa@ss"}
    assert "auth" not in s["listener"]


def test_userinfo_without_password():
    assert svc("socks5://user@:1080")["handler"]["auth"] == {"username": "user"}


def test_userinfo_last_at_sign_splits():
    assert svc("http://u:p@ss@:8080")["handler"]["auth"] == {"username": "u", "password": "p@ss"}


@pytest.mark.parametrize("enc", [
    b64("chacha20-ietf-poly1305:secret", urlsafe=True, pad=False),
    b64("chacha20-ietf-poly1305:secret"),
])
def test_ss_sip002_userinfo(enc):
    s = svc(f"ss://{enc}@:8338")
    assert s["handler"]["auth"] == {"username": "chacha20-ietf-poly1305", "password": "secret"}
    s = svc(f"ssu://{enc}@:8338")
    assert s["handler"]["auth"] == {"username": "chacha20-ietf-poly1305", "password": "secret"}


def test_ss_plain_userinfo():
    assert svc("ss://aes-128-gcm:pw@:8338")["handler"]["auth"] == {"username": "aes-128-gcm", "password": "pw"}


def test_sip002_only_for_ss_schemes():
    enc = b64("u:p", urlsafe=True, pad=False)
    assert svc(f"http://{enc}@:1")["handler"]["auth"] == {"username": enc}


def test_auth_query_base64():
    s = svc("http://:8080?auth=" + b64("user:pass"))
    assert s["handler"]["auth"] == {"username": "user", "password": "pass"}
    assert "auth" not in s.get("metadata", {}) and "auth" not in s["handler"].get("metadata", {})
    s = svc("http://:8080?auth=" + b64("admin", urlsafe=True, pad=False))
    assert s["handler"]["auth"] == {"username": "admin"}


def test_userinfo_beats_auth_query():
    s = svc("http://a:b@:8080?auth=" + b64("c:d"))
    assert s["handler"]["auth"] == {"username": "a", "password": "b"}


@pytest.mark.parametrize("bad", ["!!!", "%FF%FE", "a*b", "dTpw!"])
def test_auth_query_not_base64_is_an_error(bad):
    """GOST refuses to start (base64 decode error). Accepting it silently turns a typo into an
    open proxy without authentication."""
    with pytest.raises(ConfigError):
        from_args([f"http://:8080?auth={bad}"], [])


def test_ssh_listener_takes_the_auth():
    s = svc("ssh://u:p@:2222")
    assert s["listener"]["auth"] == {"username": "u", "password": "p"}
    assert "auth" not in s["handler"]
    s = svc("sshd://u:p@:2222")
    assert s["listener"]["auth"] == {"username": "u", "password": "p"}


# --- -L: forward mode -------------------------------------------------------------------------

def test_forward_tcp_with_selector():
    s = svc("tcp://:2222/127.0.0.1:22,127.0.0.1:23?strategy=fifo")
    assert s["handler"]["type"] == "tcp" and s["listener"]["type"] == "tcp"
    fw = s["forwarder"]
    assert fw["nodes"] == [{"name": "target-0", "addr": "127.0.0.1:22"},
                           {"name": "target-1", "addr": "127.0.0.1:23"}]
    assert fw["selector"] == {"strategy": "fifo", "maxFails": 1, "failTimeout": "30s"}
    assert "strategy" not in s.get("metadata", {}) and "strategy" not in s["handler"].get("metadata", {})


def test_forward_selector_keys():
    fw = svc("tcp://:1/a:1,b:2?maxFails=3&failTimeout=1m")["forwarder"]
    assert fw["selector"]["strategy"] == "round" and fw["selector"]["maxFails"] == 3
    assert parse_duration(fw["selector"]["failTimeout"]) == 60
    fw = svc("tcp://:1/a:1?max_fails=2&fail_timeout=5s")["forwarder"]
    assert fw["selector"]["maxFails"] == 2 and parse_duration(fw["selector"]["failTimeout"]) == 5


def test_max_latency_goes_to_the_selector():
    """GOST's command line leaves maxLatency in the metadata, where nothing reads it."""
    s = svc("tcp://:1/a:1,b:2?strategy=lowestlatency&maxLatency=250ms")
    assert s["forwarder"]["selector"]["strategy"] == "lowestlatency"
    assert parse_duration(s["forwarder"]["selector"]["maxLatency"]) == 0.25
    assert "maxLatency" not in s.get("metadata", {})
    hop = from_args([":1"], ["http://a:1,b:2?maxLatency=1s"])["chains"][0]["hops"][0]
    assert parse_duration(hop["selector"]["maxLatency"]) == 1 and hop["selector"]["strategy"] == "round"


def test_forward_without_selector_keys_has_no_selector():
    assert "selector" not in svc("tcp://:1/a:1,b:2")["forwarder"]


@pytest.mark.parametrize("arg,handler,listener", [
    ("tcp://:8080/192.168.1.1:80", "tcp", "tcp"),
    ("udp://:5353/8.8.8.8:53", "udp", "udp"),
    ("tls://:443/10.0.0.1:22", "forward", "tls"),
    ("ws://:80/10.0.0.1:22", "forward", "ws"),
    (":8080/10.0.0.1:80", "tcp", "tcp"),
    ("http://:8080/10.0.0.1:80", "tcp", "tcp"),     # listener tcp → handler tcp
    ("socks5+tls://:1/10.0.0.1:80", "forward", "tls"),
    ("relay://:8420/:53", "relay", "tcp"),
    ("relay+tls://:8420/:53", "relay", "tls"),
    ("rtcp://:2222/10.0.0.1:22", "rtcp", "rtcp"),
    ("rudp://:5353/10.0.0.1:53", "rudp", "rudp"),
    ("dns://:53/1.1.1.1:53", "dns", "dns"),
])
def test_forward_mode_handler(arg, handler, listener):
    s = svc(arg)
    assert (s["handler"]["type"], s["listener"]["type"]) == (handler, listener)
    assert s["forwarder"]["nodes"][0]["name"] == "target-0"


def test_relay_forward_target_kept():
    assert svc("relay://:8420/:53")["forwarder"]["nodes"] == [{"name": "target-0", "addr": ":53"}]


def test_port_range_maps_one_to_one():
    cfg = from_args(["tcp://:8000-8003/h:8000-8003"], [])
    ss = cfg["services"]
    assert [s["name"] for s in ss] == ["service-0", "service-1", "service-2", "service-3"]
    assert [s["addr"] for s in ss] == [":8000", ":8001", ":8002", ":8003"]
    assert [[n["addr"] for n in s["forwarder"]["nodes"]] for s in ss] == [
        ["h:8000"], ["h:8001"], ["h:8002"], ["h:8003"]]
    assert all(s["handler"]["type"] == "tcp" for s in ss)


def test_port_range_single_target_shared():
    ss = from_args(["tcp://:8000-8002/h:22"], [])["services"]
    assert len(ss) == 3
    assert all(s["forwarder"]["nodes"] == [{"name": "target-0", "addr": "h:22"}] for s in ss)


def test_port_range_extra_targets_ignored_and_missing_targets_none():
    ss = from_args(["tcp://:8000-8001/h:1-3"], [])["services"]
    assert [[n["addr"] for n in s["forwarder"]["nodes"]] for s in ss] == [["h:1"], ["h:2"]]
    ss = from_args(["tcp://:8000-8002/a:1,b:2"], [])["services"]
    assert [s.get("forwarder", {}).get("nodes") for s in ss] == [
        [{"name": "target-0", "addr": "a:1"}], [{"name": "target-1", "addr": "b:2"}], None]


def test_port_range_services_do_not_share_mutable_state():
    ss = from_args(["http://u:p@:8000-8001?foo=bar"], [])["services"]
    ss[0]["handler"]["auth"]["username"] = "x"
    ss[0]["handler"]["metadata"]["foo"] = "y"
    assert ss[1]["handler"]["auth"]["username"] == "u"
    assert ss[1]["handler"]["metadata"]["foo"] == "bar"


def test_gost_id_prefixes_target_names(monkeypatch):
    monkeypatch.setenv("_GOST_ID", "2")
    cfg = from_args(["tcp://:1/a:1,b:2"], ["http://h:1"])
    s = cfg["services"][0]
    assert [n["name"] for n in s["forwarder"]["nodes"]] == ["go-2@target-0", "go-2@target-1"]
    assert s["name"] == "service-0"  # only targets are prefixed
    assert cfg["chains"][0]["name"] == "chain-0"
    assert cfg["chains"][0]["hops"][0]["nodes"][0]["name"] == "node-0"


# --- -F ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("arg,connector,dialer", [
    ("h:1", "http", "tcp"),
    ("http://h:1", "http", "tcp"),
    ("tls://h:1", "http", "tls"),
    ("https://h:1", "http", "tls"),
    ("socks5://h:1", "socks5", "tcp"),
    ("socks5+tls://h:1", "socks5", "tls"),
    ("forward+kcp://h:1", "forward", "kcp"),
    ("relay+ws://h:1", "relay", "ws"),
    ("ss://h:1", "ss", "tcp"),
    ("ssu://h:1", "ssu", "udp"),
    ("direct://:0", "direct", "direct"),
])
def test_node_types(arg, connector, dialer):
    n = node(arg)
    assert (n["connector"]["type"], n["dialer"]["type"]) == (connector, dialer)


def test_node_auth():
    n = node("socks5://u:p@h:1")
    assert n["connector"]["auth"] == {"username": "u", "password": "p"}
    assert "auth" not in n["dialer"]
    assert node("http://h:1?auth=" + b64("a:b"))["connector"]["auth"] == {"username": "a", "password": "b"}
    n = node("ssh://u:p@h:22")
    assert n["dialer"]["auth"] == {"username": "u", "password": "p"} and "auth" not in n["connector"]


def test_node_tls_keys():
    n = node("tls://h.example:443?secure=true&serverName=sni.example&caFile=/ca.pem")
    assert n["dialer"]["tls"] == {"caFile": "/ca.pem", "secure": True, "serverName": "sni.example"}
    md = n["dialer"].get("metadata", {})
    assert not {"secure", "serverName", "caFile"} & set(md)
    assert node("tls://h.example:443")["dialer"]["tls"]["serverName"] == "h.example"


def test_chain_every_service_gets_chain_0():
    cfg = from_args([":1", "socks5://:2", "rtcp://:3/h:3", "rudp://:4/h:4"], ["http://p:8080"])
    chain = cfg["chains"][0]
    assert chain["name"] == "chain-0"
    assert chain["hops"][0]["name"] == "hop-0"
    n0 = chain["hops"][0]["nodes"][0]
    assert (n0["name"], n0["addr"]) == ("node-0", "p:8080")
    ss = cfg["services"]
    assert ss[0]["handler"]["chain"] == "chain-0" and ss[1]["handler"]["chain"] == "chain-0"
    for s in ss[2:]:
        assert s["listener"]["chain"] == "chain-0"
        assert "chain" not in s["handler"]


def test_several_F_are_hops_of_one_chain():
    cfg = from_args([":1"], ["http://a:1", "socks5://b:2", "relay+tls://c:3"])
    assert len(cfg["chains"]) == 1
    hops = cfg["chains"][0]["hops"]
    assert [h["name"] for h in hops] == ["hop-0", "hop-1", "hop-2"]
    assert [[n["name"] for n in h["nodes"]] for h in hops] == [["node-0"], ["node-0"], ["node-0"]]
    assert [h["nodes"][0]["addr"] for h in hops] == ["a:1", "b:2", "c:3"]


def test_host_list_is_one_hop_with_several_nodes():
    cfg = from_args([":1"], ["socks5://u:p@h1:1,h2:2?foo=bar"])
    (hop,) = cfg["chains"][0]["hops"]
    assert [(n["name"], n["addr"]) for n in hop["nodes"]] == [("node-0", "h1:1"), ("node-1", "h2:2")]
    for n in hop["nodes"]:
        assert n["connector"]["type"] == "socks5"
        assert n["connector"]["auth"] == {"username": "u", "password": "p"}
    hop["nodes"][0]["connector"]["metadata"]["foo"] = "changed"
    assert hop["nodes"][1]["connector"]["metadata"]["foo"] == "bar"


def test_chain_without_services():
    cfg = from_args([], ["http://h:1"])
    assert "services" not in cfg and cfg["chains"][0]["hops"][0]["nodes"][0]["addr"] == "h:1"


def test_empty_node_is_an_error():
    with pytest.raises(ConfigError):
        from_args([":1"], ["http://"])
    with pytest.raises(ConfigError):
        from_args([":1"], [""])


def test_hop_selector_bypass_resolver_hosts():
    cfg = from_args([":1"], ["http://a:1,b:2?strategy=rand&maxFails=2&bypass=~10.0.0.0/8,.lan"
                             "&resolver=1.1.1.1&hosts=x:1.2.3.4&interface=eth0"])
    hop = cfg["chains"][0]["hops"][0]
    assert hop["selector"]["strategy"] == "rand" and hop["selector"]["maxFails"] == 2
    assert parse_duration(hop["selector"]["failTimeout"]) == 30
    assert hop["bypass"] == "bypass-0"
    assert cfg["bypasses"] == [{"name": "bypass-0", "whitelist": True, "matchers": ["10.0.0.0/8", ".lan"]}]
    assert hop["resolver"] == "resolver-0"
    assert cfg["resolvers"] == [{"name": "resolver-0", "nameservers": [{"addr": "1.1.1.1"}]}]
    assert hop["hosts"] == "hosts-0"
    assert cfg["hosts"] == [{"name": "hosts-0", "mappings": [{"hostname": "x", "ip": "1.2.3.4"}]}]
    assert hop["metadata"] == {"interface": "eth0"}
    n = hop["nodes"][0]
    for part in (n.get("metadata", {}), n["connector"].get("metadata", {}), n["dialer"].get("metadata", {})):
        assert not {"interface", "bypass", "strategy", "maxFails", "resolver", "hosts"} & set(part)


def test_node_scoped_query_keys():
    cfg = from_args([":1"], ["http://h:1?hop.a=1&node.b=2&connector.c=3&dialer.d=4&e=5"])
    hop = cfg["chains"][0]["hops"][0]
    n = hop["nodes"][0]
    assert hop["metadata"] == {"a": "1", "e": "5"}
    assert n["metadata"] == {"b": "2", "e": "5"}
    assert n["connector"]["metadata"] == {"c": "3", "e": "5"}
    assert n["dialer"]["metadata"] == {"d": "4", "e": "5"}


# --- -L: query keys ---------------------------------------------------------------------------

def test_service_scoped_query_keys():
    s = svc("http://:1?service.x=1&handler.y=2&listener.z=3&w=4")
    assert s["metadata"] == {"x": "1", "w": "4"}
    assert s["handler"]["metadata"] == {"y": "2", "w": "4"}
    assert s["listener"]["metadata"] == {"z": "3", "w": "4"}


def test_service_only_keys():
    s = svc("http://:1?interface=eth0&so_mark=100&netns=ns1&netns.out=ns2")
    md = s["metadata"]
    assert set(md) == {"interface", "so_mark", "netns", "netns.out"}
    assert (md["interface"], str(md["so_mark"]), md["netns"], md["netns.out"]) == ("eth0", "100", "ns1", "ns2")
    assert not s["handler"].get("metadata") and not s["listener"].get("metadata")


def test_dns_list():
    s = svc("dns://:53?dns=1.1.1.1,8.8.8.8")
    assert s["handler"]["metadata"]["dns"] == ["1.1.1.1", "8.8.8.8"]


def test_listener_tls_files():
    s = svc("tls://:443?certFile=/c.pem&keyFile=/k.pem&caFile=/ca.pem")
    assert s["listener"]["tls"] == {"certFile": "/c.pem", "keyFile": "/k.pem", "caFile": "/ca.pem"}
    assert not {"certFile", "keyFile", "caFile"} & set(s.get("metadata", {}))
    s = svc("tls://:443?cert=/c.pem&key=/k.pem")
    assert s["listener"]["tls"] == {"certFile": "/c.pem", "keyFile": "/k.pem"}
    assert "tls" not in svc("tls://:443?keyFile=/k.pem")["listener"]  # no cert: no tls block


def test_first_query_value_wins():
    assert svc("http://:1?a=1&a=2")["handler"]["metadata"]["a"] == "1"


def test_bypass_whitelist_object():
    cfg = from_args([":1?bypass=~a,b"], [])
    s = cfg["services"][0]
    assert s["bypass"] == "bypass-0"
    assert cfg["bypasses"] == [{"name": "bypass-0", "whitelist": True, "matchers": ["a", "b"]}]
    assert "bypass" not in s["handler"].get("metadata", {})


def test_bypass_blacklist_and_numbering_per_service():
    cfg = from_args([":1?bypass=a", ":2?bypass=,b,,c,"], ["http://h:1?bypass=z"])
    assert [b["name"] for b in cfg["bypasses"]] == ["bypass-0", "bypass-1", "bypass-2"]
    assert cfg["bypasses"][0]["matchers"] == ["z"]                     # -F comes first
    assert cfg["bypasses"][1] == {"name": "bypass-1", "matchers": ["a"]}
    assert cfg["bypasses"][2]["matchers"] == ["b", "c"]
    assert [s["bypass"] for s in cfg["services"]] == ["bypass-1", "bypass-2"]
    assert cfg["chains"][0]["hops"][0]["bypass"] == "bypass-0"


def test_admission_object():
    cfg = from_args([":1?admission=~127.0.0.1,10.0.0.0/8"], [])
    assert cfg["services"][0]["admission"] == "admission-0"
    assert cfg["admissions"] == [{"name": "admission-0", "whitelist": True,
                                  "matchers": ["127.0.0.1", "10.0.0.0/8"]}]


def test_hosts_object():
    cfg = from_args([":1?hosts=a:1.2.3.4,b.example:::1,junk"], [])
    assert cfg["services"][0]["hosts"] == "hosts-0"
    assert cfg["hosts"][0]["mappings"] == [{"hostname": "a", "ip": "1.2.3.4"},
                                           {"hostname": "b.example", "ip": "::1"}]


def test_resolver_object_with_prefer():
    cfg = from_args([":1?resolver=udp://1.1.1.1:53,tls://8.8.8.8:853&prefer=ipv6"], [])
    assert cfg["services"][0]["resolver"] == "resolver-0"
    assert cfg["resolvers"][0]["nameservers"] == [{"addr": "udp://1.1.1.1:53", "prefer": "ipv6"},
                                                  {"addr": "tls://8.8.8.8:853", "prefer": "ipv6"}]


def test_retries():
    s = svc(":1?retries=2")
    assert s["handler"]["retries"] == 2 and isinstance(s["handler"]["retries"], int)
    assert "retries" not in s["handler"].get("metadata", {})
    assert "retries" not in svc(":1?retries=0")["handler"]


def test_retries_unusable_value_does_not_crash():
    s = svc(":1?retries=inf")  # must not raise OverflowError; GOST ignores what it cannot parse
    assert "retries" not in s["handler"] or isinstance(s["handler"]["retries"], int)


def test_traffic_limiter():
    cfg = from_args([":1?limiter.in=1MB&limiter.out=2MB&limiter.conn.in=100KB&limiter.conn.out=200KB"], [])
    s = cfg["services"][0]
    assert s["limiter"] == "limiter-0"
    assert cfg["limiters"] == [{"name": "limiter-0", "limits": ["$ 1MB 2MB", "$$ 100KB 200KB"]}]
    assert not {"limiter.in", "limiter.out", "limiter.conn.in", "limiter.conn.out"} & set(
        s["handler"].get("metadata", {}))
    cfg = from_args([":1?limiter.in=1MB"], [])
    assert cfg["limiters"][0]["limits"][0].split() == ["$", "1MB"]


def test_conn_and_rate_limiters():
    cfg = from_args([":1?climiter=10&rlimiter=2.5", ":2?rlimiter=5"], [])
    assert cfg["climiters"] == [{"name": "climiter-0", "limits": ["$ 10"]}]
    assert cfg["rlimiters"] == [{"name": "rlimiter-0", "limits": ["$ 2.5"]},
                                {"name": "rlimiter-1", "limits": ["$ 5"]}]
    assert cfg["services"][0]["climiter"] == "climiter-0"
    assert [s["rlimiter"] for s in cfg["services"]] == ["rlimiter-0", "rlimiter-1"]
    assert "climiter" not in from_args([":1?climiter=0"], [])["services"][0]


def test_ignore_chain_in_service_metadata():
    cfg = from_args(["http://:8080?ignoreChain=true", "socks5://:1080"], ["http://h:8000"])
    a, b = cfg["services"]
    assert a["metadata"]["ignoreChain"] == "true"
    assert a["handler"]["chain"] == "chain-0" and b["handler"]["chain"] == "chain-0"
    assert "ignoreChain" not in b.get("metadata", {})


def test_top_level_key_order():
    cfg = from_args([":1?bypass=a&admission=b&resolver=c&hosts=d:1.1.1.1&limiter.in=1&climiter=1&rlimiter=1"],
                    ["h:1"])
    assert list(cfg) == ["services", "chains", "admissions", "bypasses", "resolvers", "hosts", "limiters",
                         "climiters", "rlimiters"]


# --- URL splitting ----------------------------------------------------------------------------

def test_url_parts():
    u = URL("socks5+tls://us%3Aer:p%40ss@[::1]:1080/a:1,b:2?x=1&y=a%2Cb", "-L")
    assert u.scheme == "socks5+tls" and u.schemes() == ("socks5", "tls")
    assert (u.user, u.password) == ("us:er", "p@ss")
    assert u.host == "[::1]:1080" and u.hostname == "::1"
    assert u.path == "/a:1,b:2"
    assert u.query == {"x": "1", "y": "a,b"}


def test_url_defaults():
    u = URL(":8080", "-L")
    assert u.scheme == "auto" and u.host == ":8080" and u.user is None
    assert URL("h:1", "-F").scheme == "auto"
    assert URL("https://h:1", "-F").schemes() == ("http", "tls")
    assert URL("example.com:80", "-F").hostname == "example.com"
    with pytest.raises(ConfigError):
        URL("   ", "-L")


# --- property: odd command lines fail with ConfigError, nothing else ---------------------------

_pieces = st.sampled_from(list(":/?&=@,+.-~[]%abs019") + [
    "://", "tcp", "http", "ss", "relay", "rtcp", "[::1]", "8000-8002", "retries", "climiter", "rlimiter",
    "auth", "maxFails", "failTimeout", "bypass", "hosts", "limiter.in", "dns", "inf", "1e999", "-1"])
_cmd = st.lists(_pieces, max_size=20).map("".join)


@settings(max_examples=250, deadline=None)
@given(_cmd, _cmd)
@example(":1?retries=inf", "")
@example(":1?climiter=1e999", "h:1?maxFails=-inf")
def test_odd_command_lines_raise_only_config_error(service, node):
    try:
        from_args([service], [node] if node else [])
    except ConfigError:
        pass
