"""gostg - GO Simple Tunnel, in Python (GOST v3 command line).

Usage:
  gostg [options] [-L <service>]... [-F <node>]... [-C <config>]...
  gostg -V
  gostg -h

Options:
  -L <service>      service address, e.g. socks5://user:pass@:1080 (repeatable)
  -F <node>         chain node address; each -F is one hop of chain-0 (repeatable)
  -C <config>       config file (.yaml/.json), http(s):// URL, - for stdin, or inline JSON
                    (repeatable, merged)
  -O <format>       print the merged effective config as yaml or json, then exit
  -D                debug log level
  --DD              trace log level
  --api <addr>      Web API address, [user:pass@][host]:port[?pathPrefix=/api&accesslog=true]
  --metrics <addr>  Prometheus metrics endpoint, [user:pass@][host]:port[?path=/metrics&clientLabel=false]
                    or unix:///path.sock
  -R <duration>     reload the config periodically
  --workers <n>     worker processes sharing each port (a number, or auto: one per core)
  --check           check the config (-C, -L, -F) without binding anything, print every problem
  -V                print the version and exit
  -h --help         show this help

Arguments split by -- run as separate processes, each with its own chain (and its own
workers, when it asks for them).
Exit status 1 on any error, printed once on stderr as "gostg: config error: <where>: <what>".
"""
# Only the standard library at import time: a group that serves patches gevent (run_group)
# before the rest of gostg, the libraries it drives and their stdlib imports are loaded; -V,
# -h, -O, --check and the -- supervisor never load gevent at all.
import os
import sys

from . import __version__

#: every flag GOST's command line has (canonical spelling) → whether it takes a value
FLAGS = {"-L": True, "-F": True, "-C": True, "-O": True, "-R": True, "--api": True, "--metrics": True,
         "--workers": True,
         "-D": False, "--DD": False, "-V": False, "-h": False, "--check": False}
#: flags that add up when repeated; any other repeated flag takes its last value (Go's flag)
REPEATABLE = ("-L", "-F", "-C")
#: Go's flag package accepts -flag and --flag alike; the usage text has one spelling
_ALIASES = {"-api": "--api", "-metrics": "--metrics", "-DD": "--DD", "-check": "--check", "--help": "-h",
            "-help": "-h", "--h": "-h", "--D": "-D", "--L": "-L", "--F": "-F", "--C": "-C", "--O": "-O",
            "--V": "-V", "--R": "-R", "-workers": "--workers"}
#: strconv.ParseBool, which Go's flag uses for -flag=value of a boolean flag
_BOOL_WORDS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
OUTPUT_FORMATS = ("yaml", "json")


class UsageError(Exception):
    """The command line itself is wrong (unknown flag, missing value): ``flag`` and ``msg``."""

    def __init__(self, flag, msg):
        super().__init__(f"{flag}: {msg}" if flag else msg)
        self.flag, self.msg = flag, msg


def _scan(argv):
    """→ ({canonical flag: value}, [UsageError]) for one argument group, GOST's flag rules:
    ``-flag value``, ``-flag=value``, ``--flag``; a repeated single-valued flag keeps its last
    value; ``-L/-F/-C`` accumulate. Scanning goes on past errors so -V and -h are always seen."""
    opts = {f: [] for f in REPEATABLE}
    errors = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if not a.startswith("-") or a == "-":
            errors.append(UsageError("", f"unexpected argument {a!r} (every value follows its flag, e.g. -L {a})"))
            continue
        flag, eq, val = a.partition("=")
        flag = _ALIASES.get(flag, flag)
        if flag not in FLAGS and len(a) > 2 and a[:2] in FLAGS and FLAGS[a[:2]]:
            flag, eq, val = a[:2], "=", a[2:]   # -Lsocks5://:1080, as docopt and getopt take it
        if flag not in FLAGS:
            errors.append(UsageError(a.partition("=")[0], "unknown flag"))
            continue
        if not FLAGS[flag]:
            if eq:
                b = _BOOL_WORDS.get(val.lower())
                if b is None:
                    errors.append(UsageError(flag, f"invalid boolean value {val!r}"))
                    continue
                opts[flag] = b
            else:
                opts[flag] = True
            continue
        if not eq:
            if i >= len(argv):
                errors.append(UsageError(flag, "flag needs an argument"))
                continue
            val = argv[i]
            i += 1
        if flag in REPEATABLE:
            opts[flag].append(val)
        else:
            opts[flag] = val
    return opts, errors


def normalize(argv):
    """GOST-style arguments → the canonical argv of the usage above: one spelling per flag,
    ``-flag value`` pairs, one occurrence of each single-valued flag (the last one given).
    Raises :class:`UsageError` for an unknown flag or a missing value."""
    opts, errors = _scan(argv)
    if errors:
        raise errors[0]
    out = []
    for flag, takes_value in FLAGS.items():
        v = opts.get(flag)
        if flag in REPEATABLE:
            for x in v:
                out.extend([flag, x])
        elif takes_value and v is not None:
            out.append(f"{flag}={v}" if flag.startswith("--") else flag)
            if not flag.startswith("--"):
                out.append(v)
        elif not takes_value and v:
            out.append(flag)
    return out


def parse(argv):
    """→ docopt's argument dict for one argument group (raises UsageError). The flag scan above
    takes Go's flag syntax; docopt then parses its canonical form against the usage text
    (about 8 ms with bytecode, once per process)."""
    from docopt import DocoptExit, docopt

    try:
        return docopt(__doc__, argv=normalize(argv), default_help=False)
    except DocoptExit:
        raise UsageError("", "cannot parse the command line") from None


def version():
    import platform

    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"gostg {__version__} (python {platform.python_version()} {sys.platform}/{machine})"


def usage():
    return __doc__.strip()


# -- reporting: one format, once, on stderr ----------------------------------------------------

def _text(path, msg, suggestion=None):
    if suggestion and "did you mean" not in msg:
        msg = f"{msg} (did you mean {suggestion!r}?)"
    return f"{path}: {msg}" if path else msg


def say(level, path, msg, suggestion=None):
    """Print ``gostg: config <level>: <path>: <msg>`` on stderr (level: error or warning)."""
    print(f"gostg: config {level}: {_text(path, msg, suggestion)}", file=sys.stderr, flush=True)


def report(problems):
    """Print each validation problem once; → True if any is an error."""
    for p in problems:
        say(p.level, p.path, p.message, p.suggestion)
    return any(p.level == "error" for p in problems)


# -- the config -----------------------------------------------------------------------------

def build_config(args, stdin=None):
    """The merged config model of the -C sources, -L/-F and the flags (no validation beyond
    what parsing needs: :func:`problems` does that)."""
    from .config import cmdline, load
    from .config.metadata import parse_duration

    sources = [load.load_source(c, stdin) for c in args["-C"]]
    if not sources and not args["-L"] and not args["--api"]:
        path = load.find_default()
        if path:
            sources.append(load.load_source(path))
    cli = cmdline.from_args(args["-L"], args["-F"])
    cfg = load.merge(sources + [cli])
    api = args["--api"] or os.environ.get("GOST_API")
    if api:
        cfg["api"] = parse_api(api)
    if args["--metrics"]:    # GOST: the flag replaces the config's metrics object …
        cfg["metrics"] = parse_metrics(args["--metrics"])
    elif os.environ.get("GOST_METRICS"):   # … the variable only its address (and what it says)
        cfg["metrics"] = {**(cfg.get("metrics") or {}), **parse_metrics(os.environ["GOST_METRICS"])}
    level = "trace" if args["--DD"] else "debug" if args["-D"] else os.environ.get("GOST_LOGGER_LEVEL")
    if level:
        cfg["log"] = {**(cfg.get("log") or {}), "level": level}
    if args["-R"]:
        parse_duration(args["-R"], "-R")  # a bad period is a config error before anything binds
    if args.get("--workers") is not None:   # as -api and -metrics: the flag replaces the key
        w = str(args["--workers"]).strip()
        cfg["workers"] = int(w) if w.isdigit() else w
    return cfg


def _endpoint(raw, scheme, flag):
    """``[user:pass@][host]:port[?k=v…]`` (GOST's -api/-metrics) → (addr, auth or None, query)."""
    from .config import cmdline

    url = cmdline.URL(raw if "://" in raw else f"{scheme}://{raw}", flag)
    auth = {"username": url.user, "password": url.password or ""} if url.user is not None else None
    # unix:///path (a Unix socket): GOST's flag loses the path (url.Host is empty); kept here
    return (f"unix://{url.path}" if url.scheme == "unix" else url.host), auth, url.query


def parse_metrics(raw):
    """``[user:pass@][host]:port[?path=/metrics&clientLabel=false]`` or ``unix:///path[?…]`` →
    GOST's ``metrics`` object (``clientLabel`` is gostg's: drop the ``client`` label)."""
    addr, auth, query = _endpoint(raw, "metrics", "-metrics")
    out = {"addr": addr}
    if query.get("path"):
        out["path"] = query["path"]
    if auth:
        out["auth"] = auth
    if query.get("clientLabel"):
        out["metadata"] = {"clientLabel": query["clientLabel"].lower() not in ("false", "0", "no", "off")}
    return out


def parse_api(raw):
    """``[user:pass@][host]:port[?pathPrefix=/api&accesslog=true]`` → GOST's ``api`` object."""
    addr, auth, query = _endpoint(raw, "api", "-api")
    api = {"addr": addr}
    if query.get("pathPrefix"):
        api["pathPrefix"] = query["pathPrefix"]
    if query.get("accesslog", query.get("accessLog", "")).lower() in ("true", "1", "yes"):
        api["accesslog"] = True
    if auth:
        api["auth"] = auth
    return api


def runnable(cfg):
    """GOST runs with services, or with only a Web API or metrics endpoint."""
    return bool(cfg.get("services") or cfg.get("api") or cfg.get("metrics"))


def dump(cfg, fmt):
    from .config import model

    cfg = model.canonical(cfg)
    if fmt == "json":
        import json

        return json.dumps(cfg, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


class _Collector:
    """A stand-in logger for the dry build of ``--check``: keeps warnings and errors the
    builders log, drops the rest."""

    def __init__(self, lines=None):
        self.lines = [] if lines is None else lines

    def bind(self, **_):
        return self

    def warning(self, msg, *_, **__):
        self.lines.append(("warning", str(msg)))

    warn = warning

    def error(self, msg, *_, **__):
        self.lines.append(("error", str(msg)))

    exception = critical = error

    def __getattr__(self, _name):   # info, debug, msg …: not problems
        return lambda *a, **k: None


def _split(text):
    path, sep, msg = text.partition(": ")
    if sep and path and " " not in path:
        return path, msg
    return "", text


def dry_build(cfg):
    """Build every object and service of ``cfg`` as startup would, binding nothing → the
    problems the builders find that the schema does not (a missing certificate file …)."""
    from .config.validate import Problem
    from .errors import ConfigError, GostgError
    from .runtime import Gost

    found = []
    log = _Collector()
    try:
        Gost(cfg, logger=log).build_unbound()
    except ConfigError as exc:
        found.append(Problem("error", exc.path, exc.msg, exc.suggestion))
    except (GostgError, TypeError, ValueError, AttributeError, KeyError, OSError) as exc:
        found.append(Problem("error", "services", f"invalid config: {exc}"))
    for level, text in log.lines:
        if level == "warning" and text.startswith("config: "):
            text = text[len("config: "):]
        found.append(Problem(level, *_split(text)))
    return found


def problems(cfg, build=False):
    """Every problem of ``cfg``, each once: the schema's, then (when it found no error) what
    only building finds (``build``: ``--check``), then dangling references and open proxies."""
    from .config.refs import config_warnings
    from .config.validate import validate

    found = validate(cfg)
    for more in ((dry_build, config_warnings) if build else (config_warnings,)):
        if not any(p.level == "error" for p in found):
            _add(found, more(cfg))
    return found


def _add(found, more):
    seen = {(p.level, str(p)) for p in found}
    for p in more:
        if (p.level, str(p)) not in seen:
            seen.add((p.level, str(p)))
            found.append(p)


def check(cfg):
    """``--check``: every problem, errors and warnings, each once → exit status."""
    found = problems(cfg, build=True)
    if not runnable(cfg) and not any(p.level == "error" for p in found):
        from .config.validate import Problem
        found.append(Problem("error", "services", "nothing to run: no services, api or metrics"))
    if report(found):
        return 1
    n = sum(p.level == "warning" for p in found)
    print("gostg: config OK" + (f" ({n} warning{'s' * (n != 1)})" if n else ""))
    return 0


# -- running ----------------------------------------------------------------------------------

def _serve(cfg, args, warnings=(), workers=1):
    import signal

    import gevent

    from .config.metadata import parse_duration
    from .errors import ChangeError, ConfigError
    from .observe.log import from_config
    from .runtime import Gost, freeze_start_up, stop_on_signals

    log_cfg = cfg.get("log") or {}
    output = log_cfg.get("output", "stderr") if isinstance(log_cfg, dict) else "stderr"
    log = from_config(log_cfg)
    if output not in (None, "", "stderr", "none", "null"):
        for p in warnings:   # printed on stderr already; the log file gets them too
            log.warning(f"config: {p}", path=p.path)

    def sources():
        return build_config(args)

    # run_group found every problem and showed the warnings: build() neither checks nor logs again
    if workers > 1:   # a supervisor of worker processes (gostg.workers)
        from .workers.control import Controller
        g = Controller(cfg, workers, logger=log, sources=sources, reported=warnings, checked=True)
    else:
        g = Gost(cfg, logger=log, sources=sources, reported=warnings, checked=True)
    from .config import remote

    files = [c for c in args["-C"] if c.strip() not in ("-",) and not c.strip().startswith("{")]
    urls = [remote.shown(c) for c in files if remote.is_url(c)]
    # POST /config saves to the one -C file; a config read from a URL is never written back
    # there (nor, unasked, to gost.yaml in the working directory): the API asks for path=
    g.save_path = files[0] if len(files) == 1 and not urls else None
    g.save_url = urls[0] if urls else None
    g.build()   # binds every service; a ConfigError (port in use …) reaches main()
    _, done = stop_on_signals(g, lambda signame: g.log.info(f"{signame}: stopping"))

    last_failure = [None]

    def reload(source="SIGHUP"):
        try:
            g.reload()
        except (ChangeError, ConfigError) as exc:
            # a periodic reload of a broken file says so once, not every period
            if source == "SIGHUP" or str(exc) != last_failure[0]:
                g.log.error(f"{source}: reload failed, running config kept: {exc}")
            last_failure[0] = str(exc)
        else:
            if last_failure[0] is not None:
                g.log.info(f"{source}: reload works again")
            last_failure[0] = None

    gevent.signal_handler(signal.SIGHUP, reload)
    g.start()
    freeze_start_up()
    period = parse_duration(args["-R"], "-R") if args["-R"] else 0
    if period > 0:
        def every():
            while True:
                gevent.sleep(period)
                reload("-R")
        gevent.spawn(every)
    if not g.services:
        g.log.warning("no services configured")
    # a timed wait keeps the hub busy even with nothing listening (a metrics-only config)
    while not done.wait(3600):
        pass
    return 0


def serves(args):
    """Whether a parsed group runs services (the rest run to completion: no gevent patching)."""
    return not args["--check"] and not args["-O"]


def run_group(args):
    """One argument group, parsed: check, print (-O) or serve → exit status."""
    if args["-O"] is not None and args["-O"] not in OUTPUT_FORMATS:
        say("error", "-O", f"unknown format {args['-O']!r} (use yaml or json)")
        return 1
    if serves(args):
        from .patching import patch

        patch()
    cfg = build_config(args)
    if args["--workers"] is not None:   # a bad flag is an error in every mode, --check included
        from .workers import count
        count(args["--workers"], "-workers")
    if args["--check"]:
        return check(cfg)
    found = problems(cfg)
    if report(found):
        return 1
    if args["-O"]:
        sys.stdout.write(dump(cfg, args["-O"]))
        sys.stdout.flush()
        return 0
    if not runnable(cfg):
        print(usage(), file=sys.stderr)
        return 1
    from .workers import wanted

    return _serve(cfg, args, [p for p in found if p.level == "warning"], wanted(cfg, args["--workers"]))


def _main(argv):
    from .process import split_groups, supervise

    groups = split_groups(argv) or [[]]
    scanned = [_scan(g) for g in groups]
    # GOST: -V prints the version whatever else is given; then -h, then flag errors
    if any(opts.get("-V") for opts, _ in scanned):
        print(version())
        return 0
    if any(opts.get("-h") for opts, _ in scanned):
        print(usage())
        return 0
    for _, errors in scanned:
        for e in errors[:1]:
            say("error", e.flag, e.msg)
            print(usage(), file=sys.stderr)
            return 1
    parsed = [parse(g) for g in groups]
    if len(groups) == 1:
        return run_group(parsed[0])
    if any(a["--check"] for a in parsed):   # --check anywhere checks every group
        for a in parsed:
            a["--check"] = True
    if all(a["--check"] or a["-O"] for a in parsed):
        # run-to-completion modes: each group in turn (the supervisor would stop the others
        # as soon as the first one exits)
        return max(run_group(a) for a in parsed)
    return supervise(groups)


def _debug_wanted(argv):
    opts, _ = _scan(argv)
    return bool(opts.get("-D") or opts.get("--DD")) or \
        os.environ.get("GOST_LOGGER_LEVEL", "").lower() in ("debug", "trace")


def main(argv=None):
    """The command line → exit status. Never lets a traceback reach the user (except with -D,
    after the one-line message)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        say("error", exc.flag, exc.msg)
        print(usage(), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # stdout closed early (gostg -O yaml | head): nothing more to say, and nothing for
        # Python to complain about at exit
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except Exception as exc:   # noqa: BLE001 - the top level: one line, never a traceback
        from .errors import ConfigError

        if _debug_wanted(argv):
            import traceback
            traceback.print_exc()
        if isinstance(exc, ConfigError):
            say("error", exc.path, exc.msg, exc.suggestion)
        elif isinstance(exc, OSError):
            what = exc.strerror or str(exc)
            print(f"gostg: error: {what}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        else:
            print(f"gostg: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def run():
    """The ``gostg`` console script: run the command line and exit with its status."""
    sys.exit(main())
