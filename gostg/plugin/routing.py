"""Plugin-backed ingresses, routers and sds (GOST x/ingress/plugin, x/router/plugin,
x/sd/plugin): the tunnel and router handlers' lookups, asked of another process.

Over HTTP these plugins are REST-shaped, unlike the POST-only decision plugins:
- ingress: ``GET addr?host=<host>[&service=…]`` → ``{"endpoint"}``; SetRule is ``PUT`` of
  ``{service, host, endpoint}`` → ``{"ok"}``;
- router: ``GET addr?dst=<dst>[&id=<router id>]`` → ``{"dst" (or "net"), "gateway"}``;
- sd: ``POST`` (register), ``DELETE`` (deregister), ``PUT`` (renew) of a service's JSON, a 200
  is success; ``GET addr?name=<tunnel>`` → ``{"services": [...]}``.
Over gRPC they are go-gost/plugin's Ingress, Router and SD services (:mod:`.protos`).

Fail closed: a plugin that is down, slow, answers another status or garbage gives no rule, no
route, no services (and set/register report False); the cause is logged once per change and
once when the plugin answers again. A 404 to a lookup is "none", not a failure.
"""
from . import PluginError, wire
from .consumers import PluginBacked
from ..policy.group import Unanswered


class _Rest(PluginBacked):
    """One call: ``(method, query, body)`` over HTTP, ``(request, op)`` over gRPC."""

    def __init__(self, name, cfg, path, log=None):
        super().__init__(name, cfg, path, None)
        # GOST's fields on these plugins' lines: kind and the object's name under its kind
        self.log = log.bind(kind=self.plugin_kind, **{self.plugin_kind: name}) if log is not None else None

    def _http(self):
        return hasattr(self.transport, "request")

    def _call(self, method, query=None, body=None, op=None, none_on_404=False):
        """→ the reply dict (None: a lookup the HTTP plugin answered 404); PluginError."""
        if self._http():
            from .http import json_object

            code, reply = self.transport.request(method, query, body)
            return None if code == 404 and none_on_404 else json_object(code, reply)
        return self.transport.call(body if body is not None else query, op)

    def _try(self, fn, parse, failed):
        """``parse(fn())``, or ``failed`` when the plugin did not answer (logged by ask)."""
        try:
            return self.ask(None, parse, lambda _: fn())
        except Unanswered:
            return failed


class PluginIngress(_Rest):
    kind, plugin_kind = "ingresses", "ingress"
    failing = "no rule until it answers"

    def get_rule(self, host, service=""):
        from ..policy.ingress import Rule

        if not host:
            return None
        query = {"host": host, **({"service": service} if service else {})}
        endpoint = self._try(lambda: self._call("GET", query, op="GetRule", none_on_404=True), _endpoint, "")
        return Rule(host, endpoint) if endpoint else None

    def set_rule(self, rule, service=""):
        if rule is None:
            return False
        body = wire.set_rule_request(rule.hostname, rule.endpoint, service)
        return self._try(lambda: self._call("PUT", body=body, op="SetRule"), wire.ok_of, False)


def _endpoint(reply):
    """A GetRule answer → the endpoint ("" for none); one that is no tunnel ID is garbage (GOST
    reads it as the zero tunnel: no route)."""
    from ..policy.ingress import endpoint_id

    endpoint = wire.ingress_rule_reply(reply) if reply is not None else ""
    if endpoint:
        try:
            endpoint_id(endpoint)
        except ValueError as exc:
            raise PluginError(str(exc)) from None
    return endpoint


class PluginRouter(_Rest):
    kind, plugin_kind = "routers", "router"
    failing = "no route until it answers"

    def get_route(self, dst, gateway="", id=""):
        """``id``: GOST's router ID (routing tunnels), sent as the plugin's ``id``."""
        if not dst:
            return None
        query = {"dst": dst, **({"id": id} if id else {})}
        return self._try(lambda: self._call("GET", query, op="GetRoute", none_on_404=True), _route, None)


def _route(reply):
    """A GetRoute answer → Route, or None (no dst or no gateway: no route, as GOST's handlers
    read it); a dst that is no IP or CIDR is garbage."""
    from ..policy.routes import parse_route

    dst, gateway = wire.route_reply(reply) if reply is not None else ("", "")
    if not dst or not gateway:
        return None
    try:
        return parse_route(dst, gateway)
    except ValueError as exc:
        raise PluginError(f"bad route in the answer: {exc}") from None


class PluginSD(_Rest):
    kind, plugin_kind = "sds", "sd"
    failing = "no service found until it answers"

    def _change(self, method, op, svc):
        if svc is None:
            return False
        body = wire.sd_service(svc)
        if self._http():
            def fn():
                code, _ = self.transport.request(method, None, body)
                if code != 200:
                    raise PluginError(f"HTTP {code}")
                return {}
        else:
            def fn():
                return self.transport.call(body, op)
        return self._try(fn, lambda r: True, False)

    def register(self, svc):
        return self._change("POST", "Register", svc)

    def deregister(self, svc):
        return self._change("DELETE", "Deregister", svc)

    def renew(self, svc):
        return self._change("PUT", "Renew", svc)

    def get(self, name):
        from ..policy.sd import Service

        found = self._try(lambda: self._call("GET", {"name": name}, op="Get"), wire.sd_services_reply, [])
        return [Service.of(d) for d in found]


CLASSES = {"ingresses": PluginIngress, "routers": PluginRouter, "sds": PluginSD}
