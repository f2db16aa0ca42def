"""GOST's ``metrics`` handler (x/handler/metrics, x/metrics/service): the process's Prometheus
metrics over HTTP, on any listener (``-L metrics://user:pass@:9000?path=/metrics``) and for the
global ``metrics:`` endpoint.

- ``GET {path}`` (default ``/metrics``): the exposition, written by prometheus_client (text
  format, or OpenMetrics when the scraper asks for it; gzip when accepted). Another path: 404.
- HTTP Basic auth when the handler (or ``metrics:``) has ``auth``/``auther``: missing or wrong
  credentials, or an auther name that does not resolve, get 401 (fail closed).
- CORS as GOST: every origin, GET and OPTIONS (a browser dashboard may read it).
Building this handler turns metrics on for the process (as GOST's ``Init``).
"""
from ..api.app import authorized
from ..core.registry import handlers
from ..observe import metrics
from .api import WSGIHandler

DEFAULT_PATH = "/metrics"
CORS = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "GET, OPTIONS"),
        ("Access-Control-Allow-Headers", "*")]


class MetricsApp:
    """WSGI app: the exposition at ``path``, behind ``auther``."""

    def __init__(self, path=DEFAULT_PATH, auther=None, log=None, client_label=True):
        import prometheus_client

        self.path = "/" + (path or DEFAULT_PATH).lstrip("/")
        self.auther = auther
        self.log = log
        self.expose = prometheus_client.make_wsgi_app(metrics.enable(client_label, log).registry)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.path:
            return _answer(start_response, "404 Not Found", b"404 page not found\n")
        method = environ.get("REQUEST_METHOD")
        if method == "OPTIONS":
            return _answer(start_response, "204 No Content", b"")
        if not authorized(self.auther, environ, self.log, "metrics"):
            return _answer(start_response, "401 Unauthorized", b"Unauthorized\n",
                           [("WWW-Authenticate", 'Basic realm="gostg metrics"')])

        def cors(status, headers, *exc):
            return start_response(status, headers + CORS, *exc)
        return self.expose(environ, cors)


def _answer(start_response, status, body, extra=()):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
                   + CORS + list(extra))
    return [body]


@handlers.register("metrics")
class MetricsHandler(WSGIHandler):
    """Metadata: ``path`` (GOST also reads ``metrics.path``), ``clientLabel``; auth: the
    handler's auth/auther."""

    def __init__(self, md, options):
        app = MetricsApp(md.str("path", "metrics.path") or DEFAULT_PATH, options.auther,
                         getattr(options.registries, "log", None), md.bool("clientLabel", default=True))
        super().__init__(md, options, app)
