#!/usr/bin/env python3
"""Run every command line and config of GOST's docs (go-gost/docs, ``en/docs/``) with gostg,
moved onto loopback, and say which start cleanly.

    .venv/bin/python bench/docs_examples.py --docs /path/to/go-gost/docs [--only PAGE…] [--json out]

Each example runs as a user would run it (``bin/gostg -L …`` / ``bin/gostg -C file``) in a
temp directory, is watched until every port it should listen on is listening (or it exits, or
``--timeout`` passes), then stopped by process group. It sends no traffic. Classes: starts,
warns (a config warning such as "not built yet: not active"), refused (exits with an error),
crash (a Python traceback: a bug), skipped (needs something this box cannot give). Config
blocks with no service (a ``bypasses:`` list …) are fragments: classed by gostg's in-process
check alone. See bench/README.md."""
import argparse
import collections
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)    # this checkout's gostg

if __package__:                 # imported as bench.docs_examples (the tests)
    from . import gost_docs as gd
else:                           # run as a script: bench/ is sys.path[0]
    import gost_docs as gd  # noqa: E402

CLASSES = ("starts", "warns", "refused", "crash", "skipped")
POLL = 0.05
#: set by SIGINT/SIGTERM: the running examples are stopped (by process group), no more start
STOP = threading.Event()


@dataclasses.dataclass
class Example:
    id: str
    page: str
    kind: str                       # cli | config | fragment
    argv: list = None               # gostg's argv (cli), rewritten
    cfg: dict = None                # the config (config, fragment), rewritten
    expect: set = dataclasses.field(default_factory=set)
    skip: str = ""
    features: list = dataclasses.field(default_factory=list)

    @property
    def oneshot(self):
        """``-O yaml|json`` prints the config and exits."""
        return self.kind == "cli" and any(a == "-O" or a.startswith("-O=") for a in self.argv)

    @property
    def tier(self):
        return gd.tier(self.page)


# -- collecting ---------------------------------------------------------------------------------

def pages(docs, only):
    base = os.path.join(docs, "en", "docs")
    if not os.path.isdir(base):
        sys.exit(f"docs_examples: no en/docs under {docs}")
    for d, _, names in sorted(os.walk(base)):
        for n in sorted(names):
            if n.endswith(".md"):
                rel = os.path.relpath(os.path.join(d, n), base).replace(os.sep, "/")
                if not only or any(rel == o or rel.startswith(o.rstrip("/") + "/") or rel[:-3] == o for o in only):
                    yield rel, os.path.join(d, n)


def raw_examples(rel, text):
    """→ [(id, kind, data, note)] in page order; data is an argv (cli) or a config."""
    out = []
    for b in gd.blocks(text):
        if b.lang in gd.SHELL_LANGS:
            for li, argv, note in gd.commands(b.text):
                out.append((f"{rel}#{b.index}.{li}", "cli", argv, note))
        elif b.lang in gd.CONFIG_LANGS:
            cfg = gd.config_of(b)
            if isinstance(cfg, str):
                out.append((f"{rel}#{b.index}", "config", None, cfg))
            elif cfg is not None:
                out.append((f"{rel}#{b.index}", "config" if gd.runnable(cfg) else "fragment", cfg, ""))
    return out


def _cli_skip(argv):
    flags = {a.partition("=")[0].lstrip("-") for a in argv if a.startswith("-")}
    if "C" in flags:
        return "runs a config file the page gives as a separate block (run on its own)"
    if not flags & {"L", "api", "metrics"}:
        return "no service (" + (" ".join(argv) or "bare gost") + ")"
    return ""


def _build(rid, kind, data, note, ports, files):
    ex = Example(rid, rid.partition("#")[0], kind)
    if data is None:
        ex.skip = note
        return ex
    notes = {note} - {""}
    if kind == "cli":
        ex.features = gd.features(" ".join(data))
        ex.argv = gd.rewrite_argv(data, ports, files, notes)
        ex.skip = _cli_skip(data)
        cfgs = None if ex.skip else gd.cli_configs(ex.argv)
        cfg = gd.merged(cfgs) if cfgs else None
        if cfg is None:
            types = {t for a in data for t in a.partition("://")[0].lstrip("-L=").split("+") if "://" in a}
            cfg = {"services": [{"handler": {"type": t}} for t in types]}
    else:
        ex.features = gd.features(json.dumps(data))
        cfg = ex.cfg = gd.rewrite_config(data, ports, files, notes)
    ex.expect, skip = gd.expectations(cfg)
    if "netns" in notes:
        skip = "needs the network namespaces the page names (ip netns add …)"
    ex.skip = ex.skip or skip
    return ex


def collect(docs, only, work, certs):
    """→ {page: [Example]}. A page's examples share one port plan; the examples are rewritten
    twice so a client shown before its server still finds the server's port."""
    out = {}
    for rel, path in pages(docs, only):
        with open(path, encoding="utf-8") as f:
            raw = raw_examples(rel, f.read())
        if not raw:
            continue
        ports = gd.Ports()
        files = gd.Files(os.path.join(work, "files", rel.replace("/", "_")), certs)
        for _ in range(2):
            exs = [_build(*r, ports, files) for r in raw]
        out[rel] = exs
    return out


def make_certs(d):
    """A self-signed certificate for localhost (also its own CA), made with openssl."""
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", "key.pem", "-out", "cert.pem"], cwd=d, check=True, capture_output=True, timeout=60)
    shutil.copy(os.path.join(d, "cert.pem"), os.path.join(d, "ca.pem"))
    return d


# -- running ------------------------------------------------------------------------------------

def listening():
    """Ports bound on this host right now: TCP in LISTEN, any UDP socket."""
    found = set()
    for name, want in (("tcp", "0A"), ("tcp6", "0A"), ("udp", None), ("udp6", None)):
        try:
            with open(f"/proc/net/{name}") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if want is None or parts[3] == want:
                        found.add(int(parts[1].rpartition(":")[2], 16))
        except OSError:
            continue
    return found


def stop(p, grace=3.0):
    """SIGTERM to the example's process group, SIGKILL after ``grace``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(p.pid, signal.SIGKILL)   # -- groups leave children behind a finished parent
    except ProcessLookupError:
        pass


def launch(ex, opts, d):
    """Start gostg for ``ex`` in ``d``; → (exit status or None, timed out, missing ports, log)."""
    argv = ex.argv
    if ex.kind == "config":
        path = os.path.join(d, "gost.json")
        with open(path, "w") as f:
            json.dump(ex.cfg, f, indent=1)
        argv = ["-C", path]
    env = dict(os.environ, HOME=d)
    env.pop("GOSTG_STRICT_SCHEMA", None)
    logpath = os.path.join(d, "log")
    with open(logpath, "wb") as log:
        p = subprocess.Popen([opts.python, opts.gostg, *argv], cwd=d, env=env, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + opts.timeout
    rc, timed_out, seen = None, False, (-1, 0.0)
    try:
        while True:
            rc = p.poll()
            if rc is not None:
                break
            # /proc/net costs ~8 ms a read: look when the log grew ("listening on …"), else each second
            size, now = os.path.getsize(logpath), time.monotonic()
            if not ex.oneshot and (size != seen[0] or now - seen[1] > 1.0):
                seen = (size, now)
                if ex.expect <= listening() and (ex.expect or _started(logpath)):
                    break
            if now > deadline or STOP.is_set():
                timed_out = True
                break
            time.sleep(POLL)
        missing = ex.expect - listening() if timed_out else set()
    finally:
        stop(p)
    with open(logpath, errors="replace") as f:
        return rc, timed_out, missing, f.read()


def _started(logpath):
    """With no port of its own to watch (an rtcp service binds on its node), the example is up
    once gostg logs as a running service (a JSON line), not when it prints config errors."""
    with open(logpath, errors="replace") as f:
        return any(line.startswith("{") for line in f)


def _json_lines(text):
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def classify(rc, timed_out, missing, text, timeout, oneshot=False):
    """→ (class, reason, notes) from what the run left. ``oneshot``: the example prints and
    exits (``-O yaml``), so exit status 0 is its clean run. A port missing after a config
    warning (``-metrics``: "not active") is the warning's doing: warns."""
    lines = text.splitlines()
    if "Traceback (most recent call last)" in text:
        tail = [ln for ln in lines if ln.strip() and not ln.startswith((" ", "{", "Traceback"))]
        return "crash", (tail[-1] if tail else "traceback"), []
    records = list(_json_lines(text))
    runtime_errors = [r.get("msg", "") for r in records if r.get("level") == "error"]
    warnings = [ln for ln in lines if ln.startswith("gostg: config warning")]
    warnings += ["gostg: config warning: " + r["msg"][len("config: "):] for r in records
                 if r.get("level") == "warning" and str(r.get("msg", "")).startswith("config")]
    errors = [ln for ln in lines if ln.startswith("gostg:") and "warning" not in ln.split(":", 2)[1]]
    if errors and any(": config error:" in e for e in errors):
        rc = 1 if rc is None else rc      # stopped while it was printing its errors, about to exit
    if oneshot and rc == 0:
        return ("warns", warnings[0], []) if warnings else ("starts", "", [])
    if rc is not None:
        # of several errors the missing feature is the cause (a unix node's "no port" follows from it)
        errors.sort(key=lambda e: "not built" not in e)
        first = (errors or runtime_errors or [ln for ln in lines if ln.strip()] or [f"exited with status {rc}"])[0]
        return "refused", first, []
    if timed_out and warnings:
        return "warns", warnings[0], [f"not listening on {sorted(missing)}"]
    if timed_out:
        why = (runtime_errors or [r.get("msg", "") for r in records if r.get("level") == "warning"] or [""])[0]
        return "refused", f"not listening on {len(missing)} of its ports within {timeout:g}s" + (
            f": {why}" if why else ""), []
    if warnings:
        return "warns", warnings[0], runtime_errors
    return "starts", "", runtime_errors


def run_example(ex, opts):
    res = {"id": ex.id, "page": ex.page, "tier": ex.tier, "kind": ex.kind, "features": ex.features,
           "argv": ex.argv, "expect": sorted(ex.expect), "notes": []}
    if ex.skip:
        return dict(res, cls="skipped", reason=ex.skip)
    checked = [ex.cfg] if ex.kind != "cli" else (gd.cli_configs(ex.argv) or []) if opts.fast else []
    ps = [p for c in checked for p in gd.problems(c)]
    errs = sorted((str(p) for p in ps if p.level == "error"), key=lambda e: "not built" not in e)
    if ex.kind == "fragment":
        warns = [str(p) for p in ps if p.level == "warning"]
        cls = "refused" if errs else "warns" if warns else "starts"
        return dict(res, cls=cls, reason=(errs or warns or [""])[0])
    if opts.fast and errs:      # gostg's startup runs this same check and exits on it
        return dict(res, cls="refused", reason="gostg: config error: " + errs[0], notes=["--fast: not started"])
    d = tempfile.mkdtemp(prefix=ex.id.replace("/", "_").replace("#", "-") + "-", dir=opts.work)
    for attempt in range(2):
        cls, reason, notes = classify(*launch(ex, opts, d), opts.timeout, oneshot=ex.oneshot)
        if "Address already in use" not in reason:     # a port taken by another process meanwhile
            break
    if cls == "refused" and reason.startswith("not listening") and opts.keep_logs:
        res["log"] = os.path.join(d, "log")
    return dict(res, cls=cls, reason=reason, notes=notes[:3])


def fingerprint(ex, work):
    """What gostg would be given, with the page's ports and temp paths blanked: examples
    that many pages repeat (``gost -L http://:8080`` …) run once."""
    text = json.dumps([ex.kind, ex.argv, ex.cfg, ex.skip], sort_keys=True).replace(work, "W")
    text = re.sub(r"W/files/[^/\"]*/", "W/", text)
    seen = {}
    return re.sub(r"(?<=127\.0\.0\.1:)\d+", lambda m: "P%d" % seen.setdefault(m.group(0), len(seen)), text)


def run_all(by_page, opts):
    """Each distinct example runs once (the rest copy its result); pages run side by side
    (``--jobs``), a page's examples one after another: they share the page's ports."""
    first, todo = {}, collections.defaultdict(list)
    for page, exs in by_page.items():
        for e in exs:
            key = fingerprint(e, opts.work)
            if key not in first:
                first[key] = e.id
                todo[page].append(e)
    done = {}
    with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
        futs = {pool.submit(lambda exs: [run_example(e, opts) for e in exs if not STOP.is_set()], exs): p
                for p, exs in todo.items()}
        for n, fut in enumerate(concurrent.futures.as_completed(futs), 1):
            done.update((r["id"], r) for r in fut.result())
            if opts.progress:
                print(f"  [{n}/{len(futs)}] {futs[fut]}", file=sys.stderr, flush=True)
    results = []
    if STOP.is_set():
        return results
    for exs in by_page.values():
        for e in exs:
            rep = done[first[fingerprint(e, opts.work)]]
            results.append(rep if rep["id"] == e.id else dict(
                rep, id=e.id, page=e.page, tier=e.tier, features=e.features, same_as=rep["id"]))
    return results


# -- reporting ----------------------------------------------------------------------------------

def counts(rs):
    c = collections.Counter(r["cls"] for r in rs)
    return {k: c.get(k, 0) for k in CLASSES}


def reasons(rs, classes=("refused", "crash", "warns", "skipped"), n=None):
    c = collections.Counter(gd.reason_key(r["reason"]) for r in rs if r["cls"] in classes)
    return c.most_common(n)


def _fmt(c):
    return ", ".join(f"{k} {v}" for k, v in c.items())


def _cell(s):
    return s.replace("|", "\\|").replace("\n", " ")


def summary(results, elapsed):
    out = [f"GOST docs examples: {len(results)} in {len({r['page'] for r in results})} pages, {elapsed:.0f} s",
           f"  all:    {_fmt(counts(results))}"]
    for t in (1, 2, 3):
        rs = [r for r in results if r["tier"] == t]
        out.append(f"  tier {t}: {_fmt(counts(rs))}  ({len(rs)})")
    i12 = [r for r in results if r["features"]]
    out.append(f"  issue-12 features: {_fmt(counts(i12))}  ({len(i12)})")
    for f in gd.FEATURES:
        rs = [r for r in results if f in r["features"]]
        if rs:
            out.append(f"    {f:24} {_fmt(counts(rs))}")
    for cls in ("crash", "refused", "warns", "skipped"):
        rs = reasons(results, (cls,), 25)
        if rs:
            out.append(f"{cls}, by reason:")
            out += [f"  {n:4}  {why}" for why, n in rs]
    crashes = [r for r in results if r["cls"] == "crash"]
    if crashes:
        out.append("crashes (bugs):")
        out += [f"  {r['id']}: {r['reason']}  argv={r['argv']}" for r in crashes]
    out.append("per page (tier, page: starts/warns/refused/crash/skipped):")
    by = collections.defaultdict(list)
    for r in results:
        by[r["page"]].append(r)
    for page, rs in sorted(by.items(), key=lambda kv: (gd.tier(kv[0]), kv[0])):
        c = counts(rs)
        out.append(f"  {gd.tier(page)} {page}: " + "/".join(str(c[k]) for k in CLASSES))
    return "\n".join(out)


def markdown(results, rev):
    by = collections.defaultdict(list)
    for r in results:
        by[r["page"]].append(r)
    out = ["# GOST docs examples under gostg", "",
           f"`bench/docs_examples.py` over go-gost/docs `en/docs/` (gostg {rev}): every `gost` command line and "
           "every YAML/JSON config block, moved onto 127.0.0.1, started with `bin/gostg`. *starts*: listening on "
           "all its ports with no config warning; *warns*: starts but logs a config warning (a GOST feature "
           "gostg does not build yet but that only observes or tunes, an unknown key …); *refused*: exits with "
           "a config error; *crash*: a Python traceback; *skipped*: needs what the box cannot give (TUN/TAP, "
           "iptables, named network namespaces) or a config file named only in prose. Config blocks with no "
           "service are checked, not run. Tier 1: getting started, core concepts, the protocol tutorials and "
           "the tutorials of common features; tier 2: other tutorials, concepts and the per-type reference; "
           "tier 3: blog.", "",
           "| | " + " | ".join(CLASSES) + " | examples |", "|---|" + "---:|" * (len(CLASSES) + 1)]
    for label, rs in [(f"tier {t}", [r for r in results if r["tier"] == t]) for t in (1, 2, 3)] + [
            ("issue-12 features", [r for r in results if r["features"]]), ("**all**", results)]:
        c = counts(rs)
        out.append(f"| {label} | " + " | ".join(str(c[k]) for k in CLASSES) + f" | {len(rs)} |")
    out += ["", "| tier | page | examples | starts | warns | refused | crash | skipped | main reasons |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for page, rs in sorted(by.items(), key=lambda kv: (gd.tier(kv[0]), kv[0])):
        c = counts(rs)
        why = "; ".join(f"{n}× {_cell(w)}" for w, n in reasons(rs, n=2))
        cells = " | ".join(str(c[k]) for k in CLASSES)
        out.append(f"| {gd.tier(page)} | {page} | {len(rs)} | {cells} | {why} |")
    out += ["", "## Reasons, all pages", "", "| class | examples | reason |", "|---|---:|---|"]
    for cls in ("crash", "refused", "warns", "skipped"):
        for why, n in reasons(results, (cls,)):
            out.append(f"| {cls} | {n} | {_cell(why)} |")
    return "\n".join(out) + "\n"


def git_rev():
    try:
        return subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", help="a go-gost/docs checkout (its en/docs/ is read)")
    ap.add_argument("--from-json", metavar="FILE", help="report on a previous run's --json output, run nothing")
    ap.add_argument("--only", nargs="+", metavar="PAGE",
                    help="pages under en/docs/: tutorials/dns.md, tutorials/protocols …")
    ap.add_argument("--feature", nargs="+", metavar="NAME", choices=sorted(gd.FEATURES),
                    help="only the examples of these issue-12 features (" + ", ".join(gd.FEATURES) + ")")
    ap.add_argument("--json", metavar="FILE", help="write every result as JSON")
    ap.add_argument("--md", default=os.path.join(HERE, "out", "docs_examples.md"),
                    help="markdown table (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=15.0,
                    help="seconds an example gets to listen (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=3, help="pages run at once (default %(default)s)")
    ap.add_argument("--gostg", default=os.path.join(ROOT, "bin", "gostg"))
    ap.add_argument("--python", default=sys.executable, help="the interpreter gostg runs on")
    ap.add_argument("--progress", action="store_true", help="a line per finished page on stderr")
    ap.add_argument("--fast", action="store_true",
                    help="do not start the examples gostg's in-process check refuses (about half): class them from it")
    ap.add_argument("--list", action="store_true", help="print the examples as rewritten, run nothing")
    ap.add_argument("--keep-logs", action="store_true", help="keep the temp dir and logs (path in the JSON)")
    opts = ap.parse_args(argv)
    if not (opts.docs or opts.from_json):
        ap.error("--docs (or --from-json) is required")
    t0 = time.monotonic()
    if opts.from_json:
        with open(opts.from_json) as f:
            return report(json.load(f), opts, 0.0)
    opts.work = tempfile.mkdtemp(prefix="gostg-docs-")
    try:
        by_page = collect(opts.docs, opts.only, opts.work, make_certs(os.path.join(opts.work, "certs")))
        if opts.feature:
            by_page = {p: kept for p, exs in by_page.items()
                       if (kept := [e for e in exs if set(e.features) & set(opts.feature)])}
        if opts.list:
            for exs in by_page.values():
                for e in exs:
                    print(e.id, e.kind, sorted(e.expect), e.skip or "", e.features,
                          e.argv if e.kind == "cli" else json.dumps(e.cfg))
            return 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: STOP.set())
        results = run_all(by_page, opts)
        if STOP.is_set():
            print("docs_examples: interrupted", file=sys.stderr)
            return 130
    finally:
        if not opts.keep_logs:
            shutil.rmtree(opts.work, ignore_errors=True)
    return report(results, opts, time.monotonic() - t0)


def report(results, opts, elapsed):
    print(summary(results, elapsed))
    os.makedirs(os.path.dirname(os.path.abspath(opts.md)), exist_ok=True)
    with open(opts.md, "w") as f:
        f.write(markdown(results, git_rev()))
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)
    print(f"markdown: {opts.md}" + (f", json: {opts.json}" if opts.json else ""))
    return 1 if any(r["cls"] == "crash" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
