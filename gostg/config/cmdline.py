"""-L / -F URLs → the config model, following GOST's ``BuildConfigFromCmd`` rule for rule.

-L [handler[+listener]://][user:pass@][host]:port[/target,…][?k=v…]
-F [connector[+dialer]://][user:pass@]host:port[,host:port…][?k=v…]
"""
import base64
import os
from urllib.parse import parse_qsl, unquote

from ..errors import ConfigError
from .metadata import Metadata, format_duration
from ..protocols.addr import expand_port_range
from . import schema
from .validate import _dym, suggest

#: listeners whose forward mode keeps the listener's name as the handler (GOST cmd.go)
FORWARD_AS_LISTENER = frozenset("tcp udp rtcp rudp tun tap dns unix runix serial".split())


class URL:
    """A GOST CLI URL split the way Go's url.Parse splits it (scheme, user, host, path, query)."""

    def __init__(self, raw, arg):
        self.arg = arg
        s = raw.strip()
        if not s:
            raise ConfigError(arg, "empty URL")
        if s[0] == ":" or "://" not in s:
            s = "auto://" + s
        scheme, rest = s.split("://", 1)
        scheme = scheme.lower()
        if scheme == "https":
            scheme = "http+tls"
        self.scheme = scheme
        end = len(rest)
        for ch in "/?":
            i = rest.find(ch)
            if 0 <= i < end:
                end = i
        authority, tail = rest[:end], rest[end:]
        self.user = self.password = None
        if "@" in authority:
            userinfo, authority = authority.rsplit("@", 1)
            user, sep, pw = userinfo.partition(":")
            self.user = unquote(user)
            self.password = unquote(pw) if sep else None
        self.host = authority
        path, _, query = tail.partition("?")
        self.path = path
        self.query = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            self.query.setdefault(k, v)  # Go's url.Values.Get: first value wins

    @property
    def hostname(self):
        h = self.host
        if h.startswith("["):
            return h[1:h.find("]")]
        return h.rsplit(":", 1)[0] if ":" in h else h

    def schemes(self, first="handler", second="listener"):
        """→ (protocol, transport) names. GOST maps a name it does not know to its default
        silently (``bogus://`` became an http connector); here an unknown name is an error with
        a did-you-mean, checked against GOST's own type names."""
        parts = self.scheme.split("+")
        if len(parts) > 2:
            raise ConfigError(self.arg, f"bad scheme {self.scheme!r}: at most {first}+{second}")
        known1, known2 = schema.GOST_TYPES[first], schema.GOST_TYPES[second]
        if len(parts) == 1:
            p = parts[0]
            if p != "auto" and p not in known1 and p not in known2:
                s = suggest(p, known1 | known2)
                raise ConfigError(self.arg, f"unknown scheme {p!r}{_dym(s)} (a {first}, a {second}, "
                                            f"or {first}+{second}; known: {', '.join(sorted(known1 | known2))})", s)
            return p, p
        for p, kind, known in ((parts[0], first, known1), (parts[1], second, known2)):
            if p not in known:
                s = suggest(p, known)
                what = "transport" if kind in ("listener", "dialer") else kind
                raise ConfigError(self.arg, f"unknown {what} {p!r} in scheme {self.scheme!r}{_dym(s)} "
                                            f"(known: {', '.join(sorted(known))})", s)
        return parts[0], parts[1]


def _b64(s):
    """Strict base64 (URL-safe or standard, padding optional): junk is an error, never
    silently dropped — a lenient decode could turn ``auth=`` into an open proxy."""
    s = s.strip()
    padded = s + "=" * (-len(s) % 4)
    for alt in (b"-_", None):
        try:
            out = base64.b64decode(padded, altchars=alt, validate=True).decode()
        except (ValueError, UnicodeError):
            continue
        if out or not s:
            return out
    return None


def _auth(url, query, arg):
    auth = None
    if url.user is not None:
        if url.scheme.startswith("ss") and url.password is None and url.user:
            dec = _b64(url.user)
            if dec and ":" in dec:
                u, p = dec.split(":", 1)
                auth = {"username": u, "password": p}
        if auth is None:
            auth = {"username": url.user}
            if url.password is not None:
                auth["password"] = url.password
    sa = query.pop("auth", "")
    if sa and auth is None:
        dec = _b64(sa)
        if not dec:
            raise ConfigError(arg, "auth= is not valid base64 of user:pass")
        u, sep, p = dec.partition(":")
        auth = {"username": u, "password": p} if sep else {"username": u}
    return auth


def _pop(m, *keys):
    v = ""
    for k in keys:
        if k in m:
            val = m.pop(k)
            v = v or val
    return v


def _selector(m):
    md = Metadata(m, schema.cli_query_md())
    strategy = md.str("strategy")
    max_fails = md.int("maxFails", "max_fails")
    fail_timeout = md.duration("failTimeout", "fail_timeout")
    # maxLatency: GOST's command line leaves it in the metadata, where nothing reads it
    max_latency = md.duration("maxLatency")
    if not strategy and max_fails <= 0 and fail_timeout <= 0 and max_latency <= 0:
        return None
    for k in ("strategy", "maxFails", "max_fails", "failTimeout", "fail_timeout", "maxLatency"):
        m.pop(k, None)
    sel = {"strategy": strategy or "round", "maxFails": max_fails if max_fails > 0 else 1,
           "failTimeout": format_duration(fail_timeout if fail_timeout > 0 else 30)}
    if max_latency > 0:
        sel["maxLatency"] = format_duration(max_latency)
    return sel


def _list_object(cfg, kind, prefix, value, name_key="matchers"):
    obj = {"name": f"{prefix}-{len(cfg.setdefault(kind, []))}"}
    if value.startswith("~"):
        obj["whitelist"] = True
        value = value[1:]
    obj[name_key] = [s for s in value.split(",") if s]
    cfg[kind].append(obj)
    return obj["name"]


def _resolver(cfg, value, prefer=""):
    ns = []
    for s in value.split(","):
        if s:
            ns.append({"addr": s, **({"prefer": prefer} if prefer else {})})
    obj = {"name": f"resolver-{len(cfg.setdefault('resolvers', []))}", "nameservers": ns}
    cfg["resolvers"].append(obj)
    return obj["name"]


def _hosts(cfg, value):
    maps = []
    for s in value.split(","):
        host, sep, ip = s.partition(":")
        if sep:
            maps.append({"hostname": host, "ip": ip})
    obj = {"name": f"hosts-{len(cfg.setdefault('hosts', []))}", "mappings": maps}
    cfg["hosts"].append(obj)
    return obj["name"]


def _node(url, m, arg):
    connector, dialer = url.schemes("connector", "dialer")
    if connector not in schema.GOST_TYPES["connector"]:
        connector = "http"
    if dialer not in schema.GOST_TYPES["dialer"]:
        dialer = "ssu" == connector and "udp" or "tcp"
    auth = _auth(url, m, arg)
    md = Metadata(m, schema.cli_query_md())
    tls = {"certFile": md.str("tls.certFile", "certFile", "cert"),
           "keyFile": md.str("tls.keyFile", "keyFile", "key"),
           "caFile": md.str("tls.caFile", "caFile", "ca"),
           "secure": md.bool("tls.secure", "secure"),
           "serverName": md.str("tls.servername", "servername")}
    for k in ("tls.certFile", "certFile", "cert", "tls.keyFile", "keyFile", "key", "tls.caFile",
              "caFile", "ca", "tls.secure", "secure", "tls.servername", "serverName"):
        m.pop(k, None)
    if not tls["serverName"]:
        tls["serverName"] = url.hostname
    tls = {k: v for k, v in tls.items() if v}
    node_md, conn_md, dial_md = {}, {}, {}
    for k, v in m.items():
        for prefix, dst in (("node.", node_md), ("connector.", conn_md), ("dialer.", dial_md)):
            if k.startswith(prefix):
                dst[k[len(prefix):]] = v
                break
        else:
            conn_md[k] = v
            dial_md[k] = v
            node_md[k] = v
    node = {"addr": url.host,
            "connector": {"type": connector, **({"auth": auth} if auth else {}), "metadata": conn_md},
            "dialer": {"type": dialer, **({"tls": tls} if tls else {}), "metadata": dial_md},
            "metadata": node_md}
    if dialer in ("ssh", "sshd") and auth:
        node["connector"].pop("auth")
        node["dialer"]["auth"] = auth
    return node


def _chain(nodes_args, cfg):
    chain = {"name": "chain-0", "hops": []}
    cfg.setdefault("chains", []).append(chain)
    for i, raw in enumerate(nodes_args):
        arg = f"-F {raw}"
        url = URL(raw, arg)
        m = dict(url.query)
        hop = {"name": f"hop-{i}"}
        sel = _selector(m)
        if sel:
            hop["selector"] = sel
        if m.get("bypass"):
            hop["bypass"] = _list_object(cfg, "bypasses", "bypass", m.pop("bypass"))
        if m.get("resolver"):
            hop["resolver"] = _resolver(cfg, m.pop("resolver"))
        if m.get("hosts"):
            hop["hosts"] = _hosts(cfg, m.pop("hosts"))
        for k in ("interface", "so_mark", "proxyProtocol"):
            if m.get(k):
                m["hop." + k] = m.pop(k)
        hop_md = {}
        for k in list(m):
            if k.startswith(("node.", "connector.", "dialer.")):
                continue
            if k.startswith("hop."):
                hop_md[k[4:]] = m.pop(k)
                continue
            hop_md[k] = m[k]
        if hop_md:
            hop["metadata"] = hop_md
        proto = _node(url, m, arg)
        nodes = []
        for host in url.host.split(","):
            if not host:
                continue
            n = {"name": f"node-{len(nodes)}", **proto, "addr": host}
            n["connector"] = {**proto["connector"], "metadata": dict(proto["connector"]["metadata"])}
            n["dialer"] = {**proto["dialer"], "metadata": dict(proto["dialer"]["metadata"])}
            if n["dialer"].get("tls", {}).get("serverName") == url.hostname and "," in url.host:
                # each node of a host list gets its own host as TLS server name
                n["dialer"]["tls"] = {**n["dialer"]["tls"], "serverName": URL("x://" + host, arg).hostname}
            n["metadata"] = dict(proto["metadata"])
            nodes.append(n)
        if not nodes:
            raise ConfigError(arg, "node address is empty")
        hop["nodes"] = nodes
        chain["hops"].append(hop)
    return chain


def _services(raw, cfg):
    arg = f"-L {raw}"
    prefix = f"go-{os.environ['_GOST_ID']}@" if os.environ.get("_GOST_ID") else ""
    url = URL(raw, arg)
    handler, listener = url.schemes()
    addrs = expand_port_range(url.host)
    if handler not in schema.GOST_TYPES["handler"]:
        handler = "auto"
    if listener not in schema.GOST_TYPES["listener"]:
        listener = "udp" if handler == "ssu" else "tcp"
    targets = []
    remotes = url.path.strip("/")
    if remotes:
        for addr in remotes.split(","):
            for a in expand_port_range(addr):
                targets.append({"name": f"{prefix}target-{len(targets)}", "addr": a})
        if handler != "relay":
            handler = listener if listener in FORWARD_AS_LISTENER else "forward"
    m = dict(url.query)
    auth = _auth(url, m, arg)
    md = Metadata(m, schema.cli_query_md())
    tls = {"certFile": md.str("tls.certFile", "certFile", "cert"),
           "keyFile": md.str("tls.keyFile", "keyFile", "key"),
           "caFile": md.str("tls.caFile", "caFile", "ca")}
    for k in ("tls.certFile", "certFile", "cert", "tls.keyFile", "keyFile", "key", "tls.caFile", "caFile", "ca"):
        m.pop(k, None)
    tls = {k: v for k, v in tls.items() if v} if tls["certFile"] else None
    if m.get("dns"):
        m["dns"] = m["dns"].split(",")
    for k in ("interface", "so_mark", "proxyProtocol", "netns", "netns.out"):
        if m.get(k):
            m["service." + k] = m.pop(k)
    selector = _selector(m)
    svc_md, h_md, l_md = {}, {}, {}
    for k, v in m.items():
        if k.startswith("service."):
            svc_md[k[8:]] = v
        elif k.startswith("handler."):
            h_md[k[8:]] = v
        elif k.startswith("listener."):
            l_md[k[9:]] = v
        else:
            svc_md[k] = h_md[k] = l_md[k] = v
    out = []
    for i, addr in enumerate(addrs):
        svc = {"name": "", "addr": addr,
               "handler": {"type": handler, **({"auth": dict(auth)} if auth else {}), "metadata": dict(h_md)},
               "listener": {"type": listener, **({"tls": dict(tls)} if tls else {}), "metadata": dict(l_md)},
               "metadata": dict(svc_md)}
        if listener in ("ssh", "sshd") and auth:
            svc["listener"]["auth"] = svc["handler"].pop("auth")
        if targets:
            if len(addrs) == 1:
                nodes = targets
            elif len(targets) == 1:
                nodes = targets
            else:
                nodes = [targets[i]] if i < len(targets) else []
            if nodes:
                svc["forwarder"] = {"nodes": [dict(t) for t in nodes]}
                if selector:
                    svc["forwarder"]["selector"] = dict(selector)
        out.append(svc)
    return out


def _service_objects(svc, cfg):
    """Query keys that become top-level objects (GOST's second pass over each service)."""
    h = svc["handler"]["metadata"]
    md = Metadata(h, schema.cli_query_md())

    def take(*keys):
        for k in keys:
            for kk in list(h):
                if kk.lower() == k.lower():
                    return h.pop(kk)
        return ""

    if md.int("retries") > 0:
        svc["handler"]["retries"] = md.int("retries")
    take("retries")
    if md.str("admission"):
        svc["admission"] = _list_object(cfg, "admissions", "admission", take("admission"))
    if md.str("bypass"):
        svc["bypass"] = _list_object(cfg, "bypasses", "bypass", take("bypass"))
    if md.str("resolver"):
        svc["resolver"] = _resolver(cfg, take("resolver"), md.str("prefer"))
    if md.str("hosts"):
        svc["hosts"] = _hosts(cfg, take("hosts"))
    lin, lout = md.str("limiter.in"), md.str("limiter.out")
    cin, cout = md.str("limiter.conn.in"), md.str("limiter.conn.out")
    if lin or lout or cin or cout:
        limits = []
        # an empty in becomes 0 (GOST writes "$  2MB", which then parses as in=2MB)
        if lin or lout:
            limits.append(f"$ {lin or 0} {lout}".rstrip())
        if cin or cout:
            limits.append(f"$$ {cin or 0} {cout}".rstrip())
        lim = {"name": f"limiter-{len(cfg.setdefault('limiters', []))}", "limits": limits}
        cfg["limiters"].append(lim)
        svc["limiter"] = lim["name"]
        take("limiter.in"), take("limiter.out"), take("limiter.conn.in"), take("limiter.conn.out")
    if md.int("climiter") > 0:
        lim = {"name": f"climiter-{len(cfg.setdefault('climiters', []))}", "limits": [f"$ {md.int('climiter')}"]}
        cfg["climiters"].append(lim)
        svc["climiter"] = lim["name"]
        take("climiter")
    if md.float("rlimiter") > 0:
        lim = {"name": f"rlimiter-{len(cfg.setdefault('rlimiters', []))}", "limits": [f"$ {md.float('rlimiter'):g}"]}
        cfg["rlimiters"].append(lim)
        svc["rlimiter"] = lim["name"]
        take("rlimiter")


def from_args(services, nodes):
    """Build a config dict from lists of -L and -F URLs."""
    cfg = {}
    chain = _chain(nodes, cfg) if nodes else None
    svcs = []
    for raw in services:
        if raw.strip():
            svcs.extend(_services(raw, cfg))
    for i, svc in enumerate(svcs):
        svc["name"] = f"service-{i}"
        if chain is not None:
            if svc["listener"]["type"] in ("rtcp", "rudp", "runix"):
                svc["listener"]["chain"] = chain["name"]
            else:
                svc["handler"]["chain"] = chain["name"]
        _service_objects(svc, cfg)
    if svcs:
        cfg["services"] = svcs
    order = ["services", "chains", "admissions", "bypasses", "resolvers", "hosts", "limiters", "climiters", "rlimiters"]
    return prune({k: cfg[k] for k in order if k in cfg})


def prune(v):
    """Drop empty maps/lists/strings and None, as GOST's omitempty does when printing."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = prune(x)
            if x is None or x == {} or x == [] or x == "":
                continue
            out[k] = x
        return out
    if isinstance(v, list):
        return [prune(x) for x in v]
    return v
