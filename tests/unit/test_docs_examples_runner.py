"""bench/docs_examples.py's extraction and rewriting (bench/gost_docs.py), on small markdown
written here: fenced blocks as mkdocs renders them, gost command lines, configs, the move onto
loopback, what an example must listen on, and how a run's log is classed."""
import itertools
import json

import pytest

from bench import gost_docs as gd
from bench.docs_examples import classify, fingerprint, raw_examples, Example

PAGE = """# A page

=== "CLI"

\t```bash
\tgost -L tcp://:8080/192.168.1.1:80 -F relay://server:8420
\t```

=== "File (YAML)"

    ```yaml
\tservices:
\t- name: service-0
\t  addr: :8080
\t  handler:
\t\ttype: tcp
\t  listener:
\t\ttype: tcp
    ```

```json hl_lines="2"
{"services": [{"name": "s", "addr": ":1080", "handler": {"type": "socks5"}}]}
```

```sh
$ sudo gost -L "socks5://u:p@:1080?udp=true" \\
    -F http://10.0.0.1:3128 &   # a comment
curl -x socks5h://127.0.0.1:1080 example.com
ip netns exec ns1 gost -L :8000?netns=ns2
```
"""


class Counter:
    """Deterministic port allocation: 40000, 40001 …; a range takes a fresh block of 100."""

    def __init__(self):
        self.n = itertools.count(40000)
        self.blocks = itertools.count(50000, 100)

    def ports(self):
        return gd.Ports(alloc=lambda: next(self.n), alloc_range=lambda k: next(self.blocks))


@pytest.fixture
def ports():
    return Counter().ports()


@pytest.fixture
def files(tmp_path):
    return gd.Files(str(tmp_path / "files"), str(tmp_path / "certs"))


def test_blocks_expand_tabs_and_drop_the_pane_indent():
    bs = gd.blocks(PAGE)
    assert [b.lang for b in bs] == ["bash", "yaml", "json", "sh"]
    assert bs[0].text == "gost -L tcp://:8080/192.168.1.1:80 -F relay://server:8420"
    assert bs[0].line == 6 and bs[1].index == 1
    assert gd.config_of(bs[1]) == {"services": [{"name": "service-0", "addr": ":8080", "handler": {"type": "tcp"},
                                                 "listener": {"type": "tcp"}}]}


def test_commands_join_continuations_and_cut_the_shell_tail():
    sh = gd.blocks(PAGE)[3].text
    assert gd.commands(sh) == [
        (0, ["-L", "socks5://u:p@:1080?udp=true", "-F", "http://10.0.0.1:3128"], ""),
        (3, ["-L", ":8000?netns=ns2"], "netns"),
    ]
    assert gd.commands("gost -V\n./gost -L=:8080 | tee log\n/usr/local/bin/gost -L :1\n# gost -L :2") == [
        (0, ["-V"], ""), (1, ["-L=:8080"], ""), (2, ["-L", ":1"], "")]
    assert gd.commands("gost -L 'unterminated") == []


def test_config_of_tells_gost_configs_from_other_yaml_and_json():
    def block(text, lang="yaml"):
        return gd.Block(0, lang, 1, text)
    assert gd.config_of(block("services:\n  web:\n    image: gogost/gost\n")) is None   # docker-compose
    assert gd.config_of(block('{"service": "s", "network": "tcp"}', "json")) is None     # a log record
    assert gd.config_of(block('{"service": "s", "tls": {"serverName": "x"}}', "json")) is None
    assert gd.config_of(block('{"a": 1,}', "json")) is None
    assert gd.config_of(block("apiVersion: v1\nkind: Pod\n")) is None
    assert gd.config_of(block("services:\n- name: s\n  addr: :\n  x: *.example.org\n")) == "not valid YAML (line 3)"
    frag = gd.config_of(block("bypasses:\n- name: b\n  matchers: [example.com]\n"))
    assert frag and not gd.runnable(frag)
    assert gd.runnable({"api": {"addr": ":18080"}})


def test_ports_pair_a_client_with_the_pages_server(ports):
    assert ports.listen("8420") == "40000"
    assert ports.listen("8420") == "40000"
    assert ports.remote("server", "8420") == "40000"            # the page's own server
    assert ports.remote("192.168.1.1", "80") == "40001"         # nobody listens there
    assert ports.remote("192.168.1.1", "80") == "40001"
    assert ports.remote("10.0.0.1", "80") == "40002"
    assert ports.listen("8000-8003") == "50000-50003"
    assert ports.remote("h", "8000-8003") == "50000-50003"
    assert ports.listen("") == "40003" and ports.listen("0") == "40004"


def test_url_round_trip():
    for raw in ("socks5://u:p@:1080?udp=true", "tcp://:8080/192.168.1.1:80,192.168.1.2:80?strategy=round",
                ":8080", "http://[::1]:8080", "socks5://a:1,b:2?x=y"):
        assert str(gd.Url.parse(raw)) == raw
    assert gd.split_hostport("[::1]:80") == ("::1", "80")
    assert gd.split_hostport(":8000-8003") == ("", "8000-8003")
    assert gd.split_hostport("example.com") == ("example.com", "")


def test_rewrite_argv_moves_everything_onto_loopback(ports, files):
    notes = set()
    argv = ["-L", "tls://:8443/:8080?certFile=/etc/cert.pem&keyFile=key.pem", "-L=http://user:pw@:8080",
            "-F", "relay+tls://server:8443?interface=eth0", "-api", "user:pass@:18080", "--",
            "-L", "dns://:53?dns=1.1.1.1,tls://8.8.8.8:853&probeResist=file:/srv/index.html", "-D"]
    gd.rewrite_argv(argv, ports, files, notes)      # as the runner does: the first pass learns the
    out = gd.rewrite_argv(argv, ports, files, notes)  # page's listen ports, the second pairs with them
    cert, key = files.cert("certFile"), files.cert("keyFile")
    assert out == [
        "-L", f"tls://127.0.0.1:40000/127.0.0.1:40002?certFile={cert}&keyFile={key}",
        "-L=http://user:pw@127.0.0.1:40002",
        "-F", "relay+tls://127.0.0.1:40000?interface=lo",
        "-api", "user:pass@127.0.0.1:40003", "--",
        "-L", f"dns://127.0.0.1:40004?dns=127.0.0.1:40005,tls://127.0.0.1:40006"
              f"&probeResist=file:{files.root}/index.html", "-D"]
    assert not notes
    gd.rewrite_argv(["-L", "tcp://:80/:81?netns=ns1"], ports, files, notes)
    assert notes == {"netns"}


def test_rewrite_config(ports, files):
    cfg = {"services": [
        {"name": "s0", "addr": ":8080", "handler": {"type": "http", "chain": "c"}, "listener": {
            "type": "tls", "tls": {"certFile": "cert.pem", "keyFile": "key.pem", "caFile": "ca.pem"}},
         "interface": "192.168.1.2", "forwarder": {"nodes": [{"name": "t", "addr": "example.com:80"}]}},
        {"name": "s1", "addr": "0.0.0.0:8420", "handler": {"type": "relay"}, "listener": {"type": "tcp"}}],
        "chains": [{"name": "c", "hops": [{"name": "h", "nodes": [
            {"name": "n", "addr": "gost.run:8420", "probe": {"addr": "8.8.8.8:53"}}]}]}],
        "resolvers": [{"name": "r", "nameservers": [{"addr": "udp://8.8.8.8:53"},
                                                    {"addr": "https://1.0.0.1/dns-query"}]}],
        "bypasses": [{"name": "b", "file": {"path": "/path/to/bypass.txt"}}],
        "log": {"output": "/var/log/gost.log"}, "api": {"addr": ":18080"}}
    out = gd.rewrite_config(cfg, ports, files, set())
    assert cfg["services"][0]["addr"] == ":8080"          # the docs' own object is left alone
    s0, s1 = out["services"]
    assert (s0["addr"], s1["addr"], out["api"]["addr"]) == ("127.0.0.1:40000", "127.0.0.1:40001", "127.0.0.1:40002")
    assert s0["listener"]["tls"] == {"certFile": files.cert("certFile"), "keyFile": files.cert("keyFile"),
                                     "caFile": files.cert("caFile")}
    assert s0["interface"] == "127.0.0.1"
    assert s0["forwarder"]["nodes"][0]["addr"] == "127.0.0.1:40003"
    node = out["chains"][0]["hops"][0]["nodes"][0]
    assert node["addr"] == "127.0.0.1:40001"                # paired with s1
    assert node["probe"]["addr"] == "127.0.0.1:40004"
    assert [n["addr"] for n in out["resolvers"][0]["nameservers"]] == [
        "udp://127.0.0.1:40004", "https://127.0.0.1:40005/dns-query"]   # 8.8.8.8:53 once
    assert out["bypasses"][0]["file"]["path"] == f"{files.root}/bypass.txt"
    assert out["log"]["output"] == f"{files.root}/gost.log"
    assert gd.expectations(out) == ({40000, 40001, 40002}, "")


def test_expectations_leave_out_remote_binds_and_skip_devices():
    assert gd.expectations({"services": [
        {"addr": "127.0.0.1:2222", "handler": {"type": "rtcp"}, "listener": {"type": "rtcp"}},
        {"addr": "127.0.0.1:7000-7002", "handler": {"type": "tcp"}}]}) == ({7000, 7001, 7002}, "")
    assert gd.expectations({"services": [{"addr": ":8421", "handler": {"type": "tun"}}]}) == (
        set(), "tun: creates a TUN device")
    cfgs = gd.cli_configs(["-L", "rtcp://127.0.0.1:2222/127.0.0.1:22", "-F", "socks5://127.0.0.1:1080", "--",
                           "-L", "http://127.0.0.1:8080", "-api", "127.0.0.1:9"])
    assert [len(c["services"]) for c in cfgs] == [1, 1] and cfgs[1]["api"] == {"addr": "127.0.0.1:9"}
    assert gd.expectations(gd.merged(cfgs)) == ({8080, 9}, "")
    assert gd.cli_configs(["-L", ":1", "stray"]) is None


def test_features_and_tiers():
    assert gd.features("-L dns://:53 -F mtcp://:1?mux.version=2") == ["dns", "mtcp", "mux"]
    cfg = {"hops": [{"selector": {"strategy": "lowestlatency"}, "nodes": [
        {"addr": "a", "probe": {"type": "tcp"}, "filter": {"host": "x"}}]}]}
    assert gd.features(json.dumps(cfg)) == ["filter/matcher", "probe", "selector"]
    assert gd.features(json.dumps({"bypasses": [{"matchers": ["a"]}]})) == []
    assert gd.features("-L http://:8080?probeResist=code:404&knock=x") == ["probeResist/knock"]
    assert gd.features("-L :8080?interface=eth0") == ["interface/so_mark/netns"]
    assert [gd.tier(p) for p in ("getting-started/quick-start.md", "concepts/chain.md", "tutorials/protocols/ss.md",
                                 "tutorials/tuntap.md", "reference/listeners/kcp.md", "blog/posts/tun.md")] == [
        1, 1, 1, 2, 2, 3]


def test_reason_key_groups_the_same_cause():
    a = gd.reason_key("gostg: config error: services[0].listener.type: listener type 'kcp' is not built by "
                      "gostg yet (GOST docs: https://gost.run/x; built: tcp)")
    b = gd.reason_key("gostg: config error: services[3].listener.type: listener type 'kcp' is not built by "
                      "gostg yet (GOST docs: https://gost.run/x; built: tcp)")
    assert a == b == "listener type 'kcp' not built"
    assert gd.reason_key("gostg: config error: services[0].metadata.sniffing: traffic sniffing is not built by gostg "
                         "yet, and running without it would change who gets in or where traffic goes (GOST docs: "
                         "https://x)") == "sniffing: traffic sniffing not built"
    assert gd.reason_key("gostg: config warning: metrics: Prometheus metrics is not built by gostg yet: not active "
                         "(GOST docs: https://x)") == "metrics: Prometheus metrics not built (not active)"
    assert gd.reason_key("services[0].metadata.udpBufferSize: UDP buffer size (gostg uses its own) is not built by "
                         "gostg yet: not active") == "udpBufferSize: UDP buffer size not built (not active)"
    assert gd.reason_key("bind 127.0.0.1:41234 failed") == "bind 127.0.0.1:P failed"


def test_raw_examples_and_fingerprint(ports, files):
    raw = raw_examples("p.md", PAGE)
    assert [(r[0], r[1]) for r in raw] == [("p.md#0.0", "cli"), ("p.md#1", "config"), ("p.md#2", "config"),
                                           ("p.md#3.0", "cli"), ("p.md#3.3", "cli")]
    one = Example("a.md#0.0", "a.md", "cli", argv=["-L", "http://127.0.0.1:40000"])
    two = Example("b.md#4.1", "b.md", "cli", argv=["-L", "http://127.0.0.1:41234"])
    other = Example("b.md#4.2", "b.md", "cli", argv=["-L", "socks5://127.0.0.1:41234"])
    assert fingerprint(one, "/w") == fingerprint(two, "/w") != fingerprint(other, "/w")


LOG_OK = '{"level": "info", "msg": "listening on 127.0.0.1:40000"}\n'


@pytest.mark.parametrize("run,expected", [
    ((None, False, set(), LOG_OK), ("starts", "")),
    ((None, False, set(), "gostg: config warning: services[0].metadata.foo: unknown metadata key\n" + LOG_OK),
     ("warns", "gostg: config warning: services[0].metadata.foo: unknown metadata key")),
    ((1, False, set(), "gostg: config error: services[0].listener.type: listener type 'kcp' is not built\n"),
     ("refused", "gostg: config error: services[0].listener.type: listener type 'kcp' is not built")),
    ((None, True, {40001}, LOG_OK + '{"level": "error", "msg": "listen 127.0.0.1:40001: in use"}\n'),
     ("refused", "not listening on 1 of its ports within 8s: listen 127.0.0.1:40001: in use")),
    ((None, False, set(), "gostg: config error: chains[0].hops[0].nodes[0].connector.type: connector type "
                          "'tunnel' is not built\n"),   # seen before it exited
     ("refused", "gostg: config error: chains[0].hops[0].nodes[0].connector.type: connector type 'tunnel' "
                 "is not built")),
    ((1, False, set(), 'Traceback (most recent call last):\n  File "x", line 1\nKeyError: \'addr\'\n'),
     ("crash", "KeyError: 'addr'")),
])
def test_classify(run, expected):
    assert classify(*run, 8.0)[:2] == expected


def test_classify_print_only_and_inactive_ports():
    """``-O yaml`` exits 0 by design; a port a "not active" feature would have opened
    (``-metrics``) makes the example warn, not fail."""
    assert classify(0, False, set(), "services: []\n", 8.0, oneshot=True)[:2] == ("starts", "")
    assert classify(0, False, set(), "services: []\n", 8.0)[0] == "refused"
    warn = "gostg: config warning: metrics: Prometheus metrics is not built by gostg yet: not active\n"
    assert classify(None, True, {40001}, warn + LOG_OK, 8.0) == ("warns", warn.strip(), ["not listening on [40001]"])
