"""The messages and services of GOST's gRPC plugins (go-gost/plugin ``*/proto/*.proto``), as
data, and the mapping between them and the dicts gostg's plugin callers use (GOST's HTTP
plugin JSON field names, which are the proto field names).

Rules:
1. Declared here, built at run time: the messages become one ``FileDescriptorProto`` in a
   private descriptor pool (``google.protobuf``), so there is no generated code to keep in
   step with a protoc version, and nothing touches protobuf's default pool (a host app may
   have its own ``proto.*`` messages). Only wire facts matter to a GOST plugin server: the
   package (``proto``), the service and method names (the request path
   ``/proto.Authenticator/Authenticate``) and each field's number and type.
2. Bytes fields take ``bytes``, or a base64 string (a Go ``[]byte`` in JSON, as the HTTP
   plugin sends it), or a mapping (sent as its JSON: GOST's recorder metadata).
   A request dict may carry keys the proto does not have (GOST's newer fields, e.g.
   admission's ``network``): they are not sent. A key it has with a value of the wrong
   shape is a ValueError (the caller's bug, not the plugin's).
3. A reply becomes a dict with every declared field (proto3 has no presence: an unset bool
   reads ``False``). The hop reply's ``node`` is GOST's node JSON: the dict returned is that
   node, as the HTTP hop plugin's body is (an empty reply is ``{}``); JSON that does not
   parse is a ValueError.
"""
import base64
import json

#: field types (FieldDescriptorProto.Type numbers)
STRING, BOOL, BYTES, INT64, UINT64, MESSAGE = 9, 8, 12, 3, 4, 11
_OPTIONAL, _REPEATED = 1, 3


def _f(name, ftype, repeated=False, msg=None):
    return (name, ftype, repeated, msg)


def _strings(*names):
    return [_f(n, STRING) for n in names]


#: message name → fields in field-number order (number = position + 1, as in every GOST proto)
MESSAGES = {
    "AuthenticateRequest": _strings("username", "password", "client", "service"),
    "AuthenticateReply": [_f("ok", BOOL), _f("id", STRING)],
    "AdmissionRequest": _strings("addr", "service"),
    "AdmissionReply": [_f("ok", BOOL)],
    "BypassRequest": _strings("addr", "client", "network", "host", "path", "service"),
    "BypassReply": [_f("ok", BOOL)],
    "SelectRequest": _strings("network", "addr", "host", "client", "path", "src"),
    "SelectReply": [_f("node", BYTES)],
    "LookupRequest": _strings("network", "host", "client"),
    "LookupReply": [_f("ips", STRING, True), _f("ok", BOOL)],
    "ResolveRequest": _strings("network", "host", "client"),
    "ResolveReply": [_f("ips", STRING, True), _f("ok", BOOL)],
    "GetRuleRequest": _strings("host", "service"),
    "GetRuleReply": _strings("endpoint"),
    "SetRuleRequest": _strings("host", "endpoint", "service"),
    "SetRuleReply": [_f("ok", BOOL)],
    "LimitRequest": _strings("network", "addr", "client", "src", "service", "scope"),
    "LimitReply": [_f("in", INT64), _f("out", INT64)],
    "ObserveRequest": [_f("events", MESSAGE, True, "Event")],
    "Event": _strings("kind", "service", "client", "type") + [_f("stats", MESSAGE, msg="Stats"),
                                                              _f("status", MESSAGE, msg="ServiceStatus")],
    "ServiceStatus": _strings("state", "msg"),
    "Stats": [_f(n, UINT64) for n in ("totalConns", "currentConns", "inputBytes", "outputBytes", "totalErrs")],
    "ObserveReply": [_f("ok", BOOL)],
    "RecordRequest": [_f("data", BYTES), _f("metadata", BYTES)],
    "RecordReply": [_f("ok", BOOL)],
    "GetRouteRequest": _strings("dst", "id"),
    "GetRouteReply": _strings("dst", "gateway"),
    "Service": _strings("id", "name", "node", "network", "address"),
    "RegisterRequest": [_f("service", MESSAGE, msg="Service")],
    "RegisterReply": [_f("ok", BOOL)],
    "DeregisterRequest": [_f("service", MESSAGE, msg="Service")],
    "DeregisterReply": [_f("ok", BOOL)],
    "RenewRequest": [_f("service", MESSAGE, msg="Service")],
    "RenewReply": [_f("ok", BOOL)],
    "GetServiceRequest": _strings("name"),
    "GetServiceReply": [_f("services", MESSAGE, True, "Service")],
}

#: kind → (gRPC service name in package ``proto``, {method: (request, reply)}, default method)
SERVICES = {
    "auth": ("Authenticator", {"Authenticate": ("AuthenticateRequest", "AuthenticateReply")}, "Authenticate"),
    "admission": ("Admission", {"Admit": ("AdmissionRequest", "AdmissionReply")}, "Admit"),
    "bypass": ("Bypass", {"Bypass": ("BypassRequest", "BypassReply")}, "Bypass"),
    "hop": ("Hop", {"Select": ("SelectRequest", "SelectReply")}, "Select"),
    "hosts": ("HostMapper", {"Lookup": ("LookupRequest", "LookupReply")}, "Lookup"),
    "resolver": ("Resolver", {"Resolve": ("ResolveRequest", "ResolveReply")}, "Resolve"),
    "limiter": ("Limiter", {"Limit": ("LimitRequest", "LimitReply")}, "Limit"),
    "recorder": ("Recorder", {"Record": ("RecordRequest", "RecordReply")}, "Record"),
    "observer": ("Observer", {"Observe": ("ObserveRequest", "ObserveReply")}, "Observe"),
    "router": ("Router", {"GetRoute": ("GetRouteRequest", "GetRouteReply")}, "GetRoute"),
    # ingress: GetRule unless the request carries an endpoint (the HTTP plugin's GET vs PUT)
    "ingress": ("Ingress", {"GetRule": ("GetRuleRequest", "GetRuleReply"),
                            "SetRule": ("SetRuleRequest", "SetRuleReply")}, None),
    # sd: the caller names the method (the HTTP plugin's POST/DELETE/PUT/GET)
    "sd": ("SD", {"Register": ("RegisterRequest", "RegisterReply"),
                  "Deregister": ("DeregisterRequest", "DeregisterReply"),
                  "Renew": ("RenewRequest", "RenewReply"),
                  "Get": ("GetServiceRequest", "GetServiceReply")}, None),
}

KINDS = tuple(SERVICES)
PACKAGE = "proto"
#: sd methods whose request is one Service: the caller's dict is that service's fields, flat,
#: as the HTTP sd plugin's body is
_SD_WRAPPED = ("Register", "Deregister", "Renew")

_classes = {}


def _needed(name, out):
    """``name`` and the messages its fields refer to, dependencies first."""
    for fname, ftype, _, msg in MESSAGES[name]:
        if ftype == MESSAGE and msg not in out:
            _needed(msg, out)
    if name not in out:
        out.append(name)
    return out


def _build():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    fd = descriptor_pb2.FileDescriptorProto(name="gostg/plugin.proto", package=PACKAGE, syntax="proto3")
    for name, fields in MESSAGES.items():
        m = fd.message_type.add(name=name)
        for i, (fname, ftype, repeated, msg) in enumerate(fields, 1):
            f = m.field.add(name=fname, json_name=fname, number=i, type=ftype,
                            label=_REPEATED if repeated else _OPTIONAL)
            if msg:
                f.type_name = f".{PACKAGE}.{msg}"
    pool.Add(fd)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in MESSAGES}


def load():
    """Build the message classes (once: importing this module does not import protobuf)."""
    if not _classes:
        _classes.update(_build())


def message_class(name):
    """The protobuf class of one message."""
    load()
    return _classes[name]


def method(kind, request, op=None):
    """→ (request path, method name, request message name, reply message name)."""
    if kind not in SERVICES:
        raise ValueError(f"unknown plugin kind {kind!r} (one of {', '.join(KINDS)})")
    service, methods, default = SERVICES[kind]
    if op is None:
        op = default
        if kind == "ingress":
            op = "SetRule" if request.get("endpoint") else "GetRule"
    if op not in methods:
        raise ValueError(f"{kind} plugins have no method {op!r} (one of {', '.join(methods)})")
    req, rep = methods[op]
    return f"/{PACKAGE}.{service}/{op}", op, req, rep


def _set(msg, name, d, where):
    """Fill message ``msg`` (named ``name``) from dict ``d``."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: a mapping is needed, not {type(d).__name__}")
    for fname, ftype, repeated, sub in MESSAGES[name]:
        v = d.get(fname)
        if v is None:
            continue
        at = f"{where}.{fname}"
        if ftype == MESSAGE:
            if repeated:
                if not isinstance(v, (list, tuple)):
                    raise ValueError(f"{at}: a list is needed")
                for i, item in enumerate(v):
                    _set(getattr(msg, fname).add(), sub, item, f"{at}[{i}]")
            else:
                _set(getattr(msg, fname), sub, v, at)
        elif repeated:
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"{at}: a list is needed")
            getattr(msg, fname).extend(_scalar(ftype, x, at) for x in v)
        else:
            setattr(msg, fname, _scalar(ftype, v, at))


def _scalar(ftype, v, at):
    if ftype == STRING:
        if isinstance(v, (bytes, bytearray)):
            return bytes(v).decode("utf-8", "replace")
        return str(v)
    if ftype == BOOL:
        return bool(v)
    if ftype == BYTES:
        if isinstance(v, (bytes, bytearray, memoryview)):
            return bytes(v)
        if isinstance(v, str):
            # a dict in GOST's JSON: Go writes a []byte as base64 (the HTTP recorder plugin's
            # data and metadata)
            try:
                return base64.b64decode(v, validate=True)
            except ValueError:
                raise ValueError(f"{at}: not base64") from None
        # GOST's recorder metadata is JSON of a map (json.Marshal of RecordOptions.Metadata)
        return json.dumps(v, separators=(",", ":")).encode()
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{at}: an integer is needed, not {v!r}")
    if ftype == UINT64 and not 0 <= v < 1 << 64 or ftype == INT64 and not -(1 << 63) <= v < 1 << 63:
        raise ValueError(f"{at}: {v} is out of range")
    return v


def to_dict(msg, name):
    """A message → a dict of every declared field (nested messages: dicts; unset ones None)."""
    out = {}
    for fname, ftype, repeated, sub in MESSAGES[name]:
        v = getattr(msg, fname)
        if ftype == MESSAGE:
            if repeated:
                out[fname] = [to_dict(x, sub) for x in v]
            else:
                out[fname] = to_dict(v, sub) if msg.HasField(fname) else None
        else:
            out[fname] = list(v) if repeated else v
    return out


def encode(kind, request, op=None):
    """Request dict → (path, request message, reply message name)."""
    path, op, req_name, rep_name = method(kind, request, op)
    if kind == "sd" and op in _SD_WRAPPED and "service" not in request:
        request = {"service": request}
    msg = message_class(req_name)()
    _set(msg, req_name, request, kind)
    return path, msg, rep_name


def decode(kind, rep_name, msg):
    """Reply message → the dict a caller gets (GOST's HTTP reply JSON for that kind)."""
    out = to_dict(msg, rep_name)
    if kind == "hop":
        node = out["node"]
        if not node:
            return {}
        try:
            v = json.loads(node)
        except ValueError as exc:
            raise ValueError(f"hop plugin: node is not JSON ({exc})") from None
        if not isinstance(v, dict):
            raise ValueError("hop plugin: node is not a JSON object")
        return v
    return out
