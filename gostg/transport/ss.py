"""A conn that speaks Shadowsocks AEAD over another conn (used by the ss handler and connector).

Writes are encrypted (the first one carries the salt and, on the client side, the pending target
header); reads decrypt whole chunks and hand out plaintext. A failed tag or a stream cut inside a
chunk surfaces as ``SSStreamError`` — a ConnectionError, so the relay treats it like any broken
connection instead of crashing its greenlet.
"""
import socket

from .buffered import SockWrapper
from ..errors import ProtocolError
from ..protocols import shadowsocks as ss


class SSStreamError(ConnectionError):
    """The peer's stream failed authentication or was truncated mid-chunk."""


class SSConn(SockWrapper):
    __slots__ = ("sock", "enc", "dec", "header", "pending", "received")

    #: bytes asked of the inner conn per read: a little over one full chunk
    READ_SIZE = 65536

    def __init__(self, sock, cipher, header=b"", replay=None):
        self.sock = sock
        self.enc = ss.Encryptor(cipher)
        self.dec = ss.Decryptor(cipher, replay)
        self.header = header        # client side: target header sent with the first write
        self.pending = b""          # plaintext decrypted but not yet returned
        self.received = 0           # ciphertext bytes read (what a probe cost us)

    def _fill(self):
        """Decrypt until some plaintext is pending; False at a clean EOF."""
        while not self.pending:
            data = self.sock.recv(self.READ_SIZE)
            if not data:
                if self.dec.buffered:
                    raise SSStreamError("shadowsocks: stream truncated inside a chunk")
                return False
            self.received += len(data)
            try:
                self.pending = self.dec.feed(data)
            except ProtocolError as exc:
                raise SSStreamError(str(exc)) from exc
        return True

    def recv(self, n):
        if not self.pending and not self._fill():
            return b""
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def recv_into(self, buf, nbytes=0):
        if not self.pending and not self._fill():
            return 0
        n = min(nbytes or len(buf), len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def sendall(self, data):
        if self.header:
            data, self.header = self.header + bytes(data), b""
        if data:
            self.sock.sendall(self.enc.encrypt(data))

    def flush_header(self):
        """Send the pending target header now (``nodelay``, or before a half-close)."""
        if self.header:
            self.sendall(b"")

    def shutdown(self, how):
        if how != socket.SHUT_RD:
            self.flush_header()  # an empty upload still owes the server its target
        return self.sock.shutdown(how)
