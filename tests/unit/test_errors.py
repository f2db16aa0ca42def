"""Errors carry fields, not only text (as dnspython's do): a caller can tell which target,
which chain node and which underlying error."""
import socket

import pytest

from gostg.config.cmdline import from_args
from gostg.config.build import build_object
from gostg.core.registry import Registries
from gostg.core.router import Router
from gostg.errors import ConfigError, DialError


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_direct_dial_error_names_target_and_cause():
    port = _closed_port()
    with pytest.raises(DialError) as ei:
        Router(Registries(), dial_timeout=2).dial("tcp", f"127.0.0.1:{port}")
    assert ei.value.target == f"127.0.0.1:{port}" and ei.value.node is None
    assert isinstance(ei.value.cause, OSError)


def test_chain_dial_error_names_the_node():
    port = _closed_port()
    cfg = from_args([":1"], [f"socks5://127.0.0.1:{port}"])
    r = Registries()
    for kind in ("hops", "chains"):
        for i, o in enumerate(cfg.get(kind) or []):
            getattr(r, kind).set(o["name"], build_object(kind, o, f"{kind}[{i}]", r))
    with pytest.raises(DialError) as ei:
        Router(r, chain=cfg["chains"][0]["name"], dial_timeout=2).dial("tcp", "127.0.0.1:9")
    assert ei.value.node is not None and ei.value.node.addr == f"127.0.0.1:{port}"
    assert ei.value.target == "127.0.0.1:9" and isinstance(ei.value.cause, OSError)


def test_config_error_fields():
    with pytest.raises(ConfigError) as ei:
        from_args(["sock5://:1"], [])
    e = ei.value
    assert (e.path, e.suggestion) == ("-L sock5://:1", "socks5") and "unknown scheme" in e.msg
    e = ConfigError("services[0].handler.type", "unknown handler 'sock5'", "socks5")
    assert e.key == "type" and str(e) == "services[0].handler.type: unknown handler 'sock5'"
