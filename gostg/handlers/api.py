from gevent.pywsgi import WSGIServer

from ..api.app import Api
from ..core.registry import handlers
from .base import Handler


class _Server(WSGIServer):
    """A WSGIServer used only for its per-connection handler: the service owns the socket."""

    def __init__(self, app):
        super().__init__(("127.0.0.1", 0), app, log=None, error_log=None)


class WSGIHandler(Handler):
    """A handler that serves a WSGI app over HTTP/1.1 on each connection (gevent.pywsgi's
    request handling; the service owns the listening socket)."""

    def __init__(self, md, options, app):
        super().__init__(md, options)
        self.app = app
        self.server = _Server(app)

    def handle(self, conn, ctx):
        host, _, port = ctx.src.rpartition(":")
        self.server.handle(conn, (host.strip("[]"), int(port or 0)))


@handlers.register("api")
class APIHandler(WSGIHandler):
    """GOST's Web API as a handler, so it can sit on any listener (``api+tls://…``).
    Metadata: ``pathPrefix``, ``accesslog``; auth: the handler's auth/auther."""

    def __init__(self, md, options):
        runtime = options.registries.runtime
        super().__init__(md, options, Api(runtime, md.str("pathPrefix"), options.auther,
                                          md.bool("accesslog", "accessLog"),
                                          save_path=getattr(runtime, "save_path", None)))
