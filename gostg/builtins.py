"""The one place that names every built-in implementation (GOST's ``register.go``).

The registries in :mod:`gostg.core.registry` know nothing of implementations: this table tells
them which module registers each type name, and a module is imported the first time a config
uses one of its types (so ``-L socks5://…`` never imports the HTTP/2 or Shadowsocks code).
"""
from .core import registry

#: kind → type name → module that registers it
MODULES = {
    "listener": {
        "tcp": "tcp", "udp": "udp", "tls": "tls", "ws": "ws", "wss": "ws",
        "mtcp": "mux", "mtls": "mux", "mws": "mux", "mwss": "mux", "http2": "http2", "h2": "h2",
        "h2c": "h2", "rtcp": "remote", "rudp": "remote", "dns": "dns",
        "tun": "tun", "tap": "tun",
    },
    "handler": {
        "auto": "auto", "http": "http", "http2": "http2", "socks5": "socks5", "socks": "socks5",
        "socks4": "socks4", "socks4a": "socks4", "relay": "relay", "tcp": "forward", "udp": "forward",
        "forward": "forward", "rtcp": "forward", "rudp": "forward", "ss": "ss", "ssu": "ssu",
        "sni": "sni", "api": "api", "metrics": "metrics", "dns": "dns", "tunnel": "tunnel",
        "tun": "tun", "tap": "tap", "router": "router",
    },
    "connector": {
        "http": "http", "http2": "http2", "socks5": "socks5", "socks": "socks5", "socks4": "socks4",
        "socks4a": "socks4", "relay": "relay", "forward": "forward", "tcp": "forward", "ss": "ss",
        "ssu": "ssu", "sni": "sni", "direct": "direct", "virtual": "direct", "tunnel": "tunnel",
        "router": "router",
    },
    "dialer": {
        "tcp": "tcp", "udp": "udp", "tls": "tls", "ws": "ws", "wss": "ws", "mtcp": "mux", "mtls": "mux",
        "mws": "mux", "mwss": "mux", "http2": "http2", "h2": "h2", "h2c": "h2", "direct": "direct",
        "virtual": "direct",
    },
}

_PACKAGES = {"listener": "gostg.listeners", "handler": "gostg.handlers",
             "connector": "gostg.connectors", "dialer": "gostg.dialers"}

for _kind, _types in MODULES.items():
    _reg = registry.by_kind(_kind)
    for _name, _mod in _types.items():
        _reg.add_lazy(_name, f"{_PACKAGES[_kind]}.{_mod}")
