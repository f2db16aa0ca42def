"""HTTP settings of a forwarder node (GOST's node ``http``), applied to each sniffed request
sent to that node: ``auth`` asks the client for HTTP Basic credentials (401 otherwise) before
anything reaches the node; ``host`` replaces the Host header; ``header``/``requestHeader`` set
request headers (an empty value removes one); ``rewriteURL`` (or the older ``rewrite``)
rewrites the path with the first rule whose regexp matches (Go's ``$1``/``${name}``
replacement syntax; a ``?`` in the result starts a new query); ``responseHeader`` sets
headers on the node's response.
"""
import hmac
import re

from ..errors import ConfigError
from ..protocols.http import basic_credentials

_GO_REF = re.compile(r"\$(?:(\$)|\{(\w+)\}|(\w+))")


def go_expand(template, m):
    """Go's ``Regexp.Expand`` of ``template`` for match ``m``: ``$1``, ``${1}``, ``$name``,
    ``${name}``, ``$$``; a name that is no group expands to nothing (as Go)."""
    def ref(r):
        if r.group(1):
            return "$"
        name = r.group(2) or r.group(3)
        if name.isdigit():
            i = int(name)
            return (m.group(i) or "") if i <= (m.re.groups or 0) else ""
        return (m.group(name) or "") if name in m.re.groupindex else ""
    return _GO_REF.sub(ref, template)


class NodeHTTP:
    __slots__ = ("host", "header", "auth", "response_header", "rewrite_url")

    def __init__(self, host="", header=None, auth=None, response_header=None, rewrite_url=()):
        self.host = host
        self.header = dict(header or {})
        self.auth = auth              # (username, password) or None
        self.response_header = dict(response_header or {})
        self.rewrite_url = list(rewrite_url)   # [(compiled regexp, Go replacement template)]

    def allows(self, headers):
        """Do the request's ``Authorization: Basic`` credentials match the node's ``auth``?"""
        if self.auth is None:
            return True
        creds = basic_credentials(headers.get("Authorization"))
        if creds is None:
            return False
        user, password = creds
        # constant-time on both parts: a node's credentials are a secret
        return (hmac.compare_digest(user.encode(), self.auth[0].encode())
                & hmac.compare_digest(password.encode(), self.auth[1].encode()))

    def rewrite(self, headers):
        if self.host:
            headers.set("Host", self.host)
        for k, v in self.header.items():
            if v:
                headers.set(k, v)
            else:
                headers.remove(k)

    def rewrite_target(self, target):
        """An origin-form ``path?query`` after ``rewriteURL`` (unchanged when no rule matches)."""
        path, sep, query = target.partition("?")
        for rx, repl in self.rewrite_url:
            if rx.search(path):
                new = rx.sub(lambda m: go_expand(repl, m), path)
                if new:
                    if "?" in new:
                        return new
                    return new + sep + query
        return target


def _headers(o, key, path):
    h = o.get(key)
    if h is None:
        return {}
    if not isinstance(h, dict):
        raise ConfigError(f"{path}.{key}", "must be a mapping of header names to values")
    return {str(k): "" if v is None else str(v) for k, v in h.items()}


def _rewrites(o, path):
    out = []
    for key in ("rewriteURL", "rewrite"):
        rules = o.get(key)
        if rules is None:
            continue
        if not isinstance(rules, list):
            raise ConfigError(f"{path}.{key}", "must be a list of {match, replacement}")
        for i, r in enumerate(rules):
            if not isinstance(r, dict) or not isinstance(r.get("match"), str):
                raise ConfigError(f"{path}.{key}[{i}]", "must have a string 'match'")
            try:
                rx = re.compile(r["match"])
            except re.error as exc:
                raise ConfigError(f"{path}.{key}[{i}].match", f"bad regexp: {exc}") from None
            out.append((rx, str(r.get("replacement") or "")))
        break      # GOST: rewriteURL, else the older rewrite
    return out


def build_node_http(o, path, node_auth=None):
    """``http`` of a forwarder node → NodeHTTP or None. The node's own ``auth`` (GOST's
    older spelling) counts when ``http.auth`` is not set."""
    if not o and not node_auth:
        return None
    o = dict(o or {})
    if o.get("auth") is None and node_auth:
        o["auth"] = node_auth
    headers = {**_headers(o, "header", path), **_headers(o, "requestHeader", path)}
    auth = None
    a = o.get("auth")
    if a is not None:
        if not isinstance(a, dict):
            raise ConfigError(f"{path}.auth", "must be a mapping")
        if a.get("username"):   # GOST: no username, no auth
            auth = (str(a["username"]), str(a.get("password") or ""))
    host = o.get("host") or ""
    if not isinstance(host, str):
        raise ConfigError(f"{path}.host", "must be a string")
    return NodeHTTP(host, headers, auth, _headers(o, "responseHeader", path), _rewrites(o, path))
