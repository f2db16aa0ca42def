"""The client of a reverse proxy tunnel (GOST x/connector/tunnel).

Rules:
1. ``tunnel.id`` (or ``tunnelID``) names the tunnel (a UUID; a bad one is a config error; none:
   a fresh one, as GOST); ``tunnel.weight`` 1-255 is this connection's weight in its pool.
2. CONNECT (a visitor, ``-L tcp://:8000/srv.local -F tunnel://…``): the request carries the
   credentials, the client's and the target's addresses and the tunnel id (UDP: the FUDP flag
   and a Network feature); the server's answer is read before any byte flows. UDP then goes as
   ``LEN(2) + payload`` frames over the stream.
3. BIND (an rtcp/rudp service through the tunnel): the server answers with the address the
   tunnel is reachable under and this connection's id; the connection then becomes a mux session
   (smux v2 by default) in which the server opens one stream per visitor, each starting with a
   response naming the visitor and the host it asked for (the host goes to the rtcp service's
   forwarder: node ``filter.host``). For rudp each stream is one visitor's datagrams, framed as
   in rule 2.
"""
import uuid

import gevent
from gevent.queue import Queue

from ..errors import ConfigError, DialError, ProtocolError
from ..protocols import relay as rp
from ..protocols.addr import join_host_port, split_host_port
from ..relay import udp
from ..transport.buffered import HostAddr, Stream
from ..core.registry import connectors
from .base import Connector, sock_addr_text
from .bound import BoundStreams
from .relay import read_answer


def _tunnel_id(md):
    text = md.str("tunnel.id", "tunnelID")
    if text:
        try:
            raw = uuid.UUID(text).bytes
        except ValueError:
            raise ConfigError("metadata.tunnel.id", f"{text!r} is not a UUID") from None
    else:
        raw = uuid.uuid1().bytes
    weight = md.int("tunnel.weight", default=0)
    if not 0 <= weight <= 255:
        raise ConfigError("metadata.tunnel.weight", "must be 1 … 255")
    return rp.new_id(raw, weight=weight)


@connectors.register("tunnel")
class TunnelConnector(Connector):

    def __init__(self, md, auth=None):
        super().__init__(md, auth)
        self.tid = _tunnel_id(md)
        self.tid_text = rp.id_text(self.tid)

    def _request(self, cmd, network, src, dst):
        feats = []
        if network == "udp":
            cmd |= rp.FLAG_UDP
            feats.append(rp.Network(rp.NETWORK_UDP))
        if self.auth:
            feats.append(rp.UserAuth(*self.auth))
        feats += [rp.addr_from_text(src), rp.addr_from_text(dst), rp.Tunnel(self.tid)]
        try:
            return rp.encode_request(rp.Request(cmd, tuple(feats)))
        except ProtocolError as exc:
            raise DialError(f"tunnel: cannot encode request: {exc}") from exc

    def _answer(self, s, what):
        return read_answer(s, f"tunnel {what} (tunnel {self.tid_text})")

    def connect(self, conn, network, address, ctx=None):
        if network not in ("tcp", "udp"):
            raise DialError(f"tunnel connector cannot carry {network}")
        src = ctx.src if ctx is not None and getattr(ctx, "src", None) else sock_addr_text(conn)
        conn.sendall(self._request(rp.CMD_CONNECT, network, src, address))
        s = Stream(conn)
        self._answer(s, f"CONNECT {address}")
        if network == "udp":
            return udp.LengthConn(conn, address, stream=s)
        return s.conn_with_rest()

    def bind(self, conn, network, address, ctx=None):
        host, port = split_host_port(address or ":0", 0)
        local = sock_addr_text(conn, "getsockname")
        conn.sendall(self._request(rp.CMD_BIND, network, local, join_host_port(host or "0.0.0.0", port)))
        s = Stream(conn)
        resp = self._answer(s, f"BIND {address}")
        a = resp.find(rp.Addr)
        bound = join_host_port(a.host, a.port) if a else address
        t = resp.find(rp.Tunnel)
        cid = rp.full_id(t.raw) if t else rp.ZERO_ID
        if ctx is not None and getattr(ctx, "log", None) is not None:
            ctx.log.info(f"create tunnel on {bound}/{network} OK, tunnel={self.tid_text}, "
                         f"connector={rp.id_text(cid)}, weight={rp.id_weight(cid)}")
        streams = BoundStreams(s.conn_with_rest(), bound, _peer_of_response, self.md, version=2)
        return StreamPackets(streams) if network == "udp" else streams


def _peer_of_response(s):
    """Each tunnel stream starts with a response: Addr(visitor), then Addr(host asked for)."""
    resp = s.read(rp.parse_response)
    if resp.status != rp.STATUS_OK:
        raise DialError(f"tunnel stream: status {resp.status}")
    addrs = [f for f in resp.features if isinstance(f, rp.Addr)]
    peer = join_host_port(addrs[0].host, addrs[0].port) if addrs else ""
    host = join_host_port(addrs[1].host, addrs[1].port) if len(addrs) > 1 else ""
    return peer, host


class StreamPackets:
    """rudp through a tunnel: each stream the server opens is one visitor's datagrams
    (``LEN(2) + payload``), shown to the rudp service as packets from the visitor's address."""

    def __init__(self, streams):
        self.streams = streams
        self.addr = streams.addr
        self.queue = Queue(1024)
        self.out = {}                 # visitor address → its stream's LengthConn
        self._acceptor = gevent.spawn(self._accept)

    def _accept(self):
        try:
            for st in self.streams.accept():
                gevent.spawn(self._read, st)
        except (OSError, ProtocolError) as exc:
            self.queue.put(exc)
            return
        self.queue.put(EOFError("tunnel session ended"))

    def _read(self, st):
        try:
            with gevent.Timeout(15):
                conn, peer = self.streams.open_peer(st)
        except (gevent.Timeout, OSError, EOFError, ProtocolError, DialError):
            st.close()
            return
        addr = HostAddr(peer)
        addr.host = getattr(conn, "host", "")   # the host the visitor asked for (client routing)
        lc = udp.LengthConn(conn, addr)
        self.out[addr] = lc
        try:
            while True:
                data, _ = lc.read_from()
                self.queue.put((data, addr))
        except (OSError, EOFError, ProtocolError):
            pass
        finally:
            if self.out.get(addr) is lc:
                del self.out[addr]
            conn.close()

    def read_from(self):
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def write_to(self, data, addr):
        lc = self.out.get(addr)
        if lc is not None:
            lc.write_to(data)

    def close(self):
        self._acceptor.kill(block=False)
        self.streams.close()
        for lc in list(self.out.values()):
            lc.close()
