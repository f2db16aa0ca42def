"""Server-side forwarding (GOST docs tutorials/port-forwarding.md "Server-side Forwarding" and
tutorials/protocols/relay.md "Port Forwarding"): the client's tcp/udp forward service has no
target of its own; the server at the end of its chain holds it."""
import subprocess

from .helpers import Gost, Origin, free_port
from .peers import curl_code, wait_log
from .udppeers import Dnsmasq, free_udp_port, needs_dnsmasq


def dig(port, *extra):
    """``dig @127.0.0.1 -p port example.test +short`` → the answer lines (the real client)."""
    p = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "example.test", "A", "+short", "+time=3",
                        "+tries=1", *extra], capture_output=True, text=True, timeout=20)
    return p.stdout.split()


@needs_dnsmasq
def test_relay_port_forwarding_docs_cli_tcp_and_udp():
    """relay.md: server ``gost -L relay://:8420/:53``, client
    ``gost -L udp://:1053 -L tcp://:2222 -F relay://:8420``; dig over both."""
    with Dnsmasq() as dns:
        rp, up, tp = free_port(), free_udp_port(), free_port()
        with Gost("-L", f"relay://127.0.0.1:{rp}/127.0.0.1:{dns.port}", ports=[rp]) as srv, \
                Gost("-L", f"udp://127.0.0.1:{up}", "-L", f"tcp://127.0.0.1:{tp}",
                     "-F", f"relay://127.0.0.1:{rp}", ports=[tp]) as cli:
            assert dig(tp, "+tcp") == ["10.9.8.7"], cli.log_text()[-2000:]
            assert dig(up) == ["10.9.8.7"], cli.log_text()[-2000:]
            # the server chose the target: it logged relaying to dnsmasq, the client ":0"
            assert wait_log(srv, rf"<-> 127\.0\.0\.1:{dns.port}", count=2)
            assert "no target configured" not in cli.log_text()


def test_tls_server_side_forwarding_docs_cli():
    """port-forwarding.md: server ``gost -L tls://:8443/192.168.1.1:80``, client
    ``gost -L tcp://:8080 -F forward+tls://:8443``; curl through the client."""
    with Origin() as o:
        sp, cp = free_port(), free_port()
        with Gost("-L", f"tls://127.0.0.1:{sp}/127.0.0.1:{o.port}", ports=[sp]), \
                Gost("-L", f"tcp://127.0.0.1:{cp}", "-F", f"forward+tls://127.0.0.1:{sp}", ports=[cp]):
            for _ in range(2):
                rc, status, body = curl_code(f"http://127.0.0.1:{cp}/docs")
                assert (rc, status) == (0, 200) and body.startswith(b"hello from origin /docs"), body


def test_tls_server_side_forwarding_docs_yaml_with_handler_chain():
    """The docs' YAML pair, with the client's chain on the handler (GOST reads a tcp
    listener's chain nowhere; gostg warns about that spelling, see below)."""
    with Origin() as o:
        sp, cp = free_port(), free_port()
        server = f"""
services:
- name: service-0
  addr: 127.0.0.1:{sp}
  handler: {{type: forward}}
  listener: {{type: tls}}
  forwarder:
    nodes:
    - name: target-0
      addr: 127.0.0.1:{o.port}
"""
        client = f"""
services:
- name: service-0
  addr: 127.0.0.1:{cp}
  handler: {{type: tcp, chain: chain-0}}
  listener: {{type: tcp}}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: 127.0.0.1:{sp}
      connector: {{type: forward}}
      dialer: {{type: tls}}
"""
        with Gost("-C", "-", stdin=server, ports=[sp]), Gost("-C", "-", stdin=client, ports=[cp]):
            rc, status, body = curl_code(f"http://127.0.0.1:{cp}/yaml")
            assert (rc, status) == (0, 200) and b"/yaml" in body


def test_listener_chain_spelling_is_refused_with_a_hint():
    """The docs' client YAML puts the chain on the tcp listener, which nothing reads: the
    service starts, says so, and refuses connections instead of going anywhere."""
    cp = free_port()
    client = f"""
services:
- name: service-0
  addr: 127.0.0.1:{cp}
  handler: {{type: tcp}}
  listener: {{type: tcp, chain: chain-0}}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - {{name: node-0, addr: "127.0.0.1:1", connector: {{type: forward}}, dialer: {{type: tls}}}}
"""
    with Gost("-C", "-", stdin=client, ports=[cp]) as g:
        assert wait_log(g, r"listener\.chain: listener type tcp does not use a chain")
        rc, status, _ = curl_code(f"http://127.0.0.1:{cp}/", timeout=5)
        assert status == 0 and rc != 0
        assert wait_log(g, "no target configured and no chain")


def test_no_target_no_chain_fails_closed():
    p = free_port()
    with Gost("-L", f"tcp://127.0.0.1:{p}", ports=[p]) as g:
        rc, status, _ = curl_code(f"http://127.0.0.1:{p}/", timeout=5)
        assert status == 0 and rc != 0
        assert wait_log(g, "forward: no target configured and no chain")
        # still serving: the next client gets the same refusal, not a dead port
        curl_code(f"http://127.0.0.1:{p}/", timeout=5)
        assert wait_log(g, "no target configured and no chain", count=2)


def test_chain_end_without_a_target_refuses():
    """A relay server with no forwarder of its own gets the empty address: it must not dial
    its own port 0 (or anything): NetworkUnreachable, a log line on both sides."""
    rp, cp = free_port(), free_port()
    with Gost("-L", f"relay://127.0.0.1:{rp}", ports=[rp]) as srv, \
            Gost("-L", f"tcp://127.0.0.1:{cp}", "-F", f"relay://127.0.0.1:{rp}?nodelay=true", ports=[cp]) as cli:
        rc, status, _ = curl_code(f"http://127.0.0.1:{cp}/", timeout=5)
        assert status == 0 and rc != 0
        assert wait_log(srv, r"no target \(only a chain's last node can choose it")
        assert wait_log(cli, r"relay CONNECT :0: status")
