"""UDP test peers: an echo server that tags replies, and a bounded request/answer client."""
import os
import shutil
import socket
import subprocess
import threading
import time


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


class UDPEcho:
    """Answers each datagram with ``tag + datagram`` from 127.0.0.1:port; counts senders."""

    def __init__(self, tag=b"", port=0):
        self.tag = tag
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.peers = []
        self.count = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            if peer not in self.peers:
                self.peers.append(peer)
            try:
                self.sock.sendto(self.tag + data, peer)
            except OSError:
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


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


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_settle(pid, target, timeout=10.0):
    """Poll until ``pid`` holds at most ``target`` fds; → the last count seen."""
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > target and time.monotonic() < deadline:
        time.sleep(0.1)
        n = fd_count(pid)
    return n


def fd_baseline(pid, timeout=5.0):
    """``pid``'s fd count once it stops moving (bounded)."""
    last = fd_count(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        n = fd_count(pid)
        if n == last:
            return n
        last = n
    return last


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


class Dnsmasq:
    """dnsmasq on 127.0.0.1:port (UDP) answering ``records`` (``/name/ip``) with no upstream
    and no /etc/hosts; stopped by PID."""

    def __init__(self, records=("/example.test/10.9.8.7",)):
        self.path = DNSMASQ
        self.port = free_udp_tcp_port()   # dnsmasq listens on both
        self.records = records
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [self.path, "--no-daemon", "--conf-file=/dev/null", "--pid-file", "--no-resolv", "--no-hosts",
             f"--port={self.port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--cache-size=0",
             *[f"--address={r}" for r in self.records]],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.proc.stderr.read().decode(errors='replace')}")
            try:
                dns_query(self.port, "example.test", timeout=0.2)
                return self
            except Exception:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise TimeoutError("dnsmasq did not answer within 10s")
                time.sleep(0.05)

    def __exit__(self, *exc):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stderr.close()
