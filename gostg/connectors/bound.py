"""What a connector's ``bind`` returns: the far end now listens for us (remote forwarding).

- :class:`BoundStreams`: a mux session (smux or yamux) in which the far end opens one stream per peer it
  accepted; each stream starts with a preamble naming the peer (``peer_of(stream_reader)``).
- :class:`BoundPackets`: a packet conn whose datagrams carry the far peers' addresses.
"""
from ..transport.buffered import HostConn, Stream
from ..transport.mux.config import MuxConfig


class BoundStreams:
    def __init__(self, conn, addr, peer_of, md=None, version=1):
        self.addr = addr
        config = MuxConfig.from_md(md, version) if md is not None else MuxConfig(version=version)
        self.session = config.session(conn, client=False)
        self.peer_of = peer_of

    def accept(self):
        """Streams as the far end opens them (drives the session: call from one greenlet)."""
        return self.session.accept()

    def open_peer(self, stream):
        """→ ``(conn, peer_addr)`` after the stream's preamble (run in the stream's greenlet).
        A preamble that also names the host the peer asked for (tunnel) gives a HostConn."""
        s = Stream(stream)
        peer = self.peer_of(s)
        if isinstance(peer, tuple):
            peer, host = peer
            if host:
                return HostConn(stream, s.take(), host), peer
        return s.conn_with_rest(), peer

    def close(self):
        self.session.close()


class BoundPackets:
    def __init__(self, pc, addr):
        self.pc = pc
        self.addr = addr

    def read_from(self):
        return self.pc.read_from()

    def write_to(self, data, addr):
        self.pc.write_to(data, addr)

    def close(self):
        self.pc.close()
