"""The ``--`` supervisor: each argument group runs as a child gostg (env ``_GOST_ID=i``);
signals are forwarded; the first child to exit stops the rest and its exit code is ours.

The supervisor itself loads no gevent (each child patches its own standard library) and imports
``subprocess`` only when it runs: every start-up of the command line passes through here."""
import os
import sys


def split_groups(argv):
    groups, cur = [], []
    for a in argv:
        if a == "--":
            groups.append(cur)
            cur = []
        else:
            cur.append(a)
    groups.append(cur)
    return [g for g in groups if g]


def _child_cmd(args):
    return [sys.executable, "-m", "gostg", *args]


def supervise(groups):
    import signal
    import subprocess
    import time

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    children = []
    for i, args in enumerate(groups):
        env = dict(os.environ, _GOST_ID=str(i))
        env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        children.append(subprocess.Popen(_child_cmd(args), env=env))

    def forward(signum, _frame):
        for c in children:
            if c.poll() is None:
                try:
                    c.send_signal(signum)
                except OSError:
                    pass

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    # Poll rather than os.wait(): in a gevent-patched process (a host app calling main())
    # os.wait() would reap a child behind the Popen objects' backs and their wait() would
    # never return.
    code = None
    try:
        while code is None:
            for c in children:
                rc = c.poll()
                if rc is not None:
                    code = rc if rc >= 0 else 128 - rc  # killed by a signal: report it the shell way
                    break
            else:
                time.sleep(0.1)
    finally:
        for c in children:
            if c.poll() is None:
                c.terminate()
        for c in children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()
                c.wait()
    return code
