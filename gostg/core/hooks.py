"""preUp/postUp/preDown/postDown: each command shlex-split and run without a shell,
synchronously, output inherited; a failure is logged and never stops the service."""
import shlex


def run_hooks(stage, commands, log, timeout=60.0):
    if not commands:
        return
    from gevent import subprocess   # loaded by the first service that has hooks

    for cmd in commands:
        try:
            argv = shlex.split(cmd)
        except ValueError as exc:
            log.error(f"{stage}: cannot parse {cmd!r}: {exc}", hook=stage)
            continue
        if not argv:
            continue
        try:
            rc = subprocess.call(argv, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error(f"{stage}: {cmd!r} failed: {exc}", hook=stage)
            continue
        if rc != 0:
            log.error(f"{stage}: {cmd!r} exited with {rc}", hook=stage, code=rc)
        else:
            log.debug(f"{stage}: {cmd!r} ok", hook=stage)
