"""One worker process of ``-workers N`` (``python -m gostg.workers.worker``, started by the
supervisor, gostg.workers.pool): a plain :class:`gostg.Gost` of the config the supervisor sends
over the control socket, on SO_REUSEPORT listening sockets.

Messages (gostg.workers.channel), in order, one at a time:
  → ``init`` {config, index, workers, metrics} ← ``ready`` {pid} or ``failed`` {path, msg}
  → ``config`` {config, metrics} (a change: Gost.reload, transactional) ← {ok, result | error}
  → ``status`` ← {services: {name: status}, pid} (GOST's per-service status, this worker's part)
  → ``page`` ← {page: this worker's ``GET /api/status`` answer, pid}
  → ``metrics`` ← {text: this worker's Prometheus exposition, or "", pid}
  → ``connections`` {query} ← {list: this worker's open tunnels}; ``close`` {sid} ← {closed}
Every request carries an ``id`` its answer repeats.

The worker dies with the supervisor: PR_SET_PDEATHSIG (SIGTERM) and, should that be
unavailable, the end of the control socket. SIGTERM/SIGINT stop it as they stop gostg; SIGHUP
is the supervisor's (a terminal's hangup reaches the whole process group) and ignored here."""
import os
import signal
import sys

from . import ENV_FD, ENV_INDEX, ENV_SUPERVISOR

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent):
    """Ask the kernel for SIGTERM when the supervisor exits (Linux), then check it is still
    there (it may have died before the request)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass   # not Linux: the control socket's end still stops the worker
    if parent and os.getppid() != parent:
        os._exit(1)


def _answer(g, msg):
    from ..errors import ChangeError, ConfigError

    op = msg.get("op")
    if op == "config":
        cfg = msg["config"]
        if msg.get("metrics") is not None:   # a metrics endpoint added to the group: count from now
            from ..observe import metrics
            if not metrics.enabled():
                metrics.enable(msg["metrics"], g.log)
        if cfg == g.config:   # an -R period with nothing new; a SIGHUP still reopens log files
            from ..runtime import _reopen_log_files
            _reopen_log_files()
            return {"ok": True, "result": {"changed": [], "removed": []}}
        try:
            return {"ok": True, "result": g.reload(cfg)}
        except (ChangeError, ConfigError) as exc:
            return {"ok": False, "error": str(exc)}
    if op == "status":
        return {"ok": True, "services": {name: s.status() for name, s in list(g.services.items())},
                "pid": os.getpid()}
    if op == "page":
        from ..api.status import status
        return {"ok": True, "page": status(g), "pid": os.getpid()}
    if op == "connections":
        from ..api.connections import listing
        return {"ok": True, "list": listing(g, msg.get("query") or {})["data"]["list"]}
    if op == "close":
        return {"ok": True, "closed": g.close_tunnel(msg.get("sid"))}
    if op == "metrics":
        from ..observe import metrics
        if not metrics.enabled():
            return {"ok": True, "text": "", "pid": os.getpid()}
        import prometheus_client
        return {"ok": True, "text": prometheus_client.generate_latest(metrics.registry()).decode(),
                "pid": os.getpid()}
    return {"ok": False, "error": f"unknown request {op!r}"}


def _group_path(path, cfg, names):
    """``services[i]…`` of this worker's config → the same service's place in the group's
    config (``names``: its service names in order; a worker's list lacks worker-0-only ones)."""
    head, sep, rest = path.partition("]")
    if not (sep and head.startswith("services[") and names):
        return path
    try:
        name = cfg["services"][int(head[len("services["):])]["name"]
        return f"services[{names.index(name)}]{rest}"
    except (ValueError, IndexError, KeyError, TypeError):
        return path


def main():
    index, fd = int(os.environ[ENV_INDEX]), int(os.environ[ENV_FD])
    _die_with_parent(int(os.environ.get(ENV_SUPERVISOR) or 0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from ..patching import patch

    patch()
    import socket

    import gevent

    from . import channel
    from ..errors import ConfigError
    from ..listeners import tcp
    from ..observe import metrics
    from ..observe.log import from_config
    from ..policy.limiter import common
    from ..runtime import Gost, freeze_start_up, stop_on_signals

    sock = socket.socket(fileno=fd)
    try:
        init = channel.recv(sock)
    except channel.ChannelClosed:
        return 1
    cfg = init["config"]
    tcp.reuse_port = True            # every TCP listening socket joins its port's group
    tcp.defer_listen = True          # … once every service is bound (a failed start drops nothing)
    common.workers = init["workers"]  # limits without shared counters: this worker's share
    log = from_config(cfg.get("log")).bind(worker=index)
    if init.get("metrics") is not None:
        metrics.enable(init["metrics"], log)
    # the supervisor validated the config and showed its warnings: not again, once per worker
    g = Gost(cfg, logger=log, checked=True)
    try:
        g.build()
        tcp.listen_deferred()
        g.start()
    except ConfigError as exc:
        channel.send(sock, {"op": "failed", "path": _group_path(exc.path, cfg, init.get("names")), "msg": exc.msg})
        return 1
    except Exception as exc:   # noqa: BLE001 - said to the supervisor, which says it once
        channel.send(sock, {"op": "failed", "path": "", "msg": f"{type(exc).__name__}: {exc}"})
        return 1
    freeze_start_up()
    stop, done = stop_on_signals(g, lambda why: g.log.debug(f"worker stopping: {why}"))

    def serve():
        while True:
            try:
                msg = channel.recv(sock)
            except channel.ChannelClosed:
                break
            try:
                reply = _answer(g, msg)
            except Exception as exc:   # noqa: BLE001 - a bug answers, it never ends the worker
                g.log.exception(f"worker: {msg.get('op')}: {exc!r}")
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            reply["id"] = msg.get("id")
            try:
                channel.send(sock, reply)
            except OSError:
                break
        stop("the supervisor is gone")

    channel.send(sock, {"op": "ready", "pid": os.getpid()})
    gevent.spawn(serve)
    while not done.wait(3600):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
