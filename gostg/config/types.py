"""GOST's registered type names. The CLI maps an unknown scheme part to auto/tcp/http exactly
as GOST does, judged by GOST's names, so ``-O`` prints what GOST would even for a type gostg
does not build yet (the build step then says it is unsupported)."""

HANDLERS = frozenset("""auto http http2 http3 socks5 socks socks4 socks4a relay tcp udp forward
rtcp rudp runix ss ssu sni dns red redir redirect redu masque sshd tun tap tungo router tunnel
api metrics file unix serial""".split())

LISTENERS = frozenset("""tcp udp tls mtls ws wss mws mwss http2 h2 h2c grpc kcp quic http3 h3 wt
dtls ssh sshd pht phts ohttp otls mtcp ftcp icmp icmp6 rtcp rudp runix red redir redirect redu
tun tap tungo dns unix serial stdio""".split())

CONNECTORS = frozenset("""http http2 socks5 socks socks4 socks4a relay ss ssu sni forward tcp
sshd masque tunnel router unix serial direct virtual""".split())

DIALERS = frozenset("""tcp udp tls utls mtls ws wss mws mwss http2 h2 h2c grpc kcp quic http3 h3
wt h3-masque dtls ssh sshd pht phts ohttp ohttps otls mtcp ftcp icmp icmp6 unix serial direct
virtual""".split())

#: listeners whose forward mode keeps the listener's name as the handler (GOST cmd.go)
FORWARD_AS_LISTENER = frozenset("tcp udp rtcp rudp tun tap dns unix runix serial".split())
