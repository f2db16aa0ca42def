"""gostg - GO Simple Tunnel, in Python (GOST v3 command line).

Usage:
  gostg [options] [-L <service>]... [-F <node>]... [-C <config>]...
  gostg -V
  gostg -h

Options:
  -L <service>      service address, e.g. socks5://user:pass@:1080 (repeatable)
  -F <node>         chain node address; each -F is one hop of chain-0 (repeatable)
  -C <config>       config file (.yaml/.json), - for stdin, or inline JSON (repeatable, merged)
  -O <format>       print the merged effective config as yaml or json, then exit
  -D                debug log level
  --DD              trace log level
  --api <addr>      Web API address, [user:pass@][host]:port[?pathPrefix=/api&accesslog=true]
  --metrics <addr>  Prometheus metrics address
  -R <duration>     reload the config periodically
  -V                print the version and exit
  -h                show this help

Arguments split by -- run as separate processes, each with its own chain.
"""
import json
import os
import platform
import sys

import gevent
import yaml
from docopt import DocoptExit, docopt

from . import __version__
from .config import cmdline, load, model
from .errors import ChangeError, ConfigError
from .config.metadata import parse_duration
from .observe.log import make_logger
from .process import split_groups, supervise
from .runtime import Gost

#: Go's flag package accepts -flag, --flag and -flag=value; docopt wants GNU style
_LONG = {"-api": "--api", "-metrics": "--metrics", "-DD": "--DD", "--D": "-D", "--L": "-L", "--F": "-F",
         "--C": "-C", "--O": "-O", "--V": "-V", "--R": "-R"}


def normalize(argv):
    out = []
    for a in argv:
        if a.startswith("-") and "=" in a and not a.startswith("--="):
            flag, val = a.split("=", 1)
            flag = _LONG.get(flag, flag)
            if flag.startswith("--"):
                out.append(f"{flag}={val}")
            else:
                out.extend([flag, val])
            continue
        out.append(_LONG.get(a, a))
    return out


def version():
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"gostg {__version__} (python {platform.python_version()} {sys.platform}/{machine})"


def build_config(args, stdin=None):
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
    metrics = args["--metrics"] or os.environ.get("GOST_METRICS")
    if metrics:
        cfg.setdefault("metrics", {"addr": metrics})
    level = "trace" if args["--DD"] else "debug" if args["-D"] else os.environ.get("GOST_LOGGER_LEVEL")
    if level:
        cfg["log"] = {**(cfg.get("log") or {}), "level": level}
    if args["-R"]:
        parse_duration(args["-R"], "-R")  # a bad period is a config error before anything binds
    model.check(cfg)
    return cfg


def parse_api(raw):
    """``[user:pass@][host]:port[?pathPrefix=/api&accesslog=true]`` → GOST's ``api`` object."""
    url = cmdline.URL(raw if "://" in raw else "api://" + raw, "-api")
    api = {"addr": url.host}
    if url.query.get("pathPrefix"):
        api["pathPrefix"] = url.query["pathPrefix"]
    if url.query.get("accesslog", url.query.get("accessLog", "")).lower() in ("true", "1", "yes"):
        api["accesslog"] = True
    if url.user is not None:
        api["auth"] = {"username": url.user, "password": url.password or ""}
    return api


def dump(cfg, fmt):
    cfg = model.canonical(cfg)
    if fmt == "json":
        return json.dumps(cfg, indent=2) + "\n"
    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


def _serve(cfg, args):
    import signal

    def sources():
        return build_config(args)

    g = Gost(cfg, sources=sources)
    files = [c for c in args["-C"] if c.strip() not in ("-",) and not c.strip().startswith("{")]
    g.save_path = files[0] if len(files) == 1 else None
    try:
        g.build()
    except ConfigError as exc:
        g.log.error(f"config: {exc}")
        return 1
    done = gevent.event.Event()

    def stop(signame):
        try:
            g.log.info(f"{signame}: stopping")
            g.stop()
        finally:
            done.set()

    gevent.signal_handler(signal.SIGTERM, stop, "SIGTERM")
    gevent.signal_handler(signal.SIGINT, stop, "SIGINT")
    def reload():
        try:
            g.reload()
        except (ChangeError, ConfigError) as exc:
            g.log.error(f"SIGHUP: reload failed, running config kept: {exc}")

    gevent.signal_handler(signal.SIGHUP, reload)
    g.start()
    period = parse_duration(args["-R"], "-R") if args["-R"] else 0
    if period > 0:
        def every():
            while True:
                gevent.sleep(period)
                reload()
        gevent.spawn(every)
    if not g.services:
        g.log.warning("no services configured")
    done.wait()
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    groups = split_groups(argv)
    if len(groups) > 1:
        return supervise(groups)
    try:
        args = docopt(__doc__, argv=normalize(groups[0] if groups else []), default_help=False)
    except DocoptExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if args["-h"]:
        print(__doc__.strip())
        return 0
    if args["-V"]:
        print(version())
        return 0
    try:
        cfg = build_config(args)
    except ConfigError as exc:
        make_logger().error(f"config: {exc}")
        print(f"gostg: config error: {exc}", file=sys.stderr)
        return 1
    if args["-O"]:
        if args["-O"] not in ("yaml", "json"):
            print("gostg: -O takes yaml or json", file=sys.stderr)
            return 2
        sys.stdout.write(dump(cfg, args["-O"]))
        return 0
    if not cfg.get("services") and not cfg.get("api"):
        print(__doc__.strip(), file=sys.stderr)
        return 1
    return _serve(cfg, args)
