"""What the supervisor shows of its workers: one service's status summed over the workers that
run it, the status page's entries summed, and ``/api/connections`` over every worker."""
from ..api import connections

#: the /api/status service fields that are counts
PAGE_COUNTS = ("totalConns", "currentConns", "totalErrs", "inputBytes", "outputBytes", "tunnels")


def merge_status(parts):
    """One service's GOST status from several workers' → one: stats summed, the earliest
    createTime, worker 0's state and events (a part without a createTime adds stats only)."""
    out = dict(parts[0])
    out["createTime"] = min((p["createTime"] for p in parts if p.get("createTime")), default=0)
    stats = {}
    for p in parts:
        for k, v in (p.get("stats") or {}).items():
            if isinstance(v, (int, float)):
                stats[k] = stats.get(k, 0) + v
    out["stats"] = stats
    return out


def sum_page_entries(a, b):
    """Two workers' entries of one service on the status page → one."""
    out = dict(a)
    for k, v in b.items():
        if k in PAGE_COUNTS and isinstance(v, (int, float)) and isinstance(a.get(k), (int, float)):
            out[k] = a[k] + v
        elif isinstance(v, dict) and isinstance(a.get(k), dict):
            out[k] = sum_page_entries(a[k], v)
    return out


#: the service stats that only grow while the service runs in a worker (not currentConns)
CUMULATIVE = ("totalConns", "totalErrs", "inputBytes", "outputBytes")


class StatsCarry:
    """``GET /config`` and ``/api/status`` stats of workers that died: each worker process's
    last reported stats per service (by pid), and a dead one's cumulative stats carried into
    every later sum of that service, so its totals do not go back when a worker dies. Only
    while it is the same service (``token``: its build time in the supervisor): a replaced
    service starts from zero, in GOST and in every worker."""

    def __init__(self):
        self.last = {}      # pid → {service: stats}
        self.carried = {}   # service → (token, {field: total})

    def note(self, pid, stats):
        """A worker's answer: {service name: its stats} (an answer without a pid is not kept)."""
        if pid is not None:
            self.last[pid] = stats

    def fold(self, live, token):
        """The workers not in ``live`` (pids) are gone: carry their last stats. ``token(name)``
        → the identity of the service running under that name now."""
        for pid in [p for p in self.last if p not in live]:
            for name, st in self.last.pop(pid).items():
                tok = token(name)
                old_tok, tot = self.carried.get(name, (tok, {}))
                tot = dict(tot) if old_tok == tok else {}
                for k in CUMULATIVE:
                    if isinstance((st or {}).get(k), (int, float)):
                        tot[k] = tot.get(k, 0) + st[k]
                self.carried[name] = (tok, tot)

    def extra(self, name, token):
        """→ the carried stats of service ``name`` (to add to the workers' sum), or None."""
        tok, tot = self.carried.get(name, (None, None))
        return tot if tot and tok == token(name) else None


class GroupConnections:
    """``/api/connections`` over the workers (gostg.api.connections' three calls): every
    worker's open tunnels (a sid names its worker: each process draws its own prefix)."""

    def __init__(self, pool):
        self.pool = pool

    def listing(self, gost, query):
        items = [t for a in self.pool.ask_all("connections", query=query) for t in a.get("list") or []]
        items.sort(key=lambda t: t["startTime"])
        return {"data": {"count": len(items), "list": items}}

    def one(self, gost, sid):
        for t in self.listing(gost, {})["data"]["list"]:
            if t["sid"] == sid:
                return {"data": t}
        raise connections._not_found(sid)

    def close(self, gost, sid):
        if not any(a.get("closed") for a in self.pool.ask_all("close", sid=sid)):
            raise connections._not_found(sid)
