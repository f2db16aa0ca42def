"""What each worker runs of the group's config, and how the per-worker numbers add up.

- ``api``, ``metrics`` and ``workers`` are the supervisor's: a worker gets none of them, nor a
  service whose handler is ``api`` or ``metrics`` (the supervisor serves those itself: they act
  on, or report for, the whole group).
- Service hooks (``preUp``/``postUp``/``preDown``/``postDown``) run once, in the supervisor: a
  worker's copy of a service has none.
- Worker 0 runs every service; the others run the services whose listening port can be shared
  (``Listener.shareable``: TCP-based listeners). UDP, rtcp/rudp through a chain and Unix sockets
  stay with worker 0 (gostg.workers says why).
- Limiters (without Redis-shared counters) are split per worker by their parsers
  (gostg.policy.limiter.common.workers): ``climiters`` counts ceil(N / workers) per worker (a
  limit never becomes 0, so small limits admit up to workers × ceil(N / workers) in all);
  ``rlimiters`` rate / workers; ``limiters`` (traffic) ``$`` and IP/CIDR entries / workers,
  ``$$`` (one connection, which lives in one worker) whole. Worker 0's UDP-only services get
  the same share as the rest (documented: a UDP service's service-wide limit is its share).
"""
#: top-level keys only the supervisor acts on
SUPERVISOR_KEYS = ("api", "metrics", "workers")
#: service metadata keys (GOST reads them case-insensitively) the supervisor runs once
HOOKS = frozenset(("preup", "postup", "predown", "postdown"))


def _without_hooks(o):
    md = o.get("metadata")
    if not isinstance(md, dict) or not any(str(k).lower() in HOOKS for k in md):
        return o
    return {**o, "metadata": {k: v for k, v in md.items() if str(k).lower() not in HOOKS}}


def worker_config(cfg, index, shareable, supervisor=()):
    """The config worker ``index`` runs, from the group's ``cfg``; ``shareable``: the names of
    the services every worker runs (the rest run in worker 0 only); ``supervisor``: the ones
    no worker runs (the supervisor serves them: api and metrics handlers)."""
    out = {k: v for k, v in cfg.items() if k not in SUPERVISOR_KEYS}
    if cfg.get("services"):
        out["services"] = [_without_hooks(o) for o in cfg["services"] if o.get("name") not in supervisor
                           and (index == 0 or o.get("name") in shareable)]
    return out


def _label(md):
    v = (md or {}).get("clientLabel") if isinstance(md, dict) else None
    if isinstance(v, str):
        return v.strip().lower() not in ("false", "0", "no", "off")
    return True if v is None else bool(v)


def metrics_wanted(cfg):
    """Whether the workers count metrics, and with which ``clientLabel`` (the first endpoint's,
    as a single gostg takes it): None when the group has no metrics endpoint, neither the
    ``metrics`` object nor a ``metrics`` handler service (both are the supervisor's, which
    serves the workers' sum)."""
    m = cfg.get("metrics")
    if isinstance(m, dict) and m.get("addr"):
        return _label(m.get("metadata"))
    for o in cfg.get("services") or []:
        h = o.get("handler") if isinstance(o, dict) else None
        if isinstance(h, dict) and str(h.get("type", "")).lower() == "metrics":
            return _label(h.get("metadata"))
    return None
