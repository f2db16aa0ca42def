"""smux frames (xtaci/smux, the multiplexer under GOST's ``mtls``/``mws``/``mwss``), sans-IO.

Wire format (protocol version 1, GOST's default), an 8-byte header then the payload::

    VER(1) CMD(1) LENGTH(2, little endian) STREAMID(4, little endian) DATA(LENGTH)

Rules:
1. ``CMD`` is SYN (open a stream), FIN (the sender closed the stream: no more data either way),
   PSH (``LENGTH`` payload bytes for the stream) or NOP (keepalive, ignored). Version 2's UPD
   (window update), any other command, or another version byte is a ``ProtocolError``: smux
   ends the session on those too.
2. The client opens odd stream ids (3, 5, …), the server even ones; ids are never reused.
3. ``parse_frame`` takes a buffer that may still grow: an incomplete frame is ``NeedData``.
"""
import struct

from ..errors import ProtocolError
from .reader import Reader

VERSION = 1
SYN, FIN, PSH, NOP = 0, 1, 2, 3
#: version 2 only (flow control); refused in a version 1 session
UPD = 4
HEADER_SIZE = 8
#: largest payload one frame can carry (LENGTH is 16 bits)
MAX_PAYLOAD = 0xFFFF
#: smux's default MaxFrameSize: the payload size we send per frame
DEFAULT_FRAME_SIZE = 32768

CMD_NAMES = {SYN: "SYN", FIN: "FIN", PSH: "PSH", NOP: "NOP"}

_HEADER = struct.Struct("<BBHI")


def encode_header(cmd, sid, length=0, version=VERSION):
    if not 0 <= length <= MAX_PAYLOAD:
        raise ValueError(f"smux payload of {length} bytes does not fit one frame")
    return _HEADER.pack(version, cmd, length, sid)


def encode_frame(cmd, sid, data=b"", version=VERSION):
    """One frame as bytes; ``data`` only for PSH."""
    return encode_header(cmd, sid, len(data), version) + bytes(data)


def parse_frame(buf, pos=0, version=VERSION):
    """→ ``(cmd, sid, payload, next_pos)`` for the frame at ``buf[pos:]``.
    ``NeedData`` if the frame is not complete yet; ``ProtocolError`` on a bad version or
    command. The payload of SYN/FIN/NOP frames (smux sends none) is skipped."""
    r = Reader(buf, pos)
    ver = r.u8()
    if ver != version:
        raise ProtocolError(f"smux: version {ver}, expected {version}")
    cmd = r.u8()
    if cmd not in CMD_NAMES:
        raise ProtocolError(f"smux: unknown command {cmd}")
    length = r.u16le()
    sid = r.u32le()
    payload = r.take(length)
    return cmd, sid, (payload if cmd == PSH else b""), r.pos
