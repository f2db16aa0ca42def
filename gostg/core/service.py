"""A Service: listener + handler, its connections, lifecycle hooks and status.

Lifecycle (GOST order): build (listener bound) → preUp → start: serve + postUp, state ready →
… → stop: preDown → close listener and handler → postDown (GOST's order) → drain, kill stragglers.

Fail closed: an admission or limiter name that does not resolve closes the connection (at
accept, or before the handler starts), with one error line naming it (never "admit everyone" or
"unlimited").
"""
import errno
import time

import gevent
from gevent import Greenlet, getcurrent
from gevent.socket import socket as GeventSocket

from .._compat import mark_server_stopped
from .connpool import ConnGreenlet, ConnPool
from .context import Context, client_ip_of
from ..errors import ProtocolError
from .hooks import run_hooks
from ..policy.group import MissingReference, lookup, refused
from ..policy.limiter import Lease
from ..protocols.addr import join_host_port
from ..transport.proxyproto import client_of

_NO_LEASE = Lease(None, ())
#: what ends a connection and is logged and counted (gevent.Timeout is a BaseException)
_ENDS = (Exception, gevent.Timeout)


class Stats:
    __slots__ = ("total_conns", "total_errs", "input_bytes", "output_bytes")

    def __init__(self):
        self.total_conns = self.total_errs = self.input_bytes = self.output_bytes = 0


class ClosedByApi(ConnectionAbortedError):
    """Thrown into a relaying connection's greenlet by :meth:`Service.close_tunnel`: an OSError,
    so the relay ends as on a socket error and the tunnel is counted and logged as usual."""


def _closed(lease, conn, sock, ctx, tunnels):
    tunnels.pop(ctx.sid, None)
    ctx.task = None   # (the greenlet or tunnel is over: nothing may hold on to it)
    lease.release()
    conn.close()
    sock.close()
    ctx.log.debug(f"{ctx.src} >< {ctx.local}")
    if type(ctx) is not Context:   # a RecordedContext: the connection's handler record
        ctx.ended()
    if ctx.meter is not None:   # metrics on: the connection's duration; no longer in flight
        ctx.meter.end()


def _addr(a):
    if isinstance(a, tuple):
        host, port = a[0], a[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(a)


class Service:
    #: seconds ``stop`` waits for connections to finish before killing them
    drain_timeout = 5.0
    #: upper bound of concurrent connections per service (the Pool size)
    max_conns = 100000
    #: names of this service's traffic, connection and request-rate limiters, looked up per
    #: connection (late binding: a replaced limiter applies from the next connection)
    limiter = climiter = rlimiter = None
    #: a transport.proxyproto.Receiver when the service reads PROXY headers (``proxyProtocol``)
    proxy_protocol = None
    #: the observer's name (late-bound, as the limiters), and what it reports of this service:
    #: stats (``enableStats``) every ``observer.period`` seconds, bytes as deltas with
    #: ``observer.resetTraffic`` (observe/observer.py reads them; nothing per connection)
    observer = None
    enable_stats = observer_reset = False
    observer_period = 0.0
    #: what was reported of it so far (observe.observer.ServiceReporter), kept here so a
    #: replaced observer goes on where the old one stopped (resetTraffic deltas stay exact)
    observed = None
    #: the service's ``recorders`` (observe.records.ServiceRecorders), None without; with a
    #: handler record ``ctx_class`` makes each connection's Context a RecordedContext
    recorders = None
    ctx_class = Context
    #: the service's Prometheus meter (observe/metrics.py) while metrics are on, else None
    #: (the runtime sets it: ``Gost.meter_services``)
    meter = None

    def __init__(self, name, listener, handler, log, md, admission=None, registries=None):
        self.name = name
        self.listener = listener
        self.handler = handler
        self.md = md
        self.admission = admission
        self.registries = registries
        self.log = log.bind(service=name, listener=self.listener_type, handler=self.handler_type)
        listener.log = self.log
        self.stats = Stats()
        self.state = "running"
        self.events = []
        self.create_time = time.time()
        self.pool = ConnPool(self.max_conns)
        #: the live-tunnel registry: sid → Context of every open connection (mux streams
        #: each; a mux session itself is not a tunnel), detached tunnels included
        self.tunnels = {}
        self.server = None
        self._addr = ""
        self.cfg_addr = ""   # the address as configured (a same-address PUT adopts the socket)
        self._hooks = {k: md.list(k) for k in ("preUp", "postUp", "preDown", "postDown")}

    def pre_up(self):
        """Runs once the listener is bound (GOST: when the service object is built)."""
        self._set_state("running")
        run_hooks("preUp", self._hooks["preUp"], self.log)

    def _accept_state(self, state):
        """Accepting paused ("failed": out of descriptors) or resumed ("ready"), as GOST."""
        if self.state != "closed":
            self._set_state(state)

    def _set_state(self, state):
        """GOST's setState: the new state, and a status event to the service's observer."""
        self.state = state
        if self.observer:
            obs = self.registries.observers.get(self.observer) if self.registries is not None else None
            if obs is None:   # deleted through the Web API since: GOST reports to nobody either
                self.log.debug(f"observer {self.observer!r} not found: state {state} not reported")
            else:
                obs.status(self.name, state)

    @property
    def listener_type(self):
        return getattr(self.listener, "type_name", None) or getattr(self.listener, "type_names", ("?",))[0]

    @property
    def handler_type(self):
        return getattr(self.handler, "type_name", None) or getattr(self.handler, "type_names", ("?",))[0]

    @property
    def addr(self):
        if not self._addr and self.listener.socket is not None:
            self._addr = _addr(self.listener.socket.getsockname())
        return self._addr or self.listener.addr   # a remote (rtcp) listener has no local socket

    @property
    def current_conns(self):
        return len(self.pool)

    def _event(self, msg):
        self.events = (self.events + [{"time": time.time(), "msg": msg}])[-20:]

    def start(self):
        self.server = self.listener.server(self._handle, self.pool)
        if hasattr(self.server, "on_state"):
            self.server.on_state = self._accept_state
        self.server.start()
        start = getattr(self.handler, "start", None)
        if start is not None:   # a handler with listeners of its own (tunnel: its entrypoint)
            start(self)
        run_hooks("postUp", self._hooks["postUp"], self.log)
        self._set_state("ready")
        where = f"listening on {self.addr}"
        if self.listener.socket is None and self.listener.chain:
            where = f"binding {self.addr} on the last node of chain {self.listener.chain}"
        elif not self.addr:   # a listener without an address (a routing TUN client)
            where = "started"
        self._event(where)
        self.log.info(where)

    def _handle(self, sock, address):
        peer = src = _addr(address)
        hdr = None
        if self.proxy_protocol is not None:
            sock, hdr = self._proxy_header(sock, address[0] if isinstance(address, tuple) else peer, peer)
            if sock is None:
                return
            src = client_of(hdr, peer)
        if self.recorders is not None and self.recorders.client:   # GOST: before admission
            self.recorders.emit("recorder.service.client.address", client_ip_of(src).encode())
        try:
            if self.admission is not None and not self.admission.admit(src, self.name):
                self.log.debug("admission: denied", remote=peer, client=src)
                sock.close()
                return
            lease = self._conn_lease(src)
        except MissingReference as exc:
            self.stats.total_errs += 1
            refused(self.log, exc, client=src)
            sock.close()
            return
        if lease is None:
            sock.close()
            return
        self.stats.total_conns += 1
        ctx = self.ctx_class(self.name, src, self.addr, self.log, self.stats, peer=peer)
        if self.meter is not None:   # metrics on: counted, in flight until _closed
            ctx.meter = self.meter.begin(ctx)
        if hdr is not None and hdr.dst is not None:
            ctx.proxied_dst = join_host_port(*hdr.dst)
        me = getcurrent()
        # (a listener calling from a greenlet of its own: that one is not this connection's to end)
        ctx.task = me if type(me) is ConnGreenlet else None
        self.tunnels[ctx.sid] = ctx
        conn = None
        try:
            conn = self.listener.wrap(sock)
            ctx.log.debug(f"{src} <> {ctx.local}")
            # a plain socket is never a session: no __getattr__ miss (an exception) per connection
            if type(conn) is not GeventSocket and getattr(conn, "multiplex", False):
                del self.tunnels[ctx.sid]   # its streams are the tunnels
                self._accept_streams(conn, ctx)
            else:
                self._serve(conn, ctx)
        except _ENDS as exc:
            self._failed(ctx, exc)
        finally:
            t = getattr(me, "tunnel", None)   # a listener may call from its own greenlet
            if t is None:
                _closed(lease, conn or sock, sock, ctx, self.tunnels)
            else:   # the tunnel went on without this greenlet: it ends the connection
                ctx.task = t   # (not the greenlet, which is over: its object would stay alive)
                t.then(self._detached_end, t, lease, conn or sock, sock, ctx)

    def _detached_end(self, t, lease, conn, sock, ctx):
        if t.error is not None:
            self._failed(ctx, t.error)
        _closed(lease, conn, sock, ctx, self.tunnels)

    def close_tunnel(self, sid, timeout=2.0, why="closed through the Web API"):
        """End the open connection ``sid`` from outside (the Web API's DELETE
        /api/connections/<sid>): both its sockets closed, its greenlet or detached tunnel
        over, counted and logged as any ending. → False when ``sid`` is not open here.

        A relaying greenlet gets :class:`ClosedByApi` (an OSError: the relay ends as on a
        socket error, its bytes counted); one still in its handshake or dial is killed
        (an OSError there could be taken for a failed dial and retried). Waits up to
        ``timeout`` seconds for the ending."""
        ctx = self.tunnels.get(sid)
        if ctx is None:
            return False
        ctx.log.info(why, dst=ctx.target or None)
        task = ctx.task
        t = getattr(task, "tunnel", None) or (task if not isinstance(task, Greenlet) else None)
        if t is not None:
            t.abort()
        elif task is not None and task is not getcurrent() and not task.dead:
            if ctx.flow is not None:
                task.kill(ClosedByApi(errno.ECONNABORTED, "closed through the API"), block=True, timeout=timeout)
            if not task.dead:
                task.kill(block=True, timeout=timeout)
        return True

    def _proxy_header(self, sock, peer_ip, peer):
        """→ ``(conn, Header or None)`` after the PROXY header (if any), or ``(None, None)``
        when the header is refused: logged, counted, the socket closed."""
        try:
            conn, hdr = self.proxy_protocol.accept(sock, peer_ip)
        except (ProtocolError, EOFError, OSError) as exc:
            if not isinstance(exc, EOFError):
                self.stats.total_errs += 1
                self.log.warning(f"proxy protocol: {exc}", remote=peer)
            sock.close()
            return None, None
        if hdr is not None:
            self.log.debug(f"proxy protocol: v{hdr.version} header", remote=peer, client=client_of(hdr, peer))
        return conn, hdr

    def _conn_lease(self, src):
        """The connection limiter's slot for this client: a Lease, or None when a limit is full
        (GOST closes such a connection at accept)."""
        if not self.climiter:
            return _NO_LEASE
        lim = lookup(self.registries, "climiters", self.climiter)
        lease = lim.acquire(client_ip_of(src))
        if lease is None:
            self.log.warning("connection limit reached: connection closed", client=src, climiter=self.climiter)
        return lease

    def _serve(self, conn, ctx):
        """Handler start: the request-rate limit, then traffic shaping of the client conn
        (a conn no traffic limit applies to stays as it is, on relay's fast path)."""
        try:
            if self.rlimiter:
                lim = lookup(self.registries, "rlimiters", self.rlimiter)
                if not lim.allow(ctx.client_ip):
                    self.stats.total_errs += 1
                    ctx.log.warning("request rate limit reached: connection closed", rlimiter=self.rlimiter)
                    return
            if self.limiter:
                lim = lookup(self.registries, "limiters", self.limiter)   # missing: refused, UDP too
                if not getattr(conn, "is_packet", False):
                    conn = lim.wrap(conn, ctx.client_ip, ctx=ctx)
        except MissingReference as exc:
            self.stats.total_errs += 1
            refused(ctx.log, exc, service=self.name, client=ctx.client_ip)
            return
        self.handler.handle(conn, ctx)

    def _failed(self, ctx, exc):
        """Log and count what ended a connection (called from its ``except _ENDS``): nothing
        a handler raises escapes. A plain ``try`` rather than a context manager: a generator
        object per connection would stay alive as long as the tunnel."""
        if type(ctx) is not Context:
            ctx.failed(exc)
        if isinstance(exc, EOFError):
            return
        ctx.stats_error()
        dst = ctx.target or None
        if isinstance(exc, ProtocolError):
            ctx.log.warning(f"protocol error: {exc}", dst=dst)
        elif isinstance(exc, gevent.Timeout):
            ctx.log.warning("handshake timeout", dst=dst)
        elif isinstance(exc, MissingReference):   # a handler's dial or pick ran into a missing object
            refused(ctx.log, exc, service=self.name, client=ctx.client_ip, dst=dst)
        elif isinstance(exc, OSError):
            ctx.log.debug(f"connection error: {exc}", dst=dst)
        else:  # a handler bug must not take the service down
            ctx.log.exception(f"handler failed: {exc!r}", dst=dst)

    def _accept_streams(self, session, ctx):
        """A multiplexing listener (mtls, mws …) returned a session: its ``accept()`` reads
        the connection here and yields each stream the peer opens; every stream is a
        connection of its own (own Context, counted, handled in its own pool greenlet, so
        the pool size bounds streams too). The session ends with this greenlet."""
        ctx.log.debug("mux: session started")
        if type(ctx) is not Context:
            ctx.t0 = None   # recorded per stream, not the session as well
        for stream in session.accept():
            self.stats.total_conns += 1
            sctx = self.ctx_class(self.name, ctx.src, self.addr, self.log, self.stats, peer=ctx.peer)
            if self.meter is not None:
                sctx.meter = self.meter.begin(sctx)
            sctx.proxied_dst = ctx.proxied_dst
            self.pool.spawn(self._handle_stream, stream, sctx)

    def _handle_stream(self, stream, ctx):
        ctx.task = getcurrent()
        self.tunnels[ctx.sid] = ctx
        try:
            ctx.log.debug(f"mux: stream {stream.sid} {ctx.src} <> {ctx.local}")
            self._serve(stream, ctx)
        except _ENDS as exc:
            self._failed(ctx, exc)
        finally:
            self.tunnels.pop(ctx.sid, None)
            ctx.task = None
            stream.close()
            ctx.log.debug(f"mux: stream {stream.sid} {ctx.src} >< {ctx.local}")
            if type(ctx) is not Context:
                ctx.ended()
            if ctx.meter is not None:
                ctx.meter.end()

    def stop(self, timeout=None):
        """Stop this one service: :meth:`close` it, then give its open connections ``timeout``
        seconds (default ``drain_timeout``) and end the rest."""
        if self.close():
            self.drain(time.monotonic() + (self.drain_timeout if timeout is None else timeout))

    def close(self):
        """GOST's ``Service.Close``: preDown → stop accepting, close the listener and handler →
        postDown. Open connections stay (GOST leaves them to the process exit); :meth:`drain`
        ends them. → False when the service was closed already."""
        if self.state == "closed":
            return False
        run_hooks("preDown", self._hooks["preDown"], self.log)
        server = self.server
        if server is None:
            self.listener.close()
        elif hasattr(server, "close"):
            server.close()
        else:                          # a remote (rtcp/rudp) server has no socket of its own
            server.stop_accepting()
        self.handler.close()
        self._set_state("closed")
        self._event("service closed")
        self.log.info("service closed")
        run_hooks("postDown", self._hooks["postDown"], self.log)
        return True

    def drain(self, deadline):
        """Wait for open connections until ``deadline`` (time.monotonic()), then kill the rest."""
        self.pool.join(timeout=max(0.0, deadline - time.monotonic()))
        self.pool.kill(block=True, timeout=1)

    def retire(self, keep_socket=False, reason="replaced"):
        """Step down for a replacement: stop accepting, run preDown/postDown, and leave the
        established connections running to their natural end. With ``keep_socket`` the
        listening socket stays open for the successor (``Listener.adopt``)."""
        if self.state == "closed":
            return
        run_hooks("preDown", self._hooks["preDown"], self.log)
        if self.server is not None:
            # marks the server stopped (so a freed pool slot cannot restart accepting) without
            # StreamServer.close(), which would close the socket the successor adopted
            mark_server_stopped(self.server)
            self.server.stop_accepting()
        if not keep_socket:
            self.listener.close()
        if getattr(self.handler, "close_on_retire", False):
            self.handler.close()   # its clients must re-bind to the successor (tunnel)
        self._set_state("closed")
        self._event(f"service {reason}")
        self.log.info(f"service {reason}")
        run_hooks("postDown", self._hooks["postDown"], self.log)

    def drain_later(self, timeout=None):
        """In the background: give open connections ``timeout`` seconds, then kill the rest."""
        def drain():
            self.pool.join(timeout=self.drain_timeout if timeout is None else timeout)
            self.pool.kill(block=True, timeout=1)
        return gevent.spawn(drain)

    def status(self):
        return {
            "createTime": int(self.create_time * 1e9),   # Unix nanoseconds, as GOST
            "state": self.state,
            "events": [{"time": int(e["time"] * 1e9), "msg": e["msg"]} for e in self.events],
            "stats": {"totalConns": self.stats.total_conns, "currentConns": self.current_conns,
                      "totalErrs": self.stats.total_errs, "inputBytes": self.stats.input_bytes,
                      "outputBytes": self.stats.output_bytes},
        }
