"""The supervisor of ``-workers N``: a :class:`gostg.Gost` that owns the config model, the Web
API, the metrics endpoint, reloads and hooks, and hands every resulting config to its workers.

It builds every object and service exactly as a single gostg does, so a change (API, SIGHUP,
``-R``) is checked and refused the same way before any worker sees it, but it binds and serves
no service: its workers do (gostg.workers.pool, gostg.workers.worker). The hooks of the services
run here, once for the group: ``preUp`` when the service is built, ``postUp`` once every worker
runs it, ``preDown``/``postDown`` when it is replaced or deleted and at stop (after the workers
have stopped). Services with an ``api`` or ``metrics`` handler are served here, not in the
workers: they act on, or report for, the whole group. ``GET /config``, ``/api/status``,
``/api/connections`` and ``/metrics`` show the workers' sums (gostg.workers.sums)."""
from ..config.build import bind_service
from ..core.hooks import run_hooks
from ..errors import ConfigError
from ..listeners.tcp import bind_tcp
from ..observe import recent
from ..runtime import Gost
from . import share
from .metricsum import Carry, merge as merge_metrics
from .pool import Pool
from .sums import GroupConnections, StatsCarry, merge_status, sum_page_entries

#: handler types the supervisor serves itself: they act on, or report for, the whole group
SUPERVISOR_HANDLERS = ("api", "metrics")


def owned(service):
    """Whether the supervisor serves ``service`` itself (a Web API or a metrics handler on a
    service of its own, ``-L api://…``): in a worker it would change or show that worker only."""
    return service.handler_type in SUPERVISOR_HANDLERS


def spread(service):
    """Whether every worker listens for ``service`` (SO_REUSEPORT); else worker 0 alone does
    (a listener that cannot share its port, or a handler whose clients must meet in one
    process, the router's)."""
    return service.listener.shareable and getattr(service.handler, "shareable", True)


class Controller(Gost):
    serves = False

    def __init__(self, config, workers, **kw):
        super().__init__(config, **kw)
        self.pool = Pool(workers, self._init_message, self.log)
        #: what /api/connections reads (gostg.api.app)
        self.connections = GroupConnections(self.pool)
        #: /metrics: each worker process's last exposition (pid → text), and the counters of
        #: the ones that died (the group's counters never go back)
        self._reported = {}
        self._carried = Carry()
        #: GET /config and /api/status: the stats of workers that died stay in the sums
        self._stats = StatsCarry()
        self._up = []   # services built since the last push: their postUp runs after it
        logs = [self.config.get("log")] + [o.get("log") for o in self.config.get("loggers") or []
                                           if isinstance(o, dict)]
        if any(isinstance(lc, dict) and lc.get("rotation") for lc in logs):
            # each process counts only its own lines and renames the file under the others
            self.log.warning("log rotation: with workers, each process rotates the log file by its own "
                             "count; rotate with logrotate and SIGHUP instead (every worker reopens the file)")

    # -- what each worker runs --------------------------------------------------------------

    def _shareable(self):
        return {n for n, s in self.services.items() if spread(s)}

    def _owned(self):
        return {n for n, s in self.services.items() if owned(s)}

    def _worker_config(self, index, shareable=None, mine=None):
        return share.worker_config(self.config, index, self._shareable() if shareable is None else shareable,
                                   self._owned() if mine is None else mine)

    def _init_message(self, index):
        return {"config": self._worker_config(index), "index": index, "workers": len(self.pool),
                "metrics": share.metrics_wanted(self.config),
                # to name a failing service by its place in the group's config
                "names": [o.get("name") for o in self.config.get("services") or []]}

    def _push(self):
        """The config model as it is now → every worker; → the problems (texts)."""
        shareable, mine, wanted = self._shareable(), self._owned(), share.metrics_wanted(self.config)
        problems = self.pool.push(lambda i: {"config": self._worker_config(i, shareable, mine), "metrics": wanted})
        self._post_up()
        return problems

    def _post_up(self):
        up, self._up = self._up, []
        for s in up:
            if s.state != "closed":
                run_hooks("postUp", s._hooks["postUp"], s.log)

    # -- a Gost that binds and serves nothing itself ---------------------------------------

    def _bind(self, service, path):
        """Its workers bind (SO_REUSEPORT). Here a new TCP address is only probed, bound
        without SO_REUSEPORT and closed: a port another program (or another gostg group of the
        same user, which SO_REUSEPORT would otherwise let the workers join) listens on is
        refused as a single gostg refuses it, before any worker sees the change."""
        if owned(service):   # served here, as a single gostg serves it
            if service.handler_type == "metrics":
                service.handler.app.expose = self._metrics_app
            bind_service(service, path)
            return
        # its workers report this service's state and stats to its observer: the supervisor's
        # copy (never serving) must not report a second, idle one
        service.observer = None
        lst = service.listener
        if not spread(service) or lst.netns or any(s.cfg_addr == lst.addr for s in self.services.values()):
            return   # worker 0 binds it; or our own workers listen there already
        try:
            bind_tcp(lst.addr, 0, probe=True)
        except ConfigError as exc:
            raise ConfigError(f"{path}.addr", exc.msg) from None

    def _swap_service(self, name, new, old):
        super()._swap_service(name, new, old)
        if not owned(new):
            self._up.append(new)   # postUp once the workers run it
        elif self.started:
            new.start()

    def _observers_changed(self, before):
        pass   # observers run in the workers, which see the connections

    def _probes_changed(self):
        pass   # health checks run in the workers, which dial

    def _start_here(self):
        if not self.services and not self.internal:
            self.build()
        for s in list(self.internal.values()) + [s for s in self.services.values() if owned(s)]:
            s.start()   # the Web API and metrics endpoints
        self.started = True
        failure = self.pool.start()
        if failure is not None:
            self._stop_here(0)
            raise ConfigError(*failure)
        if self.pool.stopping:   # a SIGTERM while the workers started
            return self
        self._up = [s for s in self.services.values() if not owned(s)]
        self._post_up()
        self.log.info(f"{len(self.pool)} workers running", workers=self.pool.pids())
        return self

    def _stop_here(self, timeout):
        self.pool.stop(self.stop_timeout if timeout is None else timeout)
        super()._stop_here(0)   # the API, the metrics endpoint, and preDown/postDown once

    # -- changes reach every worker ------------------------------------------------------------

    def create(self, kind, obj):
        warnings = super().create(kind, obj)
        return warnings + self._push()

    def update(self, kind, name, obj):
        warnings = super().update(kind, name, obj)
        return warnings + self._push()

    def delete(self, kind, name):
        warnings = super().delete(kind, name)
        return warnings + self._push()

    def reload(self, config=None):
        before = self.config.get("workers")
        try:
            result = super().reload(config)
        except Exception:
            self._push()   # the running config: the workers reopen their log files all the same
            raise
        # pushed even when nothing changed: a SIGHUP reopens the workers' log files too (a
        # worker handed the config it runs does only that)
        problems = self._push()
        if problems:
            result["warnings"] = result.get("warnings", []) + problems
        if self.config.get("workers") != before:
            self.log.warning("workers: the number of worker processes changes at restart", kind="api")
        return result

    def _set_metrics(self, mcfg, old=None):
        s = super()._set_metrics(mcfg, old)
        if s is not None:   # the endpoint serves the sum of the workers' metrics
            s.handler.app.expose = self._metrics_app
        return s

    # -- reading: the workers' sums ------------------------------------------------------------

    def snapshot(self, status=True):
        cfg = super().snapshot(status=False)
        if status:
            parts = {}
            answers = self.pool.ask_all("status")
            for answer in answers:
                services = answer.get("services") or {}
                self._stats.note(answer.get("pid"), {n: st.get("stats") for n, st in services.items()})
                for name, st in services.items():
                    parts.setdefault(name, []).append(st)
            self._stats.fold(set(self.pool.pids()), self._service_token)
            for o in cfg.get("services") or []:
                s = self.services.get(o.get("name"))
                if s is not None and owned(s):
                    o["status"] = s.status()
                elif parts.get(o.get("name")):
                    carried = self._stats.extra(o["name"], self._service_token)
                    o["status"] = merge_status(parts[o["name"]] + ([{"stats": carried}] if carried else []))
        return cfg

    def _service_token(self, name):
        """Which build of service ``name`` runs now (a replaced one's stats start from zero)."""
        return getattr(self.services.get(name), "create_time", None)

    def status_page(self):
        from ..api.status import status

        mine = status(self)
        answers = self.pool.ask_all("page")
        pages = [a["page"] for a in answers]
        for a in answers:
            self._stats.note(a.get("pid"), {s["name"]: s.get("stats") for s in a["page"].get("services") or []})
        self._stats.fold(set(self.pool.pids()), self._service_token)
        if not pages:
            return mine
        out = dict(pages[0])
        services = {}
        for page in pages:
            for s in page.get("services") or []:
                services[s["name"]] = sum_page_entries(services[s["name"]], s) if s["name"] in services else s
        for name, entry in services.items():
            carried = self._stats.extra(name, self._service_token)
            if carried:
                services[name] = sum_page_entries(entry, {"stats": carried})
        out["services"] = [services.get(x["name"]) or x for x in mine["services"]]
        # the supervisor's own (a worker that died, a change a worker refused) and the workers'
        out["errors"] = sorted((e for p in [mine] + pages for e in p.get("errors") or [] if isinstance(e, dict)),
                               key=lambda e: str(e.get("time", "")))[-recent.SIZE:]
        out["workers"] = self.pool.pids()
        return out

    def _metrics_exposition(self):
        """The workers' expositions merged. A worker that did not answer in time counts with
        its last one; a dead worker's last counters are carried into every later sum."""
        answers = self.pool.ask_all("metrics")
        live = set(self.pool.pids())
        unnamed = []   # (an answer without its pid is summed once, never kept or carried)
        for a in answers:
            if a.get("pid") is None:
                unnamed.append(a.get("text") or "")
            else:
                self._reported[a["pid"]] = a.get("text") or ""
        for pid in [p for p in self._reported if p not in live]:
            self._carried.add(self._reported.pop(pid))
        return merge_metrics(list(self._reported.values()) + unnamed + [self._carried.text()])

    def _metrics_app(self, environ, start_response):
        body = self._metrics_exposition().encode()
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                  ("Content-Length", str(len(body)))])
        return [body]
