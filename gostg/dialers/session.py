"""What the dialers of multiplexed transports share (smux ``mtls``/``mws``/``mwss`` in
``mux.py``; HTTP/2 ``http2``/``h2``/``h2c`` in ``http2.py``/``h2.py``).

Rules:
1. One session per dialer (a dialer belongs to one node): ``dial`` returns the live session,
   or makes one (``_new_session`` over a new TCP connection) under a lock, so concurrent dials
   wait for the first instead of each opening a connection; a dead session is replaced.
2. As a later hop the route is restarted at this node, as GOST does (chain.Route rule 2a):
   ``dial_through(reach)`` keeps the session too, made over ``reach()`` (a conn through the
   previous hops), so every route through the node shares it.
3. What the route gets is ``_for_route(session)``; the subclass's ``handshake`` turns it into
   a stream.
"""
from gevent.lock import Semaphore

from ..core.router import dial_tcp
from .base import Dialer


class SessionDialer(Dialer):
    multiplex = True
    applies_sockopts = True

    def __init__(self, md, auth=None, tls=None):
        super().__init__(md, auth, tls)
        self.session = None
        self.lock = Semaphore()

    def _new_session(self, conn):
        """A started client session over ``conn`` (the transport handshake included)."""
        raise NotImplementedError

    def _for_route(self, session):
        return session

    def dial(self, addr, timeout):
        return self.dial_through(lambda: dial_tcp(addr, timeout, self.sockopts), timeout)

    def dial_through(self, reach, timeout):
        """The live session, or a new one over ``reach()`` (rules 1, 2)."""
        with self.lock:
            s = self.session
            if s is None or not s.alive:
                conn = reach()
                try:
                    s = self.session = self._new_session(conn)
                except BaseException:
                    conn.close()
                    raise
            return self._for_route(s)

    def close(self):
        with self.lock:
            if self.session is not None:
                self.session.close()
                self.session = None
