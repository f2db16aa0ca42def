"""Start-up loads what the config uses, and patches only what gostg blocks on (issue 13).

The import lists come from ``python -v`` of a real bin/gostg (every module the process
imported until it was stopped: ``-X importtime`` misses what ``importlib.import_module`` loads,
as the type registries do); patching is checked in fresh interpreters."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap


from .helpers import GOSTG, ROOT, free_port, wait_port

#: gostg as a user starts it: without the test run's own gevent switches (CI sets
#: GEVENT_MONITOR_THREAD_ENABLE, whose monitor thread loads pprint and gevent's plugin metadata)
ENV = {k: v for k, v in os.environ.items() if not k.startswith("GEVENT_")}

#: what ``-L socks5://127.0.0.1:P`` has no use for: other protocols and transports, the DNS
#: client (dnspython), YAML, auth, TLS settings, hosts, and what only hooks, probes,
#: netns or threads need
NOT_FOR_SOCKS5 = (
    "dns", "yaml", "h2", "wsproto", "h11", "cryptography", "importlib.metadata", "pprint", "ctypes", "gevent.subprocess", "gevent.threading", "gevent.threadpool", "gostg.dns.resolver",
    "gostg.dns.exchange", "gostg.dns.wire", "gostg.handlers.http", "gostg.handlers.http2", "gostg.handlers.ss",
    "gostg.handlers.dns", "gostg.listeners.ws", "gostg.listeners.mux", "gostg.listeners.h2", "gostg.listeners.tls",
    "gostg.transport.ws", "gostg.transport.mux", "gostg.transport.ss", "gostg.protocols.shadowsocks",
    "gostg.protocols.smux", "gostg.protocols.yamux", "gostg.api", "gostg.policy.auth", "gostg.handlers.nodetls",
    "gostg.handlers.nodehttp", "gostg.transport.tlsconf", "gostg.dns.hosts",
)


def _imported(stderr):
    return set(re.findall(r"^import '([\w.]+)' #", stderr, re.M))


def _loaded(names, prefixes):
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


def _serve_and_stop(*args, ports):
    """bin/gostg under -v until every port accepts, then SIGTERM → (rc, stderr)."""
    with tempfile.TemporaryFile("w+") as err:   # -v writes more than a pipe holds
        proc = subprocess.Popen([sys.executable, "-v", GOSTG, *args], stdout=subprocess.DEVNULL, stderr=err,
                                text=True, cwd=ROOT, env=ENV)
        try:
            for p in ports:
                wait_port(p, proc=proc, timeout=20)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        err.seek(0)
        return proc.returncode, err.read()


def _run(*args):
    r = subprocess.run([sys.executable, "-v", GOSTG, *args], capture_output=True, text=True,
                       timeout=30, cwd=ROOT, env=ENV)
    return r.returncode, r.stdout, _imported(r.stderr)


def test_socks5_service_loads_only_what_it_uses():
    port = free_port()
    rc, err = _serve_and_stop("-L", f"socks5://127.0.0.1:{port}", ports=[port])
    names = _imported(err)
    assert rc == 0, err[-3000:]
    assert "gostg.handlers.socks5" in names and "gostg.listeners.tcp" in names and "gostg.patching" in names
    assert _loaded(names, NOT_FOR_SOCKS5) == []


def test_socks5_service_with_the_default_json_log_loads_no_structlog():
    port = free_port()
    rc, err = _serve_and_stop("-L", f"socks5://127.0.0.1:{port}", ports=[port])
    assert rc == 0, err[-3000:]
    assert _loaded(_imported(err), ("structlog", "asyncio", "concurrent.futures", "rich")) == []


def test_yaml_and_dns_load_when_the_config_names_them(tmp_path):
    """The other side of the laziness: a YAML file and a resolver bring their modules in."""
    port = free_port()
    cfg = tmp_path / "gost.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        services: [{{name: s, addr: "127.0.0.1:{port}", handler: {{type: socks5}}, resolver: r}}]
        resolvers: [{{name: r, nameservers: [{{addr: "udp://127.0.0.1:53"}}]}}]
        """))
    rc, err = _serve_and_stop("-C", str(cfg), ports=[port])
    names = _imported(err)
    assert rc == 0, err[-3000:]
    assert "yaml" in names and "gostg.dns.resolver" in names and "dns.message" in names


def test_print_and_version_load_no_gevent():
    for args in (["-O", "json", "-L", "socks5://127.0.0.1:1080"], ["-V"], ["-h"]):
        rc, out, names = _run(*args)
        assert rc == 0, out
        assert _loaded(names, ("gevent", "greenlet", "structlog", "yaml", "dns")) == [], args


def test_check_patches_nothing():
    """--check builds every object unbound: gostg's modules load, the standard library stays as it is."""
    rc, out, names = _run("--check", "-L", "socks5://127.0.0.1:1080")
    assert rc == 0 and "config OK" in out, out
    assert "gostg.handlers.socks5" in names
    assert _loaded(names, ("gostg.patching", "yaml", "dns")) == []


def test_supervisor_loads_no_gevent():
    """The ``--`` supervisor only starts and watches children (each patches for itself)."""
    p1, p2 = free_port(), free_port()
    rc, err = _serve_and_stop("-L", f"socks5://127.0.0.1:{p1}", "--", "-L", f"socks5://127.0.0.1:{p2}",
                              ports=[p1, p2])
    names = _imported(err)   # the parent's: -v is not passed on to the children
    assert "gostg.process" in names and "subprocess" in names
    assert _loaded(names, ("gevent", "greenlet", "gostg.runtime", "gostg.handlers", "yaml", "dns")) == []


# -- gostg.patching ---------------------------------------------------------------------------

PATCHED = ("socket", "ssl", "select", "selectors", "time")
UNPATCHED = ("threading", "os", "subprocess", "signal", "queue")


def _python(code, env=None, cwd=ROOT):
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=30, cwd=cwd,
                       env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_patch_makes_cooperative_what_gostg_blocks_on_and_nothing_else():
    out = _python(f"""
        import sys
        from gostg.patching import patch
        patch()
        from gevent import monkey
        import gevent, threading, time, socket
        print([m for m in {PATCHED!r} if not monkey.is_module_patched(m)])
        print([m for m in {UNPATCHED!r} if monkey.is_module_patched(m)])
        print(socket.socket is gevent.socket.socket, time.sleep is gevent.sleep)
        print("importlib.metadata" in sys.modules, "concurrent.futures" in sys.modules)
        print(gevent.config.format_context is repr)
        """)
    assert out.split("\n")[:5] == ["[]", "[]", "True True", "False False", "True"], out


def test_patch_leaves_a_patched_host_as_it_is():
    """An app that ran patch_all() (an embedding host, or gostg.cli.main called in it) is not
    patched again, so gevent has no different second set of arguments to warn about."""
    out = _python("""
        import warnings
        warnings.simplefilter("error")
        from gevent import monkey
        monkey.patch_all()
        from gostg.patching import patch
        patch()
        print(monkey.is_module_patched("threading"), monkey.is_module_patched("subprocess"))
        """)
    assert out.strip() == "True True"


def test_a_third_party_gevent_plugin_still_runs(tmp_path):
    """gevent offers each patch to plugins that installed distributions declare: with one
    installed, patch() goes the ordinary way and the plugin sees the patching."""
    dist = tmp_path / "gostg_test_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gostg-test-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gevent.plugins.monkey.will_patch_all]\nmark = gostg_test_plugin:seen\n")
    (tmp_path / "gostg_test_plugin.py").write_text("def seen(event):\n    print('PLUGIN', sorted(event.patch_all_arguments))\n")
    out = _python(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from gostg.patching import _third_party_plugins, patch
        print(_third_party_plugins())
        patch()
        """)
    assert out.startswith("True\nPLUGIN ["), out
    assert "'socket'" in out


def test_gevents_own_plugin_is_not_a_reason_to_scan(tmp_path):
    """gevent declares one plugin itself (a warning about patching signal without os, which
    patch() does not do): a path with only gevent's declaration needs no metadata scan."""
    dist = tmp_path / "gevent-99.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[gevent.plugins.monkey.will_patch_all]\n"
                                          "signal_os_incompat = gevent.monkey:_subscribe_signal_os\n")
    (tmp_path / "other-1.0.dist-info").mkdir()
    out = _python(f"""
        import sys
        from gostg.patching import _third_party_plugins
        sys.path[:] = [{str(tmp_path)!r}]
        print(_third_party_plugins())
        """)
    assert out.strip() == "False"
