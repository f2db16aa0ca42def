"""gostg.embed.patch's per-connect decision (module rules 1-3) and the fake answers of lookups,
without patching anything: the state is set on the module and put back."""
import errno
import socket

import pytest

from gostg.embed import patch
from gostg.embed.dial import Egress
from gostg.embed.fakeip import FakeIP
from gostg.runtime import Gost

CFG = {
    "chains": [{"name": "egress", "hops": [{"name": "h", "nodes": [
        {"name": "n", "addr": "proxy.corp:1080", "connector": {"type": "socks5"}},
        {"name": "m", "addr": "192.0.2.10:1080", "connector": {"type": "socks5"}}]}]}],
    "bypasses": [{"name": "internal", "matchers": ["*.corp.example", "10.0.0.0/8"]}],
}


@pytest.fixture
def state(monkeypatch):
    st = patch._State(Egress(Gost(CFG), "egress", bypass="internal"), FakeIP(hold=0))
    monkeypatch.setattr(patch, "_active", st)
    return st


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "fe80::1%lo", "169.254.1.1",
                                  "localhost",
                                  "LOCALHOST.", "app.localhost", b"localhost", None, 42])
def test_loopback_and_non_hosts_are_left_alone(state, host):
    assert patch._decide(state, host, 80) is patch._PASS


@pytest.mark.parametrize("host", ["proxy.corp", "Proxy.Corp.", "192.0.2.10"])
def test_the_chains_own_nodes_are_never_routed(state, host):
    assert patch._decide(state, host, 1080) is patch._PASS


def test_bypass_goes_direct_and_everything_else_is_routed(state):
    assert patch._decide(state, "db.corp.example", 5432) == ("direct", "db.corp.example")
    assert patch._decide(state, "10.1.2.3", 22) == ("direct", "10.1.2.3")
    assert patch._decide(state, "Example.COM.", 443) == ("route", "example.com")
    assert patch._decide(state, "93.184.216.34", 443) == ("route", "93.184.216.34")
    assert patch._decide(state, "2001:db8::1", 443) == ("route", "2001:db8::1")


def test_fake_addresses_map_back_to_their_name_and_unlent_ones_fail(state):
    v4 = state.fakeip.allocate("example.com")
    v6 = state.fakeip.allocate("example.com", 6)
    assert patch._decide(state, v4, 443) == ("route", "example.com")
    assert patch._decide(state, v6, 443) == ("route", "example.com")
    assert patch._decide(state, "::ffff:" + v4, 443) == ("route", "example.com")   # v4-mapped
    bypassed = state.fakeip.allocate("db.corp.example")   # lent before a bypass change
    assert patch._decide(state, bypassed, 5432) == ("direct", "db.corp.example")
    with pytest.raises(OSError) as exc:
        patch._decide(state, "198.19.1.1", 443)
    assert exc.value.errno == errno.EHOSTUNREACH


def test_lookups_are_faked_only_for_routed_stream_names(state):
    ai = patch._getaddrinfo("Example.com", 443)
    assert ai == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("198.18.0.1", 443))]
    assert patch._getaddrinfo("example.com", "https", socket.AF_INET6, socket.SOCK_STREAM)[0][4] == \
        ("2001:2::1", 443, 0, 0)
    assert patch._getaddrinfo("example.com", 80, flags=socket.AI_CANONNAME)[0][3] == "example.com"
    assert patch._gethostbyname("example.com") == "198.18.0.1"
    assert patch._gethostbyname_ex("example.com") == ("example.com", [], ["198.18.0.1"])
    # left to the real resolver: datagrams, numeric hosts, loopback, bypassed names, chain nodes
    for args, kw in [(("example.com", 53, 0, socket.SOCK_DGRAM), {}),
                     (("example.com", 80), {"flags": socket.AI_NUMERICHOST}),
                     (("127.0.0.1", 80), {}), (("localhost", 80), {}),
                     (("db.corp.example", 80), {}), (("proxy.corp", 1080), {})]:
        assert patch._fake(*args, **kw) is None, args


def test_a_full_block_fails_the_lookup_instead_of_resolving_locally(monkeypatch):
    st = patch._State(Egress(Gost(CFG), "egress"), FakeIP(v4="198.18.0.0/30", hold=60))
    monkeypatch.setattr(patch, "_active", st)
    patch._getaddrinfo("a.example", 80)
    patch._getaddrinfo("b.example", 80)
    with pytest.raises(socket.gaierror) as exc:
        patch._getaddrinfo("c.example", 80)
    assert exc.value.errno == socket.EAI_AGAIN


def test_unknown_names_fail_when_the_egress_is_made():
    from gostg.policy.group import MissingReference
    with pytest.raises(MissingReference, match="chain 'nope' not found"):
        Egress(Gost(CFG), "nope")
    with pytest.raises(MissingReference, match="bypass 'nope' not found"):
        Egress(Gost(CFG), "egress", bypass="nope")


def test_patch_socket_refuses_an_unpatched_process_without_thread_mode():
    """Its stdlib sockets would block the only thread, and a relayed route never be fed."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import socket, gostg\n"
            "orig = socket.socket.connect\n"
            f"g = gostg.Gost({CFG!r})\n"
            "try:\n"
            "    gostg.patch_socket(g, chain='egress')\n"
            "except gostg.GostgError as exc:\n"
            "    print('REFUSED', exc)\n"
            "print('UNTOUCHED', socket.socket.connect is orig and not gostg.embed.patch.is_patched())\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root)
    assert r.returncode == 0, r.stderr
    assert "REFUSED patch_socket: this process is not gevent-patched" in r.stdout and "thread mode" in r.stdout
    assert "UNTOUCHED True" in r.stdout


def test_dial_before_start_checks_the_config_as_start_does():
    from gostg.errors import ConfigError
    bad = {"chains": [{"name": "c", "hops": [{"name": "h", "nodes": [
        {"name": "n", "addr": "127.0.0.1:1", "connector": {"type": "nosuch"}}]}]}]}
    with pytest.raises(ConfigError, match="nosuch"):
        Egress(Gost(bad), "c")
