"""The public entrypoint of a tunnel server (GOST x/handler/tunnel/entrypoint): a TCP service of
its own, named ``<service>-ep-<addr>``, started and closed with the tunnel service.

Rules:
1. A connection's first byte says what it is: 0x01 is a relay request (another tunnel node
   forwarding a visitor it found here through ``sd``), 0x16 … TLS, anything else HTTP. The TLS
   ClientHello's SNI or the HTTP request's Host (port 443/80 unless given) is the host.
2. The tunnel is the one the ingress gives that host (HTTP: each request's Host). No rule: an
   HTTP client gets 502 Bad Gateway, a TLS client is closed; a ``$`` private tunnel likewise
   (only visitors that name it reach it); no connection for it: 503 Service Unavailable (TLS:
   closed). Each refusal is logged.
3. On this node the tunnel stream starts with the client's and the host's addresses (tunnel
   handler rule 3); a stream to another node gets the client's bytes only (that node's
   entrypoint reads them again). TLS is then relayed whole, first bytes included.
4. The relay request path (rule 1) is served only when the handler has an ``sd`` (it exists for
   other nodes): without one it is refused and logged (GOST serves it always, which lets any
   client of the public port reach private tunnels by id).
5. An HTTP request sent on to another node carries ``Gost-Forwarded-Node`` with the nodes it
   passed; a node that finds itself there answers 503 (GOST sets only the last node, which
   catches a node looping to itself but not two nodes passing a request back and forth).
HTTP goes request by request (:mod:`gostg.handlers.revproxy`): each request's Host picks its
tunnel, and a kept-alive connection keeps its tunnel stream while the Host stays the same (GOST
opens a stream per request and adds Gost-Sid and Gost-Forwarded-Node to every request; gostg
adds Gost-Forwarded-Node only when it passes a request to another node, and no Gost-Sid).
"""
from gevent import socket

from ..config.metadata import Metadata
from ..core.service import Service
from ..handlers import revproxy, sniffing
from ..handlers.base import Handler
from ..handlers.relay import reply
from ..listeners.tcp import TCPListener
from ..protocols import relay as rp, sniff as sp
from ..transport.buffered import Stream
from ..transport.mux.session import MuxStream
from . import dialer as tdialer

_HTTP_502 = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_HTTP_503 = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#: GOST's header naming the nodes an HTTP request passed through (loop detection)
FORWARDED_NODE = "Gost-Forwarded-Node"


class EntrypointHandler(Handler):
    type_name = "tunnel-ep"

    def __init__(self, tunnel, ingress=""):
        super().__init__(Metadata({"readTimeout": tunnel.ep_read_timeout}), tunnel.options)
        self.t = tunnel
        # the tunnel handler's observer and limiter count and shape entrypoint streams too (GOST
        # wraps every stream of a tunnel connection), keyed by the tunnel ID
        self.client_stats, self.limiter = tunnel.client_stats, tunnel.limiter
        self.ingress = ingress      # an extra entrypoint's own ingress name ("": the handler's)
        self._first = {}            # connection sid → (host, tunnel id) its first request routes by

    def handle(self, conn, ctx):
        with self.handshake_deadline():
            first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            return
        if first[0] == rp.VERSION:
            return self._relay(conn, ctx)
        conn, found = sniffing.peek(conn, ctx, self.read_timeout)
        host = sniffing.sniffed_target(found)
        if found.proto == sp.PROTO_HTTP:
            # request by request (rule 2): each Host routed on its own; counted under the
            # first request's tunnel
            tid = self.t.rule_tid(host, ctx.log, self.ingress) if host else rp.ZERO_ID
            ctx.client_id = "" if rp.id_is_zero(tid) else rp.id_text(tid)
            self._first[ctx.sid] = (host, tid)   # the first request's route: looked up once
            try:
                return revproxy.serve(self, conn, ctx)
            finally:
                self._first.pop(ctx.sid, None)
        if found.proto != sp.PROTO_TLS or not host:
            ctx.log.error("entrypoint: no HTTP Host or TLS SNI to route by: closed")
            return
        ctx.log = ctx.log.bind(host=host, proto=found.proto)
        routed = self._route(host, ctx)
        if isinstance(routed, int):
            return   # TLS: nothing to answer with but the close
        cc, tid_text, _ = routed
        ctx.client_id = tid_text
        self.relay(conn, cc, ctx, host)

    def _route(self, host, ctx):
        """Rule 2-3 for ``host`` → ``(stream, tunnel id text)`` with the preamble sent, or the
        HTTP status the client gets (502 no route or private, 503 no connection), logged."""
        log = ctx.log
        ctx.target = host
        first = self._first.pop(ctx.sid, None)
        tid = first[1] if first is not None and first[0] == host else self.t.rule_tid(host, log, self.ingress)
        if rp.id_is_zero(tid):
            log.error(f"entrypoint: no route to host {host}", host=host)
            return 502
        tid_text = rp.id_text(tid)
        if rp.id_private(tid):
            log.error(f"entrypoint: tunnel {tid_text} is private for host {host}", host=host)
            return 502
        log = log.bind(tunnel=tid_text, host=host)
        try:
            cc, node, cid = self.t.dialer.dial("tcp", tid_text, ctx, log, first=tdialer.peer_preamble(ctx.src, host))
        except tdialer.Unavailable as exc:
            log.error(f"entrypoint: {exc}")
            return 503
        log.debug(f"entrypoint: host {host} -> node={node} tunnel={tid_text} connector={cid}")
        return cc, tid_text, node

    def open(self, ctx, network, found, check=None, client=None):
        """revproxy's per-request upstream: the tunnel of this request's Host. → ``(None, host,
        stream)``; None for revproxy's 503; False once the client has its 502 (or 503 for a
        loop: rule 5)."""
        hdrs = found.headers
        seen = [n.strip() for n in (hdrs.get(FORWARDED_NODE) or "").split(",")] if hdrs is not None else ()
        if self.t.node in seen:
            ctx.log.warning("entrypoint: forwarding loop detected, rejecting request")
            self._send(client, _HTTP_503)
            return False
        host = sniffing.sniffed_target(found)
        routed = self._route(host, ctx) if host else 502
        if routed == 502:
            self._send(client, _HTTP_502)
            return False
        if routed == 503:
            return None
        cc, _, node = routed
        if node != self.t.node and hdrs is not None:   # to another node: say we passed it on
            hdrs.set(FORWARDED_NODE, ", ".join([n for n in seen if n] + [self.t.node]))
        return None, host, cc

    @staticmethod
    def quick_upstream(upstream):
        """revproxy rule 6 only on streams of this node's tunnels: a request passed on to
        another node is edited (Gost-Forwarded-Node) on the general path."""
        return isinstance(upstream, MuxStream)

    @staticmethod
    def _send(conn, data):
        try:
            conn.sendall(data)
        except OSError:
            pass

    def _relay(self, conn, ctx):
        """Rule 4: a relay CONNECT from another node, for a tunnel held here."""
        s = Stream(conn)
        with self.handshake_deadline():
            req = s.read(rp.parse_request)
        if not self.t.sd_name:
            ctx.log.error("entrypoint: relay request refused (no sd: only tunnel nodes sharing one may send them)")
            return reply(conn, rp.STATUS_FORBIDDEN)
        _, _, src, dst, network, tid = rp.request_parts(req)
        tid = rp.new_id(tid)   # GOST: the id only, no flags
        if rp.id_is_zero(tid):
            ctx.log.error("entrypoint: invalid tunnel ID: refused")
            return reply(conn, rp.STATUS_BAD_REQUEST)
        tid_text = rp.id_text(tid)
        log = ctx.log.bind(tunnel=tid_text)
        try:
            cc, node, cid = self.t.dialer.dial(network, tid_text, ctx, log, use_sd=False,
                                               first=tdialer.peer_preamble(src, dst))
        except tdialer.Unavailable as exc:
            log.error(f"entrypoint: {exc}")
            return reply(conn, rp.STATUS_SERVICE_UNAVAILABLE)
        try:
            conn.sendall(rp.encode_response(rp.Response(rp.STATUS_OK)))
        except OSError:
            cc.close()
            raise
        ctx.client_id = tid_text
        self.relay(s.conn_with_rest(), cc, ctx, f"{dst}/{network}")


def start_entrypoint(tunnel, service, addr, ingress="", label=""):
    """Bind and start an entrypoint service of ``tunnel`` (OSError when the port is taken)."""
    lst = TCPListener(addr, Metadata({}))
    lst.type_name = "tcp"
    lst.bind()
    name = f"{service.name}-ep-{addr}"
    log = service.log.bind(kind="entrypoint", **({"entrypoint": label} if label else {}))
    svc = Service(name, lst, EntrypointHandler(tunnel, ingress), log, Metadata({}), registries=service.registries)
    svc.start()
    return svc
