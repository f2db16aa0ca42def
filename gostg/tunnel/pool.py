"""Tunnels and their connections on one tunnel server (GOST ConnectorPool/Tunnel/Connector).

Rules:
1. A client's BIND becomes a :class:`Connection`: a mux session over its connection in which the
   server opens one stream per visitor. It belongs to the tunnel its request named; a tunnel is
   made on its first connection.
2. ``pick(network)`` draws among the tunnel's open connections of that network (a UDP connector
   id carries only UDP, the rest only TCP), weighted by their weight (0 counts as 1). A
   connection of weight 255 takes over: while one is there, only weight-255 ones are drawn.
3. Every ``ttl`` (``tunnel.ttl``, default 15 s) closed connections are dropped and the open ones
   renewed with service discovery; one sweeper greenlet per pool, started with the first
   tunnel (GOST: one per tunnel). A connection whose session ends is deregistered at once.
"""
import random

import gevent

from ..protocols import relay as rp


class Connection:
    __slots__ = ("cid", "tid", "session", "network")

    def __init__(self, cid, tid, session, network):
        self.cid, self.tid, self.session, self.network = cid, tid, session, network

    @property
    def closed(self):
        return self.session.closed

    @property
    def weight(self):
        return rp.id_weight(self.cid) or 1

    def open_stream(self, first=b""):
        """A new stream that starts with ``first`` (smux sends it with the stream's SYN)."""
        if first and getattr(self.session, "holds_first", False):
            return self.session.open(first)
        st = self.session.open()
        if first:
            try:
                st.sendall(first)
            except OSError:
                st.close()
                raise
        return st

    def close(self):
        self.session.close()


class Pool:
    def __init__(self, ttl=15.0, on_renew=None):
        self.ttl = ttl
        self.on_renew = on_renew      # (tid_text, Connection) each sweep, for sd
        self.tunnels = {}             # tid text → [Connection]
        self._sweeper = None

    def add(self, tid_text, conn):
        self.tunnels.setdefault(tid_text, []).append(conn)
        if self._sweeper is None:
            self._sweeper = gevent.spawn(self._sweep)

    def remove(self, tid_text, conn):
        conns = self.tunnels.get(tid_text)
        if conns and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.tunnels[tid_text]

    def pick(self, network, tid_text):
        """Rule 2 → a Connection or None."""
        udp = network == "udp"
        cands = [c for c in self.tunnels.get(tid_text, ()) if not c.closed and c.network == ("udp" if udp else "tcp")]
        top = [c for c in cands if c.weight == rp.MAX_WEIGHT]
        if top:
            cands = top
        if len(cands) <= 1:
            return cands[0] if cands else None
        return random.choices(cands, weights=[c.weight for c in cands])[0]

    def count(self, tid_text):
        return sum(1 for c in self.tunnels.get(tid_text, ()) if not c.closed)

    def _sweep(self):
        while True:
            gevent.sleep(self.ttl)
            for tid, conns in list(self.tunnels.items()):
                live = [c for c in conns if not c.closed]
                if live:
                    self.tunnels[tid] = live
                else:
                    self.tunnels.pop(tid, None)
                if self.on_renew is not None:
                    for c in live:
                        self.on_renew(tid, c)

    def close(self):
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
            self._sweeper = None
        tunnels, self.tunnels = self.tunnels, {}
        for conns in tunnels.values():
            for c in conns:
                c.close()
