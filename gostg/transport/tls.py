"""TLS over any conn (a previous hop's stream, itself maybe TLS), with ssl.MemoryBIO.

``SSLContext.wrap_socket`` needs a real socket and would bypass an outer TLS layer; an SSLObject
over memory BIOs speaks TLS through whatever ``recv``/``sendall`` the inner conn offers.
"""
from gevent import ssl


class TLSConn:
    __slots__ = ("conn", "inc", "out", "obj")
    #: shutdown cannot reach the far end (see relay._can_half_close)
    half_close = False

    def __init__(self, conn, context, server_hostname=None, server_side=False):
        self.conn = conn
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.inc, self.out, server_side=server_side, server_hostname=server_hostname)

    def _flush(self):
        data = self.out.read()
        if data:
            self.conn.sendall(data)

    def _fill(self):
        data = self.conn.recv(65536)
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return self
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def recv_into(self, buf, nbytes=0):
        data = self.recv(nbytes or len(buf))
        buf[:len(data)] = data
        return len(data)

    def sendall(self, data):
        mv = memoryview(data)
        while mv:
            n = self.obj.write(mv)
            mv = mv[n:]
            self._flush()

    def shutdown(self, how):
        # no half-close inside TLS: a close_notify would end both directions
        pass

    def close(self):
        self.conn.close()

    def settimeout(self, t):
        self.conn.settimeout(t)

    def getpeername(self):
        return self.conn.getpeername()
