"""GOST's own docs examples (gost.run/en: tutorials, concepts, reference), each with the verdict
gostg must give under ``--check``: fine when gostg builds the feature, an error naming the path
when it does not and the feature decides who gets in or where traffic goes, a warning when it
only observes or tunes. In-process: -L/-F through :func:`from_args`, then :func:`validate` and
the startup warnings (open-proxy warnings left out: most examples listen on every interface).
bench/docs_examples.py runs every example of the docs; this table pins the verdicts by hand."""
import pytest
import yaml

from bench.gost_docs import verdict
from gostg.config.cmdline import from_args
from gostg.config.validate import validate
from gostg.plugin import grpc_built


#: (-L list, -F list, expected sorted [(level, path)])
CLI = [
    (['http://:8080'], [], []),
    (['socks5://user:pass@:1080'], [], []),
    (['socks5://:1080?udp=true'], [], []),
    (['socks5://:1080?bind=true'], [], []),
    (['socks5://:1080?udp=true&udpBufferSize=4096'], [], [('warning', 'services[0].metadata.udpBufferSize')]),
    (['socks5://:1080?tor=true'], ['socks5://127.0.0.1:9050'], [('error', 'services[0].metadata.tor')]),
    (['socks5+tls://:8443?notls=true'], [], []),
    (['socks4://:1080'], [], []),
    (['auto://:8080'], [], []),
    (['http2://user:pass@:8443'], [], []),
    (['http+tls://:8443'], [], []),
    (['http+tls://:8443?rejectUnknownSNI=true&serverNames=example.com'], [], [('error', 'services[0].metadata.rejectUnknownSNI'), ('error', 'services[0].metadata.serverNames')]),
    (['http+wss://:8443?path=/ws'], [], []),
    (['http+mwss://:8443?path=/ws'], [], []),
    (['socks5+h2c://user:pass@:8443'], [], []),
    (['relay+wss://gost:gost@:8420'], [], []),
    (['relay://:8420?bind=true'], [], []),
    (['ss://chacha20-ietf-poly1305:pass@:8338'], [], []),
    (['ssu+udp://:8388?backlog=128&ttl=60s'], [], []),
    (['sni://:443'], [], []),
    (['tcp://:8080/192.168.1.1:80,192.168.1.2:80?strategy=round&maxFails=1&failTimeout=30s'], [], []),
    (['udp://:10053/192.168.1.1:53,192.168.1.2:53?keepAlive=true&ttl=5s&readBufferSize=4096'], [], []),
    (['rtcp://:2222/:22'], ['socks5://:1080'], []),
    (['rudp://:10053/:53'], ['relay://:8420'], []),
    (['tls://:8443/:8080', 'http://:8080'], [], []),
    (['forward+wss://:8443/:1080', 'socks5://:1080'], [], []),
    (['tcp://:8000-8003/192.168.1.1:8000-8003'], [], []),
    (['http://user:pass@:8080?skipauth=192.168.0.0/24,172.22.22.22/32'], [], []),
    (['http://:8080?auth=dXNlcjpwYXNz'], [], []),
    (['http://:8080?admission=~127.0.0.1,192.168.0.0/16'], [], []),
    (['http://:8080?bypass=example.com'], [], []),
    (['http://:8080?resolver=1.1.1.1,tcp://8.8.8.8,tls://8.8.8.8:853,https://1.0.0.1/dns-query'], [], []),
    (['http://:8080?hosts=example.org:127.0.0.1,example.com:2001:db8::1'], [], []),
    ([':8080?limiter.in=100MB&limiter.out=100MB&limiter.conn.in=10MB&limiter.conn.out=10MB'], [], []),
    ([':8080?climiter=1000'], [], []),
    ([':8080?rlimiter=10'], [], []),
    ([':8080?quotas=quota-0'], [], [('error', 'services[0].metadata.quotas')]),
    (['http://:8080?hash=host'], ['socks5://192.168.1.1:1080,192.168.1.2:1080?strategy=hash&maxFails=1&failTimeout=10s'], []),
    (['http://:8080'], ['https://192.168.1.1:8080', 'socks5+ws://192.168.1.2:1080'], []),
    (['http://:8080'], ['socks5://:1080?auth=dXNlcjpwYXNz'], []),
    (['http://:8080'], ['tls://example.com:8443?secure=true&serverName=www.example.com'], []),
    (['http://:8080'], ['http://192.168.1.1:8080?bypass=~172.10.0.0/16,127.0.0.1,localhost,*.example.com'], []),
    (['http://:8000'], ['http://example.com:8080?resolver=1.1.1.1,tcp://8.8.8.8'], []),
    ([':8000'], ['socks5://192.168.1.1:1080?notls=true'], []),
    ([':8000'], ['ssu+udp://AEAD_CHACHA20_POLY1305:123456@:8338'], []),
    ([':8000'], ['sni://:8080?host=example.com'], []),
    ([':8080'], ['relay://username:password@:12345?nodelay=false'], []),
    ([':8080'], ['http+h2://:8443'], []),
    ([':8080'], ['http+mws://:8443?path=/ws'], []),
    (['http://:8080'], ['wss://:8443?keepalive=true&ttl=15s'], []),
    (['udp://:1053/:53'], ['socks5://:1080?relay=udp&udpBufferSize=4096'], [('warning', 'chains[0].hops[0].metadata.udpBufferSize')]),
    ([':8080'], [':8000?interface=192.168.0.1'], []),
    ([':8080?interface=eth0'], [], []),
    ([':8080'], ['http://:8000?proxyProtocol=1'], []),
    (['tcp://:8080/:8000?handler.proxyProtocol=1'], [], []),
    (['rtcp://:8080/:8000?handler.proxyProtocol=1'], [], []),
    (['tcp://:8000/:8080', 'tcp://:8080/example.com:80?proxyProtocol=1'], [], []),
    (['tcp://10.0.0.1:8000/10.0.1.1:8000?netns=ns1&netns.out=/run/netns/ns2'], [], []),
    (['tcp://10.0.0.1:8000/:8000?netns=ns1'], ['http://10.0.1.1:8080?netns=ns2'], []),
    (['red://:12345?sniffing=true&tproxy=true'], ['http://192.168.1.1:8080?so_mark=100'], [('error', 'services[0].handler.type'), ('error', 'services[0].listener.type')]),
    (['tcp://:8000?sniffing=true'], ['http://192.168.1.1:8080'], []),
    (['http://:8080', 'socks5://:1080?foo=bar&bar=baz'], [], [('warning', 'services[1].metadata.bar'), ('warning', 'services[1].metadata.foo')]),
    (['http+kcp://:8443'], [], [('error', 'services[0].listener.type')]),
    (['http+quic://:8443'], [], [('error', 'services[0].listener.type')]),
    (['relay+grpc://user:pass@:8443'], [], [('error', 'services[0].listener.type')]),
    (['http+pht://:8443'], [], [('error', 'services[0].listener.type')]),
    (['sshd://user:pass@:2222'], [], [('error', 'services[0].handler.type'), ('error', 'services[0].listener.type')]),
    (['dns://:10053?dns=1.1.1.1:53'], [], []),
    (['dns://:10053?mode=udp'], [], []),
    (['dns://:10053/1.1.1.1,tls://1.1.1.1:853?mode=udp'], [], []),
    (['dns://:10053/1.1.1.1?hosts=example.org:127.0.0.1,example.org:::1,example.com:2001:db8::1'], [], []),
    (['dns://:10053/1.1.1.1?bypass=example.com'], [], []),
    (['dns://:10053/1.1.1.1?ttl=60s'], [], []),
    (['dns://:10053/1.1.1.1?async=true'], [], []),
    (['dns://:10053/1.1.1.1?clientIP=1.2.3.4'], [], []),
    (['dns://:10053/1.1.1.1?mode=quic'], [], [('error', 'services[0].metadata.mode')]),
    (['tun://:8421?net=192.168.123.1/24'], [], []),
    # tutorials/routing-tunnel.md
    (['tun:///host-1?net=192.168.123.1/24'], ['router://server_ip:8443?router.id=e87f56dd-fd57-4921-9ab8-a0847662daae'], []),
    (['router://:8443'], [], []),
    (['file://:8080?dir=/home'], [], [('error', 'services[0].handler.type')]),
    (['http+dtls://:8443'], [], [('error', 'services[0].listener.type')]),
    (['http+mtcp://:8443'], [], []),
    (['mtcp://:8000?mux.type=yamux&mux.maxStreamWindow=1048576'], ['socks5+mtcp://:8080?mux.version=1'], []),
    (['mtcp://:8000?mux.type=quic'], [], [('error', 'services[0].metadata.mux.type')]),
    (['http+otls://:8443'], [], [('error', 'services[0].listener.type')]),
    ([':8080'], ['http+utls://:8443'], [('error', 'chains[0].hops[0].nodes[0].dialer.type')]),
    ([':8080'], ['http+icmp://:12345'], [('error', 'chains[0].hops[0].nodes[0].dialer.type')]),
    (['tcp://:8000/srv-2.local'], ['tunnel://:8443?tunnel.id=ac74d9dd-3125-442a-a7c1-f9e49e05faca'], []),
    ([':8080'], ['direct://:0?interface=eth0'], []),
    ([':8080'], ['masque+h3-masque://:8443'], [('error', 'chains[0].hops[0].nodes[0].connector.type'), ('error', 'chains[0].hops[0].nodes[0].dialer.type')]),
    (["http://gost:gost@:8080?probeResist=code:403"], [], []),
    (["http://gost:gost@:8080?probeResist=code:400&knock=www.example.com"], [], []),
    (["http://gost:gost@:8080?probeResist=web:example.com/page.html"], [], []),
    (["https://gost:gost@:443?probeResist=host:www.example.com:8080"], [], []),
    (["http2://gost:gost@:443?probeResist=file:/send/to/client/file.txt"], [], []),
    ([":8080?proxyProtocol="], [], []),
]


@pytest.mark.parametrize("services,nodes,expected", CLI, ids=[" ".join(c[0] + c[1])[:80] for c in CLI])
def test_cli_examples(services, nodes, expected):
    assert verdict(from_args(services, nodes)) == expected


#: (YAML from the docs, expected)
YAML = [
    # reference/handlers/dns.md (upstreams under handler.dns, as that page has them)
    ("""
services:
- name: service-0
  addr: ":10053"
  handler:
    type: dns
    dns:
    - 8.8.8.8
    - tls://1.1.1.1:853
  listener:
    type: dns
    metadata:
      mode: udp
""", []),
    # tutorials/dns.md
    ("""
services:
- name: service-0
  addr: :10053
  handler:
    type: dns
    metadata:
      ttl: 60s
      async: true
      clientIP: 1.2.3.4
  listener:
    type: dns
    metadata:
      mode: udp
  forwarder:
    nodes:
    - name: target-0
      addr: 1.1.1.1
    - name: target-1
      addr: tls://1.1.1.1:853
""", []),
    # concepts/service.md, tutorials/protocols/socks.md
    ("""
services:
- name: service-0
  addr: ":1080"
  handler: {type: socks5, auth: {username: user, password: pass}, metadata: {udp: true, bind: true}}
  listener: {type: tcp}
""", []),
    ("""
services:
- name: service-0
  addr: :1080
  handler: {type: socks5, chain: chain-0, metadata: {tor: true}}
  listener: {type: tcp}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - {name: node-0, addr: "127.0.0.1:9050", connector: {type: socks5}, dialer: {type: tcp}}
""", [("error", "services[0].handler.metadata.tor")]),
    # tutorials/protocols/socks.md: udpBufferSize on the connector is a tuning knob
    ("""
services:
- {name: service-0, addr: ":10053", handler: {type: udp, chain: chain-0}, listener: {type: udp},
   forwarder: {nodes: [{name: target-0, addr: "1.1.1.1:53"}]}}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - {name: node-0, addr: ":1080", connector: {type: socks5, metadata: {relay: udp, udpBufferSize: 4096}},
       dialer: {type: tcp}}
""", [("warning", "chains[0].hops[0].nodes[0].connector.metadata.udpBufferSize")]),
    # tutorials/tls.md
    ("""
services:
- name: service-0
  addr: :8443
  handler: {type: http}
  listener: {type: tls, tls: {rejectUnknownSNI: true, serverNames: [example.com]}}
""", [("error", "services[0].listener.tls.rejectUnknownSNI"), ("error", "services[0].listener.tls.serverNames")]),
    # concepts/limiter.md
    ("""
services:
- name: service-0
  addr: ":8080"
  limiter: limiter-0
  handler: {type: auto}
  listener: {type: tcp}
  metadata: {limiter.refreshInterval: 30s, limiter.scope: service}
limiters:
- name: limiter-0
  limits: ['$ 100MB 100MB', '$$ 10MB', '192.168.1.1  512KB 1MB']
""", [("warning", "services[0].metadata.limiter.refreshInterval"), ("warning", "services[0].metadata.limiter.scope")]),
    ("""
services:
- {name: service-0, addr: ":8080", quotas: [quota-0], handler: {type: auto}, listener: {type: tcp}}
quotas:
- name: quota-0
""", [("error", "quotas"), ("error", "services[0].quotas")]),
    # concepts/bypass.md, concepts/admission.md, concepts/auth.md
    ("""
services:
- name: service-0
  addr: ":8080"
  admission: admission-0
  bypass: bypass-0
  handler: {type: http, auther: auther-0}
  listener: {type: tcp}
admissions:
- {name: admission-0, whitelist: true, matchers: [127.0.0.1, 192.168.0.0/16]}
bypasses:
- {name: bypass-0, matchers: [example.com, "*.example.org"]}
authers:
- {name: auther-0, auths: [{username: user1, password: pass1}]}
""", []),
    ("""
bypasses:
- name: bypass-0
  plugin: {type: grpc, addr: 127.0.0.1:8000}
""", [] if grpc_built() else [("error", "bypasses[0].plugin.type")]),
    ("""
authers:
- name: auther-0
  redis: {addr: 127.0.0.1:6379, db: 1, key: gost:authers:auther-0}
""", []),
    # concepts/selector.md
    ("""
chains:
- name: chain-0
  hops:
  - name: hop-0
    selector: {strategy: parallel}
    nodes: [{name: node-0, addr: "192.168.1.1:8080"}]
""", []),
    # reference/configuration/file.md: a chain-level selector, hop interface/sockopts
    ("""
chains:
- name: chain-0
  selector: {strategy: round, maxFails: 1, failTimeout: 30s}
  hops:
  - name: hop-0
    interface: 192.168.1.2
    sockopts: {mark: 1}
    nodes: [{name: node-0, addr: "192.168.1.1:8080"}]
""", [("error", "chains[0].selector")]),
    # tutorials/probe.md
    ("""
chains:
- name: chain-1
  hops:
  - name: hop-1
    nodes:
    - name: proxy1
      addr: 10.0.0.1:1080
      connector: {type: socks5}
      dialer: {type: tcp}
      probe: {type: tcp, addr: "8.8.8.8:53", interval: 30s, timeout: 10s}
""", []),
    # concepts/forwarder.md, tutorials/reverse-proxy.md
    ("""
services:
- name: service-0
  addr: ":8080"
  handler: {type: tcp}
  listener: {type: tcp}
  forwarder: {hop: hop-0}
hops:
- name: hop-0
  nodes: [{name: target-0, addr: "192.168.1.1:8080"}]
""", [("error", "services[0].forwarder.hop")]),
    ("""
services:
- name: http
  addr: :80
  handler: {type: tcp, metadata: {sniffing: true}}
  listener: {type: tcp}
  forwarder:
    nodes:
    - {name: example-com, addr: example.com:80, filter: {host: example.com}}
""", []),
    # concepts/rewriter.md
    ("""
services:
- {name: service-0, addr: ":8080", handler: {type: auto}, listener: {type: tcp}, rewriter: rewriter-0}
rewriters:
- name: rewriter-0
  plugin: {type: grpc, addr: "127.0.0.1:8000"}
""", [("error", "rewriters"), ("error", "services[0].rewriter")]),
    # concepts/service.md (labels), concepts/observer.md, concepts/recorder.md, tutorials/log.md
    ("""
services:
- name: service-0
  addr: :8080
  metadata: {labels: {tenant: acme, region: eu}}
  handler: {type: http}
  listener: {type: tcp}
""", [("warning", "services[0].metadata.labels")]),
    ("""
services:
- name: service-0
  addr: ":8080"
  observer: observer-0
  handler: {type: auto}
  listener: {type: tcp}
  metadata: {enableStats: true, observer.period: 5s}
observers:
- name: observer-0
  plugin: {type: grpc, addr: "127.0.0.1:8000"}
""", []),
    ("""
services:
- name: service-0
  addr: ":8080"
  logger: logger-0
  handler: {type: auto}
  listener: {type: tcp}
loggers:
- name: logger-0
  log: {output: stderr, level: info, format: json}
""", []),
    # tutorials/sniffing.md: TLS interception
    ("""
services:
- name: service-0
  addr: :8080
  handler:
    type: auto
    metadata: {sniffing: true, mitm.certFile: ca.crt, mitm.keyFile: ca.key, mitm.alpn: h2, mitm.bypass: bypass-0}
  listener: {type: tcp}
""", [("error", "services[0].handler.metadata.mitm.alpn"), ("error", "services[0].handler.metadata.mitm.bypass"),
      ("error", "services[0].handler.metadata.mitm.certFile"), ("error", "services[0].handler.metadata.mitm.keyFile")]),
    # concepts/ingress.md, concepts/sd.md
    ("""
ingresses:
- name: ingress-0
  rules: [{hostname: example.com, endpoint: 4d21094e-b74c-4916-86c1-d9fa36ea677b}]
""", []),
    ("""
ingresses:
- name: ingress-0
  reload: 10s
  file: {path: /path/to/file}
  redis: {addr: 127.0.0.1:6379, db: 1, username: user, password: 123456, key: gost:ingresses:ingress-0, type: hash}
  http: {url: http://127.0.0.1:8000, timeout: 10s}
sds:
- name: sd-0
  plugin: {type: http, addr: http://127.0.0.1:8000/sd}
""", []),
    # concepts/router.md (its redis type list is in GOST's code, not its page)
    ("""
routers:
- name: router-0
  routes:
  - {dst: 10.0.0.1, gateway: 192.168.123.1}
  - {dst: 192.168.1.0/24, gateway: 192.168.123.2}
  - {net: 172.10.0.0/16, gateway: 192.168.123.3}
- name: router-1
  plugin: {type: http, addr: http://127.0.0.1:8000/router}
  routes: [{dst: 10.0.0.1, gateway: 192.168.123.1}]
""", [("warning", "routers[1].routes")]),
    # tutorials/proxy-protocol.md: receiving (listener metadata, as the page writes it), sending
    # from a port-forwarding handler and from a chain hop
    ("""
services:
- name: service-0
  addr: :8080
  handler: {type: http}
  listener: {type: tcp, metadata: {proxyProtocol: 1}}
""", []),
    ("""
services:
- name: service-0
  addr: :8080
  handler: {type: tcp, metadata: {proxyProtocol: 1}}
  listener: {type: tcp}
  forwarder: {nodes: [{name: target-0, addr: ":8000"}]}
""", []),
    ("""
services:
- name: service-0
  addr: :8080
  handler: {type: auto, chain: chain-0}
  listener: {type: tcp}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes: [{name: node-0, addr: ":8000", connector: {type: http}, dialer: {type: tcp}}]
    metadata: {proxyProtocol: 1}
""", []),
    # tutorials/probe-resistance.md
    ("""
services:
- name: service-0
  addr: :8080
  handler:
    type: http
    auth: {username: gost, password: gost}
    metadata: {knock: www.example.com, probeResist: "code:404"}
  listener: {type: tcp}
""", []),
]


@pytest.mark.parametrize("text,expected", YAML, ids=[f"yaml{i}" for i in range(len(YAML))])
def test_yaml_examples(text, expected):
    assert verdict(yaml.safe_load(text)) == expected


def test_cmdline_copies_without_their_object_warn():
    """A query key the command line turns into an object has no effect in a file's metadata."""
    cfg = {"services": [{"name": "s", "addr": "127.0.0.1:8080", "handler": {"type": "http"},
                         "metadata": {"bypass": "example.com"}}]}
    assert verdict(cfg) == [("warning", "services[0].metadata.bypass")]


def test_misplaced_unbuilt_key_names_its_owner():
    cfg = from_args([":8080"], ["http://:8000?mptcp=true"])
    msgs = [str(p) for p in validate(cfg)]
    assert any("mptcp" in m and "listener" in m and "did you mean" not in m for m in msgs), msgs
