"""GOST's plugin messages, kind by kind (go-gost/x ``*/plugin/http.go``): the request dict sent
and what a reply dict means. Pure: no I/O, so each mapping has unit tests.

Rules:
1. Field names and types are GOST's JSON exactly (``clientCn`` omitted when empty, as Go's
   ``omitempty``).
2. A reply field that is missing means its Go zero value (``ok`` false, ``in`` 0), as Go's
   decoder reads it; a field of the wrong type (``"ok": "yes"``) is garbage: PluginError.
3. ``ok: false`` is an answer, not an error: the consumer decides what it means.
"""
import base64
import ipaddress
import json

from . import PluginError


def _field(reply, name, types, zero):
    v = reply.get(name, zero)
    if v is None:
        return zero
    if isinstance(v, bool) and bool not in types:
        raise PluginError(f"reply field {name!r} is {v!r}, not {types[0].__name__}")
    if not isinstance(v, types):
        raise PluginError(f"reply field {name!r} is {type(v).__name__}, not {types[0].__name__}")
    return v


def ok_of(reply):
    """``{"ok": bool}`` → the bool."""
    return _field(reply, "ok", (bool,), False)


def auth_request(username, password, client="", service=""):
    return {"service": service, "username": username or "", "password": password or "", "client": client or ""}


def auth_reply(reply):
    """→ client ID (may be "") when ``ok``, else None."""
    ok = ok_of(reply)
    cid = _field(reply, "id", (str,), "")
    return cid if ok else None


def admission_request(addr, service="", network="tcp"):
    return {"service": service, "network": network, "addr": addr or ""}


admission_reply = ok_of


def bypass_request(network, addr, client="", host="", path="", service=""):
    return {"service": service, "network": network or "tcp", "addr": addr or "", "client": client or "",
            "host": host or "", "path": path or ""}


bypass_reply = ok_of


def lookup_request(network, host, client=""):
    """hosts and resolver: ``network`` is ``ip``, ``ip4`` or ``ip6``."""
    return {"network": network, "host": host, "client": client or ""}


def ips_reply(reply):
    """hosts and resolver → (ok, [IP strings]); entries that are not IPs are dropped (GOST
    skips what net.ParseIP refuses), a list that is not a list is garbage."""
    ok = ok_of(reply)
    ips = _field(reply, "ips", (list,), [])
    out = []
    for s in ips:
        if not isinstance(s, str):
            continue
        try:
            out.append(str(ipaddress.ip_address(s.strip())))
        except ValueError:
            continue
    return ok, out


def hop_request(network, addr, host="", path="", client="", src=""):
    return {"network": network or "tcp", "addr": addr or "", "host": host or "", "path": path or "",
            "client": client or "", "src": src or ""}


def hop_reply(reply):
    """→ the node config (GOST's NodeConfig JSON) or None when the plugin named none (an
    empty object, or one without ``addr`` and ``connector``)."""
    if not reply or not any(reply.get(k) for k in ("addr", "connector", "dialer", "name")):
        return None
    return reply


def limiter_request(scope, service="", network="", addr="", client="", src=""):
    return {"service": service, "scope": scope, "network": network or "", "addr": addr or "",
            "client": client or "", "src": src or ""}


def limiter_reply(reply):
    """→ (in, out) bytes per second; 0 or less is unlimited (GOST's NewLimiter)."""
    vals = []
    for k in ("in", "out"):
        v = _field(reply, k, (int, float), 0)
        if isinstance(v, float) and not v.is_integer():
            raise PluginError(f"reply field {k!r} is {v!r}, not an integer")
        vals.append(max(0, int(v)))
    return tuple(vals)


def recorder_request(data, metadata=None):
    """Go's []byte fields are base64 in JSON: the record and its metadata (JSON) both."""
    return {"data": base64.b64encode(data).decode(),
            "metadata": base64.b64encode(json.dumps(metadata).encode()).decode()}


def must_ok(reply):
    """Recorder and observer: ``ok`` must be true."""
    if not ok_of(reply):
        raise PluginError("plugin answered ok: false")


# -- ingress, router, sd (GOST's REST-shaped plugins: GET with a query, PUT/POST/DELETE a body) --

def ingress_rule_reply(reply):
    """GetRule → the endpoint ("" when the plugin has no rule for the host)."""
    return _field(reply, "endpoint", (str,), "").strip()


def set_rule_request(host, endpoint, service=""):
    return {"service": service or "", "host": host or "", "endpoint": endpoint or ""}


def route_reply(reply):
    """GetRoute → (dst, gateway); the HTTP plugin's deprecated ``net`` stands for an empty
    ``dst`` (GOST's router plugin)."""
    dst = _field(reply, "dst", (str,), "").strip() or _field(reply, "net", (str,), "").strip()
    return dst, _field(reply, "gateway", (str,), "").strip()


#: an sd Service's fields (GOST's sd.Service, JSON names of its HTTP plugin)
SD_FIELDS = ("id", "name", "node", "network", "address")


def sd_service(svc):
    """A Service (or a dict) → GOST's JSON of it."""
    get = svc.get if isinstance(svc, dict) else (lambda k, d="": getattr(svc, k, d))
    return {k: str(get(k, "") or "") for k in SD_FIELDS}


def sd_services_reply(reply):
    """Get → [service dicts]; null entries are skipped (GOST), a non-object entry is garbage."""
    items = _field(reply, "services", (list,), [])
    out = []
    for v in items:
        if v is None:
            continue
        if not isinstance(v, dict):
            raise PluginError(f"reply field 'services' holds {type(v).__name__}, not an object")
        out.append({k: _field(v, k, (str,), "") for k in SD_FIELDS})
    return out
