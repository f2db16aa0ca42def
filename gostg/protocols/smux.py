"""smux frames (xtaci/smux, the multiplexer under GOST's ``mtcp``/``mtls``/``mws``/``mwss``
and the BIND/MBIND sessions), sans-IO, protocol versions 1 and 2.

Wire format, an 8-byte header then the payload::

    VER(1) CMD(1) LENGTH(2, little endian) STREAMID(4, little endian) DATA(LENGTH)

Rules:
1. ``CMD`` is SYN (open a stream), FIN (the sender closed the stream), PSH (``LENGTH`` payload
   bytes for the stream), NOP (keepalive, ignored) or, in version 2 only, UPD (a window
   update: ``CONSUMED(4, le) WINDOW(4, le)``: the receiver has read ``CONSUMED`` bytes of the
   stream so far and takes ``WINDOW`` bytes beyond that).
2. As smux ends the session on them, these are a ``ProtocolError``: another version byte, an
   unknown command, UPD in a version 1 session, a SYN/FIN/NOP carrying a payload, an UPD whose
   payload is not 8 bytes.
3. The client opens odd stream ids (3, 5, …), the server even ones; ids are never reused.
4. ``parse_frame`` takes a buffer that may still grow: an incomplete frame is ``NeedData``.
"""
import struct

from ..errors import ProtocolError
from .reader import Reader

#: GOST's default on mtls/mws/mwss and the BIND sessions (mtcp defaults to 2)
VERSION = 1
SYN, FIN, PSH, NOP, UPD = 0, 1, 2, 3, 4
HEADER_SIZE = 8
#: UPD's payload: consumed and window, two little-endian uint32
UPD_SIZE = 8
#: largest payload one frame can carry (LENGTH is 16 bits)
MAX_PAYLOAD = 0xFFFF
#: smux's default MaxFrameSize: the payload size we send per frame
DEFAULT_FRAME_SIZE = 32768
#: version 2: what a sender may have in flight on a stream before the receiver's first UPD
INITIAL_PEER_WINDOW = 262144

CMD_NAMES = {SYN: "SYN", FIN: "FIN", PSH: "PSH", NOP: "NOP", UPD: "UPD"}

_HEADER = struct.Struct("<BBHI")
_UPD = struct.Struct("<II")


def encode_header(cmd, sid, length=0, version=VERSION):
    if not 0 <= length <= MAX_PAYLOAD:
        raise ValueError(f"smux payload of {length} bytes does not fit one frame")
    return _HEADER.pack(version, cmd, length, sid)


def encode_frame(cmd, sid, data=b"", version=VERSION):
    """One frame as bytes; ``data`` only for PSH."""
    return encode_header(cmd, sid, len(data), version) + bytes(data)


def encode_upd(sid, consumed, window, version=2):
    """A version 2 window update: we have read ``consumed`` bytes of stream ``sid`` (mod 2**32)
    and take ``window`` more."""
    return _HEADER.pack(version, UPD, UPD_SIZE, sid) + _UPD.pack(consumed & 0xFFFFFFFF, window)


def parse_upd(payload):
    """An UPD frame's payload → ``(consumed, window)``."""
    return _UPD.unpack(payload)


def parse_frame(buf, pos=0, version=VERSION):
    """→ ``(cmd, sid, payload, next_pos)`` for the frame at ``buf[pos:]`` (``payload`` is
    ``b""`` but for PSH and UPD). ``NeedData`` if the frame is not complete yet;
    ``ProtocolError`` on what smux refuses (rule 2), as soon as the header shows it."""
    r = Reader(buf, pos)
    ver = r.u8()
    if ver != version:
        raise ProtocolError(f"smux: version {ver}, expected {version}")
    cmd = r.u8()
    if cmd not in CMD_NAMES or (cmd == UPD and version < 2):
        raise ProtocolError(f"smux: unknown command {cmd} in version {version}")
    length = r.u16le()
    sid = r.u32le()
    if cmd == UPD:
        if length != UPD_SIZE:
            raise ProtocolError(f"smux: UPD of {length} bytes")
    elif cmd != PSH and length:
        raise ProtocolError(f"smux: {CMD_NAMES[cmd]} with a {length}-byte payload")
    payload = r.take(length)
    return cmd, sid, payload, r.pos
