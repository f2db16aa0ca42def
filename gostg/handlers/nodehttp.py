"""HTTP settings of a forwarder node (GOST's node ``http``), applied to each sniffed request
sent to that node: ``host`` replaces the Host header, ``header``/``requestHeader`` set request
headers (an empty value removes one), ``auth`` asks the client for HTTP Basic credentials
(401 otherwise) before anything reaches the node.
"""
import hmac

from ..errors import ConfigError
from ..protocols.http import basic_credentials


class NodeHTTP:
    __slots__ = ("host", "header", "auth")

    def __init__(self, host="", header=None, auth=None):
        self.host = host
        self.header = dict(header or {})
        self.auth = auth              # (username, password) or None

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


def build_node_http(o, path, node_auth=None):
    """``http`` of a forwarder node → NodeHTTP or None. The node's own ``auth`` (GOST's
    older spelling) counts when ``http.auth`` is not set."""
    if not o and not node_auth:
        return None
    o = dict(o or {})
    if o.get("auth") is None and node_auth:
        o["auth"] = node_auth
    headers = {}
    for key in ("header", "requestHeader"):
        h = o.get(key)
        if h is None:
            continue
        if not isinstance(h, dict):
            raise ConfigError(f"{path}.{key}", "must be a mapping of header names to values")
        headers.update({str(k): "" if v is None else str(v) for k, v in h.items()})
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
    return NodeHTTP(host, headers, auth)
