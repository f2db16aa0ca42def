"""The client side of GOST's relay protocol (``x/connector/relay``): TCP CONNECT.

The request carries UserAuth (when the node has credentials) and Addr. With ``nodelay=false``
(GOST's default) nothing is sent at connect time: the request header rides with the first
payload write and the response is read on the first read, saving a round trip; a refusal then
shows up as a ConnectionError on that read. Protocols where the server speaks first need
``nodelay=true``, which sends the request and checks the response before returning.
"""
from ..relay import udp
from ..transport.buffered import BufferedConn, SockWrapper, Stream
from ..errors import DialError, ProtocolError
from ..protocols import relay as rp
from ..protocols.addr import join_host_port, split_host_port
from .bound import BoundPackets, BoundStreams
from ..core.registry import connectors
from .base import Connector


class RelayRefused(ConnectionError):
    """The relay server answered with a status other than OK (found lazily, on first read)."""


def read_response(s, what):
    """The server's relay response off Stream ``s`` (``what``: the request, for the messages,
    e.g. ``relay CONNECT host:80``); a close or a bad response is a DialError (the relay,
    tunnel and router connectors)."""
    try:
        return s.read(rp.parse_response)
    except EOFError:
        raise DialError(f"{what}: server closed before answering") from None
    except ProtocolError as exc:
        raise DialError(f"{what}: {exc}") from exc


def read_answer(s, what):
    """:func:`read_response`, and a status other than OK is a DialError too."""
    resp = read_response(s, what)
    if resp.status != rp.STATUS_OK:
        raise DialError(f"{what}: status {resp.status} ({rp.STATUS_TEXT.get(resp.status, resp.status)})")
    return resp


def _check(resp, address):
    if resp.status != rp.STATUS_OK:
        text = rp.STATUS_TEXT.get(resp.status, resp.status)
        return f"relay CONNECT {address}: status {resp.status} ({text})"
    return None


class LazyRelayConn(SockWrapper):
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


@connectors.register("relay")
class RelayConnector(Connector):

    def connect(self, conn, network, address, ctx=None):
        if network not in ("tcp", "udp"):
            raise DialError(f"relay connector cannot carry {network}")
        features = []
        if self.auth:
            features.append(rp.UserAuth(*self.auth))
        cmd = rp.CMD_CONNECT
        if network == "udp":
            features.append(rp.Network(rp.NETWORK_UDP))
            if not address:
                return self._associate(conn, features)
            cmd |= rp.FLAG_UDP
        if address:
            try:
                host, port = split_host_port(address, default_port=0)  # as GOST: no port means 0
            except Exception as exc:
                raise DialError(f"relay: bad address {address!r}: {exc}") from exc
            features.append(rp.Addr(host, port))
        try:
            header = rp.encode_request(rp.Request(cmd, tuple(features)))
        except Exception as exc:
            raise DialError(f"relay: cannot encode request for {address}: {exc}") from exc

        if not self.md.bool("nodelay", "noDelay"):
            lazy = LazyRelayConn(conn, header, address)
            return udp.LengthConn(lazy, address) if network == "udp" else lazy

        conn.sendall(header)
        s = Stream(conn)
        read_answer(s, f"relay CONNECT {address}")
        if network == "udp":
            return udp.LengthConn(conn, address, stream=s)
        rest = s.take()
        return BufferedConn(conn, rest) if rest else conn

    def bind(self, conn, network, address, ctx=None):
        """Remote forwarding (GOST relay BIND, server needs ``bind=true``): TCP peers arrive as
        smux streams, UDP datagrams as UDP-TUN frames with the peers' addresses."""
        host, port = split_host_port(address, 0)
        features = [rp.UserAuth(*self.auth)] if self.auth else []
        features += [rp.Network(rp.NETWORK_UDP if network == "udp" else rp.NETWORK_TCP),
                     rp.Addr(host or "0.0.0.0", port)]
        cmd = rp.CMD_BIND | (rp.FLAG_UDP if network == "udp" else 0)
        conn.sendall(rp.encode_request(rp.Request(cmd, tuple(features))))
        s = Stream(conn)
        resp = read_answer(s, f"relay BIND {address}")
        a = resp.find(rp.Addr)
        bound = join_host_port(a.host, a.port) if a else address
        if network == "udp":
            return BoundPackets(udp.TunConn(conn, stream=s), bound)
        return BoundStreams(s.conn_with_rest(), bound, _peer_of_response, self.md)

    def _associate(self, conn, features):
        """A UDP association (GOST: BIND|FUDP for 0.0.0.0:0, server needs ``bind=true``), then
        UDP-TUN frames over this stream, each with its own address."""
        req = rp.Request(rp.CMD_BIND | rp.FLAG_UDP, tuple(features) + (rp.Addr("0.0.0.0", 0),))
        conn.sendall(rp.encode_request(req))
        s = Stream(conn)
        read_answer(s, "relay UDP associate")
        return udp.TunConn(conn, stream=s)


def _peer_of_response(s):
    """Each relay BIND stream starts with a response whose Addr feature names the peer."""
    resp = s.read(rp.parse_response)
    if resp.status != rp.STATUS_OK:
        raise DialError(f"relay bind stream: status {resp.status}")
    a = resp.find(rp.Addr)
    return join_host_port(a.host, a.port) if a else ""
