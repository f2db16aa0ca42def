"""GOST's Web API (spec §4), path for path and field for field.

- ``{prefix}/docs/swagger.yaml``: the OpenAPI document of what is served here (no auth).
- ``{prefix}/config*``: HTTP Basic auth when configured (401 + WWW-Authenticate).
- ``{prefix}/api/connections[/<sid>]`` (beyond GOST, same auth): the open tunnels, listed
  (GET) and ended one by one (DELETE) — see connections.py.
- Beyond GOST, under the same auth: the status page at ``{prefix}/`` and ``{prefix}/ui``
  (gostg.api.page) and its data, ``{prefix}/api/status`` (gostg.api.status).
- Errors are ``{"code": 4000x, "msg": …}`` with GOST's codes; success is ``{"msg": "OK"}``, plus
  ``"warnings": [...]`` when a change names objects that do not exist yet (GOST's forward
  references: accepted, and they refuse connections until created) or opens a proxy to anyone.
- CORS: every origin; GET/POST/PUT/DELETE/OPTIONS; any header.
"""
import json
import os
import time
from urllib.parse import parse_qs

import yaml

from . import connections, page
from ..config import remote
from ..errors import ChangeError
from .status import status
from ..protocols.http import basic_credentials
from ..policy.group import MissingReference, refused

SWAGGER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "swagger.yaml")
CORS = [("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS"),
        ("Access-Control-Allow-Headers", "*"),
        ("Access-Control-Allow-Private-Network", "true")]
MAX_BODY = 4 * 1024 * 1024
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 500: "Internal Server Error"}


def _json(status, obj):
    return status, "application/json", json.dumps(obj).encode()


def _ok(warnings=None):
    """GOST's success answer; a change GOST accepts but that does not work yet (a forward
    reference to an object not created yet, an open proxy) adds ``warnings``: a list of
    ``path: message`` texts, the same lines the log gets."""
    return _json(200, {"msg": "OK", "warnings": list(warnings)} if warnings else {"msg": "OK"})


def _error(exc):
    return _json(exc.status, {"code": exc.code, "msg": exc.msg})


def authorized(auther, environ, log, kind):
    """HTTP Basic auth of a WSGI request against ``auther`` (None: everyone). Fails closed: no
    or wrong credentials, or an auther name that does not resolve (logged), refuse."""
    if auther is None:
        return True
    try:
        check = getattr(auther, "check", None)
        if check is not None:
            check()   # a missing auther is said even to a request without credentials
        creds = basic_credentials(environ.get("HTTP_AUTHORIZATION"))
        return creds is not None and auther.authenticate(*creds) is not None
    except MissingReference as exc:   # fail closed: the auther is gone
        refused(log, exc, kind=kind, client=environ.get("REMOTE_ADDR"))
        return False


class Api:
    """WSGI app over a running :class:`Gost`."""

    def __init__(self, gost, prefix="", auther=None, accesslog=False, log=None, save_path=None):
        self.gost = gost
        self.prefix = "/" + prefix.strip("/") if prefix and prefix.strip("/") else ""
        self.auther = auther
        self.accesslog = accesslog
        self.log = log or gost.log
        self.save_path = save_path

    def __call__(self, environ, start_response):
        t0 = time.monotonic()
        try:
            status, ctype, body, extra = self._route(environ)
        except ChangeError as exc:
            (status, ctype, body), extra = _error(exc), []
        except Exception as exc:  # a bug must answer 500, never kill the API
            self.log.exception(f"api: {exc!r}", kind="api")
            (status, ctype, body), extra = _json(500, {"code": 500, "msg": "internal error"}), []
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body)))] + CORS + extra
        start_response(f"{status} {_REASONS.get(status, '')}", headers)
        if self.accesslog:
            self.log.info(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}", kind="api", status=status,
                          remote=environ.get("REMOTE_ADDR"), duration=round(time.monotonic() - t0, 6))
        return [body]

    # -- routing ------------------------------------------------------------------------------

    def _route(self, environ):
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        if self.prefix:
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                return (*_json(404, {"code": 404, "msg": "not found"}), [])
            path = path[len(self.prefix):] or "/"
        if method == "OPTIONS":
            return 204, "text/plain", b"", []
        if path == "/docs/swagger.yaml" and method == "GET":
            with open(SWAGGER, "rb") as f:
                return 200, "text/x-yaml; charset=utf-8", f.read(), []
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] not in ("config", "ui", "api"):
            return (*_json(404, {"code": 404, "msg": "not found"}), [])
        if not self._authorized(environ):
            return (*_json(401, {"code": 401, "msg": "Unauthorized"}),
                    [("WWW-Authenticate", 'Basic realm="gostg"')])
        if not parts or parts[0] == "ui":   # beyond GOST: the status page
            return self._status_page(method, parts)
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        rest = parts[1:]
        if parts[0] == "api":
            return (*self._api(method, rest, query), [])
        if not rest:
            if method == "GET":
                return (*self._get_config(query), [])
            if method == "POST":
                return (*self._save(query), [])
        elif rest == ["reload"] and method == "POST":
            result = self.gost.reload()
            return (*_json(200, {"msg": "OK", "data": result}), [])
        elif len(rest) == 1:
            kind = rest[0]
            self.gost.check_kind(kind)  # an unknown kind is a 404 before the body is looked at
            if method == "GET":
                items = self.gost.get(kind)
                return (*_json(200, {"data": {"count": len(items), "list": items}}), [])
            if method == "POST":
                return (*_ok(self.gost.create(kind, self._body(environ))), [])
        elif len(rest) == 2:
            kind, name = rest
            self.gost.check_kind(kind)
            if method == "GET":
                return (*_json(200, {"data": self.gost.get(kind, name) or {}}), [])
            if method == "PUT":
                return (*_ok(self.gost.update(kind, name, self._body(environ))), [])
            if method == "DELETE":
                return (*_ok(self.gost.delete(kind, name)), [])
        else:
            return (*_json(404, {"code": 404, "msg": "not found"}), [])
        return (*_json(405, {"code": 405, "msg": f"method {method} not allowed here"}), [])

    def _status_page(self, method, parts):
        """``/`` and ``/ui`` (the page), ``/ui/<file>`` (its script and style sheet)."""
        found = None
        if parts in ([], ["ui"]):
            found = page.index(self.prefix)
        elif len(parts) == 2:
            found = page.asset(parts[1])
        if found is None:
            return (*_json(404, {"code": 404, "msg": "not found"}), [])
        if method != "GET":
            return (*_json(405, {"code": 405, "msg": f"method {method} not allowed here"}), [])
        return found

    def _api(self, method, rest, query):
        """``/api/…``: gostg's own resources, beyond GOST's ``/config``."""
        if rest == ["status"]:   # what the status page shows (status.py)
            summed = getattr(self.gost, "status_page", None)   # a -workers supervisor: its workers' sum
            return _json(200, summed() if summed else status(self.gost)) if method == "GET" else \
                _json(405, {"code": 405, "msg": f"method {method} not allowed here"})
        if not rest or rest[0] != "connections" or len(rest) > 2:
            return _json(404, {"code": 404, "msg": "not found"})
        conns = getattr(self.gost, "connections", connections)   # a -workers supervisor: its workers'
        if len(rest) == 1 and method == "GET":
            return _json(200, conns.listing(self.gost, query))
        if len(rest) == 2 and method == "GET":
            return _json(200, conns.one(self.gost, rest[1]))
        if len(rest) == 2 and method == "DELETE":
            conns.close(self.gost, rest[1])
            return _ok()
        return _json(405, {"code": 405, "msg": f"method {method} not allowed here"})

    def _authorized(self, environ):
        return authorized(self.auther, environ, self.log, "api")

    @staticmethod
    def _body(environ):
        try:
            n = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            n = 0
        if n > MAX_BODY:
            raise ChangeError(ChangeError.INVALID, f"request body larger than {MAX_BODY} bytes")
        raw = environ["wsgi.input"].read(n) if n else environ["wsgi.input"].read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise ChangeError(ChangeError.INVALID, f"request body larger than {MAX_BODY} bytes")
        try:
            data = json.loads(raw or b"null")
        except (ValueError, UnicodeError) as exc:
            raise ChangeError(ChangeError.INVALID, f"invalid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ChangeError(ChangeError.INVALID, "the request body must be a JSON object")
        return data

    def _get_config(self, query):
        cfg = self.gost.snapshot()
        if query.get("format") == "yaml":
            return 200, "text/x-yaml; charset=utf-8", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True).encode()
        return 200, "application/json", json.dumps(cfg).encode()

    def _save(self, query):
        fmt = "json" if query.get("format") == "json" else "yaml"
        url = getattr(self.gost, "save_url", None)   # the config came from -C http(s)://…
        if query.get("path") and remote.is_url(query["path"]):
            raise ChangeError(ChangeError.SAVE_FAILED, "path must be a file: the config is never written to a URL",
                              status=400)
        if url and not query.get("path"):
            raise ChangeError(ChangeError.SAVE_FAILED, f"the config was read from {url}, which is not written to: "
                              "give path= (a file) to save it", status=400)
        path = query.get("path") or self.save_path or ("gost.json" if fmt == "json" else "gost.yaml")
        if not query.get("format") and path.endswith(".json"):
            fmt = "json"
        self.gost.save(path, fmt)
        return _json(200, {"msg": "OK"})


__all__ = ["Api", "authorized"]
