"""Build one ingress, router or sd as bin/gostg does (a gevent-patched process, gostg's JSON log
on stderr) and call its interface, for the tests: what the tunnel/router handlers will see.

stdin, one JSON document a line: first ``{"kind": "ingresses", "object": {...}}``, then steps
``[method, [args…]]``; ``["sleep", [seconds]]`` lets the hub run (pollers, push), ``["refresh",
[]]`` re-reads the sources now. stdout: one JSON line per step (a Rule/Route/Service as a dict,
a list of them, a bool, or null), so a test can act between steps (stop Redis, edit a key)."""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import gevent  # noqa: E402

from gostg.config.build import build_object  # noqa: E402
from gostg.observe.log import make_logger  # noqa: E402


def plain(v):
    if isinstance(v, list):
        return [plain(x) for x in v]
    if v is None or isinstance(v, (bool, str, int)):
        return v
    return {k: str(getattr(v, k)) if k == "net" and getattr(v, k) is not None else getattr(v, k)
            for k in v.__slots__}


def main():
    def readline():   # in a thread: the hub (pollers, push) runs while the test decides
        return gevent.get_hub().threadpool.apply(sys.stdin.readline)

    req = json.loads(readline())
    reg = types.SimpleNamespace(log=make_logger("debug", output="stderr"))
    obj = build_object(req["kind"], req["object"], f"{req['kind']}[0]", reg)
    print("null", flush=True)   # built
    for line in iter(readline, ""):
        method, args = json.loads(line)
        v = None
        if method == "sleep":
            gevent.sleep(args[0])
        elif method == "refresh":
            obj.source.refresh()
        else:
            if method in ("set_rule", "register", "deregister", "renew"):
                from gostg.policy.ingress import Rule
                from gostg.policy.sd import Service
                args = [Rule(*args) if method == "set_rule" else Service(*args)]
            v = getattr(obj, method)(*args)
        print(json.dumps(plain(v)), flush=True)
    getattr(obj, "close", lambda: None)()


if __name__ == "__main__":
    main()
