"""Shadowsocks UDP (``ssu``) packet conns, both sides; AEAD per datagram
(salt ‖ AEAD(target ‖ payload), codec in gostg.protocols.shadowsocks).

A datagram that fails to decrypt or parse is dropped (logged at debug): a UDP service must not
die of one bad packet, and answering would help a prober. ``cipher`` None = GOST's plain mode
(target header in the clear).

Replays: every ssu datagram carries a fresh salt, so a salt seen twice is a captured datagram
sent again (shadowsocks-libev drops those too). The server keeps the salts of authenticated
datagrams and of its own answers in a SaltFilter shared by all sessions and drops repeats, so
a replayed request never reaches its target twice and a reflected answer is refused."""
from ..errors import ProtocolError
from ..protocols import shadowsocks as ss
from ..protocols.addr import join_host_port, split_host_port
from ..protocols.reader import Reader
from ..protocols import socks5


def _unpack(cipher, data):
    if cipher is None:
        r = Reader(data, partial=False)
        host, port = socks5.read_addr(r)
        return host, port, r.rest()
    return ss.unpack_udp(cipher, data)


def _pack(cipher, host, port, payload):
    if cipher is None:
        return ss.encode_target(host, port) + bytes(payload)
    return ss.pack_udp(cipher, host, port, payload)


class SSUServer:
    """The server side over a udp listener session: datagrams name their targets."""

    def __init__(self, pc, cipher, log=None, replay=None):
        self.pc = pc
        self.cipher = cipher
        self.log = log
        self.replay = replay if cipher is not None else None

    def _open(self, data):
        salt = None
        try:
            if self.replay is not None:
                salt = bytes(data[:self.cipher.salt_size])
                if self.replay.seen(salt):
                    raise ProtocolError("shadowsocks: replayed salt")
            host, port, payload = _unpack(self.cipher, data)
        except ProtocolError as exc:
            if self.log is not None:
                self.log.debug(f"ssu: dropped a datagram: {exc}")
            return None
        if salt is not None:
            self.replay.add(salt)
        return payload, join_host_port(host, port)

    def _seal(self, data, addr):
        out = _pack(self.cipher, *split_host_port(addr), data)
        if self.replay is not None:
            self.replay.add(out[:self.cipher.salt_size])
        return out

    def read_from(self):
        while True:
            data, _ = self.pc.read_from()
            d = self._open(data)
            if d is not None:
                return d

    def write_to(self, data, addr):
        self.pc.write_to(self._seal(data, addr), addr)

    # the fast relay path (gostg.udpfast), when the session offers it
    @property
    def fast_capable(self):
        return getattr(self.pc, "fast_capable", False)

    def fast_start(self, on_datagram, on_close, fail):
        def opened(data, _addr):
            d = self._open(data)
            if d is not None:
                on_datagram(*d)
        return self.pc.fast_start(opened, on_close, fail)

    def send_nowait(self, data, addr):
        self.pc.send_nowait(self._seal(data, addr), addr)

    def close(self):
        self.pc.close()


class SSUClient:
    """The client side over a connected UDP socket to the ss server (``target`` fixes the
    destination for port forwarding)."""

    def __init__(self, sock, cipher, target=""):
        self.sock = sock
        self.cipher = cipher
        self.target = target
        self.buf = bytearray(65535 + 512)

    def read_from(self):
        while True:
            n = self.sock.recv_into(self.buf)
            try:
                host, port, payload = _unpack(self.cipher, memoryview(self.buf)[:n])
            except ProtocolError:
                continue
            return payload, join_host_port(host, port)

    def write_to(self, data, addr):
        self.sock.send(_pack(self.cipher, *split_host_port(self.target or addr), data))

    def close(self):
        self.sock.close()
