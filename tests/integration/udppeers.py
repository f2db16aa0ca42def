"""UDP test peers: an echo server that tags replies, a bounded request/answer client, DNS
queries and a dnsmasq process."""
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from .peers import PeerProcess, UDPServer


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_tcp_port(tries=50):
    """A port free on 127.0.0.1 for both UDP and TCP."""
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


class UDPEcho(UDPServer):
    """Answers each datagram with ``tag + datagram`` from 127.0.0.1:port; counts senders."""

    def __init__(self, tag=b"", port=0):
        self.tag = tag
        self.peers = []
        self.count = 0
        super().__init__(port)
        self.addr = f"127.0.0.1:{self.port}"

    def answer(self, data, peer):
        self.count += 1
        if peer not in self.peers:
            self.peers.append(peer)
        return self.tag + data


def udp_ask(port, payload, timeout=3.0, sock=None, host="127.0.0.1"):
    """Send one datagram to ``host:port`` and wait for one answer → bytes (None on timeout)."""
    own = sock is None
    s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(payload, (host, port))
        try:
            return s.recvfrom(65535)[0]
        except socket.timeout:
            return None
    finally:
        if own:
            s.close()


def wait_udp_service(gost, timeout=10.0):
    """Wait until ``gost`` logs that it listens (UDP ports cannot be probed by connecting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "listening on" in gost.log_text():
            return True
        if gost.proc.poll() is not None:
            raise AssertionError(f"gostg exited: {gost.log_text()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("gostg did not start listening")


def udp_exchange_many(port, payloads, timeout=3.0):
    """Each payload from its own client socket, all at once (threads); → list of answers
    (None where nothing came back in time), in payload order."""
    out = [None] * len(payloads)

    def one(i):
        out[i] = udp_ask(port, payloads[i], timeout=timeout)

    ts = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(payloads))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout + 5)
    return out


def dns_query(port, name, timeout=2.0):
    """One real DNS A query over UDP to 127.0.0.1:port (dnspython) → the answer message."""
    import dns.message
    import dns.query
    return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=timeout)


def dns_a(msg):
    """The A records of an answer message, as strings."""
    return sorted(r.address for rrset in msg.answer for r in rrset if getattr(r, "address", None))


#: the dnsmasq binary (package dnsmasq-base), or None
DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
needs_dnsmasq = pytest.mark.skipif(DNSMASQ is None, reason="dnsmasq is not installed (apt install dnsmasq-base)")


class Dnsmasq(PeerProcess):
    """dnsmasq on 127.0.0.1:port (UDP and TCP) answering ``records`` (``/name/ip``: that name
    and the names under it) with no upstream and no /etc/hosts; ready once it answers a
    query; stopped by PID."""

    name = "dnsmasq"

    def __init__(self, records=("/example.test/10.9.8.7",), extra=()):
        port = free_udp_tcp_port()   # dnsmasq listens on both
        super().__init__([DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--pid-file", "--no-resolv", "--no-hosts",
                          f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--cache-size=0",
                          *[f"--address={r}" for r in records], *extra], port=port, stderr=subprocess.PIPE)

    def ready(self):
        try:
            dns_query(self.port, "example.test", timeout=0.2)
            return True
        except Exception:
            return False
