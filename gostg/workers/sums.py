"""What the supervisor shows of its workers: one service's status summed over the workers that
run it, the status page's entries summed, and ``/api/connections`` over every worker."""
from ..api import connections

#: the /api/status service fields that are counts
PAGE_COUNTS = ("totalConns", "currentConns", "totalErrs", "inputBytes", "outputBytes", "tunnels")


def merge_status(parts):
    """One service's GOST status from several workers' → one: stats summed, the earliest
    createTime, worker 0's state and events."""
    out = dict(parts[0])
    out["createTime"] = min(p.get("createTime") or 0 for p in parts)
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
