"""The DNS proxy end to end (GOST docs: tutorials/dns.md, reference/handlers/dns.md,
reference/listeners/dns.md): bin/gostg with the docs' own command lines and YAML (ports moved to
loopback), dig (UDP, +tcp, +tls, +https) and curl (DoH over HTTP/1.1) as clients, dnsmasq or a
small dnspython server as the upstream, gostg's socks5/relay as the chain."""
import re
import socket
import subprocess
import time

import dns.edns
import dns.flags
import dns.message
import dns.rrset

from .helpers import Gost, free_port
from .peers import DNSServer, UDPServer, curl, fd_baseline, fd_settle, wait_log
from .udppeers import Dnsmasq, free_udp_port, needs_dnsmasq, udp_ask

pytestmark = needs_dnsmasq


def dig(port, name, rdtype="A", *opts, timeout=6):
    """``dig`` one query → (status or None, [(name, ttl, type, data)])."""
    p = subprocess.run(["dig", "-p", str(port), "@127.0.0.1", name, rdtype, "+tries=1", f"+time={timeout}",
                        "+noall", "+comments", "+answer", *opts], capture_output=True, text=True, timeout=timeout + 15)
    m = re.search(r"status: (\w+)", p.stdout)
    rows = [ln.split() for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith(";")]
    return (m.group(1) if m else None), [(r[0], int(r[1]), r[3], r[4]) for r in rows if len(r) >= 5]


def ips(result):
    return sorted(r[3] for r in result[1])


def listening(g, n, timeout=15.0):
    """Wait for ``n`` services of ``g`` to listen (UDP ports cannot be probed by connecting)."""
    found = wait_log(g, r"listening on", count=n, timeout=timeout)
    assert len(found) >= n, g.log_text()[-3000:]


def yaml_gost(tmp_path, text, n=1):
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(text)
    g = Gost("-C", str(cfg)).start()
    try:
        listening(g, n)
    except BaseException:
        g.stop()        # a gostg that never listened is not left running after the failure
        raise
    return g


# --- the docs' command lines, every listener mode -------------------------------------------------

def test_docs_command_lines_udp_tcp_dot_doh():
    """reference/handlers/dns.md ``dns://:10053?dns=…``, reference/listeners/dns.md ``mode``,
    tutorials/dns.md ``dns://:10053/1.1.1.1,tls://1.1.1.1:853?mode=udp`` (its tls:// upstream
    is a gostg DoT listener here, and an https:// one a gostg DoH listener)."""
    with Dnsmasq(["/example.test/10.1.2.3"]) as d:
        pu, pt, pdot, pdoh, pmix, pdoh2 = free_udp_port(), free_port(), free_port(), free_port(), free_udp_port(), free_udp_port()
        with Gost("-L", f"dns://127.0.0.1:{pu}?dns=udp://127.0.0.1:{d.port}",
                  "-L", f"dns://127.0.0.1:{pt}/127.0.0.1:{d.port}?mode=tcp",
                  "-L", f"dns://127.0.0.1:{pdot}?dns=tcp://127.0.0.1:{d.port}&mode=tls",
                  "-L", f"dns://127.0.0.1:{pdoh}?dns=127.0.0.1:{d.port}&mode=https",
                  "-L", f"dns://127.0.0.1:{pmix}/tls://127.0.0.1:{pdot}?mode=udp",
                  "-L", f"dns://127.0.0.1:{pdoh2}/https://127.0.0.1:{pdoh}/dns-query",
                  ports=[pt, pdot, pdoh]) as g:
            listening(g, 6)
            assert ips(dig(pu, "example.test")) == ["10.1.2.3"]
            assert ips(dig(pt, "www.example.test", "A", "+tcp")) == ["10.1.2.3"]
            assert ips(dig(pdot, "example.test", "A", "+tls")) == ["10.1.2.3"]
            assert ips(dig(pdoh, "example.test", "A", "+https")) == ["10.1.2.3"]          # HTTP/2 POST
            assert ips(dig(pdoh, "example.test", "A", "+https-get")) == ["10.1.2.3"]      # HTTP/2 GET
            assert ips(dig(pmix, "example.test")) == ["10.1.2.3"]                         # upstream: DoT
            assert ips(dig(pdoh2, "example.test")) == ["10.1.2.3"]                        # upstream: DoH
            q = dns.message.make_query("example.test", "A").to_wire()
            r = subprocess.run(["curl", "-sS", "-m", "5", "-k", "--http1.1", "-H", "Content-Type: application/dns-message",
                                "--data-binary", "@-", f"https://127.0.0.1:{pdoh}/dns-query"], input=q,
                               capture_output=True, timeout=20)
            assert [rr.address for rs in dns.message.from_wire(r.stdout).answer for rr in rs] == ["10.1.2.3"]
            rc = curl("-k", "--http1.1", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: text/plain",
                      "--data", "x", f"https://127.0.0.1:{pdoh}/dns-query")
            assert rc.stdout == b"415"
            rc = curl("-k", "--http2", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: text/plain",
                      "--data", "x", f"https://127.0.0.1:{pdoh}/dns-query")
            assert rc.stdout == b"415"                                                  # the same over HTTP/2
            rc = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{pdoh}/dns-query?dns=!!")
            assert rc.stdout == b"400"
            assert ips(dig(pdoh, "example.test", "A", "+https")) == ["10.1.2.3"]          # still serving
            assert "Traceback" not in g.log_text()


# --- tutorials/dns.md YAML: hosts, bypass, forwarder node bypass -----------------------------------

HOSTS_YAML = """
services:
- name: service-0
  addr: 127.0.0.1:{port}
  hosts: hosts-0
  handler:
    type: dns
  listener:
    type: dns
    metadata:
      mode: udp
  forwarder:
    nodes:
    - name: target-0
      addr: 127.0.0.1:{up}
hosts:
- name: hosts-0
  mappings:
  - ip: 127.0.0.1
    hostname: example.org
  - ip: ::1
    hostname: example.org
  - ip: 2001:db8::1
    hostname: example.com
"""


def test_tutorial_hosts_yaml(tmp_path):
    with Dnsmasq(["/example.com/10.1.2.3"]) as d:
        p = free_udp_port()
        with yaml_gost(tmp_path, HOSTS_YAML.format(port=p, up=d.port)) as g:
            assert dig(p, "example.org")[1] == [("example.org.", 3600, "A", "127.0.0.1")]
            assert dig(p, "example.org", "AAAA")[1] == [("example.org.", 3600, "AAAA", "::1")]
            assert ips(dig(p, "example.com")) == ["10.1.2.3"]              # no IPv4 mapping: upstream
            assert ips(dig(p, "example.com", "AAAA")) == ["2001:db8::1"]
            assert "Traceback" not in g.log_text()


BYPASS_YAML = """
services:
- name: service-0
  addr: 127.0.0.1:{port}
  bypass: bypass-0
  handler:
    type: dns
  listener:
    type: dns
  forwarder:
    nodes:
    - name: target-0
      addr: 127.0.0.1:{up}
bypasses:
- name: bypass-0
  matchers:
  - example.com
"""


def test_tutorial_service_bypass_yaml(tmp_path):
    with Dnsmasq(["/example.com/10.1.2.3", "/example.org/10.4.5.6"]) as d:
        p = free_udp_port()
        with yaml_gost(tmp_path, BYPASS_YAML.format(port=p, up=d.port)):
            assert dig(p, "example.com") == ("NOERROR", [])                # bypassed: empty answer
            assert ips(dig(p, "example.org")) == ["10.4.5.6"]


NODE_BYPASS_YAML = """
services:
- name: service-0
  addr: 127.0.0.1:{port}
  handler:
    type: dns
  listener:
    type: dns
  forwarder:
    nodes:
    - name: target-0
      addr: 127.0.0.1:{up0}
      bypass: bypass-0
    - name: target-1
      addr: 127.0.0.1:{up1}
      bypass: bypass-1
bypasses:
- name: bypass-0
  matchers:
  - example.org
- name: bypass-1
  matchers:
  - example.com
"""


def test_tutorial_forwarder_node_bypass_yaml(tmp_path):
    names = {"example.org": None, "example.com": None}
    with DNSServer({n: "10.0.0.0" for n in names}) as s0, DNSServer({n: "10.0.0.1" for n in names}) as s1:
        p = free_udp_port()
        with yaml_gost(tmp_path, NODE_BYPASS_YAML.format(port=p, up0=s0.port, up1=s1.port)):
            for _ in range(3):   # whatever the selector's turn: the bypass decides
                assert ips(dig(p, "example.org")) == ["10.0.0.1"]          # target-0 bypasses it
                assert ips(dig(p, "example.com")) == ["10.0.0.0"]          # target-1 bypasses it
        assert {n for n, _ in s0.queries} == {"example.com"} and {n for n, _ in s1.queries} == {"example.org"}


# --- cache: ttl, ttl override, no cache, async ----------------------------------------------------

def test_cache_ttl_override_off_and_async():
    with Dnsmasq(["/example.test/10.1.2.3"], extra=["--local-ttl=300"]) as d:
        up = f"udp://127.0.0.1:{d.port}"
        p = {k: free_udp_port() for k in ("plain", "off", "override", "async", "expiring")}
        q = {"plain": "", "off": "&ttl=-1s", "override": "&ttl=60s", "async": "&ttl=1s&async=true",
             "expiring": "&ttl=1s"}
        with Gost(*[a for k in p for a in ("-L", f"dns://127.0.0.1:{p[k]}?dns={up}{q[k]}")], "-D") as g:
            listening(g, len(p))
            first = {k: dig(p[k], "example.test") for k in p}
            t0 = time.monotonic()
            assert all(ips(r) == ["10.1.2.3"] for r in first.values()), first
            assert first["plain"][1][0][1] == 300 and first["override"][1][0][1] == 300   # upstream's own TTL
            d.__exit__()                                            # the upstream is gone
            assert dig(p["off"], "example.test")[0] == "SERVFAIL"  # no cache: asks, fails at once
            cached = dig(p["plain"], "example.test")
            assert ips(cached) == ["10.1.2.3"] and 290 <= cached[1][0][1] <= 300
            over = dig(p["override"], "example.test")
            assert ips(over) == ["10.1.2.3"] and 50 <= over[1][0][1] <= 60
            time.sleep(max(0.0, 1.3 - (time.monotonic() - t0)))    # the 1 s TTLs run out (what is tested)
            stale = dig(p["async"], "example.test")
            assert ips(stale) == ["10.1.2.3"] and stale[1][0][1] == 1   # served stale, refreshed behind
            assert dig(p["expiring"], "example.test")[0] == "SERVFAIL"
            assert wait_log(g, r"async refresh failed")
            assert wait_log(g, r'"msg": "dns: cached answer"', count=3)


# --- clientIP (ECS) -----------------------------------------------------------------------------

class CapturingDNS(UDPServer):
    """Answers every A query with 10.0.0.9 and keeps the queries it got."""

    def __init__(self):
        self.got = []
        super().__init__()

    def answer(self, data, peer):
        q = dns.message.from_wire(data)
        self.got.append(q)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "10.0.0.9"))
        return r.to_wire()


def test_client_ip_sends_ecs_upstream():
    with CapturingDNS() as up:
        p = free_udp_port()
        with Gost("-L", f"dns://127.0.0.1:{p}/127.0.0.1:{up.port}?clientIP=1.2.3.4") as g:
            listening(g, 1)
            assert ips(dig(p, "example.test")) == ["10.0.0.9"]
            assert ips(dig(p, "example.test", "A", "+subnet=9.9.9.0/24")) == ["10.0.0.9"]
        ecs = [[(o.address, o.srclen) for o in q.options if isinstance(o, dns.edns.ECSOption)] for q in up.got]
        assert ecs == [[("1.2.3.0", 24)]]                  # the second answer came from the cache
        assert up.got[0].id != 0


# --- bad input ----------------------------------------------------------------------------------

def test_garbage_truncated_frames_and_dead_upstream():
    with Dnsmasq(["/example.test/10.1.2.3"]) as d:
        pu, pt, pdead = free_udp_port(), free_port(), free_udp_port()
        with Gost("-L", f"dns://127.0.0.1:{pu}/127.0.0.1:{d.port}",
                  "-L", f"dns://127.0.0.1:{pt}/127.0.0.1:{d.port}?mode=tcp&readTimeout=1s",
                  "-L", f"dns://127.0.0.1:{pdead}/tcp://127.0.0.1:{free_port()}", ports=[pt]) as g:
            listening(g, 3)
            assert udp_ask(pu, b"\x00garbage, not DNS", timeout=0.5) is None
            assert wait_log(g, r"bad DNS message")
            resp = dns.message.make_response(dns.message.make_query("example.test", "A")).to_wire()
            assert udp_ask(pu, resp, timeout=0.5) is None           # a response is never answered
            assert wait_log(g, r"a response where a query was expected")
            with socket.create_connection(("127.0.0.1", pt)) as c:   # a frame cut short
                c.sendall(b"\x00\x30abc")
            assert wait_log(g, r"truncated DNS message")
            with socket.create_connection(("127.0.0.1", pt)) as c:   # a slow one
                c.sendall(b"\x00\x30ab")
                c.settimeout(5)
                assert c.recv(10) == b""                               # closed after readTimeout
            assert ips(dig(pu, "example.test")) == ["10.1.2.3"]      # still serving
            assert ips(dig(pt, "example.test", "A", "+tcp")) == ["10.1.2.3"]
            t0 = time.monotonic()
            assert dig(pdead, "example.test")[0] == "SERVFAIL"
            assert time.monotonic() - t0 < 4.5                        # not the 5 s upstream timeout
            assert wait_log(g, r"upstream failed")
            assert "Traceback" not in g.log_text()


# --- through a chain ----------------------------------------------------------------------------

def test_upstreams_through_socks5_and_relay_chains():
    with Dnsmasq(["/example.test/10.1.2.3"]) as d:
        s5, rl = free_port(), free_port()
        with Gost("-L", f"socks5://127.0.0.1:{s5}?udp=true", "-L", f"relay://127.0.0.1:{rl}", ports=[s5, rl]) as srv:
            pt, pu, pr = free_udp_port(), free_udp_port(), free_udp_port()
            with Gost("-L", f"dns://127.0.0.1:{pt}?dns=tcp://127.0.0.1:{d.port}",
                      "-L", f"dns://127.0.0.1:{pu}?dns=udp://127.0.0.1:{d.port}",
                      "-F", f"socks5://127.0.0.1:{s5}") as g, \
                    Gost("-L", f"dns://127.0.0.1:{pr}/tcp://127.0.0.1:{d.port}", "-F", f"relay://127.0.0.1:{rl}") as gr:
                listening(g, 2)
                listening(gr, 1)
                assert ips(dig(pt, "example.test")) == ["10.1.2.3"]
                assert ips(dig(pu, "example.test")) == ["10.1.2.3"]
                assert ips(dig(pr, "example.test")) == ["10.1.2.3"]
            target = re.escape(f"127.0.0.1:{d.port}")
            for svc in ("service-0", "service-1"):                               # socks5 (tcp upstream), relay
                assert wait_log(srv, rf'"service": "{svc}".*"msg": "[^"]* <-> {target}"')
            assert wait_log(srv, r'"service": "service-0".*"network": "udp"')   # socks5 UDP (udp upstream)


REFERENCE_YAML = """
services:
- name: service-0
  addr: "127.0.0.1:{port}"
  handler:
    type: dns
    dns:
    - 127.0.0.1:{up}
    - tcp://127.0.0.1:{up}
  listener:
    type: dns
    metadata:
      mode: udp
"""


def test_handler_reference_yaml(tmp_path):
    """reference/handlers/dns.md's YAML: its upstreams under ``handler.dns``."""
    with Dnsmasq(["/example.test/10.1.2.3"]) as d:
        p = free_udp_port()
        with yaml_gost(tmp_path, REFERENCE_YAML.format(port=p, up=d.port)):
            assert ips(dig(p, "example.test")) == ["10.1.2.3"]


MISSING_YAML = """
services:
- name: service-0
  addr: 127.0.0.1:{p0}
  hosts: nohosts
  handler: {{type: dns, metadata: {{dns: "127.0.0.1:{up}"}}}}
  listener: {{type: dns}}
- name: service-1
  addr: 127.0.0.1:{p1}
  bypass: nobypass
  handler: {{type: dns, metadata: {{dns: "127.0.0.1:{up}"}}}}
  listener: {{type: dns}}
"""


def test_missing_hosts_or_bypass_refuses(tmp_path):
    """Fail closed: a service whose hosts or bypass does not exist answers REFUSED, with one
    error line; it never answers as if there were no filter."""
    with Dnsmasq(["/example.test/10.1.2.3"]) as d:
        p0, p1 = free_udp_port(), free_udp_port()
        with yaml_gost(tmp_path, MISSING_YAML.format(p0=p0, p1=p1, up=d.port), n=2) as g:
            assert dig(p0, "example.test") == ("REFUSED", [])
            assert dig(p1, "example.test") == ("REFUSED", [])
            assert wait_log(g, r"hosts 'nohosts' not found: connection refused")
            assert wait_log(g, r"bypass 'nobypass' not found: connection refused")


def test_upstream_by_name_through_the_services_hosts_and_resolver():
    """As GOST's exchanger dials through the service's router: an upstream given by name is
    found through the service's hosts, or its resolver."""
    with Dnsmasq(["/example.test/10.1.2.3", "/upstream.test/127.0.0.1"]) as d:
        ph, pr, pt = free_udp_port(), free_udp_port(), free_udp_port()
        with Gost("-L", f"dns://127.0.0.1:{ph}?dns=udp://upstream.test:{d.port}&hosts=upstream.test:127.0.0.1",
                  "-L", f"dns://127.0.0.1:{pr}?dns=udp://upstream.test:{d.port}&resolver=udp://127.0.0.1:{d.port}",
                  "-L", f"dns://127.0.0.1:{pt}?dns=tcp://upstream.test:{d.port}&resolver=udp://127.0.0.1:{d.port}") as g:
            listening(g, 3)
            assert ips(dig(ph, "example.test")) == ["10.1.2.3"]
            assert ips(dig(pr, "example.test")) == ["10.1.2.3"]
            assert ips(dig(pt, "example.test")) == ["10.1.2.3"]


def wire_frame(msg):
    return len(msg).to_bytes(2, "big") + msg


def read_frames(sock, n, timeout=10.0):
    """``n`` length-prefixed DNS messages off ``sock`` → parsed messages."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
            size = int.from_bytes(buf[:2], "big")
            out.append(dns.message.from_wire(buf[2:2 + size]))
            buf = buf[2 + size:]
        if len(out) >= n:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return out


def test_pipelined_tcp_queries_many_clients_and_no_fd_leak():
    """Several queries in one TCP write, answered in order; many clients at once; failing and
    garbage clients too; afterwards gostg holds no more descriptors than before."""
    import threading
    with Dnsmasq(["/example.test/10.1.2.3"]) as d:
        pt, pu = free_port(), free_udp_port()
        with Gost("-L", f"dns://127.0.0.1:{pt}/127.0.0.1:{d.port}?mode=tcp",
                  "-L", f"dns://127.0.0.1:{pu}/tcp://127.0.0.1:{free_port()}", ports=[pt]) as g:
            listening(g, 2)
            assert ips(dig(pt, "example.test", "A", "+tcp")) == ["10.1.2.3"]
            base = fd_baseline(g.proc.pid)
            names = [f"n{i}.example.test" for i in range(5)]
            results = []

            def client():
                with socket.create_connection(("127.0.0.1", pt), timeout=10) as c:
                    c.sendall(b"".join(wire_frame(dns.message.make_query(n, "A").to_wire()) for n in names))
                    got = read_frames(c, len(names))
                    results.append([m.question[0].name.to_text(omit_final_dot=True) for m in got])

            ts = [threading.Thread(target=client) for _ in range(30)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            assert results == [names] * 30                       # in order, every one
            for _ in range(20):                                  # failing upstream, garbage
                udp_ask(pu, dns.message.make_query("example.test", "A").to_wire(), timeout=2)
                udp_ask(pu, b"\xff" * 20, timeout=0.05)
            assert fd_settle(g.proc.pid, base) <= base
            assert "Traceback" not in g.log_text()


def test_live_hosts_and_bypass_through_the_web_api(tmp_path):
    """The service's hosts and bypass are looked up per query: a PUT through the Web API
    applies to the next query, a DELETE makes the service refuse (fail closed)."""
    from .peers import Api
    with Dnsmasq(["/example.test/10.1.2.3", "/example.org/10.4.5.6"]) as d:
        p, api = free_udp_port(), free_port()
        with Gost("-api", f"127.0.0.1:{api}", "-L",
                  f"dns://127.0.0.1:{p}/127.0.0.1:{d.port}?hosts=example.test:127.0.0.5&bypass=nothing.test",
                  ports=[api]) as g:
            listening(g, 1)
            a = Api(api)
            assert ips(dig(p, "example.test")) == ["127.0.0.5"]
            a.put("hosts", "hosts-0", {"name": "hosts-0", "mappings": [{"ip": "127.0.0.6", "hostname": "example.test"}]})
            assert ips(dig(p, "example.test")) == ["127.0.0.6"]
            assert ips(dig(p, "example.org")) == ["10.4.5.6"]
            a.put("bypasses", "bypass-0", {"name": "bypass-0", "matchers": ["example.org"]})
            assert dig(p, "example.org") == ("NOERROR", [])
            a.delete("bypasses", "bypass-0")
            assert dig(p, "example.org") == ("REFUSED", [])


class BigDNS(UDPServer):
    """Answers every query with 100 A records, never truncating (well over 512 bytes)."""

    def answer(self, data, peer):
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A",
                                            *[f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)]))
        return r.to_wire()


def test_udp_reply_larger_than_the_client_takes_is_truncated():
    with BigDNS() as up:
        p = free_udp_port()
        with Gost("-L", f"dns://127.0.0.1:{p}/127.0.0.1:{up.port}") as g:
            listening(g, 1)
            q = dns.message.make_query("big.test", "A")              # no EDNS: 512 bytes at most
            raw = udp_ask(p, q.to_wire(), timeout=6)
            assert raw is not None and len(raw) <= 512
            r = dns.message.from_wire(raw)
            assert r.flags & dns.flags.TC and r.id == q.id
            q = dns.message.make_query("big.test", "A", use_edns=0, payload=4096)
            r = dns.message.from_wire(udp_ask(p, q.to_wire(), timeout=6))
            assert not r.flags & dns.flags.TC and len(r.answer[0]) == 100
