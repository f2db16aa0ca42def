"""A stream to a tunnel (GOST x/handler/tunnel Dialer).

Rules:
1. This node's pool first: up to 3 tries, each picking a connection (pool rule 2) and opening a
   stream on it. A tunnel that has connections here but whose streams all failed is not looked
   up elsewhere (GOST neither).
2. No connection here and an ``sd``: the first service registered for the tunnel by another
   node, on the same network, with an address (that node's entrypoint) is dialled over TCP;
   the caller then hands it the visitor's request as it came (the other node answers).
3. Otherwise :class:`Unavailable`. A visitor another node handed over (the entrypoint's relay
   path) is served from this node's pool only: two nodes whose sd entries point at each other
   (stale ones, after a client moved) cannot pass it back and forth.
"""
from dataclasses import dataclass

from ..errors import DialError
from ..protocols import relay as rp

RETRIES = 3


class Unavailable(Exception):
    pass


@dataclass
class Service:
    """What the sd seam takes and gives (GOST sd.Service)."""
    id: str = ""
    name: str = ""
    node: str = ""
    network: str = ""
    address: str = ""


def peer_preamble(src, dst):
    """What starts a tunnel stream: OK with the visitor's and the target's addresses."""
    return rp.encode_response(rp.Response(rp.STATUS_OK, (rp.addr_from_text(src), rp.addr_from_text(dst))))


class Dialer:
    def __init__(self, handler):
        self.h = handler

    def dial(self, network, tid_text, ctx, log, use_sd=True, first=b""):
        """→ ``(stream, node, connector id text)``; Unavailable when there is none. ``use_sd``
        False: this node's pool only (a visitor another node handed here goes no further).
        ``first``: what a stream of this node's pool starts with (the peer preamble), sent
        with the stream's opening; a stream to another node gets none of it."""
        pool = self.h.pool
        err = None
        for _ in range(RETRIES):
            c = pool.pick(network, tid_text)
            if c is None:
                err = None
                break
            try:
                return c.open_stream(first), self.h.node, rp.id_text(c.cid)
            except OSError as exc:
                err = exc
                log.error(f"tunnel: connector {rp.id_text(c.cid)}: {exc}")
        if err is not None:
            raise Unavailable(f"tunnel {tid_text} not available: {err}")
        sd = self.h.sd(log) if self.h.sd_name and use_sd else None
        if sd is None:
            raise Unavailable(f"tunnel {tid_text} not available")
        try:
            services = sd.get(tid_text) or ()
        except Exception as exc:
            raise Unavailable(f"tunnel {tid_text}: sd: {exc}") from None
        svc = next((s for s in services if s.node != self.h.node and s.network == network), None)
        if svc is None or not svc.address:
            raise Unavailable(f"tunnel {tid_text} not available")
        addr = svc.address
        if addr.startswith(":"):
            addr = "127.0.0.1" + addr
        try:
            return self.h.router.dial("tcp", addr, ctx), svc.node, svc.id
        except DialError as exc:
            raise Unavailable(f"tunnel {tid_text} on node {svc.node} ({svc.address}): {exc}") from None
