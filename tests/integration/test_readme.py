"""README.md's commands run as written on a fresh checkout.

- Every gostg command line in a ```sh block of README.md is validated with ``gostg --check``
  (nothing binds): a README example whose config has an error is a README bug. Lines split by
  ``--`` are separate processes and are checked one by one; an example with ``-O`` (which binds
  nothing either) also runs as written.
- The examples call the installed command (``.venv/bin/gostg`` or, with the venv activated,
  ``gostg``), not ``bin/gostg``: on a fresh machine that is the system python, without gevent.
- README starts with the install-and-run command and the test command (scripts/test).
- The console script ``.venv/bin/gostg`` (``pip install -e .``, done by scripts/install) starts and
  serves the shipped etc/gost.yaml.

The checks run ``sys.executable bin/gostg --check …`` from the repository root (where the
examples' ``etc/…`` files are), so they need no installed console script.
"""
import os
import re
import shlex
import subprocess
import sys
import urllib.request

import pytest
import yaml

from gostg.process import split_groups

from .helpers import GOSTG, ROOT, Origin, free_port, wait_port

README = os.path.join(ROOT, "README.md")
VENV_GOSTG = os.path.join(ROOT, ".venv", "bin", "gostg")
#: how README may spell the command: the venv's console script, or `gostg` with the venv activated
GOSTG_NAMES = (".venv/bin/gostg", "gostg")
#: shell operators that separate commands on one line (`a && b`)
SEPARATORS = {"&&", "||", ";", "|", "&"}


def _read_readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def shell_blocks(text):
    """Bodies of fenced ```sh / ```bash / ```shell blocks (not plain ``` transcripts)."""
    return [m.group(2) for m in re.finditer(r"(?ms)^```(sh|bash|shell)[ \t]*\n(.*?)^```", text)]


def commands(block):
    """Each simple command of a shell block as an argv list: backslash continuations joined,
    `# comments` and quotes handled by shlex, `a && b` split into two."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        if not line.strip():
            continue
        cur = []
        for tok in shlex.split(line, comments=True):
            if tok in SEPARATORS:
                if cur:
                    out.append(cur)
                cur = []
            else:
                cur.append(tok)
        if cur:
            out.append(cur)
    return out


def is_gostg(argv):
    """`gostg …`, `.venv/bin/gostg …`, and `bin/gostg …` / `python bin/gostg …` (to be refused)."""
    if os.path.basename(argv[0]) == "gostg":
        return True
    return os.path.basename(argv[0]).startswith("python") and len(argv) > 1 and argv[1].endswith("bin/gostg")


def gostg_examples(text=None):
    """Every gostg command line in README's shell blocks, as argv lists."""
    text = _read_readme() if text is None else text
    return [argv for block in shell_blocks(text) for argv in commands(block) if is_gostg(argv)]


def check_args(args):
    """The ``--check`` runs one README command line stands for: one per process (``--`` splits
    processes), with ``-O`` dropped (``--check`` replaces printing)."""
    runs = []
    for g in split_groups(args):
        if not g:
            continue
        out, i = [], 0
        while i < len(g):
            if g[i] == "-O":
                i += 2
                continue
            if g[i].startswith("-O="):
                i += 1
                continue
            out.append(g[i])
            i += 1
        runs.append(out if "--check" in out else ["--check", *out])
    return runs


def _env(tmp_path):
    """No GOST_* variables (GOST_API would add an API) and a HOME of our own (a generated
    certificate would go to ~/.gost)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOST_")}
    env["HOME"] = str(tmp_path)
    return env


def _run(args, tmp_path, timeout=30):
    return subprocess.run([sys.executable, GOSTG, *args], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


EXAMPLES = gostg_examples()
#: README's ```yaml blocks that are whole configs (have services)
YAML_CONFIGS = [m.group(1) for m in re.finditer(r"(?ms)^```ya?ml[ \t]*\n(.*?)^```", _read_readme())
                if "services" in (yaml.safe_load(m.group(1)) or {})]


def test_readme_parser():
    text = """
```sh
.venv/bin/gostg -L "udp://:53/1.1.1.1:53?keepAlive=true&ttl=60s"   # a comment with 'quote
scripts/install && .venv/bin/gostg -C etc/gost.yaml
curl -x 127.0.0.1:8080 \\
     http://example.com
gostg -L :8080 -- -L socks5://:1080 -O yaml
```
```
$ bin/gostg -C bad.yaml
```
"""
    assert gostg_examples(text) == [
        [".venv/bin/gostg", "-L", "udp://:53/1.1.1.1:53?keepAlive=true&ttl=60s"],
        [".venv/bin/gostg", "-C", "etc/gost.yaml"],
        ["gostg", "-L", ":8080", "--", "-L", "socks5://:1080", "-O", "yaml"],
    ]
    assert check_args(["-L", ":8080", "--", "-L", "socks5://:1080", "-O", "yaml"]) == [
        ["--check", "-L", ":8080"], ["--check", "-L", "socks5://:1080"]]
    assert check_args(["--check", "-C", "a.yaml"]) == [["--check", "-C", "a.yaml"]]


def test_readme_has_examples():
    """The parser finds README's examples (a silent zero would pass every check below)."""
    assert len(EXAMPLES) >= 25, EXAMPLES
    assert len(YAML_CONFIGS) >= 2
    assert any("--" in argv for argv in EXAMPLES)


def test_readme_starts_with_install_and_test_commands():
    blocks = shell_blocks(_read_readme())
    first, second = commands(blocks[0]), commands(blocks[1])
    assert first[0] == ["scripts/install"] and first[-1] == [".venv/bin/gostg", "-C", "etc/gost.yaml"], first
    assert len(second) == 1 and second[0][0] == "scripts/test", second
    for script in ("scripts/install", "scripts/test"):
        assert os.access(os.path.join(ROOT, script), os.X_OK), script
    with open(os.path.join(ROOT, ".ci", "run")) as f:   # exactly README's command, arguments too
        assert re.search(r"(?m)^(exec )?" + re.escape(shlex.join(second[0])) + r"\s*$", f.read()), \
            ".ci/run must run README's test command"
    # the shipped config is a local proxy: auto on 127.0.0.1:8080
    with open(os.path.join(ROOT, "etc", "gost.yaml")) as f:
        cfg = yaml.safe_load(f)
    assert [(s["addr"], s["handler"]["type"]) for s in cfg["services"]] == [("127.0.0.1:8080", "auto")]


def test_readme_examples_use_installed_command():
    """`bin/gostg …` runs the system python on a fresh machine (no gevent there)."""
    bad = [argv for argv in EXAMPLES if argv[0] not in GOSTG_NAMES]
    assert not bad, f"README examples must run .venv/bin/gostg (or gostg): {bad}"


def _example_id(argv):
    return shlex.join(argv[1:])[:80]


@pytest.mark.parametrize("argv", EXAMPLES, ids=[_example_id(a) for a in EXAMPLES])
def test_readme_example_checks(argv, tmp_path):
    for args in check_args(argv[1:]):
        r = _run(args, tmp_path)
        assert r.returncode == 0 and "config error" not in r.stderr, (
            f"README example {shlex.join(argv)!r}: gostg {shlex.join(args)} → exit {r.returncode}\n{r.stderr}")
    if "-O" in argv or any(a.startswith("-O=") for a in argv):
        r = _run(argv[1:], tmp_path)
        assert r.returncode == 0, f"README example {shlex.join(argv)!r} → exit {r.returncode}\n{r.stderr}"
        assert yaml.safe_load(r.stdout)["services"], r.stdout


@pytest.mark.parametrize("text", YAML_CONFIGS, ids=[f"yaml{i}" for i in range(len(YAML_CONFIGS))])
def test_readme_yaml_configs_check(text, tmp_path):
    """README's YAML config examples (the blocks with services) pass --check as well."""
    conf = tmp_path / "example.yaml"
    conf.write_text(text)
    r = _run(["--check", "-C", str(conf)], tmp_path)
    assert r.returncode == 0 and "config error" not in r.stderr, f"README YAML example → exit {r.returncode}\n{r.stderr}\n{text}"


@pytest.mark.skipif(not os.path.exists(VENV_GOSTG), reason=".venv/bin/gostg not installed (run scripts/install)")
def test_console_script(tmp_path):
    """`pip install -e .` gives .venv/bin/gostg: it reports its version, and it serves the shipped
    etc/gost.yaml (moved to a free port: 8080 may be taken while tests run in parallel)."""
    r = subprocess.run([VENV_GOSTG, "-V"], capture_output=True, text=True, timeout=30, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gostg "), r.stdout

    with open(os.path.join(ROOT, "etc", "gost.yaml")) as f:
        cfg = yaml.safe_load(f)
    port = free_port()
    cfg["services"][0]["addr"] = f"127.0.0.1:{port}"
    conf = tmp_path / "gost.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / "gostg.log", "w+")
    proc = subprocess.Popen([VENV_GOSTG, "-C", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=str(tmp_path), env=_env(tmp_path))
    try:
        wait_port(port, proc=proc)
        with Origin() as origin:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"}))
            with opener.open(origin.url + "/readme", timeout=10) as resp:
                assert resp.status == 200
                assert b"/readme" in resp.read()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.seek(0)
        text = log.read()
        log.close()
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text
