"""Live connections over the Web API (beyond GOST): the live-tunnel registry, read and ended.

- ``GET {prefix}/api/connections[?service=NAME][&client=IP|IP:PORT]``: every open tunnel of
  every service (retired ones still draining included), oldest first, in the list shape of
  GOST's ``/config/<kind>`` answers: ``{"data": {"count": n, "list": [...]}}``.
- ``DELETE {prefix}/api/connections/<sid>``: ends one (both sockets closed, counted and logged
  as any ending); an unknown sid is a 404 with GOST's error JSON.

Bytes are read from the counters the relay keeps anyway (Context.bytes()): a listing costs
the tunnels nothing; its own cost is one dict per listed tunnel, at the time of the request.
"""
import time

from ..errors import ChangeError


def tunnel(ctx, now):
    """One open connection as the API shows it (camelCase, as GOST's JSON)."""
    inp, out = ctx.bytes()
    return {"sid": ctx.sid, "service": ctx.service, "client": ctx.src, "remote": ctx.peer,
            "local": ctx.local, "target": ctx.target, "route": list(ctx.route),
            "inputBytes": inp, "outputBytes": out,
            "age": round(max(0.0, now - ctx.started), 3),
            "startTime": int(ctx.started * 1e9)}   # Unix nanoseconds, as GOST's createTime


def listing(gost, query):
    """→ the GET answer's object; ``query``: the filters (``service``, ``client``)."""
    service, client = query.get("service"), query.get("client")
    now = time.time()
    items = []
    for s in gost.tunnel_services():
        if service and s.name != service:
            continue
        for ctx in list(s.tunnels.values()):   # (a copy: a tunnel may end while we read)
            if client and client != ctx.src and client != ctx.client_ip:
                continue
            items.append(tunnel(ctx, now))
    items.sort(key=lambda t: t["startTime"])
    return {"data": {"count": len(items), "list": items}}


def close(gost, sid):
    """End tunnel ``sid`` → None; raises ChangeError (404) when no such tunnel is open."""
    if not gost.close_tunnel(sid):
        raise ChangeError(ChangeError.NOT_FOUND, f"connection {sid!r} not found", status=404)
