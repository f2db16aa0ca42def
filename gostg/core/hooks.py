"""preUp/postUp/preDown/postDown: each command shlex-split and run without a shell,
synchronously, output inherited; a failure is logged and never stops the service."""
import shlex


def _call(argv, timeout):
    """``subprocess.call`` that lets the hub run: gevent's on the default loop (the main
    thread's); in gostg's own hub thread (thread mode) libev cannot watch children, so the
    stdlib's blocking call runs on one of that hub's worker threads."""
    import gevent

    hub = gevent.get_hub()
    if hub.loop.default:
        from gevent import subprocess   # loaded by the first service that has hooks
        return subprocess.call(argv, timeout=timeout)
    import subprocess
    return hub.threadpool.apply(subprocess.call, (argv,), {"timeout": timeout})


def run_hooks(stage, commands, log, timeout=60.0):
    if not commands:
        return
    from subprocess import TimeoutExpired   # gevent's is the same class

    for cmd in commands:
        try:
            argv = shlex.split(cmd)
        except ValueError as exc:
            log.error(f"{stage}: cannot parse {cmd!r}: {exc}", hook=stage)
            continue
        if not argv:
            continue
        try:
            rc = _call(argv, timeout)
        except (OSError, TimeoutExpired) as exc:
            log.error(f"{stage}: {cmd!r} failed: {exc}", hook=stage)
            continue
        if rc != 0:
            log.error(f"{stage}: {cmd!r} exited with {rc}", hook=stage, code=rc)
        else:
            log.debug(f"{stage}: {cmd!r} ok", hook=stage)
