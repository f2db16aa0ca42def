"""config/remote.py: which -C values are URLs, how they are printed, JSON vs YAML (GOST's
detectFormat), and the timeout knob."""
import pytest

from gostg.config import remote
from gostg.errors import ConfigError


@pytest.mark.parametrize("value, url", [
    ("http://example.com/gost.yaml", True), ("https://u:p@example.com", True), ("  HTTPS://h:8080/x ", True),
    ("http://", False), ("http:///path", False), ("http://u:p@/x", False), ("ftp://example.com/g.yaml", False),
    ("gost.yaml", False), ("/etc/gost/gost.yaml", False), ("-", False), ('{"services":[]}', False),
    ("http:example.com", False)])
def test_is_url(value, url):
    assert remote.is_url(value) is url


def test_shown_drops_credentials_only():
    assert remote.shown("https://admin:secret@h:8443/a/gost.yaml?x=1") == "https://h:8443/a/gost.yaml?x=1"
    assert remote.shown("http://h/gost.yaml") == "http://h/gost.yaml"


@pytest.mark.parametrize("ctype, url, fmt", [
    ("application/json", "http://h/c.yaml", "json"), ("application/json; charset=utf-8", "http://h/c", "json"),
    ("Application/JSON", "http://h/c", "json"), ("text/yaml", "http://h/c.json", "yaml"),
    ("application/x-yaml", "http://h/c.json", "yaml"), ("text/x-yaml", "http://h/c", "yaml"),
    ("application/yaml", "http://h/c", "yaml"), ("text/plain", "http://h/c.json", "json"),
    ("", "http://h/c.JSON", "json"), ("", "http://h/c.yml", "yaml"), ("", "http://h/c.json?x=.yaml", "json"),
    ("", "http://h/dir.json/c", "yaml"), ("text/html", "http://h/", "yaml"), (None, "http://h/c", "yaml")])
def test_detect_format(ctype, url, fmt):
    assert remote.detect_format(ctype, url) == fmt


def test_timeout_from_env(monkeypatch):
    monkeypatch.delenv(remote.TIMEOUT_ENV, raising=False)
    assert remote.timeout_from_env() == 30.0
    monkeypatch.setenv(remote.TIMEOUT_ENV, "1500ms")
    assert remote.timeout_from_env() == 1.5
    for bad in ("0s", "-1s", "soon"):
        monkeypatch.setenv(remote.TIMEOUT_ENV, bad)
        with pytest.raises(ConfigError) as e:
            remote.timeout_from_env()
        assert e.value.path == remote.TIMEOUT_ENV


def test_a_short_body_is_a_stable_error():
    """The server closes before Content-Length bytes: one wording, whatever the counts (the
    -R loop says each distinct failure once)."""
    import threading

    from tests.integration.peers import bind_block   # a loopback port below the ephemeral range

    srv = bind_block(1)[0]
    srv.listen(4)
    port = srv.getsockname()[1]

    def answer():
        for _ in range(2):
            c, _ = srv.accept()
            with c:
                c.recv(4096)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nservices: []\n")

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{port}/gost.yaml"
        for _ in range(2):
            with pytest.raises(ConfigError) as e:
                remote.fetch(url, timeout=5)
            assert (e.value.path, e.value.msg) == (url, "cannot fetch config: connection closed before the "
                                                         "whole body arrived")
    finally:
        t.join(timeout=5)
        srv.close()
