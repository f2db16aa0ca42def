"""One config, one verdict (issue 11): the same service through ``-C`` at startup, ``-O``,
``--check``, reload (``POST /config/reload``) and ``POST /config/services`` gives the same
warnings and the same errors, because all of them run ``gostg.config.validate``."""
import json

import pytest
import yaml

from .helpers import Gost, free_port, run_gostg
from .peers import Api

CASES = [
    # (what, service keys beyond name/addr, expected level, expected text after the service's path)
    ("typo key", {"handler": {"type": "http"}, "handlr": {"type": "socks5"}},
     "warning", ".handlr: unknown key (did you mean 'handler'?)"),
    ("typo metadata", {"handler": {"type": "socks5", "metadata": {"udpp": True}}},
     "warning", ".handler.metadata.udpp: unknown metadata key (did you mean 'udp'?)"),
    ("observational feature", {"handler": {"type": "http"}, "observer": "obs"},
     "warning", ".observer: observer is not built by gostg yet: not active"),
    ("unknown handler", {"handler": {"type": "sock5"}},
     "error", ".handler.type: unknown handler 'sock5' (did you mean 'socks5'?)"),
    ("routing feature", {"handler": {"type": "http"}, "interface": "eth0"},
     "error", ".interface: binding to a network interface is not built by gostg yet"),
    ("bad duration", {"handler": {"type": "http", "metadata": {"readTimeout": "soon"}}},
     "error", ".handler.metadata.readTimeout: bad duration 'soon'"),
]


def _service(name, port, extra):
    return {"name": name, "addr": f"127.0.0.1:{port}", **extra}


def _startup(tmp_path, svc):
    """-C at startup: errors exit 1 before binding; warnings on stderr once and the service runs."""
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"services": [svc]}))
    port = int(svc["addr"].rsplit(":", 1)[1])
    r = run_gostg("--check", "-C", f)
    out = r.stdout + r.stderr
    with Gost("-C", f, ports=()) as g:
        import time
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and g.proc.poll() is None and "listening" not in g.log_text():
            time.sleep(0.05)
        log = g.log_text()
    o = run_gostg("-O", "json", "-C", f)
    return out, log, o.stdout + o.stderr, r.returncode, port


@pytest.mark.parametrize("what, extra, level, text", CASES, ids=[c[0] for c in CASES])
def test_same_verdict_through_check_startup_output_reload_and_api(tmp_path, what, extra, level, text):
    svc = _service("s", free_port(), extra)
    check_out, start_log, o_out, rc, _ = _startup(tmp_path, svc)
    expected = f"services[0]{text}"
    # --check, startup and -O
    assert expected in check_out, check_out
    assert expected in start_log, start_log
    assert expected in o_out, o_out
    assert (rc == 1) == (level == "error"), check_out
    if level == "error":
        assert f"gostg: config error: {expected}" in check_out
        assert "Traceback" not in start_log + o_out
    else:
        assert f"gostg: config warning: {expected}" in check_out

    # reload and the Web API: a running gostg with one good service
    api_port, good_port = free_port(), free_port()
    f = tmp_path / "live.yaml"
    good = {"name": "good", "addr": f"127.0.0.1:{good_port}", "handler": {"type": "http"}}
    f.write_text(yaml.safe_dump({"services": [good]}))
    with Gost("-C", f, "-api", f"127.0.0.1:{api_port}", ports=[good_port, api_port]) as g:
        api = Api(api_port)
        # POST /config/services: the new service is services[1] in the model
        status, js, raw = api.request("POST", "/config/services", _service("s", free_port(), extra))
        if level == "error":
            assert status >= 400 and f"services[1]{text}" in js["msg"], raw
            assert "s" not in api.services()
        else:
            assert status == 200 and any(f"services[1]{text}" in w for w in js["warnings"]), raw
            api.delete("services", "s")
        # reload: the file now has the service as services[1]
        f.write_text(yaml.safe_dump({"services": [good, _service("s", free_port(), extra)]}))
        status, js, raw = api.reload()
        if level == "error":
            assert status >= 400 and f"services[1]{text}" in js["msg"], raw
            assert set(api.services()) == {"good"}, "a refused reload changes nothing"
        else:
            assert status == 200 and any(f"services[1]{text}" in w for w in js["data"]["warnings"]
                                         if isinstance(js.get("data"), dict)) or f"services[1]{text}" in json.dumps(
                js), raw
        assert g.proc.poll() is None, "bad input never kills the process"


def test_unknown_keys_survive_output_round_trip(tmp_path):
    """An unknown key warns but is kept: -O prints it back, so a newer GOST's keys survive."""
    f = tmp_path / "c.yaml"
    svc = {"name": "s", "addr": "127.0.0.1:1", "handler": {"type": "http", "metadata": {"futureKey": "x"}},
           "futureTop": {"a": 1}}
    f.write_text(yaml.safe_dump({"services": [svc], "futureSection": [1, 2]}))
    r = run_gostg("-O", "json", "-C", f)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["futureSection"] == [1, 2]
    assert out["services"][0]["futureTop"] == {"a": 1}
    assert out["services"][0]["handler"]["metadata"]["futureKey"] == "x"
    assert "gostg: config warning: futureSection: unknown key" in r.stderr
    assert "gostg: config warning: services[0].futureTop: unknown key" in r.stderr
