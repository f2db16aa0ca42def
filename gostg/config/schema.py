"""The declared config schema: every key gostg understands, and every key GOST has that gostg
does not build yet (GOST's ``config.go`` and each component's ``metadata.go``, as data).

It drives validation (:mod:`gostg.config.validate`): unknown keys warn with a did-you-mean,
malformed values and missing required keys are errors, and GOST features gostg does not build
are errors when they decide who gets in or where traffic goes and warnings when they only
observe. Components read their metadata through :class:`gostg.config.metadata.Metadata`,
which refuses a key this schema does not declare for them — so code and schema cannot drift.

No imports of implementations here: checking a config never loads the protocol code.
"""

DOCS = "https://gost.run/en/"

# value kinds
STR, INT, FLOAT, BOOL, DURATION, STRLIST, MAP, ANY, BYTES = (
    "string", "integer", "number", "boolean", "duration", "list of strings", "mapping", "any", "size")
LIST = "list"

# what gostg does with a key
BUILT = "built"
#: GOST has it, gostg does not build it, and it decides who gets in or where traffic goes
UNBUILT_ERROR = "error"
#: GOST has it, gostg does not build it, and it only observes (logs, metrics, records)
UNBUILT_WARN = "warn"
#: accepted and deliberately without effect (read-only output such as a service's ``status``)
IGNORED = "ignored"


class Key:
    """One declared key. ``aliases`` are GOST's other spellings; ``fields`` (a dict of Keys) or
    ``item`` describe a nested mapping or the items of a list; ``docs`` is GOST's page."""

    __slots__ = ("name", "kind", "default", "aliases", "status", "docs", "required", "fields", "item",
                 "choices", "meaning", "unbuilt_choices")

    def __init__(self, name, kind=STR, default=None, aliases=(), status=BUILT, docs="", required=False,
                 fields=None, item=None, choices=None, meaning="", unbuilt_choices=()):
        self.name, self.kind, self.default, self.aliases = name, kind, default, tuple(aliases)
        self.status, self.docs, self.required = status, docs, required
        self.fields, self.item, self.choices, self.meaning = fields, item, choices, meaning
        #: values GOST accepts that gostg does not build (an error naming ``docs``, not "unknown")
        self.unbuilt_choices = tuple(unbuilt_choices)

    def names(self):
        return (self.name,) + self.aliases


def keys(*ks):
    """→ {name: Key} (case is kept; lookups are case-insensitive as GOST's viper is)."""
    return {k.name: k for k in ks}


def unbuilt(name, kind, docs, meaning, observe=False, **kw):
    return Key(name, kind, status=UNBUILT_WARN if observe else UNBUILT_ERROR, docs=docs, meaning=meaning, **kw)


# ---------------------------------------------------------------------------------------------
# Shared pieces of the config model (GOST x/config/config.go)

AUTH = keys(Key("username"), Key("password"), Key("file", meaning="first 'user pass' line of a file"))
TLS_OPTIONS = keys(Key("minVersion"), Key("maxVersion"), Key("cipherSuites", STRLIST))
TLS = keys(Key("certFile"), Key("keyFile"), Key("caFile"), Key("secure", BOOL), Key("serverName"),
           unbuilt("options", MAP, "tutorials/tls/", "TLS versions and cipher suites", fields=TLS_OPTIONS),
           unbuilt("rejectUnknownSNI", BOOL, "tutorials/tls/", "rejecting TLS handshakes with an unknown SNI"),
           unbuilt("serverNames", STRLIST, "tutorials/tls/", "the allowed-SNI list of rejectUnknownSNI"),
           Key("validity", DURATION), Key("commonName"), Key("organization"))
SELECTOR = keys(Key("strategy", default="round", choices=("round", "rr", "rand", "random", "fifo", "ha", "hash",
                                                           "parallel", "lowestlatency", "lowest", "ll"),
                    docs="concepts/selector/"),
                Key("maxFails", INT, default=1), Key("failTimeout", DURATION, default="10s"),
                Key("maxLatency", DURATION, docs="tutorials/probe/",
                    meaning="nodes whose last probe failed or took longer are not selected"))
FILE_LOADER = keys(Key("path", required=True))
REDIS_LOADER = keys(Key("addr"), Key("db", INT), Key("username"), Key("password"), Key("key"), Key("type"))
HTTP_LOADER = keys(Key("url"), Key("timeout", DURATION))
#: TLS to a plugin: GOST reads serverName and secure; gostg always verifies, with caFile if set
PLUGIN_TLS = keys(Key("serverName"), Key("caFile", meaning="gostg: the CA that signed the plugin's certificate"),
                  Key("secure", BOOL, meaning="gostg always verifies the plugin's certificate (GOST only with "
                                              "secure: true)"),
                  unbuilt("certFile", STR, "concepts/plugin/", "client certificates to plugins", observe=True),
                  unbuilt("keyFile", STR, "concepts/plugin/", "client certificates to plugins", observe=True))
PLUGIN = keys(
    Key("type", default="grpc", choices=("http", "grpc"), docs="concepts/plugin/",
        meaning="http: GOST's JSON-over-POST protocol; grpc (GOST's default when unset): go-gost/plugin's "
                "protos, needs pip install 'gostg[grpc]'"),
    Key("addr", required=True, docs="concepts/plugin/",
        meaning="grpc: the plugin server's host:port; http: the URL POSTed to (http:// is prepended when it "
                "has no scheme, https:// with tls)"),
    Key("tls", MAP, fields=PLUGIN_TLS, meaning="TLS to the plugin: serverName, caFile (gostg always verifies the "
                                               "certificate; GOST only with secure: true)"),
    Key("timeout", DURATION, default="10s", meaning="deadline of one call (GOST: none); a decision "
                                                    "that times out is refused"),
    Key("token", meaning="grpc: sent as the metadata entry token; http: Authorization: Bearer <token>"))
#: ``plugin`` where gostg builds it: the plugin decides instead of the object's own rules (GOST)
PLUGIN_KEY = Key("plugin", MAP, fields=PLUGIN, docs="concepts/plugin/",
                 meaning="a plugin decides instead of the object's own rules; one that fails refuses")
SOCKOPTS = keys(Key("mark", INT))


def _file_key():
    # GOST: ``file: {path: …}``; gostg also takes a bare path string
    return Key("file", ANY, fields=FILE_LOADER, meaning="file loader")


def redis_loader(types, hash_line=""):
    """GOST's redis block for an object that reads Redis ``types`` (the first is the default),
    plus gostg's ``pubsub``; ``hash_line``: what one HASH field and its value are."""
    reads = dict(REDIS_READS, **({"hash": f"HGETALL, one '{hash_line}' per field"} if hash_line else {}))
    return keys(Key("addr", required=True, meaning="host:port of the Redis server"),
                Key("db", INT, default=0), Key("username"), Key("password"),
                Key("key", default="gost"),
                Key("type", default=types[0], choices=("",) + types,
                    meaning=" or ".join(f"{t}: {reads[t]}" for t in types)),
                Key("pubsub", BOOL, default=False,
                    meaning="gostg: re-read at once on PUBLISH gostg:reload <key> (or a keyspace "
                            "notification of the key, when the server sends them)"))


REDIS_READS = {"set": "SMEMBERS", "list": "LRANGE 0 -1", "hash": "HGETALL, one 'user password' per field"}
HTTP_SOURCE = keys(Key("url", required=True, meaning="GET; a 200 body in the file format"),
                   Key("timeout", DURATION, default="10s", meaning="the whole request (GOST: none)"))


def loaders(doc, redis_types=None, plugin=True, hash_line=""):
    """The data-source keys every loader-capable object has; ``redis_types``: the Redis key
    types it reads (None: redis and http are not built for it); ``plugin``: gostg builds it;
    ``hash_line``: what a HASH field and value stand for."""
    if redis_types is None:
        net = [unbuilt("redis", MAP, doc, "Redis loader", fields=REDIS_LOADER),
               unbuilt("http", MAP, doc, "HTTP loader", fields=HTTP_LOADER)]
    else:
        net = [Key("redis", MAP, fields=redis_loader(redis_types, hash_line), docs=doc,
                   meaning="Redis loader (after the inline items and file)"),
               Key("http", MAP, fields=HTTP_SOURCE, docs=doc, meaning="HTTP loader (after redis)")]
    return [Key("reload", DURATION, meaning="poll period of file, redis and http"), _file_key(), *net,
            PLUGIN_KEY if plugin else unbuilt("plugin", MAP, "concepts/plugin/", "plugin", fields=PLUGIN)]


def named(*ks):
    return keys(Key("name", required=True), *ks)


NAMESERVER = keys(Key("addr"), Key("chain", meaning="ref:chains"), Key("prefer", choices=("", "ipv4", "ipv6")), Key("clientIP"),
                  Key("hostname"), Key("ttl", DURATION), Key("timeout", DURATION), Key("async", BOOL),
                  Key("only", choices=("", "ipv4", "ipv6")))
HOST_MAPPING = keys(Key("ip", required=True), Key("hostname", required=True), Key("aliases", STRLIST))
CHAIN_GROUP = keys(Key("chains", STRLIST), Key("selector", MAP, fields=SELECTOR))
URL_REWRITE = keys(Key("match", required=True), Key("replacement"))
HTTP_NODE = keys(Key("host"), Key("header", MAP), Key("requestHeader", MAP), Key("auth", MAP, fields=AUTH),
                 Key("responseHeader", MAP), Key("rewriteURL", LIST, item=URL_REWRITE),
                 Key("rewrite", LIST, item=URL_REWRITE, meaning="deprecated: rewriteURL"),
                 *[unbuilt(k, kind, "concepts/forwarder/", meaning) for k, kind, meaning in (
                     ("rewriteBody", LIST, "body rewriting on forwarder nodes"),
                     ("rewriteResponseBody", LIST, "body rewriting on forwarder nodes"),
                     ("rewriteRequestBody", LIST, "body rewriting on forwarder nodes"),
                     ("failCodes", STR, "marking a node failed by HTTP status"))])
TLS_NODE = keys(Key("serverName"), Key("secure", BOOL),
                unbuilt("options", MAP, "concepts/forwarder/", "TLS versions and ALPN to forwarder nodes",
                        fields=TLS_OPTIONS))
NODE_FILTER = keys(Key("host"), Key("protocol"), Key("path"))
NODE_MATCHER = keys(Key("rule"), Key("priority", INT),
                    unbuilt("bodySize", INT, "tutorials/reverse-proxy/", "request body matching"))

PROBE = keys(
    Key("type", default="tcp", choices=("tcp", "http", "cmd"), docs="tutorials/probe/"),
    Key("addr", meaning="reached through the node (tcp, http probes)"),
    Key("interval", DURATION, default="30s"), Key("timeout", DURATION, default="10s"),
    Key("httpPath", default="/"), Key("httpHost"), Key("httpHeaders", MAP), Key("expectedStatus", INT, default=200),
    Key("command", meaning="sh -c command on this host (cmd probes)"))
#: connector types whose node has no server, so no ``addr`` (GOST's virtual node)
ADDRLESS_CONNECTORS = ("direct", "virtual")
#: listeners a service may have without an address (a routing TUN client: ``tun:///host-1``)
ADDRLESS_LISTENERS = ("tun",)

HANDLER = keys(
    Key("type", default="auto"), Key("retries", INT), Key("chain", meaning="ref:chains"),
    unbuilt("chainGroup", MAP, "concepts/chain/", "chain groups", fields=CHAIN_GROUP),
    Key("auther", meaning="ref:authers"), Key("authers", STRLIST, meaning="ref:authers"),
    Key("auth", MAP, fields=AUTH), Key("tls", MAP, fields=TLS),
    Key("dns", STRLIST, docs="reference/handlers/dns/",
        meaning="the dns handler's upstreams, where GOST's reference page puts them (GOST itself reads only "
                "metadata.dns and ignores this); gostg reads it as metadata.dns"),
    Key("limiter", docs="concepts/limiter/", meaning="ref:limiters"),   # per client (scope client), after auth
    Key("observer", docs="concepts/observer/", meaning="ref:observers"),   # per-client stats (kind: handler)
    Key("metadata", MAP, meaning="metadata:handler"))
LISTENER = keys(
    Key("type", default="tcp"), Key("chain", meaning="ref:chains"),
    unbuilt("chainGroup", MAP, "concepts/chain/", "chain groups", fields=CHAIN_GROUP),
    Key("auther", meaning="ref:authers"), Key("authers", STRLIST, meaning="ref:authers"),
    Key("auth", MAP, fields=AUTH), Key("tls", MAP, fields=TLS), Key("metadata", MAP, meaning="metadata:listener"))
FORWARD_NODE = keys(
    # no addr: the sniffed host, or (unsniffed) what the chain's last node chooses
    Key("name"), Key("addr"), Key("network"),
    Key("bypass", meaning="ref:bypasses"), Key("bypasses", STRLIST, meaning="ref:bypasses"),
    Key("host", meaning="deprecated: filter.host"), Key("protocol", meaning="deprecated: filter.protocol"),
    Key("path", meaning="deprecated: filter.path"),
    Key("matcher", MAP, fields=NODE_MATCHER), Key("filter", MAP, fields=NODE_FILTER),
    Key("http", MAP, fields=HTTP_NODE), Key("tls", MAP, fields=TLS_NODE),
    Key("auth", MAP, fields=AUTH, meaning="deprecated: http.auth"),
    unbuilt("probe", MAP, "tutorials/probe/", "probes of forwarder targets (a failed connection marks one)",
            fields=PROBE),
    Key("metadata", MAP, meaning="metadata:node"))
FORWARDER = keys(Key("name"), Key("selector", MAP, fields=SELECTOR),
                 Key("nodes", LIST, item=FORWARD_NODE),
                 unbuilt("hop", STR, "concepts/forwarder/", "a forwarder that references a hop"))
#: GOST's record objects (go-gost/core recorder.go, x/recorder/recorder.go) a service may send
RECORDS = ("recorder.service.client.address", "recorder.service.router.dial.address",
           "recorder.service.router.dial.address.error", "recorder.service.handler")
RECORDER_OBJECT = keys(
    Key("name", required=True, docs="concepts/recorder/", meaning="ref:recorders"),
    Key("record", required=True, choices=RECORDS, docs="concepts/recorder/", meaning="what to record",
        unbuilt_choices=("recorder.service.handler.serial", "recorder.service.handler.tunnel")),
    Key("metadata", MAP, meaning="options (GOST: http.body, http.maxBodySize; gostg records no HTTP bodies)"))
CONNECTOR = keys(Key("type", default="http"), Key("auth", MAP, fields=AUTH), Key("tls", MAP, fields=TLS),
                 Key("metadata", MAP, meaning="metadata:connector"))
DIALER = keys(Key("type", default="tcp"), Key("auth", MAP, fields=AUTH), Key("tls", MAP, fields=TLS),
              Key("metadata", MAP, meaning="metadata:dialer"))

SERVICE = named(
    Key("addr", meaning="listen address (required, except by the tun listener)"),
    Key("interface", docs="tutorials/multi-homed/", meaning="outgoing interface or source address (GOST: deprecated "
                                                            "for metadata.interface)"),
    Key("sockopts", MAP, docs="tutorials/multi-homed/", fields=SOCKOPTS,
        meaning="socket options: mark (SO_MARK; GOST: deprecated for metadata.so_mark)"),
    Key("admission", meaning="ref:admissions"), Key("admissions", STRLIST, meaning="ref:admissions"),
    Key("bypass", meaning="ref:bypasses"), Key("bypasses", STRLIST, meaning="ref:bypasses"),
    Key("resolver", meaning="ref:resolvers"), Key("hosts", meaning="ref:hosts"),
    Key("limiter", meaning="ref:limiters"), Key("climiter", meaning="ref:climiters"),
    Key("rlimiter", meaning="ref:rlimiters"),
    unbuilt("quotas", ANY, "concepts/limiter/", "traffic quotas"),
    Key("logger", docs="tutorials/log/", meaning="the named logger (loggers[].name) this service logs to; "
                                                 "an unknown name is an error"),
    Key("loggers", STRLIST, docs="tutorials/log/", meaning="several named loggers: each event goes to each"),
    Key("observer", docs="concepts/observer/", meaning="ref:observers"),
    Key("recorders", LIST, item=RECORDER_OBJECT, docs="concepts/recorder/",
        meaning="records this service sends to named recorders"),
    unbuilt("rewriter", STR, "concepts/rewriter/", "HTTP body rewriters"),
    Key("handler", MAP, fields=HANDLER), Key("listener", MAP, fields=LISTENER),
    Key("forwarder", MAP, fields=FORWARDER), Key("metadata", MAP, meaning="metadata:service"),
    Key("status", ANY, status=IGNORED, meaning="read-only status written by the Web API"))

NODE = named(
    Key("addr", meaning="required, except for a direct/virtual node"), Key("network"),
    Key("bypass", meaning="ref:bypasses"), Key("bypasses", STRLIST, meaning="ref:bypasses"),
    Key("resolver", meaning="ref:resolvers"), Key("hosts", meaning="ref:hosts"),
    unbuilt("host", STR, "concepts/chain/", "node host matching"),
    unbuilt("protocol", STR, "concepts/chain/", "node protocol matching"),
    unbuilt("path", STR, "concepts/chain/", "node path matching"),
    Key("netns", docs="tutorials/netns/", meaning="network namespace of the node's dialer (GOST: deprecated for "
                                                  "metadata.netns)"),
    Key("interface", docs="tutorials/multi-homed/", meaning="outgoing interface or source address (GOST: deprecated "
                                                            "for metadata.interface)"),
    Key("sockopts", MAP, docs="tutorials/multi-homed/", fields=SOCKOPTS,
        meaning="socket options: mark (SO_MARK; GOST: deprecated for metadata.so_mark)"),
    Key("connector", MAP, fields=CONNECTOR), Key("dialer", MAP, fields=DIALER),
    unbuilt("http", MAP, "concepts/chain/", "HTTP settings on chain nodes", fields=HTTP_NODE),
    unbuilt("tls", MAP, "concepts/chain/", "TLS settings on chain nodes", fields=TLS_NODE),
    unbuilt("auth", MAP, "concepts/chain/", "node-level auth", fields=AUTH),
    unbuilt("matcher", MAP, "concepts/chain/", "node matchers"),
    unbuilt("filter", MAP, "concepts/chain/", "node filters (host, protocol, path)"),
    Key("probe", MAP, fields=PROBE, docs="tutorials/probe/", meaning="health and latency checks of the node"),
    Key("metadata", MAP, meaning="metadata:node"))
# ``name`` is optional on a node: its address names it
NODE["name"] = Key("name")

HOP = named(
    Key("interface", docs="tutorials/multi-homed/", meaning="outgoing interface or source address (GOST: deprecated "
                                                            "for metadata.interface)"),
    Key("sockopts", MAP, docs="tutorials/multi-homed/", fields=SOCKOPTS,
        meaning="socket options: mark (SO_MARK; GOST: deprecated for metadata.so_mark)"),
    Key("selector", MAP, fields=SELECTOR),
    Key("bypass", meaning="ref:bypasses"), Key("bypasses", STRLIST, meaning="ref:bypasses"),
    Key("resolver", meaning="ref:resolvers"), Key("hosts", meaning="ref:hosts"),
    Key("nodes", LIST, item=NODE),
    Key("reload", DURATION, docs="concepts/hop/", meaning="seconds between two reads of file, redis and http "
                                                          "(read when the hop is next used)"),
    Key("file", ANY, fields=FILE_LOADER, docs="concepts/hop/",
        meaning="a JSON array of nodes (path, or {path: …}), added to the inline nodes"),
    Key("redis", MAP, fields=REDIS_LOADER, docs="concepts/hop/",
        meaning="a Redis STRING (GET key, default gost) holding a JSON array of nodes"),
    Key("http", MAP, fields=HTTP_LOADER, docs="concepts/hop/", meaning="GET url: a 200 body is a JSON array of nodes"),
    Key("plugin", MAP, fields=PLUGIN, docs="concepts/plugin/",
        meaning="the plugin names the node of each connection (the hop's nodes and selector are not used)"),
    Key("metadata", MAP, meaning="metadata:hop"))
# a hop inside a chain may be a bare reference: its name alone
CHAIN_HOP = dict(HOP)

CHAIN = named(Key("hops", LIST, item=CHAIN_HOP), Key("metadata", MAP, meaning="metadata:chain"),
              unbuilt("selector", MAP, "reference/configuration/file/",
                      "a chain-level selector (gostg uses each hop's own)", fields=SELECTOR))
AUTHER = named(Key("auths", LIST, item=AUTH), *loaders("concepts/auth/", ("hash",)))
ADMISSION = named(Key("reverse", BOOL), Key("whitelist", BOOL), Key("matchers", STRLIST),
                  *loaders("concepts/admission/", ("set",)))
BYPASS = named(Key("reverse", BOOL), Key("whitelist", BOOL), Key("matchers", STRLIST),
               Key("network", choices=("", "tcp", "udp", "tcp4", "tcp6", "udp4", "udp6")),
               *loaders("concepts/bypass/", ("set",)))
RESOLVER = named(Key("nameservers", LIST, item=NAMESERVER), PLUGIN_KEY)
HOSTS = named(Key("mappings", LIST, item=HOST_MAPPING), *loaders("concepts/hosts/", ("set", "list")))
#: gostg (GOST has no such key; its quotas have a ``store`` of this shape): counts kept in Redis,
#: shared by every process and instance with the same ``redis.key``
LIMITER_REDIS_STORE = keys(Key("addr", required=True), Key("db", INT, default=0), Key("username"), Key("password"),
                           Key("key", meaning="key prefix shared by the instances (default gostg:<kind>:<name>)"))
LIMITER_STORE = keys(Key("redis", MAP, fields=LIMITER_REDIS_STORE, required=True),
                     Key("ttl", DURATION, default="10s",
                         meaning="heartbeat: a dead instance's counts (and its share) stop counting after this"))
STORE_KEY = Key("store", MAP, fields=LIMITER_STORE,
                meaning="gostg: counts shared through Redis across processes and instances "
                        "(traffic limiters: the $ scope)")
LIMITER = named(Key("limits", STRLIST), *loaders("concepts/limiter/", ("set", "list")), STORE_KEY)
#: connection and rate limiters: GOST has no plugin for them
CLIMITER = named(Key("limits", STRLIST), *loaders("concepts/limiter/", ("set", "list"), plugin=False), STORE_KEY)
# ingresses, routers, sds: read by the tunnel, router and tun handlers (gostg/policy/ingress.py,
# routes.py, sd.py; plugin-backed ones in gostg/plugin/routing.py)
INGRESS_RULE = keys(Key("hostname", required=True, docs="concepts/ingress/",
                        meaning="a host name, or a wildcard *.example.org / .example.org (the name and "
                                "every name under it)"),
                    Key("endpoint", required=True, docs="concepts/ingress/",
                        meaning="the tunnel ID (a UUID; $-prefixed: a private tunnel)"))
INGRESS = named(Key("rules", LIST, item=INGRESS_RULE, docs="concepts/ingress/",
                    meaning="hostname -> endpoint; a later source wins for the same hostname"),
                *loaders("concepts/ingress/", ("hash", "set"), hash_line="hostname endpoint"))
ROUTE = keys(Key("dst", docs="concepts/router/", meaning="an IP address or a CIDR network"),
             Key("net", docs="concepts/router/", meaning="deprecated: dst (a CIDR network)"),
             Key("gateway", required=True, docs="concepts/router/"))
ROUTER = named(Key("routes", LIST, item=ROUTE, docs="concepts/router/",
                   meaning="dst -> gateway; the first route that holds a destination wins"),
               *loaders("concepts/router/", ("hash", "set", "list"), hash_line="dst gateway"))
#: a plugin ingress/router that fails does not refuse a connection itself: it routes nothing
INGRESS["plugin"] = ROUTER["plugin"] = Key("plugin", MAP, fields=PLUGIN, docs="concepts/plugin/",
                                           meaning="a plugin answers instead of the object's own rules; one "
                                                   "that fails routes nothing")
SD = named(Key("plugin", MAP, fields=PLUGIN, required=True, docs="concepts/sd/",
               meaning="service discovery is a plugin only (GOST's); one that fails finds no service"))
OBSERVER_PLUGIN = keys(
    Key("type", default="grpc", choices=("http", "grpc"), docs="concepts/observer/",
        meaning="http, or grpc (GOST's default when unset: needs pip install 'gostg[grpc]')"),
    Key("addr", required=True, meaning="the plugin's URL; http:// is prepended when it has no scheme"),
    Key("token", meaning="sent as Authorization: Bearer <token>"),
    Key("timeout", DURATION, default="10s", meaning="deadline of one POST (GOST: none)"),
    Key("tls", MAP, fields=PLUGIN_TLS, meaning="https:// plugins: serverName, caFile (gostg always verifies)"))
OBSERVER = named(Key("plugin", MAP, fields=OBSERVER_PLUGIN, required=True, docs="concepts/observer/",
                     meaning="observers are plugins only"))
REWRITER = named(Key("plugin", MAP, fields=PLUGIN))
ROTATION = keys(
    Key("maxSize", FLOAT, default=100, docs="tutorials/log/",
        meaning="megabytes before the file is rotated (gostg also takes a fraction: 0.5)"),
    Key("maxAge", INT, docs="tutorials/log/",
        meaning="days a backup is kept (0: no limit; a log backup's age is the time in its name)"),
    Key("maxBackups", INT, docs="tutorials/log/", meaning="backups kept, newest first (0: all)"),
    Key("localTime", BOOL, docs="tutorials/log/", meaning="log backups: the time in their names is local, not UTC"),
    Key("compress", BOOL, docs="tutorials/log/", meaning="gzip each backup (.gz)"))
FILE_RECORDER = keys(Key("path", required=True), Key("sep", meaning="written after each record (default: none)"),
                     Key("rotation", MAP, fields=ROTATION, meaning="rotate the file (maxSize MB, maxBackups, maxAge "
                                                                    "days, compress)"))
TCP_RECORDER = keys(Key("addr", required=True, meaning="host:port; one connection per record"),
                    Key("timeout", DURATION, default="10s", meaning="connect and send deadline"))
HTTP_RECORDER = keys(Key("url", required=True, meaning="each record is POSTed as the body"),
                     Key("timeout", DURATION, default="10s", meaning="request deadline"),
                     Key("header", MAP, meaning="request header fields"))
REDIS_RECORDER = keys(Key("addr", required=True), Key("db", INT, default=0), Key("username"), Key("password"),
                      Key("key", required=True),
                      Key("type", default="set", choices=("", "set", "sset", "list"),
                          meaning="set: SADD, sset: ZINCRBY 1, list: LPUSH"),
                      Key("timeout", DURATION, default="10s",
                          meaning="gostg: connect and command deadline (GOST has no such key)"))
RECORDER = named(Key("file", MAP, fields=FILE_RECORDER, docs="concepts/recorder/"),
                 Key("tcp", MAP, fields=TCP_RECORDER, docs="concepts/recorder/"),
                 Key("http", MAP, fields=HTTP_RECORDER, docs="concepts/recorder/"),
                 Key("redis", MAP, fields=REDIS_RECORDER, docs="concepts/recorder/"),
                 Key("plugin", MAP, fields=PLUGIN, docs="concepts/recorder/",
                     meaning="type http (POST {data, metadata}); type grpc (GOST's default) where this gostg "
                             "has the gRPC transport, else warned about and its records dropped"))
LOG = keys(Key("output", default="stderr", docs="tutorials/log/",
               meaning="stderr, stdout, none, a file path, or (gostg) logging: the stdlib logger 'gostg'"),
           Key("level", choices=("trace", "debug", "info", "warn", "warning", "error", "fatal"), default="info"),
           Key("format", choices=("", "json", "text"), default="json"),
           Key("rotation", MAP, docs="tutorials/log/", meaning="rotate a file output by size", fields=ROTATION))
LOGGER = named(Key("log", MAP, fields=LOG))
API = keys(Key("addr", required=True), Key("pathPrefix"), Key("accesslog", BOOL, aliases=("accessLog",)),
           Key("auth", MAP, fields=AUTH), Key("auther", meaning="ref:authers"))
#: ``clientLabel: false`` drops the ``client`` label from the per-service metrics: GOST keeps one
#: series per client IP, which on a busy or public proxy makes every scrape large
CLIENT_LABEL = Key("clientLabel", BOOL, default=True, docs="tutorials/metrics/",
                   meaning="the client IP as the 'client' label of the per-service metrics (GOST's); false "
                           "drops the label (one series per client IP grows without bound); once per process")
METRICS_MD = keys(CLIENT_LABEL)
METRICS = keys(Key("addr", required=True, meaning="host:port, or unix:///path/to.sock"),
               Key("path", default="/metrics"), Key("auth", MAP, fields=AUTH),
               Key("auther", meaning="ref:authers"),
               Key("metadata", MAP, fields=METRICS_MD, meaning="gostg's settings of the metrics"))
PROFILING = keys(Key("addr"))

#: top-level key → (Key, what it is). Lists of named objects and singletons, in GOST's order.
TOP = keys(
    Key("services", LIST, item=SERVICE), Key("chains", LIST, item=CHAIN), Key("hops", LIST, item=HOP),
    Key("authers", LIST, item=AUTHER), Key("admissions", LIST, item=ADMISSION),
    Key("bypasses", LIST, item=BYPASS), Key("resolvers", LIST, item=RESOLVER), Key("hosts", LIST, item=HOSTS),
    Key("ingresses", LIST, item=INGRESS, docs="concepts/ingress/",
        meaning="hostname -> tunnel ID, for the tunnel and router handlers"),
    Key("routers", LIST, item=ROUTER, docs="concepts/router/",
        meaning="destination -> gateway, for the tun and router handlers"),
    Key("sds", LIST, item=SD, docs="concepts/sd/", meaning="service discovery of tunnel connections (plugin)"),
    Key("recorders", LIST, item=RECORDER, docs="concepts/recorder/", meaning="where records go: file, tcp, http, redis"),
    Key("limiters", LIST, item=LIMITER), Key("climiters", LIST, item=CLIMITER), Key("rlimiters", LIST, item=CLIMITER),
    unbuilt("quotas", LIST, "concepts/limiter/", "traffic quotas"),
    Key("observers", LIST, item=OBSERVER, docs="concepts/observer/"),
    unbuilt("rewriters", LIST, "concepts/rewriter/", "HTTP body rewriters", item=REWRITER),
    Key("loggers", LIST, docs="tutorials/log/", item=LOGGER),
    Key("tls", MAP, fields=TLS), Key("log", MAP, fields=LOG),
    unbuilt("profiling", MAP, "reference/configuration/file/", "profiling", observe=True, fields=PROFILING),
    Key("api", MAP, fields=API),
    Key("metrics", MAP, fields=METRICS, docs="tutorials/metrics/"),
    Key("workers", ANY, default=1,
        meaning="gostg: worker processes sharing each TCP port (SO_REUSEPORT), a number or auto (one per "
                "core); the -workers flag wins. UDP, rtcp/rudp and unix listeners run in worker 0; limiters "
                "are split per worker"))

# ---------------------------------------------------------------------------------------------
# Component metadata (each GOST component's metadata.go). Groups are shared by several types.

def md(*ks):
    return keys(*ks)


def _tune(name, docs, meaning, kind=STR, aliases=()):
    """A GOST tuning knob gostg does not build: it neither decides who gets in nor where traffic
    goes, so it is a warning (gostg runs with its own value), like an observational feature."""
    return unbuilt(name, kind, docs, f"{meaning} (gostg uses its own)", observe=True, aliases=aliases)


def _ub(name, docs, meaning, kind=STR, observe=False, aliases=()):
    return unbuilt(name, kind, docs, meaning, observe=observe, aliases=aliases)


#: where outgoing sockets leave from (gostg.core.sockopts): a service's direct dials, a hop's or
#: node's dialer; a node's own value wins over its hop's
MD_EGRESS = md(
    Key("interface", docs="tutorials/multi-homed/",
        meaning="outgoing interface name or source IP; a comma list is tried in order, '!' marks an entry strict"),
    Key("so_mark", INT, docs="tutorials/multi-homed/", meaning="SO_MARK on outgoing sockets (needs CAP_NET_ADMIN or CAP_NET_RAW)"))
NODE_NETNS = Key("netns", docs="tutorials/netns/", meaning="network namespace the node's outgoing sockets are created in")


MD_SERVICE = md(
    Key("preUp", STRLIST), Key("postUp", STRLIST), Key("preDown", STRLIST), Key("postDown", STRLIST),
    Key("ignoreChain", BOOL), Key("dialTimeout", DURATION, default="10s"),
    *MD_EGRESS.values(),
    Key("netns", docs="tutorials/netns/", meaning="network namespace the listener (and a SOCKS5 UDP relay or BIND "
                                                  "socket) is created in"),
    Key("netns.out", docs="tutorials/netns/", meaning="network namespace of the handler's direct dials"),
    Key("proxyProtocol", INT, docs="tutorials/proxy-protocol/",
        meaning="1 or 2: read a PROXY protocol header (either version) from each client"),
    Key("proxyProtocol.trusted", STRLIST, docs="tutorials/proxy-protocol/",
        meaning="gostg: the only peers (IPs/CIDRs) whose PROXY header is believed"),
    Key("proxyProtocol.timeout", DURATION, default="10s", docs="tutorials/proxy-protocol/",
        meaning="gostg: how long a peer may take to send its PROXY header"),
    Key("enableStats", BOOL, docs="concepts/observer/", meaning="report stats events to the service's observer"),
    Key("observer.period", DURATION, default="5s", aliases=("observePeriod",), docs="concepts/observer/",
        meaning="stats reporting period (at least 1s, as GOST)"),
    Key("observer.resetTraffic", BOOL, docs="concepts/observer/",
        meaning="report inputBytes/outputBytes as the bytes since the last report"),
    _ub("logger.level", "tutorials/log/", "per-service log level", observe=True),
    _ub("quotas", "concepts/limiter/", "traffic quotas"),
    _ub("labels", "concepts/service/", "service labels for recorders and logs", MAP, observe=True),
    _tune("limiter.refreshInterval", "concepts/limiter/", "limiter plugin sync interval", DURATION),
    _tune("limiter.scope", "concepts/limiter/", "limiter plugin scope"),
    # what the command line (-L) turns into objects of their own; GOST leaves a copy of the query
    # key in the service and listener metadata, where it has no further effect
    Key("admission", status=IGNORED, meaning="cmdline:admission"),
    Key("bypass", status=IGNORED, meaning="cmdline:bypass"),
    Key("resolver", status=IGNORED, meaning="cmdline:resolver"),
    Key("prefer", status=IGNORED, meaning="cmdline:resolver"),
    Key("hosts", status=IGNORED, meaning="cmdline:hosts"),
    Key("limiter.in", status=IGNORED, meaning="cmdline:limiter"),
    Key("limiter.out", status=IGNORED, meaning="cmdline:limiter"),
    Key("limiter.conn.in", status=IGNORED, meaning="cmdline:limiter"),
    Key("limiter.conn.out", status=IGNORED, meaning="cmdline:limiter"),
    Key("climiter", status=IGNORED, meaning="cmdline:climiter"),
    Key("rlimiter", status=IGNORED, meaning="cmdline:rlimiter"),
    Key("retries", status=IGNORED, meaning="cmdline:retries"))
MD_HANDLER_BASE = md(
    Key("readTimeout", DURATION, default="15s"),
    _ub("sniffing", "tutorials/sniffing/", "traffic sniffing", BOOL),
    _ub("sniffing.timeout", "tutorials/sniffing/", "traffic sniffing", DURATION),
    _ub("sniffing.websocket", "tutorials/sniffing/", "WebSocket frame recording", BOOL, observe=True),
    _ub("mitm.certFile", "tutorials/sniffing/", "TLS interception"),
    _ub("mitm.keyFile", "tutorials/sniffing/", "TLS interception"),
    _ub("mitm.alpn", "tutorials/sniffing/", "TLS interception"),
    _ub("mitm.bypass", "tutorials/sniffing/", "TLS interception"),
    _ub("sniffing.websocket.sampleRate", "tutorials/sniffing/", "WebSocket frame recording", FLOAT, observe=True),
    Key("observer.period", DURATION, default="5s", aliases=("observePeriod", "observer.observePeriod"),
        docs="concepts/observer/", meaning="the handler observer's reporting period (at least 1s, as GOST)"),
    Key("observer.resetTraffic", BOOL, docs="concepts/observer/",
        meaning="the handler observer reports inputBytes/outputBytes as the bytes since the last report"))
MD_SKIPAUTH = md(Key("skipauth", STRLIST))
MD_HASH = md(Key("hash", choices=("", "host")))
MD_HTTP_HANDLER = md(
    Key("authBasicRealm", default="gost"), Key("udp", BOOL),
    _tune("header", "reference/handlers/http/", "response headers on the http handler", MAP),
    Key("probeResist", aliases=("probe_resist",), docs="tutorials/probe-resistance/",
        meaning="what a client failing auth sees: code:N, web:URL, host:HOST:PORT or file:PATH"),
    Key("knock", docs="tutorials/probe-resistance/",
        meaning="hosts (comma-separated) that still get the 407 when probeResist is on"),
    _tune("proxyAgent", "reference/handlers/http/", "Proxy-Agent header"),
    _tune("udpBufferSize", "reference/handlers/http/", "UDP buffer size", INT))
MD_SOCKS5_HANDLER = md(
    Key("udp", BOOL), Key("bind", BOOL), Key("publicAddr"), Key("compatibilityMode", BOOL),
    Key("bindTimeout", DURATION),
    Key("noTLS", BOOL, aliases=("notls",), meaning="gostg never offers GOST's SOCKS5 TLS method: always in effect"),
    _tune("udpBufferSize", "reference/handlers/socks5/", "UDP buffer size", INT, aliases=("udp.bufferSize",)),
    _ub("tor", "tutorials/protocols/socks/", "Tor's SOCKS5 RESOLVE/RESOLVE_PTR commands", BOOL,
        aliases=("enableTor", "socks5.tor")))
MD_HTTP2_HANDLER = md(Key("header", MAP, aliases=("http.header",)), Key("authBasicRealm", default="gost"),
                      MD_HTTP_HANDLER["probeResist"], MD_HTTP_HANDLER["knock"])
MD_RELAY_HANDLER = md(Key("bind", BOOL), Key("udp", BOOL),
                      _tune("udpBufferSize", "reference/handlers/relay/", "UDP buffer size", INT))
MD_SS_HANDLER = md(Key("key"), _tune("udpBufferSize", "reference/handlers/ss/", "UDP buffer size", INT))
MD_API_HANDLER = md(Key("pathPrefix"), Key("accesslog", BOOL, aliases=("accessLog",)))
#: GOST's metrics handler reads only its path (readTimeout: the handler base of every gostg handler)
MD_METRICS_HANDLER = md(Key("readTimeout", DURATION, default="15s"),
                        Key("path", default="/metrics", aliases=("metrics.path",), docs="tutorials/metrics/"),
                        CLIENT_LABEL)
#: the handlers that sniff (first in their groups, so they win over MD_HANDLER_BASE's "not built")
MD_SNIFFING = md(Key("sniffing", BOOL), Key("sniffing.timeout", DURATION))
MD_DNS_HANDLER = md(
    Key("readTimeout", DURATION, default="15s"),
    Key("dns", STRLIST, default="udp://127.0.0.1:53", docs="reference/handlers/dns/",
        meaning="upstream nameservers [udp|tcp|tls|https://]host[:port][/path]; without them: the forwarder's "
                "nodes, else /etc/resolv.conf, else udp://127.0.0.1:53"),
    Key("ttl", DURATION, meaning="cache time: > 0 overrides record TTLs, 0 keeps them, < 0 turns the cache off"),
    Key("timeout", DURATION, default="5s", meaning="one upstream exchange, connect included"),
    Key("clientIP", meaning="EDNS Client Subnet address sent upstream"),
    Key("bufferSize", INT, default=4096, meaning="largest query accepted"),
    Key("async", BOOL, meaning="serve an expired cache entry and refresh it in the background"))
MD_FORWARD_HANDLER = md(Key("proxyProtocol", INT, docs="tutorials/proxy-protocol/",
                            meaning="1 or 2: send a PROXY protocol header to the target (TCP)"))

# --- reverse proxy tunnel (GOST x/handler/tunnel, x/connector/tunnel) ------------------------
_RPT = "tutorials/reverse-proxy-tunnel/"
MD_TUNNEL_HANDLER = md(
    Key("entrypoint", docs=_RPT,
        meaning="address of the public entrypoint (HTTP Host / TLS SNI routed by the ingress)"),
    Key("entrypoint.id", docs=_RPT,
        meaning="tunnel ID that marks a visitor as an external public entrypoint"),
    Key("entrypoint.readTimeout", DURATION, default="15s", docs=_RPT,
        meaning="how long an entrypoint client may take to send its first HTTP request or TLS hello"),
    _ub("entrypoint.ProxyProtocol", _RPT, "PROXY protocol on the entrypoint", INT),
    _tune("entrypoint.keepalive", _RPT, "per-request HTTP keep-alive on the entrypoint", BOOL),
    _tune("entrypoint.compression", _RPT, "HTTP compression on the entrypoint", BOOL),
    Key("entrypoints", ANY, docs=_RPT,
        meaning="more entrypoints: a list of {name, addr, ingress} (no ingress: the handler's)"),
    Key("ingress", docs="concepts/ingress/", meaning="name of the ingress that maps hosts to tunnels"),
    Key("tunnel", docs=_RPT, meaning="inline ingress rules host:tunnel-id,… (used when no ingress is named)"),
    Key("tunnel.direct", BOOL, docs=_RPT,
        meaning="a visitor reaches its own tunnel by ID even without an ingress rule"),
    Key("tunnel.ttl", DURATION, default="15s", docs=_RPT,
        meaning="how often closed tunnel connections are dropped and sd registrations renewed"),
    Key("sd", docs="concepts/sd/", meaning="name of the service discovery that shares tunnels between nodes"),
    _tune("limiter.refreshInterval", "concepts/limiter/", "limiter plugin sync interval", DURATION),
    _tune("limiter.cleanupInterval", "concepts/limiter/", "limiter cache cleanup interval", DURATION))
MD_TUNNEL_CONNECTOR = md(
    Key("tunnel.id", aliases=("tunnelID",), docs=_RPT, meaning="the tunnel's ID (a UUID; none: a new one)"),
    Key("tunnel.weight", INT, docs=_RPT,
        meaning="this connection's weight in the tunnel's pool, 1-255 (255 takes over)"),
    _ub("record.mode", "concepts/recorder/", "per-tunnel recording preferences", observe=True))


MD_LISTENER_BASE = md(Key("backlog", INT, default=128),
                      _tune("mptcp", "reference/listeners/tcp/", "Multipath TCP", BOOL),
                      # GOST's docs put it here (GOST itself reads it from the service)
                      Key("proxyProtocol", INT, docs="tutorials/proxy-protocol/",
                          meaning="as the service's proxyProtocol"))
MD_TLS_LISTENER = md(Key("handshakeTimeout", DURATION))
#: GOST's TLS-based listeners take these from the command line into their TLS config
MD_SNI_FILTER = md(_ub("rejectUnknownSNI", "tutorials/tls/", "rejecting TLS handshakes with an unknown SNI", BOOL),
                   _ub("serverNames", "tutorials/tls/", "the allowed-SNI list of rejectUnknownSNI", STRLIST))
MD_WS = md(Key("path", default="/ws", aliases=("ws.path",)), Key("header", MAP, aliases=("ws.header",)),
           Key("handshakeTimeout", DURATION),
           _tune("readHeaderTimeout", "reference/listeners/ws/", "HTTP read header timeout", DURATION),
           _tune("readBufferSize", "reference/listeners/ws/", "WebSocket buffer sizes", INT),
           _tune("writeBufferSize", "reference/listeners/ws/", "WebSocket buffer sizes", INT),
           _tune("enableCompression", "reference/listeners/ws/", "WebSocket compression", BOOL))
def _mux_md(version):
    """GOST's ``mux.*`` keys (x/internal/util/mux); ``version`` is the transport's default
    smux version (mtcp: 2, the others: 1)."""
    return md(
        Key("mux.type", default="smux", aliases=("muxType",), choices=("smux", "yamux")),
        Key("mux.version", INT, default=version, aliases=("muxVersion",), meaning="smux protocol version: 1 or 2"),
        Key("mux.keepaliveDisabled", BOOL, aliases=("muxKeepAliveDisabled",)),
        Key("mux.keepaliveInterval", DURATION, aliases=("muxKeepAliveInterval",), meaning="10s (smux), 30s (yamux)"),
        Key("mux.keepaliveTimeout", DURATION, default="30s", aliases=("muxKeepAliveTimeout",), meaning="smux only"),
        Key("mux.maxFrameSize", INT, default=32768, aliases=("muxMaxFrameSize",), meaning="smux only"),
        Key("mux.maxReceiveBuffer", INT, default=4194304, aliases=("muxMaxReceiveBuffer",), meaning="smux only"),
        Key("mux.maxStreamBuffer", INT, default=1048576, aliases=("muxMaxStreamBuffer",),
            meaning="smux version 2 per-stream window (GOST: 65536; gostg's default runs v2 at v1's speed)"),
        Key("mux.maxStreamWindow", INT, default=262144, aliases=("muxMaxStreamWindow",),
            meaning="yamux per-stream window (at least 262144)"))


MD_MUX = _mux_md(1)
MD_MUX_V2 = _mux_md(2)
MD_UDP_LISTENER = md(
    Key("keepalive", BOOL, aliases=("keepAlive",)), Key("ttl", DURATION, default="5s", aliases=("keepalive.ttl",)),
    Key("readBufferSize", INT, default=65535, aliases=("udp.bufferSize",)),
    Key("readQueueSize", INT, default=128, aliases=("recvQueueSize",)), Key("backlog", INT, default=128))
MD_H2_LISTENER = md(Key("path"), Key("backlog", INT, default=128), Key("handshakeTimeout", DURATION),
                    Key("header", MAP))
MD_DNS_LISTENER = md(
    Key("mode", default="udp", choices=("udp", "tcp", "tls", "https"), docs="reference/listeners/dns/"),
    Key("backlog", INT, default=128),
    Key("readBufferSize", INT, default=65535, meaning="largest UDP query read (GOST: 512)"),
    Key("readTimeout", DURATION, default="2s"), Key("writeTimeout", DURATION, default="2s"),
    _tune("mptcp", "reference/listeners/tcp/", "Multipath TCP", BOOL))
MD_REMOTE_LISTENER = md(Key("backlog", INT, default=128))

MD_CONNECTOR_BASE = md(_tune("connectTimeout", "reference/connectors/masque/", "connector timeout", DURATION))
MD_HTTP_CONNECTOR = md(Key("header", MAP), _tune("userAgent", "reference/connectors/http/", "User-Agent", ))
MD_HTTP2_CONNECTOR = md(Key("timeout", DURATION), Key("header", MAP))
MD_SOCKS5_CONNECTOR = md(Key("relay", choices=("", "udp")),
                         Key("pipeline", BOOL, meaning="gostg: send the request without waiting for the method (and auth) "
                                     "answer, one round trip less; the server must read them as a stream "
                                     "(GOST and gostg do; microsocks does not)"),
                         Key("noTLS", BOOL, aliases=("notls",),
                             meaning="gostg never asks for GOST's SOCKS5 TLS method: always in effect"),
                         _tune("udpBufferSize", "reference/connectors/socks5/", "UDP buffer size", INT,
                               aliases=("udp.bufferSize",)))
MD_RELAY_CONNECTOR = md(Key("nodelay", BOOL, aliases=("noDelay",)))
MD_SS_CONNECTOR = md(Key("key"), Key("nodelay", BOOL, aliases=("noDelay",)))
MD_SNI_CONNECTOR = md(Key("host"))
MD_DIRECT_CONNECTOR = md(Key("action", choices=("", "reject"), meaning="reject: refuse every connection"))

MD_WS_DIALER = md(Key("path", default="/ws", aliases=("ws.path",)), Key("host", aliases=("ws.host",)),
                  Key("header", MAP, aliases=("ws.header",)), Key("keepalive", BOOL, aliases=("ws.keepalive",)),
                  Key("ttl", DURATION, default="15s", aliases=("keepalive.interval",)),
                  Key("handshakeTimeout", DURATION),
                  _tune("readBufferSize", "reference/dialers/ws/", "WebSocket buffer sizes", INT),
                  _tune("writeBufferSize", "reference/dialers/ws/", "WebSocket buffer sizes", INT),
                  _tune("enableCompression", "reference/dialers/ws/", "WebSocket compression", BOOL))
MD_H2_DIALER = md(Key("host"), Key("path"), Key("header", MAP))
MD_HTTP2_DIALER = md(Key("header", MAP))
MD_TLS_DIALER = md(Key("handshakeTimeout", DURATION))

MD_NODE = md(*MD_EGRESS.values(), NODE_NETNS,
             Key("backup", BOOL), Key("weight", INT, default=1),
             Key("proxyProtocol", INT, docs="tutorials/proxy-protocol/",
                 meaning="1 or 2: send a PROXY protocol header to the node (default: its hop's)"),
             Key("maxFails", INT, aliases=("max_fails",)), Key("failTimeout", DURATION, aliases=("fail_timeout",)))
MD_HOP = md(
    Key("hash", choices=("", "host")),
    # -F moves these to the hop (GOST's cmd.go); netns also reaches the node, connector and dialer
    *MD_EGRESS.values(), NODE_NETNS,
    Key("proxyProtocol", INT, docs="tutorials/proxy-protocol/",
        meaning="1 or 2: send a PROXY protocol header to the hop's nodes"),
    # what the command line (-F) reads into the node's TLS and auth; GOST's query keys stay in
    # the hop metadata too, where they have no further effect
    *[Key(n, status=IGNORED, meaning="cmdline:tls") for n in (
        "secure", "serverName", "certFile", "keyFile", "caFile", "cert", "key", "ca", "tls.secure",
        "tls.serverName", "tls.certFile", "tls.keyFile", "tls.caFile")],
    Key("auth", status=IGNORED, meaning="cmdline:auth"))
MD_CHAIN = md()

# --- TUN devices and the routing tunnel (gostg.listeners.tun, handlers.tun/router, connectors.router)
_TUN_DOCS, _RT_DOCS = "tutorials/tuntap/", "tutorials/routing-tunnel/"
MD_TUN_LISTENER = md(
    Key("name", aliases=("tun.name",), docs=_TUN_DOCS, meaning="TUN device name (empty: the kernel picks tunN)"),
    Key("net", aliases=("tun.net",), docs=_TUN_DOCS,
        meaning="comma list of the device's addresses in CIDR form (192.168.123.1/24)"),
    Key("mtu", INT, default=1420, aliases=("tun.mtu",), docs=_TUN_DOCS),
    Key("gw", aliases=("tun.gw",), docs=_TUN_DOCS, meaning="gateway IP of the routes that name none"),
    Key("route", aliases=("tun.route",), docs=_TUN_DOCS,
        meaning="comma list of networks routed to the device (or via gw)"),
    Key("routes", STRLIST, aliases=("tun.routes",), docs=_TUN_DOCS, meaning="'CIDR [gateway]' routes"),
    Key("peer", aliases=("tun.peer",), docs=_TUN_DOCS,
        meaning="macOS point-to-point peer: GOST ignores it on Linux, and so does gostg"),
    Key("router", aliases=("tun.router",), docs=_TUN_DOCS,
        meaning="server mode: the routers[] object whose routes (destination → gateway IP of a client) "
                "send packets on; a name that does not resolve routes nothing"),
    Key("dns", STRLIST, aliases=("tun.dns",), docs=_TUN_DOCS,
        meaning="DNS server IPs set for the device with resolvectl (systemd-resolved); its failure fails "
                "the device, as GOST"),
    _ub("guid", _TUN_DOCS, "the Windows adapter GUID", observe=True, aliases=("tun.guid",)))
#: GOST's docs list bufferSize for the tun/tap handlers; their code reads none (nor does gostg,
#: which reads whole packets): accepted without a word
_UNREAD_BUFFER = Key("bufferSize", INT, status=IGNORED, docs=_TUN_DOCS,
                     meaning="listed in GOST's docs, read by neither GOST nor gostg (whole packets are read)")
MD_TUN_HANDLER = md(
    _UNREAD_BUFFER,
    Key("keepalive", BOOL, aliases=("tun.keepalive",), docs=_TUN_DOCS,
        meaning="TUN over UDP client: announce the device addresses every ttl, and redial a server silent "
                "for 3 ttl"),
    Key("ttl", DURATION, default="10s", aliases=("tun.ttl",), docs=_TUN_DOCS, meaning="the keepalive period"),
    Key("passphrase", aliases=("token", "tun.token"), docs=_TUN_DOCS,
        meaning="TUN over UDP client: the key its keepalives carry (the server's auther checks it)"),
    Key("p2p", BOOL, aliases=("tun.p2p",), docs=_TUN_DOCS,
        meaning="TUN over UDP server: every packet to the latest client, none between clients"))
MD_TAP_LISTENER = md(
    Key("name", docs=_TUN_DOCS, meaning="TAP device name (empty: the kernel picks tapN)"),
    Key("net", docs=_TUN_DOCS, meaning="the device's address in CIDR form (one)"),
    Key("mtu", INT, default=1420, docs=_TUN_DOCS),
    Key("gw", docs=_TUN_DOCS, meaning="gateway IP of the route entries"),
    Key("route", docs=_TUN_DOCS, meaning="comma list of networks routed via gw (or the device)"),
    Key("routes", STRLIST, docs=_TUN_DOCS, meaning="'CIDR gateway' routes"),
    _ub("componentID", _TUN_DOCS, "the Windows TAP driver component", observe=True))
MD_TAP_HANDLER = md(
    _UNREAD_BUFFER,
    Key("key", docs=_TUN_DOCS, meaning="the raw Shadowsocks key of the frames' cipher (handler auth gives "
                                       "the method and password)"))
MD_ROUTER_HANDLER = md(
    Key("readTimeout", DURATION, default="15s", docs=_RT_DOCS,
        meaning="the client's request must arrive within it (GOST: no limit by default)"),
    Key("router", docs=_RT_DOCS, meaning="the routers[] object used when the client's router id names none; "
                                         "a name that does not resolve routes nothing"),
    Key("ingress", docs=_RT_DOCS, meaning="the ingresses[] object whose rule for a host must name the client's "
                                          "router id; a name that does not resolve refuses every client"),
    Key("router.cache", BOOL, docs=_RT_DOCS, meaning="remember route lookups (per router id and destination)"),
    Key("router.cache.expiration", DURATION, default="1s", docs=_RT_DOCS),
    _tune("bufferSize", _RT_DOCS, "packet read buffer (GOST 4096; gostg reads whole 64 KiB frames)", INT,
          aliases=("router.bufferSize",)),
    _ub("entrypoint", _RT_DOCS, "the UDP entrypoint between router nodes (the router mesh)"),
    _ub("sd", _RT_DOCS, "service discovery between router nodes (the router mesh)"),
    _ub("sd.cache.expiration", _RT_DOCS, "the router mesh's service discovery cache", DURATION),
    _ub("sd.renewInterval", _RT_DOCS, "the router mesh's service discovery renewal", DURATION),
    _ub("observer.period", _RT_DOCS, "per-client stats of the router handler", DURATION, observe=True,
        aliases=("observePeriod", "observer.observePeriod")),
    _ub("observer.resetTraffic", _RT_DOCS, "per-client stats of the router handler", BOOL, observe=True),
    _tune("limiter.refreshInterval", _RT_DOCS, "handler limiter refresh", DURATION),
    _tune("limiter.cleanupInterval", _RT_DOCS, "handler limiter cleanup", DURATION))
MD_ROUTER_CONNECTOR = md(
    Key("router.id", docs=_RT_DOCS, meaning="the routing namespace (a UUID naming a routers[] object on the server)"),
    Key("connectTimeout", DURATION, docs=_RT_DOCS, meaning="deadline of the request and its answer"))

#: (kind, type) → metadata groups. A type not listed has only its kind's base group. The mux keys
#: are on socks5/relay handlers and connectors too: BIND/MBIND sessions are mux sessions.
COMPONENT_MD = {
    ("handler", "auto"): (MD_SNIFFING, MD_HANDLER_BASE, MD_SKIPAUTH, MD_HASH, MD_HTTP_HANDLER, MD_SOCKS5_HANDLER, MD_MUX),
    ("handler", "http"): (MD_SNIFFING, MD_HANDLER_BASE, MD_SKIPAUTH, MD_HASH, MD_HTTP_HANDLER),
    ("handler", "http2"): (MD_HANDLER_BASE, MD_SKIPAUTH, MD_HASH, MD_HTTP2_HANDLER),
    ("handler", "socks5"): (MD_SNIFFING, MD_HANDLER_BASE, MD_SKIPAUTH, MD_HASH, MD_SOCKS5_HANDLER, MD_MUX),
    ("handler", "socks4"): (MD_SNIFFING, MD_HANDLER_BASE, MD_SKIPAUTH, MD_HASH),
    ("handler", "relay"): (MD_SNIFFING, MD_HANDLER_BASE, MD_SKIPAUTH, MD_HASH, MD_RELAY_HANDLER, MD_MUX),
    ("handler", "forward"): (MD_SNIFFING, MD_HANDLER_BASE, MD_HASH, MD_FORWARD_HANDLER),
    # GOST sniffs QUIC on udp forwarders; gostg does not, so there sniffing stays "not built"
    ("handler", "udp"): (MD_HANDLER_BASE, MD_HASH, MD_FORWARD_HANDLER),
    ("handler", "ss"): (MD_HANDLER_BASE, MD_HASH, MD_SS_HANDLER),
    ("handler", "sni"): (MD_HANDLER_BASE, MD_HASH),
    ("handler", "api"): (MD_HANDLER_BASE, MD_API_HANDLER),
    ("handler", "metrics"): (MD_METRICS_HANDLER,),
    ("handler", "dns"): (MD_DNS_HANDLER,),
    ("handler", "tunnel"): (MD_HANDLER_BASE, MD_TUNNEL_HANDLER, MD_MUX_V2),
    ("listener", "tcp"): (MD_LISTENER_BASE,),
    ("listener", "tls"): (MD_LISTENER_BASE, MD_TLS_LISTENER, MD_SNI_FILTER),
    ("listener", "ws"): (MD_LISTENER_BASE, MD_WS, MD_SNI_FILTER),
    ("listener", "mux"): (MD_LISTENER_BASE, MD_TLS_LISTENER, MD_MUX, MD_WS, MD_SNI_FILTER),
    ("listener", "mtcp"): (MD_LISTENER_BASE, MD_MUX_V2),
    ("listener", "http2"): (MD_LISTENER_BASE, MD_TLS_LISTENER, MD_SNI_FILTER),
    ("listener", "h2"): (MD_LISTENER_BASE, MD_H2_LISTENER, MD_SNI_FILTER),
    ("listener", "udp"): (MD_UDP_LISTENER,),
    ("listener", "dns"): (MD_DNS_LISTENER, MD_TLS_LISTENER, MD_SNI_FILTER),
    ("listener", "remote"): (MD_REMOTE_LISTENER, MD_MUX, MD_UDP_LISTENER),
    ("connector", "base"): (MD_CONNECTOR_BASE,),
    ("connector", "http"): (MD_CONNECTOR_BASE, MD_HTTP_CONNECTOR),
    ("connector", "http2"): (MD_CONNECTOR_BASE, MD_HTTP2_CONNECTOR),
    ("connector", "socks5"): (MD_CONNECTOR_BASE, MD_SOCKS5_CONNECTOR, MD_MUX),
    ("connector", "relay"): (MD_CONNECTOR_BASE, MD_RELAY_CONNECTOR, MD_MUX),
    ("connector", "ss"): (MD_CONNECTOR_BASE, MD_SS_CONNECTOR),
    ("connector", "sni"): (MD_CONNECTOR_BASE, MD_SNI_CONNECTOR),
    ("connector", "direct"): (MD_DIRECT_CONNECTOR,),
    ("connector", "tunnel"): (MD_CONNECTOR_BASE, MD_TUNNEL_CONNECTOR, MD_MUX_V2),
    ("listener", "tun"): (MD_TUN_LISTENER,),
    ("listener", "tap"): (MD_TAP_LISTENER,),
    ("handler", "tap"): (MD_TAP_HANDLER,),
    ("handler", "tun"): (MD_TUN_HANDLER,),
    ("handler", "router"): (MD_ROUTER_HANDLER,),
    ("connector", "router"): (MD_ROUTER_CONNECTOR,),
    ("dialer", "direct"): (),
    ("dialer", "tcp"): (),
    ("dialer", "tls"): (MD_TLS_DIALER,),
    ("dialer", "ws"): (MD_WS_DIALER,),
    ("dialer", "mux"): (MD_TLS_DIALER, MD_MUX, MD_WS_DIALER),
    ("dialer", "mtcp"): (MD_TLS_DIALER, MD_MUX_V2),
    ("dialer", "h2"): (MD_H2_DIALER, MD_MUX),
    ("dialer", "http2"): (MD_HTTP2_DIALER, MD_TLS_DIALER),
    ("dialer", "udp"): (),
    ("service", ""): (MD_SERVICE,),
    ("node", ""): (MD_NODE,),
    ("hop", ""): (MD_HOP,),
    ("chain", ""): (MD_CHAIN,),
}

#: type name → metadata family (types that share one implementation share its keys)
FAMILY = {
    "handler": {"socks": "socks5", "socks4a": "socks4", "tcp": "forward", "rtcp": "forward",
                "rudp": "udp", "ssu": "ss"},
    "listener": {"wss": "ws", "mtls": "mux", "mws": "mux", "mwss": "mux", "h2c": "h2", "rtcp": "remote",
                 "rudp": "remote"},
    "connector": {"socks": "socks5", "socks4a": "base", "forward": "base", "tcp": "base", "socks4": "base",
                  "ssu": "ss", "virtual": "direct"},
    "dialer": {"wss": "ws", "mtls": "mux", "mws": "mux", "mwss": "mux", "h2c": "h2", "virtual": "direct"},
}

# ---------------------------------------------------------------------------------------------
# Types: what GOST registers, and which of them gostg builds (gostg/builtins.py is the truth for
# the latter; the docs page is where a user reads about one gostg does not build yet).

GOST_TYPES = {
    "handler": """auto http http2 http3 socks5 socks socks4 socks4a relay tcp udp forward rtcp rudp runix ss ssu
        sni dns red redir redirect redu masque sshd tun tap tungo router tunnel api metrics file unix serial""",
    "listener": """tcp udp tls mtls ws wss mws mwss http2 h2 h2c grpc kcp quic http3 h3 wt dtls ssh sshd pht
        phts ohttp otls mtcp ftcp icmp icmp6 rtcp rudp runix red redir redirect redu tun tap tungo dns unix
        serial stdio""",
    "connector": """http http2 socks5 socks socks4 socks4a relay ss ssu sni forward tcp sshd masque tunnel
        router unix serial direct virtual""",
    "dialer": """tcp udp tls utls mtls ws wss mws mwss http2 h2 h2c grpc kcp quic http3 h3 wt h3-masque dtls
        ssh sshd pht phts ohttp ohttps otls mtcp ftcp icmp icmp6 unix serial direct virtual""",
}
GOST_TYPES = {k: frozenset(v.split()) for k, v in GOST_TYPES.items()}

#: docs page for a GOST type gostg does not build (default: reference/<kind>s/<type>/)
TYPE_DOCS = {"kcp": "tutorials/protocols/kcp/", "quic": "tutorials/protocols/quic/",
             "ssh": "tutorials/protocols/ssh/", "sshd": "tutorials/protocols/ssh/",
             "tun": "tutorials/tuntap/", "tap": "tutorials/tuntap/", "dns": "tutorials/dns/",
             "red": "tutorials/redirect/", "redir": "tutorials/redirect/", "redirect": "tutorials/redirect/",
             "redu": "tutorials/redirect/", "grpc": "tutorials/protocols/grpc/",
             "pht": "tutorials/protocols/pht/", "phts": "tutorials/protocols/pht/",
             "mtcp": "tutorials/protocols/mtcp/", "metrics": "tutorials/metrics/",
             "tunnel": "tutorials/reverse-proxy-tunnel/", "http3": "tutorials/protocols/http3/",
             "h3": "tutorials/protocols/http3/", "dtls": "tutorials/protocols/dtls/",
             "icmp": "tutorials/icmp/", "icmp6": "tutorials/icmp/", "wt": "tutorials/protocols/http3/",
             "ohttps": "reference/dialers/ohttp/", "direct": "concepts/chain/", "virtual": "concepts/chain/",
             "router": "tutorials/routing-tunnel/", "serial": "tutorials/serial/", "unix": "tutorials/unix/",
             "file": "tutorials/file/", "tungo": "tutorials/tungo/", "stdio": "reference/configuration/cmd/"}


def type_docs(kind, name):
    return DOCS + TYPE_DOCS.get(name, f"reference/{kind}s/{name}/")


def docs_url(page):
    return DOCS + page if page else ""


def component_md(kind, type_name):
    """→ {lowercased name or alias: Key} for a component's metadata (a merged view)."""
    fam = FAMILY.get(kind, {}).get(type_name, type_name)
    groups = COMPONENT_MD.get((kind, fam))
    if groups is None:
        groups = COMPONENT_MD.get((kind, "base"), ())
    out = {}
    for g in groups:
        for k in g.values():
            for n in k.names():
                out.setdefault(n.lower(), k)
    return out


def all_md_names():
    """Every metadata key name any component declares (for did-you-mean over metadata)."""
    if "names" not in _INDEXES:
        out = set()
        for groups in COMPONENT_MD.values():
            for g in groups:
                for k in g.values():
                    out.update(k.names())
        _INDEXES["names"] = frozenset(out)
    return _INDEXES["names"]


def _md_index(keep):
    """{lowercased metadata key: sorted ["handler socks5", "dialer ws", …]} over the keys ``keep``
    accepts, each labelled with the components that declare it."""
    out = {}
    for (kind, fam), groups in COMPONENT_MD.items():
        label = f"{kind} {fam}".strip() if fam != "base" else f"{kind}s"
        for g in groups:
            for k in g.values():
                if keep(k):
                    for n in k.names():
                        out.setdefault(n.lower(), set()).add(label)
    return {k: sorted(v) for k, v in out.items()}


_INDEXES = {}


def md_owners():
    """→ {lowercased metadata key: [who reads it]}: the components that build the key."""
    if "owners" not in _INDEXES:
        _INDEXES["owners"] = _md_index(lambda k: k.status == BUILT)
    return _INDEXES["owners"]


def md_declared():
    """→ {lowercased metadata key: [components]} of every component that declares it, built or
    not (to say where GOST reads a key that is misplaced)."""
    if "declared" not in _INDEXES:
        _INDEXES["declared"] = _md_index(lambda k: k.status != IGNORED)
    return _INDEXES["declared"]


class Declared(dict):
    """A config object whose reads are checked against its declared keys (under the test
    suite, see :data:`gostg.config.metadata.STRICT`): the builder cannot read a key the schema
    does not declare, so the schema stays the one list of what gostg understands."""

    __slots__ = ("_allowed",)

    def _check(self, key):
        if key not in self._allowed:
            raise KeyError(f"config key {key!r} is not declared in gostg.config.schema")

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)


def normalize(o, spec):
    """A copy of mapping ``o`` with each declared key in its canonical spelling (GOST reads keys
    case-insensitively: ``certfile`` is ``certFile``); nested objects too, metadata untouched."""
    if not isinstance(o, dict):
        return o
    from .metadata import STRICT
    index = {}
    for key in spec.values():
        index.setdefault(key.name.lower(), key)
    out = {}
    for k, v in o.items():
        key = index.get(str(k).lower())
        if key is None:
            out[k] = v
            continue
        if key.fields is not None and isinstance(v, dict):
            v = normalize(v, key.fields)
        elif key.item is not None and isinstance(v, list):
            v = [normalize(x, key.item) for x in v]
        if key.name in out and k != key.name:
            continue  # the canonical spelling, when both are given, wins
        out[key.name] = v
    if STRICT:
        strict = Declared(out)
        strict._allowed = frozenset(spec)
        return strict
    return out


def cli_query_md():
    """→ {lowercased name: Key} of every key a ``-L``/``-F`` query may carry: each component's
    metadata plus the selector keys the command line lifts into objects. The command line reads
    its query through this, so it too reads only what the schema declares."""
    global _CLI_MD
    if _CLI_MD is None:
        out = {}
        for groups in COMPONENT_MD.values():
            for g in groups:
                for k in g.values():
                    for n in k.names():
                        out.setdefault(n.lower(), k)
        for k in SELECTOR.values():
            for n in k.names():
                out.setdefault(n.lower(), k)
        for alias in ("max_fails", "fail_timeout"):   # GOST's older selector spellings
            out.setdefault(alias, SELECTOR["maxFails" if alias == "max_fails" else "failTimeout"])
        _CLI_MD = out
    return _CLI_MD


_CLI_MD = None
