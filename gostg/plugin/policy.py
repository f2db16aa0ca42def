"""Authers, admissions and bypasses whose decision is a plugin's (``plugin:`` on the object).
They answer through the same methods as the rule-based ones, so groups, services and hops use
them unchanged. A plugin that cannot answer refuses (rule of the project: fail closed):

========== ===================================== ==============================================
object     asks                                  when the plugin does not answer
========== ===================================== ==============================================
auther     ``{username, password, client}``      no client ID: the client is refused
           → ``{ok, id}``
admission  ``{addr}`` → ``{ok}``                 not admitted (as GOST)
bypass     ``{network, addr, client, host,       bypassed (as GOST): a service refuses the
           path}`` → ``{ok}``                    target, a hop is left out
========== ===================================== ==============================================
"""
from . import PluginError, transport


class _PluginObject:
    kind = ""

    def __init__(self, name, cfg, path="plugin", log=None):
        self.name = name
        self.transport = transport(cfg, self.kind, path, log=log)

    def _ask(self, request):
        try:
            return self.transport.call(request)
        except PluginError:
            return None     # logged by the transport, once per change

    def close(self):
        self.transport.close()

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, {self.transport!r})"


class PluginAuther(_PluginObject):
    kind = "auth"

    def authenticate(self, username, password, client=None):
        """→ the plugin's client ID ("" when it gives none) or None (refused)."""
        r = self._ask({"username": username or "", "password": password or "", "client": client or ""})
        if r is None or r.get("ok") is not True:
            return None
        return str(r.get("id") or "")


class PluginAdmission(_PluginObject):
    kind = "admission"
    whitelist = False

    def admit(self, address):
        r = self._ask({"addr": address or ""})
        return r is not None and r.get("ok") is True


class PluginBypass(_PluginObject):
    kind = "bypass"
    whitelist = False   # GOST: a plugin bypass is a blacklist member of its group
    network = ""

    def contains(self, network, address=None, client="", host="", path=""):
        if address is None:
            network, address = "tcp", network
        if not address:
            return False
        r = self._ask({"network": network or "", "addr": address, "client": client or "", "host": host or "",
                       "path": path or ""})
        return r is None or r.get("ok") is True
