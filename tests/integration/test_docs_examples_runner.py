"""bench/docs_examples.py end to end over a tiny docs tree written here (two pages, three
examples, one gostg must refuse): the runner starts bin/gostg for each and reports the counts."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CLI_PAGE = """# Protocols

```bash
gost -L http://:8080
gost -L http+kcp://:8443
```
"""

YAML_PAGE = """# Tutorial

=== "File (YAML)"

    ```yaml
\tservices:
\t- name: service-0
\t  addr: :1080
\t  handler:
\t\ttype: socks5
\t  listener:
\t\ttype: tcp
    ```
"""


def test_runner_over_a_tiny_docs_tree(tmp_path):
    docs = tmp_path / "docs" / "en" / "docs"
    (docs / "tutorials").mkdir(parents=True)
    (docs / "getting-started").mkdir()
    (docs / "tutorials" / "protocols.md").write_text(CLI_PAGE)
    (docs / "getting-started" / "quick-start.md").write_text(YAML_PAGE)
    out, md = tmp_path / "out.json", tmp_path / "out.md"
    env = dict(os.environ)
    env.pop("GOSTG_STRICT_SCHEMA", None)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "docs_examples.py"), "--docs",
                        str(tmp_path / "docs"), "--json", str(out), "--md", str(md), "--jobs", "2",
                        "--timeout", "20"], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    results = {r["id"]: r for r in json.loads(out.read_text())}
    assert {i: r["cls"] for i, r in results.items()} == {
        "getting-started/quick-start.md#0": "starts",
        "tutorials/protocols.md#0.0": "starts",
        "tutorials/protocols.md#0.1": "refused",
    }
    assert "listener type 'kcp' is not built" in results["tutorials/protocols.md#0.1"]["reason"]
    assert all(r["argv"] is None or "127.0.0.1:" in " ".join(r["argv"]) for r in results.values())
    assert "all:    starts 2, warns 0, refused 1, crash 0, skipped 0" in p.stdout
    table = md.read_text()
    assert "| 1 | getting-started/quick-start.md | 1 | 1 | 0 | 0 | 0 | 0 |" in table
    assert "| 2 | tutorials/protocols.md | 2 | 1 | 0 | 1 | 0 | 0 | 1× listener type 'kcp' not built" in table
