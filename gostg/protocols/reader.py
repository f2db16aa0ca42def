"""One bounded binary reader, in the manner of dnspython's ``wirebase.Parser``.

Every SOCKS address, relay feature and header is read through it, so an overrun is always the
same error: ``NeedData`` when the buffer may still grow (a stream), ``ProtocolError`` otherwise.
"""
import struct

from ..errors import NeedData, ProtocolError


class Reader:
    __slots__ = ("buf", "pos", "end", "partial")

    def __init__(self, buf, pos=0, partial=True):
        self.buf = buf
        self.pos = pos
        self.end = len(buf)
        #: a partial buffer may still grow: running out of bytes means "read more".
        self.partial = partial

    def _need(self, n):
        if self.pos + n > self.end:
            if self.partial:
                raise NeedData()
            raise ProtocolError(f"truncated: need {n} bytes at offset {self.pos}")

    def u8(self):
        self._need(1)
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def u16(self):
        self._need(2)
        (v,) = struct.unpack_from("!H", self.buf, self.pos)
        self.pos += 2
        return v

    def u16le(self):
        self._need(2)
        (v,) = struct.unpack_from("<H", self.buf, self.pos)
        self.pos += 2
        return v

    def u32(self):
        self._need(4)
        (v,) = struct.unpack_from("!I", self.buf, self.pos)
        self.pos += 4
        return v

    def u32le(self):
        self._need(4)
        (v,) = struct.unpack_from("<I", self.buf, self.pos)
        self.pos += 4
        return v

    def take(self, n):
        self._need(n)
        v = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return v

    def counted(self):
        """A one-byte length followed by that many bytes."""
        return self.take(self.u8())

    def until(self, sep, limit):
        """Bytes up to (not including) ``sep``; ``limit`` bounds how far we look."""
        i = bytes(self.buf[self.pos:self.pos + limit + 1]).find(sep)
        if i < 0:
            if self.end - self.pos > limit:
                raise ProtocolError(f"field longer than {limit} bytes")
            if self.partial:
                raise NeedData()
            raise ProtocolError("unterminated field")
        v = bytes(self.buf[self.pos:self.pos + i])
        self.pos += i + len(sep)
        return v

    def rest(self):
        v = bytes(self.buf[self.pos:self.end])
        self.pos = self.end
        return v
