"""Every built handler×listener and connector×dialer pair builds with its schema-checked
metadata: a component that reads a key its schema does not declare fails here, not for a user."""
import pytest
import structlog

from gostg import builtins
from gostg.config.build import build_hop, build_service
from gostg.config.cmdline import from_args
from gostg.core.registry import Registries
from gostg.errors import ConfigError

FORWARD = {"tcp", "udp", "forward", "rtcp", "rudp"}


@pytest.mark.parametrize("handler", sorted(set(builtins.MODULES["handler"]) - {"api"}))  # api needs a runtime
def test_each_handler_with_each_listener_builds(handler):
    r = Registries()
    for listener in sorted(builtins.MODULES["listener"]):
        target = "/127.0.0.1:1" if handler in FORWARD else ""
        auth = "chacha20-ietf-poly1305:pw@" if handler in ("ss", "ssu") else ""
        cfg = from_args([f"{handler}+{listener}://{auth}127.0.0.1:0{target}"], [])
        try:
            build_service(cfg["services"][0], "services[0]", r, structlog.get_logger())
        except ConfigError:
            pass  # a pair GOST does not allow (e.g. a UDP handler on a TCP listener) may refuse


@pytest.mark.parametrize("connector", sorted(builtins.MODULES["connector"]))
def test_each_connector_with_each_dialer_builds(connector):
    r = Registries()
    for dialer in sorted(builtins.MODULES["dialer"]):
        auth = "chacha20-ietf-poly1305:pw@" if connector in ("ss", "ssu") else ""
        cfg = from_args([":1"], [f"{connector}+{dialer}://{auth}127.0.0.1:1"])
        build_hop(cfg["chains"][0]["hops"][0], "hops[0]", r)


def test_built_components_fit_the_core_interfaces():
    """Each built listener/handler/connector/dialer meets gostg.core.interfaces (the protocols
    a host application's own implementation would have to meet)."""
    from gostg.core import interfaces as I
    r = Registries()
    for handler in sorted(set(builtins.MODULES["handler"]) - {"api"}):
        target = "/127.0.0.1:1" if handler in FORWARD else ""
        auth = "chacha20-ietf-poly1305:pw@" if handler in ("ss", "ssu") else ""
        svc = build_service(from_args([f"{handler}://{auth}127.0.0.1:0{target}"], [])["services"][0],
                            "services[0]", r, structlog.get_logger())
        assert isinstance(svc.handler, I.Handler), handler
        assert isinstance(svc.listener, I.Listener), handler
    for connector in sorted(builtins.MODULES["connector"]):
        for dialer in sorted(builtins.MODULES["dialer"]):
            auth = "chacha20-ietf-poly1305:pw@" if connector in ("ss", "ssu") else ""
            hop = build_hop(from_args([":1"], [f"{connector}+{dialer}://{auth}127.0.0.1:1"])["chains"][0]["hops"][0],
                            "hops[0]", r)
            assert isinstance(hop.nodes[0].connector, I.Connector), connector
            assert isinstance(hop.nodes[0].dialer, I.Dialer), dialer


def test_core_interfaces_import_nothing_heavy():
    import subprocess
    import sys
    code = "import sys, gostg.core.interfaces; assert 'gevent' not in sys.modules, sorted(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
