"""What a service records (a service's ``recorders: [{name, record, metadata}]``), with GOST's
record objects (go-gost/core ``recorder``) sent to the named recorders (:mod:`.recorder`):

- ``recorder.service.client.address``: the client's IP, at accept (before admission, as GOST)
- ``recorder.service.router.dial.address``: the host of each target the router dials
- ``recorder.service.router.dial.address.error``: the host of each target it failed to reach
- ``recorder.service.handler``: one JSON object per connection, at its end (GOST's
  ``HandlerRecorderObject`` fields: service, network, remote, local, client, src, dst, host,
  proto, clientIP, clientID, http, route, inputBytes, outputBytes, err, sid, duration (ns),
  time); for the HTTP handler's proxied requests one per request, with the ``http`` part

Costs: a service without recorders carries ``None`` and pays one ``is None`` test per
connection and per dial; this module is not even imported. Records are made at those points
only, never per chunk: the handler record's bytes are the relay's own counters
(``Context.bytes()``) or the counts a handler gives ``ctx.stats_bytes`` at tunnel end.
"""
import json
import time

from ..core.context import Context
from ..errors import ConfigError, ProtocolError
from ..protocols.addr import split_host_port
from . import metrics

CLIENT_ADDRESS = "recorder.service.client.address"
DIAL_ADDRESS = "recorder.service.router.dial.address"
DIAL_ADDRESS_ERROR = "recorder.service.router.dial.address.error"
HANDLER = "recorder.service.handler"


class ServiceRecorders:
    """A service's ``recorders: [{name, record, metadata}]``: which named recorders get which
    record. Names are looked up per record (late binding: a recorder replaced by reload or the
    Web API takes the next record); every recorder a record names gets it."""

    __slots__ = ("registries", "by_record", "client", "dial", "handler")

    def __init__(self, entries, registries):
        self.registries = registries
        self.by_record = {}
        for name, record, md in entries:
            self.by_record.setdefault(record, []).append((name, md))
        self.client = CLIENT_ADDRESS in self.by_record
        self.dial = DIAL_ADDRESS in self.by_record or DIAL_ADDRESS_ERROR in self.by_record
        self.handler = HANDLER in self.by_record

    def emit(self, record, data):
        named = self.by_record.get(record)
        if not named or not data:
            return
        reg = self.registries.recorders
        for name, md in named:
            r = reg.get(name)
            if r is not None:
                metrics.recorder_record(name)
                r.record(data, md)

    def dialed(self, address, ctx, error=None, route=None, conn=None, network="tcp"):
        """After a router dial: the dial address (and error) records, and what the handler
        record says about the dial."""
        try:
            host = split_host_port(address)[0] if address else ""
        except ProtocolError:   # a malformed target: recorded as it came
            host = address
        if host:
            self.emit(DIAL_ADDRESS, host.encode())
            if error is not None:
                self.emit(DIAL_ADDRESS_ERROR, host.encode())
        if type(ctx) is RecordedContext:
            ctx.dialed(error, route, conn, network)


def service_recorders(entries, path, registries):
    """``services[i].recorders`` → ServiceRecorders, or None when there are none. A name no
    ``recorders[]`` entry has fails the config (with a did-you-mean): a record silently going
    nowhere is a config misread."""
    if not entries:
        return None
    from ..config.validate import _dym, suggest

    if not isinstance(entries, list):
        raise ConfigError(f"{path}.recorders", "must be a list of {name, record, metadata}")
    have = registries.recorders.names() if registries is not None else []
    out = []
    for i, e in enumerate(entries):
        p = f"{path}.recorders[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(p, "must be a mapping {name, record, metadata}")
        name, record = e.get("name"), e.get("record")
        if name not in have:
            s = suggest(str(name), have)
            raise ConfigError(f"{p}.name", f"recorder {name!r} not found{_dym(s)}", s)
        md = e.get("metadata") or None
        if md and getattr(registries, "log", None) is not None:
            # GOST's http.body / http.maxBodySize shape the "http" part of a handler record,
            # which gostg does not write yet: said once, at build, not silently dropped
            registries.log.warning(f"{p}.metadata: {', '.join(map(str, md))}: not used by gostg's recorders "
                                   "(no HTTP request/response bodies are recorded)", kind="recorder")
        out.append((name, record, md))
    return ServiceRecorders(out, registries)


def _canonical(name):
    """Go's CanonicalMIMEHeaderKey: ``content-type`` → ``Content-Type``."""
    return "-".join(w[:1].upper() + w[1:].lower() for w in name.split("-"))


def _go_header(headers):
    """An http.Headers as Go's http.Header JSON ({"Name": [values]}). Unlike GOST, the value
    of Proxy-Authorization is not recorded (it is the user's password, base64)."""
    out = {}
    for k, v in list(headers.items):
        k = _canonical(k)
        out.setdefault(k, []).append("[redacted]" if k == "Proxy-Authorization" else v)
    return out


def _length(headers, unknown=-1):
    """Go's ContentLength: Content-Length, else ``unknown`` (-1: read until the end or chunked)."""
    v = headers.get("Content-Length")
    return int(v) if v is not None and v.strip().isdigit() else unknown


_stamp = [None, "", ""]   # second, its "YYYY-MM-DDTHH:MM:SS", its offset: formatted once a second


def _go_time(t):
    """Go's time.Time JSON (RFC 3339 with the local offset, microseconds; UTC as ``Z``)."""
    sec = int(t)
    if sec != _stamp[0]:
        lt = time.localtime(sec)
        z = time.strftime("%z", lt)
        _stamp[:] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", lt), "Z" if z in ("+0000", "-0000") else f"{z[:3]}:{z[3:]}"
    return f"{_stamp[1]}.{min(999999, round((t - sec) * 1e6)):06d}{_stamp[2]}"


class RecordedContext(Context):
    """The Context of a service with a handler record: it keeps what the record says."""

    __slots__ = ("t0", "inp", "out", "err", "network", "route_text", "src_addr", "dst_addr", "recorders", "proto",
                 "pending", "mark")

    def __init__(self, recorders, *a, **kw):
        super().__init__(*a, **kw)
        self.recorders = recorders
        self.t0 = self.started   # None: no record for the connection (the HTTP proxy's are per request)
        self.inp = self.out = 0
        self.err = self.route_text = self.src_addr = self.dst_addr = self.proto = ""
        self.network = "tcp"
        self.pending = None     # the HTTP request being proxied: (start, target, its "http" part)
        self.mark = (0, 0)      # the connection's byte counts when the last HTTP request ended

    def stats_bytes(self, inp, out):
        Context.stats_bytes(self, inp, out)
        self.inp += inp
        self.out += out

    def dialed(self, error, route, conn, network):
        self.network = "udp" if network.startswith("udp") else "tcp"
        if route is not None:
            self.route_text = route
        if error is not None:
            self.err = str(error)
            return
        for attr, fn in (("src_addr", "getsockname"), ("dst_addr", "getpeername")):
            try:
                a = getattr(conn, fn)()
                setattr(self, attr, f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}")
            except (AttributeError, OSError, TypeError, IndexError):
                pass

    def failed(self, exc):
        if not self.err:
            self.err = str(exc) or type(exc).__name__

    def record(self, t0=None, inp=None, out=None, host=None, http=None):
        """GOST's HandlerRecorderObject, in its field order (omitempty fields left out): the
        connection's, or with ``http`` one proxied HTTP request's."""
        t0 = self.t0 if t0 is None else t0
        o = {"service": self.service, "network": self.network, "remote": self.peer, "local": self.local,
             "client": self.src, "src": self.src_addr, "dst": self.dst_addr,
             "host": self.target if host is None else host}
        if self.proto:
            o["proto"] = self.proto
        o["clientIP"] = self.client_ip
        if self.client_id:
            o["clientID"] = self.client_id
        if http is not None:
            o["http"] = http
        if self.route_text:
            o["route"] = self.route_text
        o["inputBytes"] = self.inp if inp is None else inp
        o["outputBytes"] = self.out if out is None else out
        if self.err:
            o["err"] = self.err
        o["sid"] = self.sid
        o["duration"] = int((time.time() - t0) * 1e9)
        o["time"] = _go_time(t0)
        return json.dumps(o, separators=(",", ":")).encode()

    def http_request(self, req, inp, out, seen):
        """The HTTP proxy's bookkeeping, called as each request starts (``req``) and as it
        ends (None; again at the connection's end, a no-op unless the request failed): the
        record goes out with the response ``seen`` holds (none: GOST's 503). ``inp``/``out``:
        the connection's byte counts so far."""
        self.t0 = None
        self.proto = "http"
        p, self.pending = self.pending, None
        if p is not None:
            t0, host, h = p
            inp0, out0 = self.mark
            self.mark = (inp, out)
            resp = seen[-1] if seen else None
            seen.clear()
            h["statusCode"] = resp.status if resp is not None else 503
            h["response"] = {"contentLength": -1 if resp is None else _length(resp.headers),
                             "header": {} if resp is None else _go_header(resp.headers), "body": None}
            self.recorders.emit(HANDLER, self.record(t0, inp - inp0, out - out0, host, h))
            self.err = ""
        if req is not None:
            t = req.target
            h = {"host": req.headers.get("Host") or t.split("://", 1)[-1].split("/", 1)[0], "method": req.method,
                 "proto": req.version, "scheme": t.split("://", 1)[0] if "://" in t else "", "uri": t,
                 "cached": False, "statusCode": 0,
                 "request": {"contentLength": _length(req.headers, 0), "header": _go_header(req.headers),
                             "body": None}}
            self.pending = (time.time(), self.target, h)

    def ended(self):
        if self.t0 is not None:
            if self.flow is not None:   # the relay's own counters: also a tunnel a stop killed
                self.inp, self.out = self.bytes()
            self.recorders.emit(HANDLER, self.record())

