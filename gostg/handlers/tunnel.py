"""The reverse proxy tunnel server (GOST x/handler/tunnel): relay requests on the tunnel port.

Rules:
1. Every request names a tunnel (Tunnel feature, a 20-byte id); a zero id is answered
   BadRequest. Credentials (UserAuth) go to the handler's auther: refused, Unauthorized.
2. BIND (a client behind NAT): answered OK with the address the tunnel is reachable under
   (the host the client asked for when the ingress does not give it to another tunnel, else
   the first 16 hex digits of md5(tunnel id)) and the connection's own id (the tunnel's
   weight, the UDP flag for a Network udp request); the connection then becomes a mux session
   (smux v2 by default, ``mux.*``) in which this side opens a stream per visitor. It joins the
   tunnel's pool (:mod:`gostg.tunnel.pool`), is registered with the ``sd`` and leaves both when
   its session ends.
3. CONNECT (a visitor): the service bypass may refuse the target (Forbidden). A visitor whose
   tunnel id is ``entrypoint.id`` is a public entrypoint: the ingress rule for the target's host
   decides the tunnel (none: NetworkUnreachable; a ``$`` private one: HostUnreachable). Any
   other visitor reaches only its own tunnel, and only where the ingress maps the target's host
   to it, or with ``tunnel.direct`` (else HostUnreachable). The tunnel's connection is picked by
   the pool (:mod:`gostg.tunnel.dialer`; none: ServiceUnavailable); the visitor gets OK and the
   stream a response whose Addr features name the visitor and the target, then bytes flow.
   A tunnel held by another node (found through ``sd``) gets the visitor's request as it came.
4. ``entrypoint`` opens the public entrypoint (:mod:`gostg.tunnel.entrypoint`) as a service of
   its own when this one starts; it closes with this one.
5. Anything that decides where traffic goes fails closed: an ``ingress`` or ``sd`` name that does
   not resolve, or one that cannot answer, routes nothing (logged).
"""
import hashlib
import uuid


from ..errors import ConfigError
from ..policy import ingress as ingress_mod
from ..protocols import relay as rp
from ..protocols.addr import join_host_port, split_host_port
from ..core.registry import handlers
from ..transport.buffered import Stream
from ..transport.mux.config import MuxConfig
from ..tunnel import dialer as tdialer
from ..tunnel.pool import Connection, Pool
from .base import Handler
from .relay import reply

_UNSPECIFIED = ("", "0.0.0.0", "::")


def endpoint_of(tid_text):
    """GOST's per-tunnel host name: the first 8 bytes of md5(tunnel id text), in hex."""
    return hashlib.md5(tid_text.encode()).hexdigest()[:16]


def _entrypoints(v):
    """``entrypoints``: a list of {name, addr, ingress} (GOST reads the keys case-insensitively
    and skips entries without addr) → [(name, addr, ingress name)]."""
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(e, dict) for e in v):
        raise ConfigError("metadata.entrypoints", "must be a list of {addr, ingress, name}")
    out = []
    for i, e in enumerate(v):
        e = {str(k).lower(): x for k, x in e.items()}
        unknown = set(e) - {"name", "addr", "ingress"}
        if unknown:
            raise ConfigError(f"metadata.entrypoints[{i}]", f"unknown key(s) {', '.join(sorted(unknown))} "
                                                            "(an entrypoint has name, addr, ingress)")
        if e.get("addr"):
            out.append((str(e.get("name") or ""), str(e["addr"]), str(e.get("ingress") or "")))
    return out


def shorthand_ingress(text):
    """The ``tunnel`` metadata: ``host:endpoint,host:endpoint`` (GOST splits each at its first
    ``:`` and skips items without one) → an inline Ingress named ``@internal``, or None."""
    rules = []
    for item in (text or "").split(","):
        host, sep, endpoint = item.partition(":")
        if sep:
            rules.append((host, endpoint))
    return ingress_mod.Ingress("@internal", rules=rules) if rules else None


@handlers.register("tunnel")
class TunnelHandler(Handler):
    #: the pool lives in this process: the service is not shared between -workers
    shareable = False
    #: a replaced service's clients must re-bind to its successor (GOST closes the old pool)
    close_on_retire = True

    def __init__(self, md, options):
        super().__init__(md, options)
        self.node = str(uuid.uuid4())
        self.entrypoint = md.str("entrypoint")
        eid = md.str("entrypoint.id")
        self.entrypoint_id = rp.parse_tunnel_id(eid)
        if eid and rp.id_is_zero(self.entrypoint_id):
            raise ConfigError("metadata.entrypoint.id", f"{eid!r} is not a UUID")
        self.direct = md.bool("tunnel.direct")
        self.ep_read_timeout = md.duration("entrypoint.readTimeout") or 15.0
        self.ingress_name = md.str("ingress")
        self.inline_ingress = shorthand_ingress(md.str("tunnel"))
        self.sd_name = md.str("sd")
        self.mux = MuxConfig.from_md(md, version=2)
        self.pool = Pool(md.duration("tunnel.ttl") or 15.0, on_renew=self._renew)
        self.dialer = tdialer.Dialer(self)
        self.extra_entrypoints = _entrypoints(md.raw("entrypoints"))
        self.ep_services = []
        self.log = None
        self._missing = set()   # (kind, name) of objects said missing

    # --- named objects (late-bound by name, fail closed) ---------------------------------
    def _named(self, kind, what, name, log):
        """The named object, or None (logged once until it appears: a renew tick or each
        request would repeat the line)."""
        reg = getattr(self.options.registries, kind, None)
        obj = reg.get(name) if reg is not None else None
        key = (kind, name)
        if obj is None and key not in self._missing:
            self._missing.add(key)
            log.error(f"tunnel: {what} {name!r} not found: routing nothing", **{what: name})
        elif obj is not None and key in self._missing:
            self._missing.discard(key)
        return obj

    def ingress(self, log, name=""):
        """Ingress ``name`` (an extra entrypoint's), else the handler's: the one ``ingress``
        names, else the inline ``tunnel`` rules; None when there is none."""
        name = name or self.ingress_name
        if name:
            return self._named("ingresses", "ingress", name, log)
        return self.inline_ingress

    def rule_tid(self, host, log, ingress=""):
        """The tunnel id the ingress gives ``host`` (zero: none, or the ingress failed)."""
        ing = self.ingress(log, ingress)
        if ing is None or not host:
            return rp.ZERO_ID
        rule = self._rule(ing, host, log)   # a plugin ingress that cannot answer routes nothing
        return rp.parse_tunnel_id(rule.endpoint) if rule is not None else rp.ZERO_ID

    def sd(self, log):
        return self._named("sds", "sd", self.sd_name, log) if self.sd_name else None

    def _sd_call(self, op, log, **svc):
        sd = self.sd(log)
        if sd is None:
            return
        try:
            getattr(sd, op)(tdialer.Service(node=self.node, **svc))
        except Exception as exc:
            log.error(f"tunnel: sd {op}: {exc}", sd=self.sd_name)

    def _renew(self, tid_text, c):
        if self.sd_name and self.log is not None:
            self._sd_call("renew", self.log, id=rp.id_text(c.cid), name=tid_text)   # as GOST: no network/address

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, service):
        self.log = service.log
        if self.limiter:
            service.log.warning(f"tunnel: handler limiter {self.limiter!r}: a plugin limiter is asked per tunnel ID "
                                "(as GOST), a local one shapes each visitor by its client IP (GOST: per tunnel ID)")
        from ..tunnel.entrypoint import start_entrypoint
        eps = ([("", self.entrypoint, "")] if self.entrypoint else []) + self.extra_entrypoints
        for name, addr, ingress in eps:
            try:
                self.ep_services.append(start_entrypoint(self, service, addr, ingress, name))
            except OSError as exc:
                service.log.error(f"tunnel: entrypoint {name or ''} {addr}: {exc}")

    def close(self):
        eps, self.ep_services = self.ep_services, []
        for ep in eps:
            ep.stop(timeout=1)
        self.pool.close()

    # --- requests --------------------------------------------------------------------------
    _reply = staticmethod(reply)

    def handle(self, conn, ctx):
        s = Stream(conn)
        with self.handshake_deadline():
            req = s.read(rp.parse_request)   # garbage/truncated: ProtocolError/EOFError, no reply (GOST)
        user, password, src, dst, network, tid = rp.request_parts(req)
        if rp.id_is_zero(tid):
            ctx.log.error("tunnel: invalid tunnel ID: refused")
            return self._reply(conn, rp.STATUS_BAD_REQUEST)
        if not self.authenticate(ctx, user, password):
            return self._reply(conn, rp.STATUS_UNAUTHORIZED)
        cmd = req.command
        if cmd == rp.CMD_CONNECT:
            return self._connect(conn, s, ctx, req, network, src, dst, tid)
        if cmd == rp.CMD_BIND:
            return self._bind(conn, s, ctx, network, dst, tid)
        ctx.log.error(f"tunnel: unknown command {cmd}: refused")
        return self._reply(conn, rp.STATUS_BAD_REQUEST)

    def _connect(self, conn, s, ctx, req, network, src, dst, tid):
        tid_text = rp.id_text(tid)
        log = ctx.log.bind(tunnel=tid_text, host=dst, cmd="connect")
        ctx.target = dst
        if dst and self.router.bypassed(dst, network):
            log.info(f"bypass: {dst}", dst=dst)
            return self._reply(conn, rp.STATUS_FORBIDDEN)
        host = split_host_port(dst, 0)[0] if dst else ""
        target = self.rule_tid(host, log)
        if not rp.id_is_zero(self.entrypoint_id) and rp.id_same(tid, self.entrypoint_id):
            # a public entrypoint: the ingress decides, and private tunnels are not for it
            if rp.id_is_zero(target):
                log.error(f"tunnel: no route to host {host}")
                return self._reply(conn, rp.STATUS_NETWORK_UNREACHABLE)
            if rp.id_private(target):
                log.error(f"tunnel: tunnel {rp.id_text(target)} is private for host {host}")
                return self._reply(conn, rp.STATUS_HOST_UNREACHABLE)
        else:
            if self.direct:
                target = tid
            if not rp.id_same(target, tid):
                log.error(f"tunnel: no route to host {host} in tunnel {tid_text}")
                return self._reply(conn, rp.STATUS_HOST_UNREACHABLE)
        target_text = rp.id_text(target)
        try:
            cc, node, cid = self.dialer.dial(network, target_text, ctx, log, first=tdialer.peer_preamble(src, dst))
        except tdialer.Unavailable as exc:
            log.error(f"tunnel: {exc}")
            return self._reply(conn, rp.STATUS_SERVICE_UNAVAILABLE)
        log.debug(f"connect to node={node} tunnel={target_text} connector={cid} OK")
        try:
            if node == self.node:   # (the stream's preamble went with its opening)
                conn.sendall(rp.encode_response(rp.Response(rp.STATUS_OK)))
            else:   # another node's entrypoint answers the visitor itself
                cc.sendall(rp.encode_request(req))
        except OSError:
            cc.close()
            raise
        ctx.client_id = target_text   # GOST counts (observer) and limits a tunnel's traffic by its ID
        self.relay(s.conn_with_rest(), cc, ctx, f"{dst}/{network}")

    def _bind(self, conn, s, ctx, network, dst, tid):
        tid_text = rp.id_text(tid)
        log = ctx.log.bind(tunnel=tid_text, cmd="bind")
        cid = rp.new_id(uuid.uuid4().bytes, rp.FLAG_UDP_CONNECTOR if network == "udp" else 0, rp.id_weight(tid))
        endpoint = endpoint_of(tid_text)
        host, port = split_host_port(dst, 0) if dst else ("", 0)
        ing = self.ingress(log) if self.ingress_name or self.inline_ingress else None
        if host in _UNSPECIFIED or ing is None:
            host = endpoint
        elif host != endpoint:
            rule = self._rule(ing, host, log)
            if rule is not None and rule.endpoint != tid_text:
                host = endpoint   # the name belongs to another tunnel: no hijacking
        conn.sendall(rp.encode_response(rp.Response(rp.STATUS_OK, (rp.Addr(host, port), rp.Tunnel(cid)))))
        session = self.mux.session(s.conn_with_rest(), client=True, log=log).start()
        c = Connection(cid, tid, session, "udp" if network == "udp" else "tcp")
        self.pool.add(tid_text, c)
        if ing is not None:
            self._set_rule(ing, endpoint, tid_text, log)
            if host != endpoint:
                self._set_rule(ing, host, tid_text, log)
        cid_text = rp.id_text(cid)
        self._sd_call("register", log, id=cid_text, name=tid_text, network=c.network, address=self.entrypoint)
        log.info(f"{join_host_port(host, port)}/{network}: tunnel={tid_text}, connector={cid_text}, "
                 f"weight={rp.id_weight(cid)} established", connector=cid_text)
        try:
            session._reader.join()   # the connection lives as long as its session
        finally:
            session.close()
            self.pool.remove(tid_text, c)
            self._sd_call("deregister", log, id=cid_text, name=tid_text)
            log.info(f"tunnel={tid_text}, connector={cid_text} closed", connector=cid_text)

    @staticmethod
    def _rule(ing, host, log):
        try:
            return ing.get_rule(host)
        except Exception as exc:
            log.error(f"tunnel: ingress lookup of {host}: {exc}", host=host)
            return None

    @staticmethod
    def _set_rule(ing, host, tid_text, log):
        try:
            ing.set_rule(ingress_mod.Rule(host, tid_text))
        except Exception as exc:
            log.warning(f"tunnel: ingress rule {host} -> {tid_text}: {exc}")
