"""Limiter lines, tables, token-bucket math (fake clock) and the three limiter objects."""
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostg.config.build import build_object
from gostg.config.cmdline import from_args
from gostg.errors import ConfigError
from gostg.policy import limiter as L
from gostg.policy.limiter import ConnLimiter, LimitedConn, RateLimiter, Table, TokenBucket, TrafficLimiter, parse_bytes, parse_count_line, parse_counts, parse_rate_line, parse_rates, parse_scope, parse_traffic, parse_traffic_line

ip = ipaddress.ip_address
net = ipaddress.ip_network


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


class Source:
    """A LineSource stand-in whose value is swapped by the test (a file reload)."""

    def __init__(self, table):
        self.table = table

    def value(self):
        return self.table


@pytest.fixture
def sleeps(monkeypatch):
    """gevent.sleep of traffic shaping, recorded instead of slept; advances ``clock`` (the
    buckets' clock)."""
    rec = []
    clock = Clock()

    def fake_sleep(d):
        rec.append(d)
        clock.t += d

    monkeypatch.setattr(L.traffic, "_sleep", fake_sleep)
    monkeypatch.setattr(L.bucket, "_now", clock)
    return rec


# --- parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("0", 0), ("100", 100), ("100B", 100), ("1KB", 1024), ("512KB", 512 * 1024), ("1MB", 1 << 20),
    ("1.5MB", 3 << 19), ("2GB", 2 << 30), ("1TB", 1 << 40), ("10kb", 10240), ("1MiB", 1 << 20),
    ("1 MB", 1 << 20), ("-1", 0), ("-10MB", 0), ("+1KB", 1024), (" 2KB ", 2048), (".5KB", 512),
])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "MB", "1XB", "1.2.3", "1 M B", "--1", "1e9", "1KBB", "x1", "9" * 400 + "TB"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


@pytest.mark.parametrize("text,scope", [
    ("$", "$"), ("$$", "$$"), ("192.168.1.1", ip("192.168.1.1")), ("10.0.0.0/8", net("10.0.0.0/8")),
    ("10.1.2.3/8", net("10.0.0.0/8")), ("::1", ip("::1")), ("2001:db8::/32", net("2001:db8::/32")),
    ("::ffff:1.2.3.4", ip("1.2.3.4")),
])
def test_parse_scope(text, scope):
    assert parse_scope(text) == scope


@pytest.mark.parametrize("text", ["$$$", "host.example", "1.2.3.4/33", "*", "300.1.1.1"])
def test_parse_scope_rejects(text):
    with pytest.raises(ValueError):
        parse_scope(text)


@pytest.mark.parametrize("line,parsed", [
    ("$ 100MB 200MB", ("$", (100 << 20, 200 << 20))),
    ("$$ 10KB", ("$$", (10240, 0))),
    ("192.168.1.1  512KB 1MB", (ip("192.168.1.1"), (512 << 10, 1 << 20))),
    ("192.168.0.0/16\t1MB\t5MB", (net("192.168.0.0/16"), (1 << 20, 5 << 20))),
    ("$ 0 2MB", ("$", (0, 2 << 20))),
    ("$ -1 -1  # unlimited both ways", ("$", (0, 0))),
    ("   # just a comment", None), ("", None),
])
def test_parse_traffic_line(line, parsed):
    assert parse_traffic_line(line) == parsed


@pytest.mark.parametrize("line", ["$", "$ 1MB 2MB 3MB", "$ fast", "example.com 1MB", "$ 1MB x"])
def test_parse_traffic_line_rejects(line):
    with pytest.raises(ValueError):
        parse_traffic_line(line)


def test_parse_count_and_rate_lines():
    assert parse_count_line("$ 1000") == ("$", 1000)
    assert parse_count_line("$$ 0") == ("$$", None)          # <= 0: no limit
    assert parse_count_line("10.0.0.0/8 -5") == (net("10.0.0.0/8"), None)
    assert parse_rate_line("$ 2.5") == ("$", 2.5)
    assert parse_rate_line("1.2.3.4 10") == (ip("1.2.3.4"), 10.0)
    assert parse_rate_line("$ 0") == ("$", None)
    for bad in ("$ 2.5", "$ x", "$ 1 2"):
        with pytest.raises(ValueError):
            parse_count_line(bad)
    for bad in ("$ x", "$ nan", "$ inf", "$ 1 2"):
        with pytest.raises(ValueError):
            parse_rate_line(bad)


def test_table_later_lines_win_and_lookup():
    t = parse_traffic(["$ 1MB", "$$ 10KB", "$ 2MB 3MB", "10.0.0.0/8 1KB", "10.1.0.0/16 2KB", "10.1.2.3 3KB",
                       "2001:db8::/32 4KB"])
    assert t.service == (2 << 20, 3 << 20) and t.default == (10240, 0)
    assert t.for_ip(ip("10.1.2.3")) == (3072, 0)        # exact IP first
    assert t.for_ip(ip("10.1.9.9")) == (2048, 0)        # most specific CIDR
    assert t.for_ip(ip("10.9.9.9")) == (1024, 0)
    assert t.for_ip(ip("11.0.0.1")) is None
    assert t.for_ip(ip("2001:db8::5")) == (4096, 0)
    assert t.for_ip(None) is None
    assert parse_counts(["$ 5", "$ 0"]).service is None   # a later "no limit" line removes it
    assert parse_rates([]) == Table()


def test_client_ip_forms():
    assert L.client_ip("127.0.0.1") == ip("127.0.0.1")
    assert L.client_ip("[::1]") == ip("::1")
    assert L.client_ip("::ffff:10.0.0.1") == ip("10.0.0.1")
    assert L.client_ip("fe80::1%eth0") == ip("fe80::1")
    assert L.client_ip("unix-socket") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="$ #0123456789.:/abcdefKMGTBi-+\t", max_size=40))
def test_garbage_lines_raise_value_error_only(line):
    for parse in (parse_traffic_line, parse_count_line, parse_rate_line):
        try:
            parse(line)
        except ValueError:
            pass


@given(st.integers(0, 1 << 50), st.sampled_from([("B", 1), ("KB", 1024), ("MB", 1 << 20), ("GB", 1 << 30)]))
def test_parse_bytes_round_trip(n, unit):
    suffix, scale = unit
    assert parse_bytes(f"{n}{suffix}") == n * scale


# --- token bucket ----------------------------------------------------------------------------------

def test_bucket_starts_full_then_charges_debt():
    c = Clock()
    b = TokenBucket(1000, burst=100, clock=c)
    assert b.take(100) == 0.0                  # the burst is there at once
    assert b.take(50) == pytest.approx(0.05)   # 50 tokens of debt at 1000/s
    assert b.take(50) == pytest.approx(0.10)   # the next taker queues behind the first
    c.t += 0.10
    assert b.take(0) == pytest.approx(0, abs=1e-9) and b.available() == pytest.approx(0, abs=1e-9)
    c.t += 10                                  # idle refills to the burst, not beyond
    assert b.available() == pytest.approx(100)


def test_bucket_average_rate_is_exact():
    """Moving 1 MB in 64 KiB pieces at 1 MB/s costs exactly (size - burst) / rate of sleep."""
    c = Clock()
    rate = 1 << 20
    b = TokenBucket(rate, clock=c)
    slept = 0.0
    for _ in range(16):
        d = b.take(64 << 10)
        slept += d
        c.t += d
    assert slept == pytest.approx(((1 << 20) - b.burst) / rate)


def test_bucket_set_rate_and_unlimited():
    c = Clock()
    b = TokenBucket(1000, burst=100, clock=c)
    b.take(300)
    b.set_rate(0)                              # a reload removed the limit
    assert b.take(10 ** 9) == 0.0 and b.available() == float("inf")
    b.set_rate(2000)
    assert b.burst == L.traffic_burst(2000) and b.tokens <= b.burst


def test_traffic_burst():
    assert L.traffic_burst(1 << 20) == (1 << 20) // 10       # 0.1 s of a fast rate
    assert L.traffic_burst(10 * 1024) == 4096                # a floor for slow rates …
    assert L.traffic_burst(1000) == 1000                     # … but never over one second
    assert L.traffic_burst(0.5) == 1


def test_chunk_and_pay_sleep_once_for_the_worst_debt(sleeps):
    a = TokenBucket(1000, burst=100)
    b = TokenBucket(500, burst=50)
    assert L.chunk((a, b), 4096) == 50 and L.chunk((), 4096) == 4096
    L.pay((a, b), 50)
    assert sleeps == []
    L.pay((a, b), 50)
    assert sleeps == [pytest.approx(0.1)]      # b's debt (50 at 500/s) outweighs a's (0)


# --- limited conn ------------------------------------------------------------------------------

class FakeSock:
    def __init__(self, incoming=b""):
        self.incoming = bytearray(incoming)
        self.sent = []
        self.closed = False

    def recv(self, n):
        out = bytes(self.incoming[:n])
        del self.incoming[:n]
        return out

    def recv_into(self, buf, nbytes=0):
        n = min(nbytes or len(buf), len(self.incoming))
        buf[:n] = self.incoming[:n]
        del self.incoming[:n]
        return n

    def sendall(self, data):
        self.sent.append(bytes(data))

    def send(self, data):
        self.sent.append(bytes(data))
        return len(data)

    def close(self):
        self.closed = True


def test_limited_conn_shapes_writes(sleeps):
    rate = 100 * 1024
    out = TokenBucket(rate)
    c = LimitedConn(FakeSock(), (), (out,))
    c.sendall(b"x" * rate)
    assert b"".join(c.sock.sent) == b"x" * rate
    assert max(map(len, c.sock.sent)) <= out.burst
    assert sum(sleeps) == pytest.approx((rate - out.burst) / rate)
    assert all(s <= 0.11 for s in sleeps)      # no long stalls, no busy loop of tiny ones
    c.close()
    assert c.sock.closed


def test_limited_conn_shapes_reads(sleeps):
    rate = 100 * 1024
    inb = TokenBucket(rate)
    c = LimitedConn(FakeSock(b"y" * rate), (inb,), ())
    buf = bytearray(65536)
    got = 0
    for _ in range(100):
        n = c.recv_into(buf)
        if not n:
            break
        assert n <= inb.burst
        got += n
    assert got == rate and c.recv(10) == b""
    assert sum(sleeps) == pytest.approx((rate - inb.burst) / rate)


def test_limited_conn_unlimited_direction_passes_through(sleeps):
    c = LimitedConn(FakeSock(b"z" * 10), (), (TokenBucket(1000),))
    assert c.recv(100) == b"z" * 10 and sleeps == []
    assert c.send(b"a" * 5000) == L.traffic_burst(1000)


# --- traffic limiter ------------------------------------------------------------------------------

def test_traffic_limiter_scopes(sleeps):
    src = Source(parse_traffic(["$ 1MB 2MB", "$$ 100KB", "10.0.0.0/8 50KB 60KB", "10.0.0.1 0 70KB"]))
    lim = TrafficLimiter("l", src)
    in1, out1 = lim.buckets(ip("10.0.0.2"))
    in2, out2 = lim.buckets(ip("10.0.0.2"))
    assert [b.rate for b in in1] == [1 << 20, 100 << 10, 50 << 10]
    assert [b.rate for b in out1] == [2 << 20, 60 << 10]
    assert in1[0] is in2[0]                    # $: one bucket for the service
    assert in1[1] is not in2[1]                # $$: one per connection
    assert in1[2] is in2[2]                    # IP: one per client IP …
    in3, _ = lim.buckets(ip("10.0.0.3"))
    assert in3[2] is not in1[2]                # … even inside one CIDR
    in4, out4 = lim.buckets(ip("10.0.0.1"))
    assert [b.rate for b in in4] == [1 << 20, 100 << 10] and out4[-1].rate == 70 << 10


def test_traffic_limiter_unlimited_conn_is_not_wrapped():
    lim = TrafficLimiter("l", Source(parse_traffic(["192.168.0.0/16 1MB 1MB"])))
    sock = FakeSock()
    assert lim.wrap(sock, "127.0.0.1") is sock
    assert isinstance(lim.wrap(sock, "192.168.3.4"), LimitedConn)
    assert TrafficLimiter("e", Source(parse_traffic([]))).wrap(sock, "1.2.3.4") is sock


def test_traffic_limiter_reload_retunes_shared_buckets():
    src = Source(parse_traffic(["$ 1MB 1MB", "10.0.0.0/8 10KB"]))
    lim = TrafficLimiter("l", src)
    ins, outs = lim.buckets(ip("10.0.0.1"))
    src.table = parse_traffic(["$ 2MB", "10.0.0.0/8 20KB"])
    ins2, outs2 = lim.buckets(ip("10.0.0.1"))
    assert ins[0] is ins2[0] and ins[0].rate == 2 << 20      # re-rated in place
    assert outs[0].rate == 0 and outs2 == ()                  # out limit removed: open conns freed too
    assert ins[1].rate == 20 << 10 and ins2[1] is ins[1]


# --- conn limiter -----------------------------------------------------------------------------------

def test_conn_limiter_service_and_ip_limits():
    lim = ConnLimiter("c", Source(parse_counts(["$ 3", "$$ 2", "10.0.0.9 1"])))
    a1, a2 = lim.acquire("10.0.0.1"), lim.acquire("10.0.0.1")
    assert a1 and a2 and lim.acquire("10.0.0.1") is None      # $$ 2 per IP
    b1 = lim.acquire("10.0.0.9")
    assert b1 and lim.count() == 3
    assert lim.acquire("10.0.0.2") is None                    # $ 3 for the service
    a1.release()
    a1.release()                                              # idempotent
    assert lim.count() == 2
    assert lim.acquire("10.0.0.9") is None                    # the IP entry replaces $$ (1)
    assert lim.acquire("10.0.0.2")
    for x in (a2, b1):
        x.release()
    assert lim.count(ip("10.0.0.1")) == 0


def test_conn_limiter_without_limits_counts_nothing():
    lim = ConnLimiter("c", Source(parse_counts(["192.168.0.0/16 1"])))
    leases = [lim.acquire("127.0.0.1") for _ in range(5)]
    assert all(leases) and lim.count() == 0


# --- rate limiter ---------------------------------------------------------------------------------

def test_rate_limiter_service_and_ip():
    c = Clock()
    lim = RateLimiter("r", Source(parse_rates(["$ 4", "$$ 1", "10.0.0.9 2"])), clock=c)
    assert [lim.allow("10.0.0.1") for _ in range(3)] == [True, True, False]   # $$ 1: burst 2
    assert [lim.allow("10.0.0.9") for _ in range(4)] == [True, True, True, False]  # IP 2: burst 3
    # $ 4 (burst 5) has 5 spent: everyone waits now; the refused calls spent nothing
    assert lim.allow("10.0.0.2") is False
    c.t += 0.5                                 # 2 service tokens back
    assert lim.allow("10.0.0.2") and lim.allow("10.0.0.3") and not lim.allow("10.0.0.4")


def test_rate_limiter_reload_and_pruning():
    c = Clock()
    src = Source(parse_rates(["$$ 1"]))
    lim = RateLimiter("r", src, clock=c)
    lim.MAX_IPS = 3
    for i in range(3):
        assert lim.allow(f"10.0.0.{i}")
    c.t += 5                                  # all buckets full again: forgettable
    assert lim.allow("10.0.0.200") and len(lim._ips) == 1
    src.table = parse_rates(["$ 1"])
    assert lim.allow("1.1.1.1") and lim.allow("1.1.1.2") and not lim.allow("1.1.1.3")


# --- config ---------------------------------------------------------------------------------------

def test_build_objects_and_error_paths(tmp_path):
    lim = build_object("limiters", {"name": "l", "limits": ["$ 1MB"]}, "limiters[0]", None)
    assert isinstance(lim, TrafficLimiter) and lim.table.service == (1 << 20, 0)
    assert isinstance(build_object("climiters", {"name": "c", "limits": ["$ 1"]}, "climiters[0]", None), ConnLimiter)
    assert isinstance(build_object("rlimiters", {"name": "r", "limits": ["$ 1"]}, "rlimiters[0]", None), RateLimiter)
    with pytest.raises(ConfigError) as e:
        build_object("limiters", {"name": "l", "limits": ["$ 1MB", "$ lots"]}, "limiters[2]", None)
    assert e.value.path == "limiters[2].limits[1]"
    with pytest.raises(ConfigError) as e:
        build_object("climiters", {"name": "c", "file": {"path": str(tmp_path / "absent")}}, "climiters[0]", None)
    assert e.value.path == "climiters[0].file.path"
    with pytest.raises(ConfigError) as e:
        build_object("rlimiters", {"name": "r", "limits": "$ 1"}, "rlimiters[0]", None)
    assert e.value.path == "rlimiters[0].limits"
    f = tmp_path / "limits.txt"
    f.write_text("# ip/cidr  input  output\n$ 100KB 200KB\n10.0.0.0/8 1KB  # office\n")
    lim = build_object("limiters", {"name": "l", "limits": ["$ 1MB", "$$ 5KB"], "file": {"path": str(f)},
                                    "reload": "1s"}, "limiters[0]", None)
    t = lim.table
    assert t.service == (100 << 10, 200 << 10) and t.default == (5 << 10, 0)   # the file wins over inline
    assert t.for_ip(ip("10.2.3.4")) == (1024, 0)


def test_cli_limiter_keys():
    cfg = from_args([":1?limiter.out=2MB&limiter.conn.out=1MB"], [])
    assert cfg["limiters"][0]["limits"] == ["$ 0 2MB", "$$ 0 1MB"]
    t = parse_traffic(cfg["limiters"][0]["limits"])
    assert t.service == (0, 2 << 20) and t.default == (0, 1 << 20)   # out only, not in
    cfg = from_args([":1?limiter.in=1MB&climiter=2&rlimiter=0.5"], [])
    assert parse_traffic(cfg["limiters"][0]["limits"]).service == (1 << 20, 0)
    assert parse_counts(cfg["climiters"][0]["limits"]).service == 2
    assert parse_rates(cfg["rlimiters"][0]["limits"]).service == 0.5
