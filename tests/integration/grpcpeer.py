"""A GOST gRPC plugin server for the tests: grpcio's own server (threads, in the test process,
on a free loopback port) answering the auth, admission, bypass, hosts, resolver, hop, limiter,
observer, recorder, ingress, router and sd protos of go-gost/plugin. What it decides is plain attributes the test
sets; what it was asked is in ``.calls``. The ``token`` metadata entry must be the one it was
given, else the call fails UNAUTHENTICATED (what GOST's example plugins do with a bad token)."""
import threading
import time
from concurrent import futures

import grpc

from gostg.plugin import protos


class PluginServer:
    def __init__(self, token="", users=None, deny_admission=(), bypass_hosts=(), workers=64, port=0):
        self.token = token
        self.users = dict(users or {"alice": "secret"})
        self.deny_admission = set(deny_admission)   # client hosts refused
        self.bypass_hosts = set(bypass_hosts)         # target hosts bypassed (refused by a service)
        self.hang = False                            # every call sleeps until released
        self.delay = 0.0                             # seconds every call takes
        self.garbage = False                         # answer bytes that are no message
        self.calls = []                              # (method, request dict, metadata dict)
        self.observe_ok = True                       # the observer's answer
        self.record_ok = True                        # the recorder's answer
        self.bad_tokens = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.rules = {}                              # ingress: host -> endpoint
        self.routes = {}                             # router: dst asked -> (dst, gateway)
        self.services = []                           # sd: registered service dicts
        self.hosts = {"plugin.test": ["127.0.0.1"]}  # hosts: name -> IPs (others: not ok)
        self.names = {}                              # resolver: name -> IPs (others: not ok)
        self.pick = lambda request: {}               # hop: SelectRequest dict -> node dict ({}: none)
        self.rates = (1000, 2000)                    # limiter: (in, out) bytes/s
        self.server = grpc.server(futures.ThreadPoolExecutor(workers), maximum_concurrent_rpcs=None)
        handlers = {}
        one = {"auth": self._auth, "admission": self._admit, "bypass": self._bypass, "hosts": self._lookup,
               "resolver": self._resolve, "hop": lambda r: {"node": self.pick(r) or b""}, "limiter": self._limit, "observer": self._observe, "recorder": self._record}
        many = {"GetRule": self._get_rule, "SetRule": self._set_rule, "GetRoute": self._get_route,
                "Register": self._register, "Deregister": self._deregister, "Renew": lambda r: {"ok": True},
                "Get": self._get_services}
        for kind in list(one) + ["ingress", "router", "sd"]:
            service, methods, _ = protos.SERVICES[kind]
            for name, (req, rep) in methods.items():
                fn = one.get(kind) or many[name]
                handlers.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(
                    self._wrap(kind, name, req, rep, fn), protos.message_class(req).FromString,
                    lambda m: m if isinstance(m, bytes) else m.SerializeToString())
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(f"proto.{s}", h) for s, h in handlers.items()])
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.addr = f"127.0.0.1:{self.port}"

    def _wrap(self, kind, name, req_name, rep_name, fn):
        def handle(request, context):
            md = dict(context.invocation_metadata())
            with self._lock:
                self.calls.append((name, protos.to_dict(request, req_name), md))
            if self.token and md.get("token") != self.token:
                with self._lock:
                    self.bad_tokens += 1
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
            if self.hang:
                self._release.wait(30)
            if self.delay:
                time.sleep(self.delay)
            if self.garbage:
                return b"\xff\xff\xff\xff"
            reply = protos.message_class(rep_name)()
            protos._set(reply, rep_name, fn(protos.to_dict(request, req_name)), rep_name)
            return reply
        return handle

    def _auth(self, r):
        ok = r["username"] in self.users and self.users[r["username"]] == r["password"]
        return {"ok": ok, "id": f"id-{r['username']}" if ok else ""}

    def _admit(self, r):
        host = r["addr"].rsplit(":", 1)[0]
        return {"ok": host not in self.deny_admission}

    def _bypass(self, r):
        host = r["addr"].rsplit(":", 1)[0]
        return {"ok": host in self.bypass_hosts}

    def _lookup(self, r):
        ips = self.hosts.get(r["host"])
        return {"ips": ips or [], "ok": bool(ips)}

    def _resolve(self, r):
        ips = self.names.get(r["host"])
        return {"ips": ips or [], "ok": bool(ips)}

    def _limit(self, r):
        return {"in": self.rates[0], "out": self.rates[1]}

    def _observe(self, r):
        return {"ok": self.observe_ok}

    def _get_rule(self, r):
        return {"endpoint": self.rules.get(r["host"], "")}

    def _set_rule(self, r):
        self.rules[r["host"]] = r["endpoint"]
        return {"ok": True}

    def _get_route(self, r):
        dst, gw = self.routes.get(r["dst"], ("", ""))
        return {"dst": dst, "gateway": gw}

    def _register(self, r):
        with self._lock:
            self.services.append(r["service"])
        return {"ok": True}

    def _deregister(self, r):
        with self._lock:
            self.services = [s for s in self.services if s["id"] != r["service"]["id"]]
        return {"ok": True}

    def _get_services(self, r):
        with self._lock:
            return {"services": [s for s in self.services if s["name"] == r["name"]]}

    def _record(self, r):
        return {"ok": self.record_ok}

    def records(self):
        """The records received, oldest first: (data, metadata) as bytes."""
        with self._lock:
            return [(r["data"], r["metadata"]) for name, r, _ in self.calls if name == "Record"]

    def events(self, type_=None):
        """The observer events received, oldest first."""
        with self._lock:
            return [e for name, r, _ in self.calls if name == "Observe" for e in r["events"]
                    if type_ is None or e["type"] == type_]

    def count(self, method=None):
        with self._lock:
            return sum(1 for c in self.calls if method is None or c[0] == method)

    def release(self):
        self.hang = False
        self._release.set()

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.release()
        self.server.stop(grace=None).wait(5)
