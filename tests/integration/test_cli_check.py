"""``gostg --check``: the config of -C and/or -L/-F validated without binding anything, every
problem printed at once (``gostg: config error|warning: <path>: <msg>``, one per line), exit 1
on any error, 0 (and ``gostg: config OK`` on stdout) otherwise."""
import json
import os
import re
import socket

from .helpers import free_port, run_gostg

LINE = re.compile(r"^gostg: config (error|warning): (.+)$")


def _env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOST_")}
    env["HOME"] = str(tmp_path)
    return env


def _check(tmp_path, *args):
    r = run_gostg("--check", *args, cwd=tmp_path, env=_env(tmp_path))
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    problems = []
    for ln in r.stderr.splitlines():
        m = LINE.match(ln)
        assert m, f"not in the one format: {ln!r}\n{r.stderr}"
        problems.append((m.group(1), m.group(2)))
    assert len(problems) == len(set(problems)), r.stderr   # each once
    return r, problems


def _svc(name, addr, htype="socks5", **extra):
    return {"name": name, "addr": addr, "handler": {"type": htype}, **extra}


def test_clean_config_ok_and_binds_nothing(tmp_path):
    busy = socket.socket()   # holding the port: a --check that bound it would fail
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        f = tmp_path / "gost.yaml"
        f.write_text(json.dumps({"services": [_svc("a", f"127.0.0.1:{port}")]}))
        r, problems = _check(tmp_path, "-C", f)
        assert r.returncode == 0, r.stderr
        assert problems == []
        assert r.stdout.strip() == "gostg: config OK"
        r, problems = _check(tmp_path, "-L", f"socks5://127.0.0.1:{port}", "-L", f"http://127.0.0.1:{port}")
        assert r.returncode == 0, r.stderr   # even two services on one port: nothing is bound
    finally:
        busy.close()


def test_every_problem_at_once(tmp_path):
    cfg = {"services": [_svc("a", "127.0.0.1:1080", metdata={"readTimeout": "5s"}),
                        _svc("b", "127.0.0.1", "sock5"),
                        {"name": "c", "adr": "127.0.0.1:1082", "handler": {"type": "http"}}]}
    r, problems = _check(tmp_path, "-C", json.dumps(cfg))
    assert r.returncode == 1
    assert r.stdout == ""
    assert ("warning", "services[0].metdata: unknown key (did you mean 'metadata'?)") in problems
    paths = {(lvl, text.split(": ", 1)[0]) for lvl, text in problems}
    assert ("error", "services[1].addr") in paths          # no port
    assert ("error", "services[1].handler.type") in paths  # sock5
    assert ("error", "services[2].addr") in paths          # missing (adr)
    assert ("error", "services[2].adr") in paths         # misspelt and decisive: fails closed
    assert any("did you mean 'socks5'?" in t for _, t in problems), problems


def test_warnings_only_exit_zero(tmp_path):
    cfg = {"services": [_svc("a", "127.0.0.1:1080", metdata={"readTimeout": "5s"}, handler={"type": "socks5",
                                                                                      "chain": "nope"})]}
    r, problems = _check(tmp_path, "-C", json.dumps(cfg))
    assert r.returncode == 0, r.stderr
    assert [lvl for lvl, _ in problems] == ["warning", "warning"], problems
    assert any(t.startswith("services[0].handler.chain: chain 'nope'") for _, t in problems), problems
    assert r.stdout.strip() == "gostg: config OK (2 warnings)"


def test_open_proxy_warning(tmp_path):
    r, problems = _check(tmp_path, "-L", "socks5://:1080")
    assert r.returncode == 0
    assert len(problems) == 1 and problems[0][0] == "warning" and "open proxy on :1080" in problems[0][1]


def test_command_line_urls(tmp_path):
    r, problems = _check(tmp_path, "-L", "socks5://127.0.0.1:1080", "-F", "sock5://127.0.0.1:1")
    assert r.returncode == 1
    assert len(problems) == 1 and problems[0][0] == "error", problems
    assert problems[0][1].startswith("-F sock5://127.0.0.1:1: unknown scheme 'sock5' (did you mean 'socks5'?) "
                                     "(a connector, a dialer, or connector+dialer; known: "), problems
    assert ", socks5, " in problems[0][1] and ", tls, " in problems[0][1], problems


def test_file_and_urls_together(tmp_path):
    f = tmp_path / "gost.json"
    f.write_text(json.dumps({"services": [_svc("a", "127.0.0.1:1080")]}))
    r, problems = _check(tmp_path, "-C", f, "-L", "http://127.0.0.1:1081", "-F", "socks5://127.0.0.1:1082")
    assert r.returncode == 0, r.stderr
    r, problems = _check(tmp_path, "-C", f, "-L", "http://127.0.0.1")
    assert r.returncode == 1
    assert [lvl for lvl, _ in problems] == ["error"] and problems[0][1].startswith("services[1].addr:"), problems


def test_builder_errors_found_without_binding(tmp_path):
    """What only building finds (a certificate file that is not there) is found by --check too."""
    r, problems = _check(tmp_path, "-L", "socks5+tls://127.0.0.1:1080?certFile=/nonexistent.pem&keyFile=/nonexistent.key")
    assert r.returncode == 1
    assert len(problems) == 1 and problems[0][0] == "error" and "services[0]" in problems[0][1], problems


def test_unreadable_source(tmp_path):
    r, problems = _check(tmp_path, "-C", tmp_path / "nope.yaml")
    assert r.returncode == 1
    assert problems == [("error", f"{tmp_path / 'nope.yaml'}: cannot read config: No such file or directory")]


def test_nothing_to_run(tmp_path):
    r, problems = _check(tmp_path, "-C", "{}")
    assert r.returncode == 1
    assert problems == [("error", "services: nothing to run: no services, api or metrics")]


def test_groups_each_checked(tmp_path):
    p = free_port()
    r, problems = _check(tmp_path, "-L", f"socks5://127.0.0.1:{p}", "--", "-L", "sock5://127.0.0.1:1")
    assert r.returncode == 1
    assert len(problems) == 1 and "unknown scheme 'sock5'" in problems[0][1]
    assert r.stdout.strip() == "gostg: config OK"   # the first group's verdict
