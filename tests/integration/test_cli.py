"""The GOST command line as a user types it: -V, -O yaml|json with GOST's generated names,
Go-style flags, and usage on bad input. Everything here runs bin/gostg to completion."""
import json
import os
import re

import yaml

from .helpers import run_gostg

CHAIN_ARGS = ["-L", "http://:8080", "-L", "socks5://u:p@:1080", "-F", "socks5://a:1,b:2", "-F", "http://c:3"]


def _clean_env(tmp_path):
    """No GOST_* variables and a HOME / cwd without gost.yaml, so no default config is found."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOST_")}
    env["HOME"] = str(tmp_path)
    return env


def test_version():
    r = run_gostg("-V")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert re.fullmatch(r"gostg \d+\.\d+\.\d+\S* \(python \d+\.\d+\.\d+\S* \S+/\S+\)", line), line


def _check_chain_config(cfg):
    svcs = cfg["services"]
    assert [s["name"] for s in svcs] == ["service-0", "service-1"]
    assert svcs[0]["addr"] == ":8080" and svcs[1]["addr"] == ":1080"
    assert svcs[0]["handler"]["type"] == "http" and svcs[0]["listener"]["type"] == "tcp"
    assert svcs[1]["handler"]["type"] == "socks5" and svcs[1]["listener"]["type"] == "tcp"
    assert svcs[1]["handler"]["auth"] == {"username": "u", "password": "p"}
    assert "auth" not in svcs[0]["handler"]
    # every -L of the process shares the one chain built from all -F
    assert svcs[0]["handler"]["chain"] == "chain-0" and svcs[1]["handler"]["chain"] == "chain-0"

    chains = cfg["chains"]
    assert [c["name"] for c in chains] == ["chain-0"]
    hops = chains[0]["hops"]
    assert [h["name"] for h in hops] == ["hop-0", "hop-1"]
    n0 = hops[0]["nodes"]
    assert [n["name"] for n in n0] == ["node-0", "node-1"]
    assert [n["addr"] for n in n0] == ["a:1", "b:2"]
    assert all(n["connector"]["type"] == "socks5" and n["dialer"]["type"] == "tcp" for n in n0)
    n1 = hops[1]["nodes"]
    assert [n["name"] for n in n1] == ["node-0"]
    assert n1[0]["addr"] == "c:3"
    assert n1[0]["connector"]["type"] == "http" and n1[0]["dialer"]["type"] == "tcp"


def test_output_yaml_generated_names():
    r = run_gostg(*CHAIN_ARGS, "-O", "yaml")
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    _check_chain_config(cfg)
    # GOST prints services before chains
    assert list(cfg).index("services") < list(cfg).index("chains")


def test_output_json_generated_names_matches_yaml():
    rj = run_gostg(*CHAIN_ARGS, "-O", "json")
    ry = run_gostg(*CHAIN_ARGS, "-O", "yaml")
    assert rj.returncode == 0, rj.stderr
    cfg = json.loads(rj.stdout)
    _check_chain_config(cfg)
    assert cfg == yaml.safe_load(ry.stdout)


def test_output_forward_targets_named():
    r = run_gostg("-L", "tcp://:8000/10.0.0.1:80,10.0.0.2:80", "-O", "json")
    assert r.returncode == 0, r.stderr
    svc = json.loads(r.stdout)["services"][0]
    assert svc["name"] == "service-0"
    assert svc["handler"]["type"] == "tcp" and svc["listener"]["type"] == "tcp"
    nodes = svc["forwarder"]["nodes"]
    assert [(n["name"], n["addr"]) for n in nodes] == [("target-0", "10.0.0.1:80"), ("target-1", "10.0.0.2:80")]


def test_go_style_flags():
    r = run_gostg("-L=http://:8080", "-api", ":18080", "-O", "yaml")
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert cfg["api"] == {"addr": ":18080"}
    assert cfg["services"][0]["name"] == "service-0"
    assert cfg["services"][0]["addr"] == ":8080"
    assert cfg["services"][0]["handler"]["type"] == "http"
    # the raw text a user reads: api: {addr: ':18080'}
    assert re.search(r"^api:\n  addr: ['\"]?:18080['\"]?$", r.stdout, re.M), r.stdout


def test_go_style_flags_with_equals():
    r = run_gostg("-L=socks5://:1080", "-api=:18080", "-O=json")
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["api"] == {"addr": ":18080"}
    assert cfg["services"][0]["handler"]["type"] == "socks5"


def test_output_bad_format_fails():
    r = run_gostg("-L", "http://:8080", "-O", "toml")
    assert r.returncode != 0
    assert r.stdout.strip() == ""


def test_unknown_flag_usage():
    r = run_gostg("-L", "http://:8080", "--bogus-flag")
    assert r.returncode != 0
    assert "usage" in (r.stderr + r.stdout).lower()
    assert "gostg" in r.stderr + r.stdout


def test_no_args_no_config_usage(tmp_path):
    r = run_gostg(cwd=tmp_path, env=_clean_env(tmp_path))
    assert r.returncode != 0
    out = r.stderr + r.stdout
    assert "usage" in out.lower() and "-L" in out
