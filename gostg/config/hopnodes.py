"""Hops whose nodes are not (only) in the config: GOST's hop ``plugin`` (a node per
connection, named by the plugin) and the hop node loaders ``file``, ``redis`` and ``http``
(each a JSON array of nodes, re-read every ``reload``).

Rules:
1. A node from a plugin or a loader is checked and built exactly as an inline node of the
   hop (the schema's validation, then config/build.py's node builder, with the hop's
   interface, so_mark, netns, hosts, resolver and PROXY version); a node or a list that fails
   is a log line, never a crash.
2. Loaders: inline ``nodes`` + file + redis + http, in that order (GOST's). A source that
   fails (unreadable, not JSON, a node that does not build) keeps its last good list, with one
   line per change of cause; the other sources still apply. Beyond GOST, which skips the bad
   node and keeps the rest of that source's list, a source's list is taken whole or not at all.
3. Reloading never blocks a connection: when ``reload`` has passed, the next route through the hop starts
   one fetch in a greenlet of its own and is served the last good nodes meanwhile. Nothing runs
   while the hop is unused, so a hop replaced or deleted leaves no poller behind. The first
   load happens at build (bounded by each source's timeout).
4. Built nodes are kept by their JSON, so a node that did not change keeps its failure marks
   and its dialer's session across reloads and plugin answers.
5. Plugin (fail closed): a plugin that fails, names no node or names one that does not build
   refuses the connection (GOST's plugin hop returns no node, which cuts the chain before the
   hop: traffic would go directly).
"""
import json
import time
import weakref

import gevent

from ..core.chain import Hop
from ..errors import ConfigError
from ..policy.group import Unanswered

#: largest node list an http loader reads
MAX_LIST = 4 << 20
#: nodes a plugin hop keeps built (by their JSON)
MAX_PLUGIN_NODES = 256


def _canon(cfg):
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


class NodeBuilder:
    """JSON node configs → Nodes as inline nodes of ``hop`` are built (rule 1, rule 4)."""

    def __init__(self, hop_name, build_one):
        self.hop_name = hop_name
        self.build_one = build_one   # (node config, path) → Node; raises ConfigError
        self.cache = {}

    def nodes(self, cfgs, where):
        """A list of node configs → [Node]; the first that fails raises ConfigError."""
        from .validate import ERROR, validate
        if not isinstance(cfgs, list):
            raise ConfigError(where, f"must be a JSON array of nodes, not {type(cfgs).__name__}")
        problems = [p for p in validate({"hops": [{"name": self.hop_name or "hop", "nodes": cfgs}]})
                    if p.level == ERROR]
        if problems:
            p = problems[0]
            head = "hops[0].nodes"
            raise ConfigError(where + (p.path[len(head):] if p.path.startswith(head) else ""), p.message)
        out, keep = [], {}
        for i, c in enumerate(cfgs):
            key = _canon(c)
            node = self.cache.get(key) or keep.get(key)
            if node is None:
                node = self.build_one(c, f"{where}[{i}]")
            keep[key] = node
            out.append(node)
        self.cache = keep
        return out


class NodeSources:
    """The loaded part of a hop's nodes (rules 2, 3)."""

    def __init__(self, hop_name, inline, loaders, reload, builder, log=None, clock=time.monotonic):
        self.inline = list(inline)
        self.loaders = loaders               # [(label, fetch() → bytes/str)]
        self.reload = float(reload or 0)
        self.builders = {label: NodeBuilder(hop_name, builder.build_one) for label, _ in loaders}
        self.lists = {label: [] for label, _ in loaders}
        self.failing = {}
        self.log = log
        self._clock = clock
        self._task = None
        for _, fetch in loaders:   # a replaced hop lets go of its share of a Redis pool
            if hasattr(fetch, "release"):
                weakref.finalize(self, fetch.release)
        self.load()
        self._next = clock() + self.reload
        self.nodes = self.inline + [n for label, _ in loaders for n in self.lists[label]]

    def current(self):
        if self.reload > 0 and self._task is None and self._clock() >= self._next:
            self._next = self._clock() + self.reload
            self._task = gevent.spawn(self._refresh)
        return self.nodes

    def _refresh(self):
        try:
            self.load()
            self.nodes = self.inline + [n for label, _ in self.loaders for n in self.lists[label]]
        finally:
            self._task = None

    def load(self):
        for label, fetch in self.loaders:
            try:
                raw = fetch()
                try:
                    cfgs = json.loads(raw)
                except ValueError as exc:
                    raise ConfigError(label, f"not JSON: {exc}") from None
                nodes = self.builders[label].nodes(cfgs, label)
            except Exception as exc:   # noqa: BLE001 - a source's failure keeps its last good list
                why = str(exc) or type(exc).__name__
                if self.failing.get(label) != why and self.log is not None:
                    self.log.warning(f"hop nodes from {label}: {why}: keeping the last good list "
                                     f"({len(self.lists[label])} nodes)")
                self.failing[label] = why
                continue
            if self.failing.pop(label, None) is not None and self.log is not None:
                self.log.info(f"hop nodes from {label}: loaded again ({len(nodes)} nodes)")
            self.lists[label] = nodes

    def wait(self, timeout=None):
        """Tests and an explicit refresh: wait for a running fetch."""
        t = self._task
        if t is not None:
            t.join(timeout)


def file_fetch(path):
    def fetch():
        with open(path, "rb") as f:
            return f.read(MAX_LIST + 1)[:MAX_LIST]
    return fetch


def redis_fetch(cfg, path):
    """GOST's RedisStringLoader: GET ``key`` (default ``gost``), a JSON array of nodes."""
    from ..loader import redisconn

    client = redisconn.client(cfg, path)
    key = str(cfg.get("key") or "gost")

    def fetch():
        v = client.get(key)
        if v is None:
            raise ConfigError(f"{path}.key", f"redis key {key!r} does not exist")
        return v
    fetch.release = lambda: redisconn.release(client)
    return fetch


def http_fetch(cfg, path):
    """GOST's HTTPLoader: GET ``url``; a 200 body is the JSON array (the objects' http loader,
    loader.fetch.HTTPFetcher, does the GET)."""
    from ..loader.build import check_http
    from ..loader.fetch import HTTPFetcher

    cfg = dict(cfg)
    if "://" not in str(cfg.get("url") or ""):   # a bare host:port/path, as the hop loader took it
        cfg["url"] = "http://" + str(cfg.get("url") or "").strip()
    url, timeout = check_http(cfg, path)
    return HTTPFetcher(url, timeout, limit=MAX_LIST).body


def loaders_of(o, path):
    """``file``, ``redis``, ``http`` of hop config ``o`` → [(label, fetch)]."""
    out = []
    f = o.get("file")
    fpath = (f.get("path") if isinstance(f, dict) else f) or ""
    if fpath:
        out.append((f"{path}.file", file_fetch(str(fpath))))
    r = o.get("redis")
    if isinstance(r, dict) and r.get("addr"):
        out.append((f"{path}.redis", redis_fetch(r, f"{path}.redis")))
    h = o.get("http")
    if isinstance(h, dict) and h.get("url"):
        out.append((f"{path}.http", http_fetch(h, f"{path}.http")))
    return out


class LoadedHop(Hop):
    """A hop whose nodes are its inline ``nodes`` plus those of its loaders (NodeSources)."""

    sources = None

    @property
    def nodes(self):
        """The last good nodes (reading them starts nothing: the status page and a stop read)."""
        s = self.sources
        return s.nodes if s is not None else self._inline

    def refresh(self):
        """Chain.route calls this before it reads the nodes: a reload when due (rule 3), in a
        greenlet of its own (also when the last good list is empty)."""
        if self.sources is not None:
            self.sources.current()

    @nodes.setter
    def nodes(self, value):
        self._inline = value


class PluginHop:
    """GOST's hop ``plugin``: ``{network, addr, host, path, client, src}`` → a node config,
    per connection (rule 5). The hop's selector, bypass and nodes do not apply (GOST's)."""

    dynamic = True
    bypass = None

    def __init__(self, name, cfg, path, build_one, registries=None, log=None):
        from ..plugin.consumers import PluginBacked

        class _Asker(PluginBacked):
            kind, plugin_kind = "hops", "hop"

        from ..core.selector import Selector

        self.name = name
        self.registries = registries
        #: not used to select: the status page reads failure marks of the named nodes with it
        self.selector = Selector()
        self.asker = _Asker(name, cfg, path, log)
        self.builder = NodeBuilder(name, build_one)
        self._built = {}

    @property
    def nodes(self):
        """The nodes the plugin has named (their dialers' sessions close with gostg's stop)."""
        return list(self._built.values())

    @property
    def matching(self):
        return False

    def select(self, ctx=None, target="", network="tcp", req=None, skip=()):
        from ..plugin import wire

        src = getattr(ctx, "src", "") or ""
        cfg = self.asker.ask(wire.hop_request(network, target, getattr(req, "host", "") or "",
                                              getattr(req, "path", "") or "", getattr(ctx, "client_id", "") or "",
                                              src), wire.hop_reply)
        if cfg is None:
            raise Unanswered("hops", self.name, "the plugin named no node")
        key = _canon(cfg)
        node = self._built.get(key)
        if node is None:
            try:
                node = self.builder.nodes([cfg], f"hop {self.name} plugin node")[0]
            except Exception as exc:   # noqa: BLE001 - whatever the plugin sent, the connection is refused
                if self.asker.log is not None:
                    self.asker.log.error(f"hop plugin {self.name}: node {cfg.get('name') or cfg.get('addr')!r} "
                                         f"does not build: {exc}")
                raise Unanswered("hops", self.name, f"the plugin's node does not build: {exc}") from None
            if len(self._built) >= MAX_PLUGIN_NODES:
                self._built.clear()
            self._built[key] = node
        if ctx is not None:
            ctx.log.debug(f"hop {self.name}: plugin chose {node.name}@{node.addr}")
        return node

    def close(self):
        self.asker.close()
