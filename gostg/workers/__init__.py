"""``gostg … -workers N`` (or top-level ``workers: N``; ``auto`` = the cores it may run on): N
processes serve every TCP service on one shared port each (SO_REUSEPORT: the kernel spreads new
connections over the workers' listening sockets), under one supervisor process.

Who owns what (the design; README "Every core"):

- The supervisor (the process the user started) owns the config model and everything that must
  happen once for the group: the Web API, the global metrics endpoint, SIGHUP and ``-R`` reloads
  (a ``-C`` URL is fetched there, once), and the services' ``preUp``/``postUp``/``preDown``/
  ``postDown`` hooks. It builds every service as a single gostg would (so a change is checked
  the same way) but binds none of them (:mod:`.control`).
- Each worker runs a plain :class:`gostg.Gost` of the config the supervisor hands it over a
  socketpair, and applies every later change with the same transactional ``Gost.reload`` (only
  changed services restart). Workers report their services' stats and metrics on request; the
  API's ``GET /config`` and ``/metrics`` show the sums (:mod:`.pool`, :mod:`.worker`).
- Services whose port cannot be shared run in worker 0 alone: UDP listeners (one owner: a
  client's datagrams and its session state stay in one process even while workers restart; with
  reuseport, every change of the group's membership would rehash clients onto other workers),
  remote (``rtcp``/``rudp`` with a chain: one binding on the far server) and Unix sockets.
- Limits that count what several workers see are split per worker (:mod:`.share`).
- A worker that dies is restarted with backoff and logged; a worker dies with its supervisor
  (PR_SET_PDEATHSIG, and the end of its control socket).

This module is the command line's entry check only: standard library, nothing else loaded.
"""
import os
import sys

#: the environment a worker process is started with: its index and its control socket's fd
ENV_INDEX = "_GOSTG_WORKER"
ENV_FD = "_GOSTG_WORKER_FD"
#: … and its supervisor's pid (a worker whose parent is already another process exits)
ENV_SUPERVISOR = "_GOSTG_SUPERVISOR"


def cores():
    """The cores this process may run on: its CPU affinity (taskset, cpusets, a container's
    cpuset), not the machine's count. Go's runtime.NumCPU (GOST's GOMAXPROCS) counts the same;
    os.cpu_count() would start workers that only take turns on the allowed cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):   # no affinity call on this platform
        return max(1, os.cpu_count() or 1)


def count(value, path="workers"):
    """The ``workers`` value (config or ``-workers``) → a number of processes ≥ 1: an integer,
    a string of one, or ``auto`` (:func:`cores`). Anything else raises ConfigError."""
    from ..errors import ConfigError

    if value is None:
        return 1
    if isinstance(value, str):
        v = value.strip().lower()
        if v == "auto":
            return cores()
        if not (v.isascii() and v.isdigit()):   # "²".isdigit() is True; int() refuses it
            raise ConfigError(path, f"must be a number of processes or auto, not {value!r}")
        value = int(v)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"must be a number of processes or auto, not {value!r}")
    if not 1 <= value <= 256:
        raise ConfigError(path, f"must be between 1 and 256, not {value}")
    return value


def wanted(cfg, flag=None):
    """The number of worker processes a config and the ``-workers`` flag ask for (the flag
    wins, as every flag does over the file)."""
    path, n = ("-workers", count(flag, "-workers")) if flag is not None else \
        ("workers", count(cfg.get("workers") if isinstance(cfg, dict) else None))
    if n > 1 and not sys.platform.startswith("linux"):
        from ..errors import ConfigError
        # elsewhere SO_REUSEPORT does not spread connections (one socket would get them all)
        raise ConfigError(path, "worker processes need Linux (SO_REUSEPORT load balancing)")
    return n
