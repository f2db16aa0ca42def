"""The client side of GOST's relay protocol (``x/connector/relay``): TCP CONNECT.

The request carries UserAuth (when the node has credentials) and Addr. With ``nodelay=false``
(GOST's default) nothing is sent at connect time: the request header rides with the first
payload write and the response is read on the first read, saving a round trip; a refusal then
shows up as a ConnectionError on that read. Protocols where the server speaks first need
``nodelay=true``, which sends the request and checks the response before returning.
"""
from ..conn import BufferedConn, Stream
from ..errors import DialError, ProtocolError
from ..protocols import relay as rp
from ..protocols.addr import split_host_port
from ..registry import connectors
from .base import Connector


class RelayRefused(ConnectionError):
    """The relay server answered with a status other than OK (found lazily, on first read)."""


def _check(resp, address):
    if resp.status != rp.STATUS_OK:
        text = rp.STATUS_TEXT.get(resp.status, resp.status)
        return f"relay CONNECT {address}: status {resp.status} ({text})"
    return None


class LazyRelayConn:
    """A conn whose first write carries the pending request header and whose first read first
    consumes the relay response. Two greenlets may use it (one reading, one writing)."""

    __slots__ = ("sock", "header", "address", "answered", "pending")

    def __init__(self, sock, header, address):
        self.sock = sock
        self.header = header      # request bytes not yet sent
        self.address = address
        self.answered = False     # response read and accepted
        self.pending = b""        # bytes read past the response

    def _answer(self):
        if self.answered:
            return
        s = Stream(self.sock)
        try:
            resp = s.read(rp.parse_response)
        except EOFError:
            raise ConnectionError(f"relay CONNECT {self.address}: server closed before answering") from None
        except Exception as exc:  # ProtocolError and friends: the reader's callers expect OSError
            raise ConnectionError(f"relay CONNECT {self.address}: {exc}") from exc
        err = _check(resp, self.address)
        if err:
            raise RelayRefused(err)
        self.pending = s.take()
        self.answered = True

    def recv(self, n):
        self._answer()
        if self.pending:
            data, self.pending = self.pending[:n], self.pending[n:]
            return data
        return self.sock.recv(n)

    def recv_into(self, buf, nbytes=0):
        self._answer()
        if self.pending:
            n = min(nbytes or len(buf), len(self.pending))
            buf[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n
        # 0 means "the whole buffer" to a socket but "nothing" to an SSLSocket: pass it only when set
        return self.sock.recv_into(buf, nbytes) if nbytes else self.sock.recv_into(buf)

    def _flush(self, data=b""):
        header, self.header = self.header, b""
        self.sock.sendall(header + bytes(data))

    def sendall(self, data):
        if self.header:
            return self._flush(data)
        return self.sock.sendall(data)

    def shutdown(self, how):
        if self.header:  # an empty upload still owes the server its request
            self._flush()
        return self.sock.shutdown(how)

    def close(self):
        return self.sock.close()

    def settimeout(self, t):
        return self.sock.settimeout(t)

    def getpeername(self):
        return self.sock.getpeername()

    def getsockname(self):
        return self.sock.getsockname()


@connectors.register("relay")
class RelayConnector(Connector):

    def connect(self, conn, network, address, ctx=None):
        if network != "tcp":
            raise DialError(f"relay connector cannot carry {network} yet")
        features = []
        if self.auth:
            features.append(rp.UserAuth(*self.auth))
        if address:
            try:
                host, port = split_host_port(address, default_port=0)  # as GOST: no port means 0
            except Exception as exc:
                raise DialError(f"relay: bad address {address!r}: {exc}") from exc
            features.append(rp.Addr(host, port))
        try:
            header = rp.encode_request(rp.Request(rp.CMD_CONNECT, tuple(features)))
        except Exception as exc:
            raise DialError(f"relay: cannot encode request for {address}: {exc}") from exc

        if not self.md.bool("nodelay", "noDelay"):
            return LazyRelayConn(conn, header, address)

        conn.sendall(header)
        s = Stream(conn)
        try:
            resp = s.read(rp.parse_response)
        except EOFError:
            raise DialError(f"relay CONNECT {address}: server closed before answering") from None
        except ProtocolError as exc:
            raise DialError(f"relay CONNECT {address}: {exc}") from exc
        err = _check(resp, address)
        if err:
            raise DialError(err)
        rest = s.take()
        return BufferedConn(conn, rest) if rest else conn
