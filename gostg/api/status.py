"""``GET /api/status``: what the status page shows, in one JSON answer (GOST has no such route).

- ``services``: each service's name, state, address, listener and handler type, chain, and
  GOST's ``stats`` (totalConns, currentConns, totalErrs, inputBytes, outputBytes). The byte
  counts include the tunnels still open (read live from their relay counters through the
  live-tunnel registry, ``Service.tunnels`` and ``Context.bytes()``) so that a long download
  moves the throughput chart while it runs, not only when it ends.
- ``chains``: per chain, hop and node the selector's view of the node (gostg.core.selector):
  ``fails`` counted since its last success, whether it is ``dead`` now (fails ≥ maxFails within
  failTimeout) and until when, the text and time of its last error, the last probe's latency.
  Forwarder nodes (a service's ``forwarder``) are listed under ``forwarders`` the same way.
- ``errors``: the last warning and error lines of the log (gostg.observe.recent).

Reads only; every read is of a snapshot (dict/list copies), so a service or chain replaced
during the read shows as before or after, never half.
"""
import time

from ..observe import recent
from ..policy.group import MissingReference, lookup


def _wall(mono):
    """A time.monotonic() reading as Unix seconds (what the page can show as a clock time)."""
    return round(time.time() - (time.monotonic() - mono), 3) if mono else None


def _name(ref):
    if ref is None or isinstance(ref, str):
        return ref or ""
    return getattr(ref, "name", None) or str(ref)


def _open_bytes(service):
    """(input, output) of the tunnels open now, from the live-tunnel registry (0, 0 without it)."""
    inp = out = 0
    for ctx in list((getattr(service, "tunnels", None) or {}).values()):
        read = getattr(ctx, "bytes", None)
        if read is None:
            continue
        try:
            i, o = read()
        except Exception:   # a tunnel ending under us: its bytes are in the stats by now
            continue
        inp += i
        out += o
    return inp, out


def service_status(s):
    st = s.stats
    inp, out = _open_bytes(s)
    tunnels = getattr(s, "tunnels", None)
    return {
        "name": s.name,
        "state": s.state,
        "addr": s.addr,
        "listener": s.listener_type,
        "handler": s.handler_type,
        "chain": _name(getattr(getattr(s.handler, "router", None), "chain", None)),
        "stats": {"totalConns": st.total_conns, "currentConns": s.current_conns, "totalErrs": st.total_errs,
                  "inputBytes": st.input_bytes + inp, "outputBytes": st.output_bytes + out},
        "tunnels": len(tunnels) if tunnels is not None else None,
    }


def node_status(node, selector):
    m = node.marker
    max_fails = node.max_fails if node.max_fails is not None else selector.max_fails
    fail_timeout = node.fail_timeout if node.fail_timeout is not None else selector.fail_timeout
    dead = selector.failed(node)
    latency = node.latency
    return {
        "name": node.name,
        "addr": node.addr,
        "fails": m.fails,
        "maxFails": max_fails,
        "failTimeout": fail_timeout,
        "dead": dead,
        "deadUntil": _wall(m.last + fail_timeout) if dead else None,
        "lastError": m.error,
        "lastErrorTime": _wall(m.last),
        "latency": None if latency is None or latency == float("inf") else round(latency, 6),
        "probeFailed": latency == float("inf"),
        "backup": node.backup,
    }


def hop_status(hop):
    return {"name": hop.name,
            "nodes": [node_status(n, hop.selector) for n in hop.nodes]}


def chain_status(name, chain, registries):
    hops = []
    for h in chain.hops:
        if isinstance(h, str):
            try:
                hop = lookup(registries, "hops", h)
            except MissingReference:
                hops.append({"name": h, "missing": True, "nodes": []})
                continue
        else:
            hop = h
        hops.append(hop_status(hop))
    return {"name": name, "hops": hops}


def status(gost):
    """The whole ``GET /api/status`` answer."""
    services = list(gost.services.values())
    forwarders = []
    for s in services:
        hop = getattr(getattr(s.handler, "options", None), "forwarder", None)
        if hop is not None and getattr(hop, "nodes", None):
            forwarders.append({"service": s.name, **hop_status(hop)})
    reg = gost.registries
    return {
        "time": round(time.time(), 3),
        "services": [service_status(s) for s in services],
        "chains": [chain_status(name, c, reg) for name, c in reg.chains.items()],
        "forwarders": forwarders,
        "errors": recent.recent(),
    }
