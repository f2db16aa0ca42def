"""One running gostg: its config model, named objects and services, and the changes made to
them while running (Web API, reload).

Rules for changes (better than GOST, which closes the old service before building the new):
1. Every change is built in full first — objects constructed, listeners bound, references
   checked — and only then swapped in; a failure leaves config and services exactly as before.
2. A replaced service on the same address hands its listening socket to the successor, so the
   port never closes and established connections keep running on the old version.
3. Changes are serialized by one lock; the config model is replaced, never mutated in place,
   so readers always see a consistent snapshot.
"""
import contextlib
import copy
import gc
import os
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple, TypeVar, Union

from gevent import monkey
from gevent.lock import RLock
from greenlet import getcurrent

from .config import load, model
from .config.build import bind_service, build_object, build_service
from .config.refs import config_warnings, dangling_refs, dangling_to, open_proxies
from .config.validate import ERROR, Problem, validate
from .errors import ChangeError, ConfigError, GostgError, HubStopped, NotPatchedError
from .policy.group import NOUNS
from .observe import metrics
from .observe import loggers as _loggers
from .observe.log import from_config as _log_from
from .observe.logstd import adapt as _adapt_logger
from .core.probe import Probes
from .core.registry import Registries

if TYPE_CHECKING:   # the socket class dial returns (gevent's, the app's after patch_all)
    from gevent import socket

T = TypeVar("T")

#: build order: what a later kind may refer to is built first
OBJECT_KINDS = ("authers", "admissions", "bypasses", "resolvers", "hosts", "hops", "chains",
                "limiters", "climiters", "rlimiters", "recorders", "observers",
                "ingresses", "routers", "sds")
#: objects whose items may come from redis/http sources (a poller, a push subscription)
LOADER_KINDS = ("authers", "admissions", "bypasses", "hosts", "limiters", "climiters", "rlimiters",
                "ingresses", "routers")
#: what may hold a loader or a plugin transport to close when it is dropped or gostg stops
CLOSE_KINDS = LOADER_KINDS + ("resolvers", "sds")


def _networked(obj):
    """Whether ``obj`` reads its items from redis/http (its ``source``, a LineSource)."""
    return getattr(getattr(obj, "source", None), "networked", False)


def _close(kind, obj, retire=None):
    """An object of ``kind`` leaves the registry: ``close()`` stops what it started (a source's
    poller and push subscription, a plugin's transport, a resolver's refreshes, a shared
    limiter's Redis client). Every kind in CLOSE_KINDS has it (observers and recorders close
    their own way: _observers_changed, stop). With ``retire`` (seconds: it was deleted, or
    gostg stops), a shared limiter's counts also leave Redis now; a replaced one keeps its
    open connections' leases until they end (SharedConnLimiter.close)."""
    if obj is None or kind not in CLOSE_KINDS:
        return
    if retire is not None and hasattr(obj, "retire"):
        obj.retire(retire)   # first: close() of a limiter holding nothing releases its Redis client
    obj.close()


def _close_dropped(before, after, retire=1.0):
    """Close the objects of ``before`` ({kind: {name: obj}}) that ``after`` does not hold; the
    ones whose name ``after`` no longer has are gone (deleted), not replaced: retired too."""
    for kind in CLOSE_KINDS:
        now = after.get(kind) or {}
        keep = {id(o) for o in now.values()}
        for name, obj in (before.get(kind) or {}).items():
            if id(obj) not in keep:
                _close(kind, obj, None if name in now else retire)


#: service keys naming other objects: (path in the service, kind)
SERVICE_REFS = ((("handler", "chain"), "chains"), (("listener", "chain"), "chains"),
                (("handler", "auther"), "authers"), (("listener", "auther"), "authers"),
                (("admission",), "admissions"), (("bypass",), "bypasses"),
                (("resolver",), "resolvers"), (("hosts",), "hosts"),
                (("limiter",), "limiters"), (("climiter",), "climiters"), (("rlimiter",), "rlimiters"))


def to_config(config):
    """Accept a dict, a path, a JSON/YAML string or a list of those (merged in order)."""
    if config is None:
        return {}
    if isinstance(config, dict):
        return config
    if isinstance(config, (list, tuple)):
        return load.merge(to_config(c) for c in config)
    if isinstance(config, (str, os.PathLike)):
        return load.load_source(str(config))
    raise TypeError(f"config must be a dict, a path or a list of them, not {type(config).__name__}")


@contextlib.contextmanager
def _reload_refused():
    """A reload that cannot read or build its config: a ChangeError saying why (the running
    config is untouched)."""
    try:
        yield
    except ConfigError as exc:
        raise ChangeError(ChangeError.FAILED, f"reload: {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:  # a shape build did not foresee
        raise ChangeError(ChangeError.FAILED, f"reload: invalid config: {exc}") from exc


def _reopen_log_files():
    """Close and reopen every log file of the process (only when one was ever opened)."""
    import sys
    logfile = sys.modules.get("gostg.observe.logfile")
    if logfile is not None:
        logfile.reopen_all()


def _dig(o, path):
    for k in path:
        if not isinstance(o, dict):
            return None
        o = o.get(k)
    return o


def host_mode(thread: Optional[bool]) -> str:
    """How ``Gost.start(thread=...)`` runs the services here: ``"hub"`` (in the calling
    thread's hub: a gevent-patched process, or code that runs gevent's hub itself — it says so
    with ``thread=False``, or it calls from a greenlet) or ``"thread"`` (gostg's own hub
    thread). An unpatched process that chose neither gets NotPatchedError: nothing would run
    the services (``start()`` returns at once and the listening sockets wait forever)."""
    if monkey.is_module_patched("socket"):
        return "hub"    # the app's hub runs everything; its threads are greenlets or cooperate
    if thread:
        return "thread"
    if thread is False or getcurrent().parent is not None:
        return "hub"    # the app runs gevent's hub itself
    raise NotPatchedError(
        "gostg.Gost.start(): this process has not gevent-patched its standard library, so "
        "nothing would run gostg's services (start() would return and no connection would "
        "ever be served). Choose one:\n"
        "  - a gevent app: call `from gevent import monkey; monkey.patch_all()` first thing, "
        "before other imports;\n"
        "  - a plain threaded app: `gostg.Gost(config, thread=True)` or `g.start(thread=True)`: "
        "gostg runs its own gevent hub in a background thread.\n"
        "(An app that runs gevent's hub itself without patching passes thread=False.)")


def _file_mode(path):
    """The mode a saved config gets: the existing file's, else 0666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


_frozen = [False]


def freeze_start_up():
    """(The command line, once its services run.) What start-up built (modules, the config,
    the services) mostly lives as long as the process: ``gc.freeze()`` takes it out of the
    collector's sight, so a full collection, which the connections' churn triggers, no longer
    scans it, and a connection's cost does not grow with what the config loaded (metrics took
    9% more CPU per connection before this, 0% after). Never done to a host application's heap."""
    gc.freeze()
    _frozen[0] = True


def stop_on_signals(g, say):
    """(The command line and each worker process.) SIGTERM and SIGINT stop ``g``, ``say(why)``
    logging it first → (stop, done): ``stop(why)`` stops it from elsewhere too (a worker's
    supervisor gone), ``done`` is set once it stopped; a stop once done does nothing."""
    import signal

    import gevent
    import gevent.event

    done = gevent.event.Event()

    def stop(why):
        if done.is_set():
            return
        try:
            say(why)
            g.stop()
        finally:
            done.set()

    gevent.signal_handler(signal.SIGTERM, stop, "SIGTERM")
    gevent.signal_handler(signal.SIGINT, stop, "SIGINT")
    return stop, done


def _thaw():
    """A change (API, reload) can make frozen objects garbage (a replaced service's cycles),
    which a frozen heap would keep forever: from the first change on, the collector sees
    everything again."""
    if _frozen[0]:
        _frozen[0] = False
        gc.unfreeze()


class Gost:
    """Build and run a GOST config inside the current process.

    >>> g = Gost({"services": [{"name": "s", "addr": "127.0.0.1:1080", "handler": {"type": "socks5"}}]})
    >>> g.start()   # returns at once; services run in greenlets
    >>> g.stop()

    Two kinds of host app (``thread``):

    - a gevent app (``gevent.monkey.patch_all()`` first, gunicorn ``-k gevent``): the services
      run in the app's own hub, as greenlets;
    - a plain threaded app that never patches: ``Gost(config, thread=True)`` runs gostg's own
      gevent hub in a background thread ("thread mode", :mod:`gostg.embed.thread`); the app's
      threads reach it through :meth:`call` and get stdlib sockets from ``dial``.

    ``thread=None`` (the default) picks the first in a patched process and raises
    :class:`~gostg.errors.NotPatchedError` in an unpatched one (the services would never run);
    ``thread=False`` says "this thread runs gevent's hub itself" (unpatched gevent code).
    """

    def __init__(self, config=None, logger=None, sources=None, reported=(), checked=False,
                 thread: Optional[bool] = None):
        self.config = to_config(config)
        #: warnings the caller already showed the user (the command line prints validate()'s
        #: on stderr): build() does not log those again
        self.reported = {str(p) for p in reported}
        #: the caller found every problem of this config (validate and config_warnings: the
        #: command line, which refuses errors) and showed the warnings: build() does not
        #: check it a second time
        self.checked = checked
        model.check(self.config)
        # a standard logging.Logger is wrapped; a structlog-style logger is used as it is
        self.log = _adapt_logger(logger) if logger is not None else _log_from(self.config.get("log"))
        if not checked and self.config.get("workers") not in (None, 1, "1"):
            # (the command line, which passes checked, decides about workers itself)
            self.log.warning(f"workers: {self.config['workers']!r} ignored: an embedded gostg runs in its "
                             "host application's process (a library does not fork its host); run the "
                             "gostg command for worker processes")
        #: callable returning a fresh config for reload (the -C sources and CLI arguments)
        self.sources = sources
        self.registries = Registries()
        self.registries.runtime = self
        self.registries.log = self.log
        self.registries.loggers = {}   # named loggers (``loggers:``) by name
        self.probes = Probes(self.registries, self.log)
        self.services = {}
        self.internal = {}     # services not in the model: the global Web API and metrics endpoint
        #: services replaced or deleted whose open connections run on (until they end): the
        #: live-tunnel registry lists those too; weak, so a drained service is gone from here
        self.retired = weakref.WeakSet()
        self.started = False
        self._objects_built = False
        self._lock = RLock()
        #: the host-app choice: None decide, True own hub thread, False the caller's hub
        self.thread = thread
        #: gostg's hub thread (embed.thread.HubThread) while running in thread mode, else None
        self.hub = None
        self._mode = None      # what start() chose: "hub" or "thread" (runtime.host_mode)
        #: greenlets relaying sockets handed to the app (embed.dial.relay_pair); ended by stop()
        self.relays = None

    # -- build and run --------------------------------------------------------------------

    def _build_objects(self, cfg, reuse=None):
        """→ {kind: {name: object}} for every named object of ``cfg`` (no side effects);
        ``reuse(kind, o)`` may return a running object to keep instead of building ``o``."""
        built = {}
        try:
            for kind in OBJECT_KINDS:
                built[kind] = {}
                for i, o in enumerate(cfg.get(kind) or []):
                    kept = reuse(kind, o) if reuse is not None else None
                    built[kind][o["name"]] = kept if kept is not None else build_object(
                        kind, o, f"{kind}[{i}]", self.registries)
        except BaseException:   # stop what the new objects started (not the running ones kept)
            _close_dropped(built, {k: dict(getattr(self.registries, k).items()) for k in CLOSE_KINDS})
            raise
        return built

    def _install_objects(self, built):
        for kind, objs in built.items():
            reg = getattr(self.registries, kind)
            for name, obj in objs.items():
                reg.set(name, obj)
            for name in set(reg.names()) - set(objs):
                reg.delete(name)

    def warn(self, problems, **fields):
        """Log each warning Problem on one line; → their texts (for an API answer)."""
        out = []
        for p in problems:
            self.log.warning(str(p), **fields)
            out.append(str(p))
        return out

    def build(self):
        """Build every object and bind every service; on any error, close what was bound.
        Dangling references and open proxies are logged as warnings (refs.config_warnings)."""
        # an embedding app gets the command line's verdict
        problems = [] if self.checked else validate(self.config)
        for p in problems:
            if p.level == ERROR:
                raise p.as_error()
        built = self._build_all()
        bound = []
        try:
            for s, path in built.values():
                self._bind(s, path)
                bound.append(s)
        except BaseException:
            for s in bound:
                s.listener.close()
            raise
        self.services = {name: s for name, (s, _) in built.items()}
        if not self.checked:
            self.warn([p for p in problems + config_warnings(self.config) if str(p) not in self.reported])
        for s in self.services.values():
            s.pre_up()
        for name, s in self.services.items():
            self.registries.services.set(name, s)
        api = self.config.get("api")
        if api and api.get("addr"):
            self.internal["api"] = self._build_api(api)
        self._set_metrics(self.config.get("metrics"))
        self.meter_services()
        return self

    def _build_all(self):
        """Install every named object and build every service, bound to nothing → {name:
        (service, path)}."""
        self._install_objects(self._build_objects(self.config))
        self._objects_built = True
        self.registries.loggers = _loggers.build(self.config)
        return {o["name"]: (build_service(o, f"services[{i}]", self.registries, self.log), f"services[{i}]")
                for i, o in enumerate(self.config.get("services") or [])}

    def build_unbound(self):
        """What :meth:`build` builds, with no port bound, no hook run and nothing started
        (``--check``: finds what only building finds, such as a certificate file that is not
        there). Raises ConfigError as build() does."""
        self._build_all()
        return self

    def _build_api(self, api):
        cfg = {"name": "api", "addr": api["addr"],
               "handler": {"type": "api", "metadata": {"pathPrefix": api.get("pathPrefix", ""),
                                                       "accesslog": api.get("accesslog", False)}},
               "listener": {"type": "tcp"}}
        for k in ("auth", "auther"):
            if api.get(k):
                cfg["handler"][k] = api[k]
        s = build_service(cfg, "api", self.registries, self.log)
        bind_service(s, "api")
        return s

    def _set_metrics(self, mcfg, old=None):
        """Build (and with ``old``, swap in) the global metrics endpoint of the ``metrics``
        object: GOST's ``-metrics``. Building it turns metrics on for the process."""
        if not (isinstance(mcfg, dict) and mcfg.get("addr")):
            return None
        addr = str(mcfg["addr"])
        hmd = {"path": mcfg.get("path") or "/metrics"}
        label = (mcfg.get("metadata") or {}).get("clientLabel")
        if label is not None:
            hmd["clientLabel"] = label
        handler = {"type": "metrics", "metadata": hmd}
        if mcfg.get("auther"):       # GOST: the auther wins over auth
            handler["auther"] = mcfg["auther"]
        elif mcfg.get("auth"):
            handler["auth"] = mcfg["auth"]
        s = build_service({"name": "metrics", "addr": addr, "handler": handler, "listener": {"type": "tcp"}},
                          "metrics", self.registries, self.log)
        if addr.startswith("unix://"):
            from .listeners.tcp import UnixListener
            s.listener = UnixListener(addr[len("unix://"):], s.listener.md, None, None)
            s.log = s.listener.log = s.log.bind(listener="unix")
        if old is not None and old.listener.socket is not None and old.cfg_addr == addr:
            s.listener.adopt(old.listener.socket)
        else:
            bind_service(s, "metrics")
        s.cfg_addr = addr
        if old is not None:
            old.retire(keep_socket=s.listener.socket is old.listener.socket)
        if self.started:
            s.start()
        self.internal["metrics"] = s
        return s

    def meter_services(self):
        """Give every service its metrics meter (None while metrics are off); runs again when
        metrics turn on (observe/metrics.py calls it)."""
        metrics.watch(self)
        for s in self.services.values():
            s.meter = metrics.meter(s.name)

    def start(self, thread: Optional[bool] = None) -> "Gost":
        """Bind and start every service; returns at once. ``thread`` overrides the
        constructor's choice (see the class docstring). In thread mode this returns once the
        services listen in gostg's hub thread, or raises what building them raised."""
        if thread is not None:
            self.thread = thread
        if self.hub is not None:
            return self
        self._mode = host_mode(self.thread)
        if self._mode == "hub":
            return self._start_here()
        if self.services or self.internal:
            # their sockets belong to the hub of the thread that built them (which is gone)
            raise GostgError("thread mode builds the services in gostg's own hub thread, once: "
                             "start() a new Gost (not one build() built or that was stopped)")
        from .embed.thread import HubThread

        hub = HubThread()
        hub.start(self._start_here)
        self.hub = hub
        return self

    def _start_here(self):
        """Build (if not built) and start, in the hub of the calling thread."""
        from gevent.pool import Group

        if not self.services and not self.internal:
            self.build()
        if self.relays is None:
            self.relays = Group()
        for s in list(self.services.values()) + list(self.internal.values()):
            s.start()
        self.started = True
        self._observers_changed(())
        self.probes.sync()
        return self

    def _keep_observers(self, cfg, objects):
        """An observer whose config did not change stays the same object over a reload (-R
        reloads every period): its pending events and its greenlet go on."""
        old = {o.get("name"): o for o in self.config.get("observers") or []}
        for o in cfg.get("observers") or []:
            cur = self.registries.observers.get(o["name"])
            if cur is not None and old.get(o["name"]) == o:
                objects["observers"][o["name"]] = cur

    def _unchanged_loader(self, kind, o):
        """An object reading redis/http whose config did not change stays the same object over a
        reload (-R reloads every period): no re-read, no new poller or subscription; so does a
        plugin-backed one (its transport is not closed under calls in flight), and a limiter
        counting in Redis (``store``: it stays one member, not a new one per period)."""
        if kind not in CLOSE_KINDS:
            return None
        cur = getattr(self.registries, kind).get(o["name"])
        if cur is None or not (_networked(cur) or getattr(cur, "plugin_kind", None) is not None
                               or getattr(cur, "store", None) is not None):
            return None
        old = next((x for x in self.config.get(kind) or [] if x.get("name") == o["name"]), None)
        return cur if old == o else None

    def _observers_changed(self, before):
        """Observers were installed: start their greenlets (a running gostg only), close the
        ones ``before`` ([(name, observer)]) that were replaced or deleted."""
        now = self.registries.observers
        for name, old in before:
            if now.get(name) is not old:
                old.close(flush=0)
        if self.started:
            for _, obs in now.items():
                obs.start()

    @property
    def threaded(self) -> bool:
        """True while the services run in gostg's own hub thread (thread mode)."""
        return self.hub is not None

    def call(self, fn: Callable[..., T], *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` where the services run and return its result (or raise
        its exception): in thread mode, in a greenlet of gostg's hub thread, from any thread;
        otherwise here. ``timeout`` (seconds) bounds it with TimeoutError. Gost's other methods
        (``get``, ``update``, ``reload`` …) touch the services: in thread mode call them
        through this, e.g. ``g.call(g.update, "services", "s", obj)``."""
        from .embed.thread import _bounded

        if self.hub is not None:
            return self.hub.call(fn, *args, timeout=timeout, **kwargs)
        if host_mode(self.thread) == "thread":   # never a hub of the app thread's own
            raise HubStopped("gostg is not running in thread mode: start() it first (a stopped Gost "
                             "stays stopped)")
        return _bounded(fn, args, kwargs, timeout)

    def _probes_changed(self):
        """Chains or hops changed: start the new nodes' probes, stop the gone ones'."""
        if self.started:
            self.probes.sync()

    #: seconds a stop gives the open connections of all services together before ending them
    stop_timeout = 2.0

    def stop(self, timeout: Optional[float] = None) -> None:
        """Every service stops accepting at once (each preDown → close → postDown, in order, as
        GOST), then one shared grace period of ``timeout`` seconds (default ``stop_timeout``)
        for all open connections, then the rest are ended: a stop takes about ``timeout``
        however many services there are. Sockets relayed for the app (``dial``) end too.

        In thread mode, from any thread: the stop runs in gostg's hub thread, which then ends
        and is joined (a few seconds at most past ``timeout``); nothing of gostg's, neither a
        thread nor a file descriptor, is left."""
        hub = self.hub
        if hub is None:
            if self._mode == "thread" or not (self.started or self.services or self.internal):
                return   # a thread-mode Gost stopped already, or nothing was built
            return self._stop_here(timeout)
        grace = self.stop_timeout if timeout is None else timeout
        self.hub = None
        if not hub.stop(lambda: self._stop_here(grace), timeout=grace + hub.join_timeout) and not hub.is_current():
            self.log.warning(f"stop: gostg's hub thread did not end within {hub.join_timeout:g}s")

    def _stop_here(self, timeout):
        deadline = time.monotonic() + (self.stop_timeout if timeout is None else timeout)
        self.probes.stop()
        closed = [s for s in list(self.services.values()) + list(self.internal.values()) if s.close()]
        for _, obs in self.registries.observers.items():   # the "closed" events get a moment
            obs.close(flush=max(0.0, min(1.0, deadline - time.monotonic())))
        for s in closed:
            s.drain(deadline)
        for _, r in self.registries.recorders.items():   # the drained connections' records go out
            r.close(deadline)
        if self.relays is not None:
            self.relays.kill(block=True, timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        # every object closes; shared limiters' counts leave Redis (the last releases go out)
        _close_dropped({k: dict(getattr(self.registries, k).items()) for k in CLOSE_KINDS}, {},
                       retire=max(0.0, min(1.0, deadline - time.monotonic())))
        self._close_sessions()
        self.started = False

    def _close_sessions(self):
        """Multiplexing dialers (mtls, mws, h2 …) keep one connection per node open between
        dials (dialers/session.py): a stop closes them, as a GOST process exit does (in thread
        mode the hub that owns them is about to go). A later dial opens a new one."""
        hops = [h for _, h in self.registries.hops.items()]
        for _, c in self.registries.chains.items():
            hops += [h for h in getattr(c, "hops", ()) if not isinstance(h, str)]
        for hop in hops:
            for n in getattr(hop, "nodes", ()):
                close = getattr(n.dialer, "close", None)
                if close is not None:
                    close()

    def service(self, name):
        return self.services.get(name)

    def tunnel_services(self):
        """Every service whose open connections the live-tunnel registry lists: the running
        ones, then the retired ones still draining (each has ``tunnels``: sid → Context)."""
        return list(self.services.values()) + [s for s in list(self.retired) if s.tunnels]

    def close_tunnel(self, sid):
        """End the open connection ``sid`` (Service.close_tunnel) → False when none is open."""
        return any(s.close_tunnel(sid) for s in self.tunnel_services() if sid in s.tunnels)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the application's own connections (gostg/embed) --------------------------------------

    def ensure_objects(self) -> None:
        """Build the named objects (chains, hops, bypasses …) if nothing was built yet, so
        :meth:`dial` works before (or without) :meth:`start`; no service is built or bound."""
        with self._lock:
            if not self._objects_built:
                for p in [] if self.checked else validate(self.config):   # build()'s verdict
                    if p.level == ERROR:
                        raise p.as_error()
                self._install_objects(self._build_objects(self.config))
                self._objects_built = True

    def dial(self, address: "Union[Tuple[str, int], str]", chain: Optional[str] = None, *,
             timeout: Optional[float] = None, bypass: Optional[str] = None, hosts: Optional[str] = None,
             resolver: Optional[str] = None, retries: int = 0) -> "socket.socket":
        """A socket connected to ``address`` (``(host, port)`` or ``"host:port"``), routed as a
        service routes: ``hosts`` → ``resolver`` → ``chain`` (its hops' selectors, bypasses
        and node settings), ``retries`` more attempts; destinations the ``bypass`` named
        object matches go direct. Names are resolved by the chain's last node. Unknown names
        fail (never direct): :class:`gostg.embed.dial.RouteError` (an OSError). ``timeout``
        bounds the dial; the socket returned blocks. See :mod:`gostg.embed.dial`."""
        from .embed.dial import dial
        return dial(self, address, chain, timeout=timeout, bypass=bypass, hosts=hosts,
                    resolver=resolver, retries=retries)

    def create_connection(self, address: "Union[Tuple[str, int], str]", timeout: Optional[float] = None,
                          source_address: "Optional[Tuple[str, int]]" = None, *, chain: Optional[str] = None,
                          bypass: Optional[str] = None, hosts: Optional[str] = None,
                          resolver: Optional[str] = None, retries: int = 0) -> "socket.socket":
        """:func:`socket.create_connection`'s signature, routed as :meth:`dial`; the socket
        keeps ``timeout`` as the stdlib's does. A ``source_address`` other than "any" is
        refused (a route leaves from its first node: set that node's ``interface``)."""
        from .embed.dial import create_connection
        return create_connection(self, address, timeout, source_address, chain=chain, bypass=bypass,
                                 hosts=hosts, resolver=resolver, retries=retries)

    # -- reading ------------------------------------------------------------------------------

    def snapshot(self, status=True):
        """A deep copy of the config model, services carrying their live ``status``."""
        cfg = copy.deepcopy(self.config)
        if status:
            for o in cfg.get("services") or []:
                s = self.services.get(o.get("name"))
                if s is not None:
                    o["status"] = s.status()
        return model.canonical(cfg)

    def get(self, kind, name=None):
        self.check_kind(kind)
        items = self.snapshot().get(kind) or []
        if name is None:
            return items
        return next((o for o in items if o.get("name") == name), None)

    # -- changes ------------------------------------------------------------------------------

    @staticmethod
    def check_kind(kind):
        if kind not in model.LIST_KINDS:
            raise ChangeError(ChangeError.NOT_FOUND, f"unknown kind {kind!r}", status=404)

    def _validate(self, kind, obj, name=None):
        if not isinstance(obj, dict):
            raise ChangeError(ChangeError.INVALID, f"{kind}: the object must be a JSON object")
        obj = copy.deepcopy(obj)
        obj.pop("status", None)
        if name is not None:
            obj["name"] = name
        if not isinstance(obj.get("name"), str) or not obj["name"]:
            raise ChangeError(ChangeError.INVALID, f"{kind}: name is required")
        if "/" in obj["name"]:
            raise ChangeError(ChangeError.INVALID, f"{kind}: name {obj['name']!r} may not contain '/'")
        return obj

    def _with(self, kind, objects):
        """A copy of the config model with ``kind`` replaced by ``objects``."""
        cfg = dict(self.config)
        cfg[kind] = objects
        return cfg

    def _check_refs(self, o, path):
        """Reference *shapes* (a name is a string, ``authers`` a list of names); a name whose
        object does not exist is not an error here (GOST's forward reference): the caller
        reports it as a warning and the service refuses connections until it exists."""
        for keys, kind in SERVICE_REFS:
            ref = _dig(o, keys)
            if ref is not None and not isinstance(ref, str):
                raise ChangeError(ChangeError.FAILED, f"{path}.{'.'.join(keys)}: must be a name (a string)")
        for key in ("authers",):
            for part in ("handler", "listener"):
                refs = _dig(o, (part, key)) or []
                if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                    raise ChangeError(ChangeError.FAILED, f"{path}.{part}.{key}: must be a list of names")

    def _new_service(self, o, path, old=None, check_refs=True):
        """Build, check and bind a service (adopting ``old``'s socket on the same address).
        References to objects that do not exist are accepted, as GOST does (forward
        references); they are warned about and refuse connections until the object exists."""
        try:   # shapes: validate() ran on this object (API) or the whole config (reload) first
            if check_refs:
                self._check_refs(o, path)
            s = build_service(o, path, self.registries, self.log)
            if old is not None and old.listener.socket is not None and o.get("addr") == old.cfg_addr \
                    and type(old.listener) is type(s.listener) and old.listener.netns == s.listener.netns:
                s.listener.adopt(old.listener.socket)
            else:
                self._bind(s, path)
        except ConfigError as exc:
            raise ChangeError(ChangeError.FAILED, str(exc)) from exc
        return s

    #: whether this runtime's services listen and serve here (a ``-workers`` supervisor builds
    #: them to check every change, its workers serve them: gostg.workers.control)
    serves = True

    def _bind(self, service, path):
        bind_service(service, path)

    def _swap_service(self, name, new, old):
        """Commit: the new service serves, the old one steps down."""
        adopted = old is not None and new.listener.socket is old.listener.socket
        if old is not None:
            old.retire(keep_socket=adopted)
            self.retired.add(old)
        new.pre_up()
        new.meter = metrics.meter(name)
        if self.started and self.serves:
            new.start()
        self.services[name] = new
        self.registries.services.set(name, new)

    def create(self, kind, obj):
        self.check_kind(kind)
        _thaw()
        obj = self._validate(kind, obj)
        with self._lock:
            items = list(self.config.get(kind) or [])
            if any(o.get("name") == obj["name"] for o in items):
                raise ChangeError(ChangeError.DUPLICATE, f"{kind}: {obj['name']!r} already exists")
            return self._apply(kind, obj["name"], obj, items + [obj], None)

    def update(self, kind, name, obj):
        self.check_kind(kind)
        _thaw()
        obj = self._validate(kind, obj, name)
        with self._lock:
            items = list(self.config.get(kind) or [])
            idx = next((i for i, o in enumerate(items) if o.get("name") == name), None)
            if idx is None:
                raise ChangeError(ChangeError.NOT_FOUND, f"{kind}: {name!r} not found")
            items[idx] = obj
            return self._apply(kind, name, obj, items, idx)

    def _apply(self, kind, name, obj, items, idx):
        """Build and swap in one changed object; → the warnings about it (texts)."""
        path = f"{kind}[{len(items) - 1 if idx is None else idx}]"
        schema_warnings = self._schema_check(kind, obj, path)
        if kind == "services":
            new = self._new_service(obj, path, self.services.get(name))
            self._swap_service(name, new, self.services.get(name))
        elif kind == "loggers":
            try:
                built = _loggers.build({"loggers": [obj]})
            except ConfigError as exc:
                raise ChangeError(ChangeError.FAILED, f"{path}{str(exc)[len('loggers[0]'):]}") from exc
            self._relog(name, built)
        elif kind in OBJECT_KINDS:
            try:
                built = build_object(kind, obj, path, self.registries)
            except ConfigError as exc:
                raise ChangeError(ChangeError.FAILED, str(exc)) from exc
            before = self.registries.observers.items()
            replaced = getattr(self.registries, kind).get(name)
            getattr(self.registries, kind).set(name, built)
            self._probes_changed()
            self._observers_changed(before)
            _close(kind, replaced)   # replaced: a shared limiter's open connections keep their leases
        else:
            try:
                model.check({kind: [obj]})
            except ConfigError as exc:
                raise ChangeError(ChangeError.INVALID, str(exc)) from exc
        self.config = self._with(kind, items)
        self.log.info(f"{NOUNS.get(kind, kind)} {name} {'created' if idx is None else 'updated'}",
                      kind="api")
        # GOST's forward references: accepted, but said (in the log and the API answer)
        return self.warn(schema_warnings + dangling_refs(self.config, path)
                         + [p for p in open_proxies(self.config) if p.path == path], kind="api")

    def _discard(self, built):
        """Services built for a change that failed: close the sockets they bound themselves
        (not the ones adopted from a running service, which keeps serving on them)."""
        for s in built:
            if s.listener.socket is not None and not any(
                    s.listener.socket is old.listener.socket for old in self.services.values()):
                s.listener.close()

    def _relog(self, name, built):
        """Install named logger ``name`` and rebuild the running services that log to it (as a
        reload does): all are built first; if one fails, none is swapped and the old logger stays."""
        saved = self.registries.loggers
        self.registries.loggers = {**saved, **built}
        users = [(f"services[{i}]", o) for i, o in enumerate(self.config.get("services") or [])
                 if name in _loggers.names_of(o) and o.get("name") in self.services]
        new = {}
        try:
            for path, o in users:
                new[o["name"]] = self._new_service(o, path, self.services[o["name"]], check_refs=False)
        except BaseException:
            self.registries.loggers = saved
            self._discard(new.values())
            raise
        for n, s in new.items():
            self._swap_service(n, s, self.services.get(n))

    @staticmethod
    def _schema_check(kind, obj, path):
        """The same :func:`validate` as startup, ``-O`` and ``--check``, for one object at its
        place in the model: errors refuse the change, warnings go into the answer and the log."""
        here = f"{kind}[0]"
        problems = [Problem(p.level, path + p.path[len(here):] if p.path.startswith(here) else p.path, p.message,
                            p.suggestion) for p in validate({kind: [obj]})]
        errors = [str(p) for p in problems if p.level == ERROR]
        if errors:
            raise ChangeError(ChangeError.FAILED, "; ".join(errors))
        return [p for p in problems if p.level != ERROR]

    def delete(self, kind, name):
        self.check_kind(kind)
        _thaw()
        with self._lock:
            items = list(self.config.get(kind) or [])
            if not any(o.get("name") == name for o in items):
                raise ChangeError(ChangeError.NOT_FOUND, f"{kind}: {name!r} not found")
            if kind == "services":
                s = self.services.pop(name, None)
                self.registries.services.delete(name)
                if s is not None:
                    s.retire(reason="closed")   # port closed and hooks run before the API answers
                    self.retired.add(s)
                    s.drain_later()     # open connections get the drain period, not the API call
            elif kind in OBJECT_KINDS:
                before = self.registries.observers.items()
                _close(kind, getattr(self.registries, kind).delete(name), retire=1.0)
                self._probes_changed()
                self._observers_changed(before)
            elif kind == "loggers":   # running services keep it; new ones cannot name it
                self.registries.loggers = {k: v for k, v in self.registries.loggers.items() if k != name}
            self.config = self._with(kind, [o for o in items if o.get("name") != name])
            self.log.info(f"{kind} {name} deleted", kind="api")
            # what now names the deleted object refuses its connections: say so
            return self.warn(dangling_to(self.config, kind, name), kind="api") if kind in OBJECT_KINDS else []

    def reload(self, config=None):
        """Re-read the sources (or take ``config``) and restart only the services whose config
        changed; unchanged services keep their listeners and connections. All or nothing."""
        # logrotate's move-then-HUP: the log files are reopened at their paths even when the
        # new config turns out to be broken
        _reopen_log_files()
        _thaw()
        with _reload_refused():
            # read before the lock: a URL source may take its whole timeout, and the API's
            # changes need not wait for it
            cfg = to_config(config) if config is not None else (self.sources() if self.sources else None)
        if cfg is None:
            raise ChangeError(ChangeError.FAILED, "no config source to reload from")
        with self._lock:
            with _reload_refused():
                problems = validate(cfg)
                # (+ references that must resolve: an observer an unchanged service still names)
                errors = [p for p in problems + dangling_refs(cfg) if p.level == ERROR]
                if errors:
                    raise ConfigError("", "; ".join(str(p) for p in errors))
                objects = self._build_objects(cfg, self._unchanged_loader)
                self._keep_observers(cfg, objects)
                named_loggers = _loggers.build(cfg)
            old_cfgs = {o["name"]: o for o in self.config.get("services") or []}
            new_cfgs = {o["name"]: o for o in cfg.get("services") or []}
            relog = _loggers.changed(self.config, cfg)   # a service of a changed logger is rebuilt
            changed = [n for n, o in new_cfgs.items()
                       if old_cfgs.get(n) != o or relog.intersection(_loggers.names_of(o))]
            removed = [n for n in old_cfgs if n not in new_cfgs]
            built = {}
            before = self.registries.observers.items()
            try:
                saved = {k: dict(getattr(self.registries, k).items()) for k in OBJECT_KINDS}
                saved_loggers, self.registries.loggers = self.registries.loggers, named_loggers
                self._install_objects(objects)
                for i, o in enumerate(cfg.get("services") or []):
                    if o["name"] in changed:
                        built[o["name"]] = self._new_service(o, f"services[{i}]", self.services.get(o["name"]),
                                                             check_refs=False)
            except BaseException:
                self._discard(built.values())
                for k, objs in saved.items():
                    self._install_objects({k: objs})
                self.registries.loggers = saved_loggers
                _close_dropped(objects, saved)   # the new objects' pollers and subscriptions
                raise
            _close_dropped(saved, objects)
            for n in removed:
                s = self.services.pop(n)
                self.registries.services.delete(n)
                s.retire(reason="closed")
                self.retired.add(s)
                s.drain_later()
            for n, s in built.items():
                self._swap_service(n, s, self.services.get(n))
            self._probes_changed()
            self._observers_changed(before)
            self._reload_metrics(cfg.get("metrics"))
            same = cfg == self.config
            if (cfg.get("log") or {}) != (self.config.get("log") or {}):
                self.log.warning("log: the global log settings changed; they take effect at restart "
                                 "(named loggers and their services are rebuilt now)", kind="api")
            self.config = cfg
            (self.log.info if changed or removed else self.log.debug)(
                "config reloaded", kind="api", changed=changed, removed=removed)
            # the answer always lists them; the log only when the config changed (-R polls)
            found = problems + config_warnings(cfg)
            warnings = [str(p) for p in found] if same else self.warn(found)
            result = {"changed": changed, "removed": removed}
            if warnings:
                result["warnings"] = warnings
            return result

    def _reload_metrics(self, mcfg):
        """A changed ``metrics`` object: the endpoint is rebuilt (on the same address it keeps
        its socket); one that cannot be built is logged and the old one kept serving."""
        if mcfg == self.config.get("metrics"):
            return
        old = self.internal.pop("metrics", None)
        try:
            if self._set_metrics(mcfg, old) is None and old is not None:
                old.retire(reason="closed")
        except ConfigError as exc:
            self.log.error(f"metrics: not rebuilt, the old endpoint keeps serving: {exc}", kind="api")
            if old is not None:
                self.internal["metrics"] = old

    def save(self, path, fmt):
        """Write the config model atomically: temp file in the same directory, fsync, rename."""
        import json
        import tempfile

        import yaml

        cfg = self.snapshot(status=False)
        text = json.dumps(cfg, indent=2) + "\n" if fmt == "json" else yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)
        d = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".gostg-", suffix=".tmp", dir=d)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fchmod(f.fileno(), _file_mode(path))  # mkstemp makes 0600
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            raise ChangeError(ChangeError.SAVE_FAILED, f"save config to {path}: {exc.strerror or exc}") from exc


__all__ = ["Gost", "ConfigError", "to_config"]
