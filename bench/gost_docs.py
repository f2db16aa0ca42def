"""GOST's docs examples as data: extraction from go-gost/docs markdown, rewriting onto loopback,
what each one should listen on, the static verdict gostg gives, and the labels the runner
reports with (issue-12 feature tags, page tiers, reason groups).

Pure (no process is started here); ``bench/docs_examples.py`` runs the examples and
``tests/unit/test_gost_docs_examples.py`` keeps a hand-checked table of verdicts. GOST's text is
read at run time from a docs checkout and never stored: an example is known by its id
(page, block index, line index)."""
import dataclasses
import ipaddress
import json
import os
import re
import shlex
import socket

import yaml

# -- markdown -----------------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
#: fenced-block languages that hold shell command lines
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "text", "txt"}
CONFIG_LANGS = {"yaml", "yml", "json"}


@dataclasses.dataclass
class Block:
    index: int      # the block's position among the page's fenced blocks, from 0
    lang: str
    line: int       # 1-based line number of the block's first body line
    text: str


def blocks(markdown):
    """Every fenced code block of a page, as a reader sees it rendered: tabs expanded to
    4-column stops (mkdocs does; GOST's pages mix tabs and spaces inside YAML) and the fence's
    own indentation (tabbed ``=== "CLI"`` panes) removed."""
    lines = markdown.expandtabs(4).splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        j = i + 1
        while j < len(lines) and not re.fullmatch(rf" *{re.escape(fence[0])}{{{len(fence)},}} *", lines[j]):
            j += 1
        body = [ln[indent:] if not ln[:indent].strip() else ln.lstrip() for ln in lines[i + 1:j]]
        lang = (m["info"].split() or [""])[0].lower().lstrip(".")
        out.append(Block(len(out), lang, i + 2, "\n".join(body)))
        i = j + 1
    return out


# -- command lines ------------------------------------------------------------------------------

_PREFIXES = re.compile(r"^(?:\$\s+|sudo\s+|\./|/\S+/(?=gost\b))+")
_NETNS_EXEC = re.compile(r"^ip\s+netns\s+exec\s+\S+\s+")
_SHELL_STOP = {"&", "&&", "||", "|", ";", ">", ">>", "2>&1", "<"}


def commands(text):
    """→ [(line index within the block, argv after ``gost``, note)] for every ``gost`` command
    line of a shell block; continuation lines (trailing ``\\``) are joined, a leading prompt,
    ``sudo`` or ``./`` dropped, the shell tail (``&``, ``| tee``, ``> log``) cut. ``note`` is
    ``"netns"`` when the line runs inside ``ip netns exec``, else ``""``."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        start, line = i, lines[i]
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        i += 1
        s = line.strip()
        note = "netns" if _NETNS_EXEC.match(s) else ""
        s = _PREFIXES.sub("", _NETNS_EXEC.sub("", s))
        if not re.match(r"gost(\s|$)", s):
            continue
        try:
            argv = shlex.split(s, comments=True)
        except ValueError:
            continue
        for k, tok in enumerate(argv):
            if tok in _SHELL_STOP:
                argv = argv[:k]
                break
        out.append((start, argv[1:], note))
    return out


# -- configs ------------------------------------------------------------------------------------

def top_keys():
    from gostg.config.schema import TOP
    return set(TOP)


def config_of(block):
    """The GOST config a YAML/JSON block holds (a dict of GOST's top-level keys only;
    ``services`` a list, which tells it from docker-compose), None when it holds something
    else (API replies, log records, k8s manifests), or a string: why it does not parse."""
    try:
        data = json.loads(block.text) if block.lang == "json" else yaml.safe_load(block.text)
    except json.JSONDecodeError:
        return None     # docs' JSON blocks are API replies and log records, often abridged
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        looks_like_config = re.search(r"^(services|chains|hops|bypasses|resolvers|hosts|admissions|authers)\s*:",
                                      block.text, re.M)
        return (f"not valid YAML (line {mark.line + 1})" if mark else "not valid YAML") if looks_like_config else None
    if not isinstance(data, dict) or not data or not set(data) <= top_keys():
        return None
    if "services" in data and not isinstance(data["services"], list):
        return None
    return data


def runnable(cfg):
    """Mirrors gostg's own rule (cli.runnable): services, or only an API/metrics endpoint."""
    return bool(cfg.get("services") or (cfg.get("api") or {}).get("addr") or (cfg.get("metrics") or {}).get("addr"))


# -- the verdict gostg's --check gives, in process ------------------------------------------------

def verdict(cfg):
    """Sorted distinct ``(level, path)`` of the schema's problems with ``cfg`` (validate, then
    the startup warnings when there is no error); open-proxy and open-API warnings left out:
    most docs examples listen on every interface."""
    return sorted({(p.level, p.path) for p in problems(cfg)})


def problems(cfg):
    """The Problem objects behind :func:`verdict`, in gostg's order."""
    from gostg.config.refs import config_warnings
    from gostg.config.validate import validate
    ps = validate(cfg)
    if not any(p.level == "error" for p in ps):
        ps += config_warnings(cfg)
    return [p for p in ps if "open proxy" not in p.message and "open Web API" not in p.message]


# -- rewriting onto loopback --------------------------------------------------------------------

LOOPBACK = "127.0.0.1"
#: listeners whose port is bound by the chain's last node, not by this process
REMOTE_LISTENERS = {"rtcp", "rudp", "runix"}
UNIX_TYPES = {"unix", "runix"}
#: types an example cannot be run with on a shared box, and why
SKIP_TYPES = {"tun": "creates a TUN device", "tap": "creates a TAP device", "tungo": "creates a TUN device",
              "serial": "needs a serial port"}
_CERT_KEYS = {"certfile": "cert.pem", "keyfile": "key.pem", "cafile": "ca.pem",
              "mitm.certfile": "cert.pem", "mitm.keyfile": "key.pem"}
#: -L/-F query keys whose value is a list of upstream addresses (in a file, ``resolver`` names
#: an object and ``nameservers`` are objects with an ``addr``)
_ADDR_LIST_KEYS = {"dns", "resolver", "nameserver"}
_CFG_ADDR_LIST_KEYS = {"dns"}


def free_port():
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_ports(n, tries=50):
    """``n`` consecutive ports free on loopback right now (for GOST's port ranges)."""
    for _ in range(tries):
        base = free_port()
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                # a port left in TIME_WAIT by an earlier benchmark is free for a listener
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((LOOPBACK, p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError(f"no {n} consecutive free ports")


class Ports:
    """One docs page's port plan: every port an example listens on gets one free loopback port
    (the same one across the page, so a client's ``-F relay://server:8420`` reaches the page's
    ``-L relay://:8420``); any other remote address gets a loopback port nobody listens on."""

    def __init__(self, alloc=free_port, alloc_range=free_ports):
        self.listened, self.dead = {}, {}
        self._alloc, self._alloc_range = alloc, alloc_range

    def _range(self, spec, table, key):
        a, _, b = spec.partition("-")
        if key not in table:
            n = int(b) - int(a) + 1 if b else 1
            table[key] = self._alloc_range(n) if b else self._alloc()
        lo = table[key]
        return f"{lo}-{lo + int(b) - int(a)}" if b else str(lo)

    def listen(self, spec):
        if not re.fullmatch(r"\d+(-\d+)?", spec or "") or spec == "0":
            return str(self._alloc())     # no port or port 0: any free port
        return self._range(spec, self.listened, spec)

    def remote(self, host, spec):
        if spec in self.listened:
            return self._range(spec, self.listened, spec)
        if not re.fullmatch(r"\d+(-\d+)?", spec or ""):
            spec = ""
        return self._range(spec, self.dead, (host, spec))


def split_hostport(hp):
    """``host:port`` / ``[v6]:port`` / ``:port`` / ``host`` → (host, port spec)."""
    if hp.startswith("["):
        host, _, rest = hp[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if hp.count(":") > 1:   # bare IPv6, no port
        return hp, ""
    host, sep, port = hp.rpartition(":")
    return (host, port) if sep else (hp, "")


@dataclasses.dataclass
class Url:
    """GOST's ``[scheme://][auth@]host:port[,host:port…][/target,target…][?query]``."""
    scheme: str
    auth: str
    hosts: list
    path: str
    query: str

    @classmethod
    def parse(cls, raw):
        scheme, sep, rest = raw.partition("://")
        if not sep:
            scheme, rest = "", raw
        rest, _, query = rest.partition("?")
        authority, slash, path = rest.partition("/")
        auth, _, hostlist = authority.rpartition("@")
        return cls(scheme, auth, hostlist.split(","), slash + path, query)

    def __str__(self):
        out = f"{self.scheme}://" if self.scheme else ""
        out += f"{self.auth}@" if self.auth else ""
        out += ",".join(self.hosts) + self.path
        return out + (f"?{self.query}" if self.query else "")


def _loop(port):
    return f"{LOOPBACK}:{port}"


def _remote_addr(addr, ports):
    """One upstream address (``host:port``, ``scheme://host:port/path``, ``1.1.1.1``) → the
    same on loopback."""
    addr = str(addr)
    if "://" in addr:
        u = Url.parse(addr)
        if u.scheme in UNIX_TYPES:
            return addr
        u.hosts = [_loop(ports.remote(*split_hostport(h))) for h in u.hosts]
        return str(u)
    host, port = split_hostport(addr)
    return _loop(ports.remote(host, port))


class Files:
    """Stand-ins for the files an example names: certificates → ``certs`` (a self-signed
    certificate, its key, itself as CA), anything else → an empty file (or directory) of the
    same name under ``root``."""

    def __init__(self, root, certs):
        self.root, self.certs = root, certs

    def cert(self, key):
        return os.path.join(self.certs, _CERT_KEYS[key.lower()])

    def file(self, path):
        p = os.path.join(self.root, os.path.basename(str(path).rstrip("/")) or "file")
        if not os.path.exists(p):
            os.makedirs(self.root, exist_ok=True)
            open(p, "a").close()
        return p

    def dir(self, path):
        p = os.path.join(self.root, "dir-" + (os.path.basename(str(path).rstrip("/")) or "root"))
        os.makedirs(p, exist_ok=True)
        return p


def _interface(v):
    try:
        ipaddress.ip_address(str(v))
        return LOOPBACK
    except ValueError:
        return "lo"


def _query(query, ports, files, notes):
    """Rewrite the query keys of a -L/-F URL that name addresses, files or interfaces."""
    out = []
    for part in query.split("&") if query else []:
        k, eq, v = part.partition("=")
        kl = k.lower()
        if kl in ("netns", "netns.out"):
            notes.add("netns")
        elif kl in _ADDR_LIST_KEYS and v:
            v = ",".join(_remote_addr(a, ports) for a in v.split(","))
        elif kl in _CERT_KEYS and v:
            v = files.cert(kl)
        elif kl == "interface" and v:
            v = _interface(v)
        elif kl == "proberesist" and v.startswith("file:"):
            v = "file:" + files.file(v[5:])
        elif kl == "dir" and v:
            v = files.dir(v)
        out.append(k + eq + v)
    return "&".join(out)


def rewrite_url(raw, ports, files, listen, notes):
    """One -L (``listen``) or -F URL → the same on loopback; ``notes`` collects what makes the
    example unrunnable here (``netns``)."""
    u = Url.parse(raw)
    types = set(u.scheme.split("+")) if u.scheme else set()
    if types & UNIX_TYPES:
        return raw
    if listen:
        u.hosts = [_loop(ports.listen(split_hostport(h)[1])) for h in u.hosts]
        if u.path.strip("/"):
            u.path = "/" + ",".join(_remote_addr(t, ports) for t in u.path[1:].split(","))
    else:
        u.hosts = [_loop(ports.remote(*split_hostport(h))) for h in u.hosts]
    u.query = _query(u.query, ports, files, notes)
    return str(u)


_LISTEN_FLAGS = {"L": True, "F": False, "api": True, "metrics": True}


def rewrite_argv(argv, ports, files, notes):
    """GOST's argv (``-L x``, ``-L=x``, ``--`` groups …) with every -L/-F/-api/-metrics
    address rewritten; other arguments kept."""
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        flag, eq, val = tok.partition("=")
        name = flag.lstrip("-")
        if not flag.startswith("-") or name not in _LISTEN_FLAGS or flag == "--":
            out.append(tok)
            continue
        if not eq:
            if i >= len(argv):
                out.append(tok)
                continue
            val, i = argv[i], i + 1
        if name in ("api", "metrics"):
            auth, _, hp = val.rpartition("@")
            hp, q, query = hp.partition("?")
            val = (auth + "@" if auth else "") + _loop(ports.listen(split_hostport(hp)[1])) + q + query
        else:
            val = rewrite_url(val, ports, files, _LISTEN_FLAGS[name], notes)
        out += [f"{flag}={val}"] if eq else [flag, val]
    return out


def _listen_addr(addr, ports):
    return _loop(ports.listen(split_hostport(str(addr))[1]))


def rewrite_config(cfg, ports, files, notes):
    """A GOST config (from a YAML/JSON block) → a copy on loopback: services', API's and
    metrics' addresses listen on the page's ports; every other ``addr``, upstream and resolver
    on loopback; files and certificates replaced; interfaces → ``lo``."""
    cfg = json.loads(json.dumps(cfg, default=str))

    def walk(o, parent=""):
        if isinstance(o, list):
            return [walk(x, parent) for x in o]
        if not isinstance(o, dict):
            return o
        for k, v in list(o.items()):
            kl = str(k).lower()
            if kl in ("netns", "netns.out"):
                notes.add("netns")
            elif kl == "addr" and isinstance(v, (str, int)) and parent not in ("services", "api", "metrics"):
                o[k] = _remote_addr(v, ports)
            elif kl in _CFG_ADDR_LIST_KEYS and isinstance(v, (str, list)):
                items = v if isinstance(v, list) else str(v).split(",")
                o[k] = [walk(x, kl) if isinstance(x, dict) else _remote_addr(x, ports) for x in items]
            elif kl in _CERT_KEYS and isinstance(v, str) and v:
                o[k] = files.cert(kl)
            elif kl == "interface" and v:
                o[k] = _interface(v)
            elif kl == "path" and parent == "file" and v:
                o[k] = files.file(v)
            elif kl == "output" and parent == "log" and v not in ("", "stdout", "stderr", "none"):
                o[k] = files.file(v)
            elif kl == "dir" and isinstance(v, str) and v:
                o[k] = files.dir(v)
            elif kl == "proberesist" and isinstance(v, str) and v.startswith("file:"):
                o[k] = "file:" + files.file(v[5:])
            else:
                o[k] = walk(v, kl)
        return o

    for s in cfg.get("services") or []:
        if isinstance(s, dict) and "addr" in s and not _is_unix(s):
            s["addr"] = _listen_addr(s["addr"], ports)
    for top in ("api", "metrics"):
        if isinstance(cfg.get(top), dict) and cfg[top].get("addr"):
            cfg[top]["addr"] = _listen_addr(cfg[top]["addr"], ports)
    for k in list(cfg):
        cfg[k] = walk(cfg[k], k)
    return cfg


def _type(s, part):
    d = s.get(part) if isinstance(s, dict) else None
    return str(d.get("type") or "").lower() if isinstance(d, dict) else ""


def _is_unix(s):
    return bool({_type(s, "handler"), _type(s, "listener")} & UNIX_TYPES)


def expectations(cfg):
    """→ (ports gostg must listen on, why the example cannot run here or ""). A service whose
    listener binds on the chain's last node (rtcp, rudp) or on a unix socket is not expected
    to listen here."""
    want = set()
    for s in cfg.get("services") or []:
        types = {_type(s, "handler"), _type(s, "listener")}
        for t in types:
            if t in SKIP_TYPES:
                return set(), f"{t}: {SKIP_TYPES[t]}"
        if types & (REMOTE_LISTENERS | UNIX_TYPES) or not isinstance(s.get("addr"), str):
            continue
        want |= _ports_of(s["addr"])
    for top in ("api", "metrics"):
        addr = (cfg.get(top) or {}).get("addr") if isinstance(cfg.get(top), dict) else None
        if addr:
            want |= _ports_of(addr)
    return want, ""


def _ports_of(addr):
    spec = split_hostport(str(addr))[1]
    a, _, b = spec.partition("-")
    if not a.isdigit():
        return set()
    return set(range(int(a), int(b or a) + 1))


def cli_configs(argv):
    """gostg's own reading of a rewritten argv → one config model per ``--`` group (each runs
    as its own process), or None when it does not read (the run will report why)."""
    from gostg.cli import _scan, parse_api, parse_metrics
    from gostg.config.cmdline import from_args
    from gostg.process import split_groups
    out = []
    for g in split_groups(argv):
        opts, errors = _scan(g)
        if errors:
            return None
        try:
            cfg = from_args(opts["-L"], opts["-F"])
            if opts.get("--api"):
                cfg["api"] = parse_api(opts["--api"])
            if opts.get("--metrics"):
                cfg["metrics"] = parse_metrics(opts["--metrics"])
        except Exception:   # a URL gostg does not read (ConfigError …)
            return None
        out.append(cfg)
    return out


def merged(cfgs):
    """The groups' configs as one, for what they listen on."""
    out = {"services": [s for c in cfgs for s in c.get("services") or []]}
    for c in cfgs:
        out.update({k: c[k] for k in ("api", "metrics") if c.get(k)})
    return out


# -- labels -------------------------------------------------------------------------------------

#: issue 12's features → a pattern over the example's text (command line or config as JSON)
FEATURES = {
    "dns": r"(^|[\s\"'/+])dns(\+\w+)?://|\"type\":\s*\"dns\"",
    "mtcp": r"\bmtcp\b",
    "mux": r"mux\.(version|type|maxStreamWindow)|\"mux\"",
    "selector": r"strategy[\"']?[:=]\s*[\"']?(parallel|lowestlatency)",
    "probe": r"[\"&?]probe[\"\.]",
    "direct/virtual": r"(^|[\s\"'])(direct|virtual)(\+\w+)?://|\"type\":\s*\"(direct|virtual)\"",
    "sniffing": r"sniffing",
    "filter/matcher": r"\"(filter|matcher)\":",
    "proxyProtocol": r"proxyProtocol",
    "probeResist/knock": r"probeResist|\bknock\b",
    "interface/so_mark/netns": r"\binterface\b|so_mark|sockopts|\bnetns\b",
}


def features(text):
    return sorted(f for f, pat in FEATURES.items() if re.search(pat, text))


TIER1_PAGES = {
    "concepts/" + p + ".md" for p in
    "service chain hop selector bypass admission auth hosts resolver limiter forwarder load-balancing".split()
} | {"tutorials/" + p + ".md" for p in
     "port-forwarding tls dns reverse-proxy probe sniffing proxy-protocol probe-resistance".split()} | {
    "reference/configuration/cmd.md", "reference/configuration/file.md"}


def tier(page):
    """1: getting started, the core concepts, the tutorials of the common protocols and of
    issue 12's features, the command-line/file reference. 2: other tutorials and concepts, the
    per-type reference pages, the API. 3: blog posts and everything else."""
    if page.startswith(("getting-started/", "tutorials/protocols/")) or page in TIER1_PAGES:
        return 1
    if page.startswith(("tutorials/", "concepts/", "reference/")):
        return 2
    return 3


def reason_key(line):
    """A log line → the reason it stands for, with indexes, ports and temp paths blanked and
    the object path cut to its last part, so the same cause groups across examples."""
    s = re.sub(r"^gostg: (config )?(error|warning): ", "", line.strip())
    s = re.sub(r"\s*\((GOST docs|built|gostg uses|gostg marks)[^)]*\)", "", s)
    s = re.sub(r" is not built by gostg yet, and running without it would change who gets in or where traffic goes",
               " not built", s)
    s = re.sub(r" is not built by gostg yet: not active", " not built (not active)", s)
    s = re.sub(r" is not built by gostg yet", " not built", s).partition("; ")[0]
    path, sep, msg = s.partition(": ")
    if sep and " " not in path and ("." in path or "[" in path or path in top_keys()):
        last = path.rsplit(".", 1)[-1]
        s = msg if last == "type" and re.match(r"\w+ type '", msg) else f"{last}: {msg}"
    s = re.sub(r"\[\d+\]", "[]", s)
    s = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:P", s)
    s = re.sub(r"(/tmp|/var/tmp)/\S+", "TMP", s)
    s = re.sub(r"'service-\d+'|service-\d+", "service-N", s)
    return s[:160]
