from gevent.pywsgi import WSGIServer

from ..api.app import Api
from ..core.registry import handlers
from .base import Handler


class _Server(WSGIServer):
    """A WSGIServer used only for its per-connection handler: the service owns the socket."""

    def __init__(self, app, log):
        super().__init__(("127.0.0.1", 0), app, log=None, error_log=None)


@handlers.register("api")
class APIHandler(Handler):
    """GOST's Web API as a handler, so it can sit on any listener (``api+tls://…``).
    Metadata: ``pathPrefix``, ``accesslog``; auth: the handler's auth/auther."""

    def __init__(self, md, options):
        super().__init__(md, options)
        runtime = options.registries.runtime
        self.app = Api(runtime, md.str("pathPrefix"), options.auther, md.bool("accesslog", "accessLog"),
                       save_path=getattr(runtime, "save_path", None))
        self.server = _Server(self.app, runtime.log)

    def handle(self, conn, ctx):
        host, _, port = ctx.src.rpartition(":")
        self.server.handle(conn, (host.strip("[]"), int(port or 0)))
