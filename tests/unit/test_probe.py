"""probeResist/knock parsing and the decoys that need no network (handlers/probe.py)."""
import pytest
import structlog

from gostg.config import schema
from gostg.config.metadata import Metadata
from gostg.errors import ConfigError
from gostg.handlers.probe import ProbeResist

LOG = structlog.get_logger()


def pr(value, knock=None):
    m = {"probeResist": value}
    if knock is not None:
        m["knock"] = knock
    return ProbeResist.from_md(Metadata(m, schema.component_md("handler", "http")))


def test_unset_means_none():
    assert ProbeResist.from_md(Metadata({}, schema.component_md("handler", "http"))) is None
    assert pr("") is None


@pytest.mark.parametrize("value", ["code", "code:", "cod:404", "code:abc", "code:42", "code:4²4", "host:example.com",
                                   "host:example.com:http", "gopher:x"])
def test_malformed_is_a_config_error(value):
    with pytest.raises(ConfigError) as e:
        pr(value)
    assert e.value.path == "metadata.probeResist"


def test_knock_matches_the_url_host_only():
    p = pr("code:404", "www.example.com, Secret.Example")
    assert not p.applies("www.example.com:443") and not p.applies("secret.example")
    assert not p.applies("WWW.EXAMPLE.COM")
    assert p.applies("") and p.applies("other.example:80") and p.applies("[::1]:443")
    assert pr("code:404").applies("www.example.com")


def test_code_and_file_decoys(tmp_path):
    d = pr("code:404").decoy(LOG)
    assert (d.status, d.headers, d.body) == (404, [], b"")
    f = tmp_path / "index.html"
    f.write_bytes(b"<p>hi</p>")
    d = pr(f"file:{f}").decoy(LOG)
    assert (d.status, d.headers, d.body) == (200, [("Content-Type", "text/html")], b"<p>hi</p>")
    assert pr(f"file:{tmp_path}/missing").decoy(LOG).status == 503


def test_web_decoy_failure_is_503():
    p = pr("web:127.0.0.1:1/page")   # nothing listens on port 1
    assert p.decoy(LOG).status == 503
