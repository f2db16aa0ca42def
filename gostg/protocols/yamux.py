"""yamux frames (hashicorp/yamux, GOST's ``mux.type=yamux`` backend), sans-IO.

Wire format (spec.md of hashicorp/yamux), a 12-byte header, big endian::

    VERSION(1)=0 TYPE(1) FLAGS(2) STREAMID(4) LENGTH(4) [DATA(LENGTH), Data frames only]

Rules:
1. ``TYPE`` is Data (``LENGTH`` payload bytes), Window Update (``LENGTH`` is a delta added to
   the sender's receive window), Ping (``LENGTH`` is an opaque value the ACK echoes) or Go Away
   (``LENGTH`` is an error code: 0 normal, 1 protocol error, 2 internal error). Only Data
   frames carry a payload.
2. ``FLAGS``: SYN opens a stream (or asks for a Ping's answer), ACK accepts one (or answers a
   Ping), FIN half-closes it, RST resets it; SYN/ACK/FIN/RST ride on Data or Window Update.
3. Every stream starts with a 256 KiB window each way; a receiver grows it with Window Updates
   as it reads. A Data frame larger than the receiver's window is a protocol error.
4. The client opens odd stream ids (1, 3, …), the server even ones; 0 is the session.
5. Another version byte or an unknown type is a ``ProtocolError`` (yamux ends the session);
   ``parse_frame`` refuses a Data frame longer than ``max_data`` as soon as the header shows
   it, so a peer cannot make us buffer beyond the largest window we give. A buffer that may
   still grow: an incomplete frame is ``NeedData``.
"""
import struct

from ..errors import ProtocolError
from .reader import Reader

VERSION = 0
DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8
GOAWAY_NORMAL, GOAWAY_PROTOCOL, GOAWAY_INTERNAL = 0, 1, 2
HEADER_SIZE = 12
#: every stream's window at open, both ways
INITIAL_WINDOW = 256 * 1024

TYPE_NAMES = {DATA: "Data", WINDOW_UPDATE: "Window Update", PING: "Ping", GO_AWAY: "Go Away"}

_HEADER = struct.Struct(">BBHII")


def encode_header(ftype, flags, sid, length):
    return _HEADER.pack(VERSION, ftype, flags, sid, length)


def encode_frame(ftype, flags, sid, value=0, data=b""):
    """One frame as bytes: a Data frame carries ``data``; the others carry ``value`` (the
    window delta, the ping's opaque value, the go-away code) in LENGTH."""
    if ftype == DATA:
        return _HEADER.pack(VERSION, ftype, flags, sid, len(data)) + bytes(data)
    return _HEADER.pack(VERSION, ftype, flags, sid, value)


def parse_frame(buf, pos=0, max_data=0xFFFFFFFF):
    """→ ``(type, flags, sid, length, payload, next_pos)`` for the frame at ``buf[pos:]``;
    ``payload`` is ``b""`` but for Data frames. ``NeedData`` if the frame is not complete
    yet; ``ProtocolError`` on a bad version or type, or Data beyond ``max_data`` (rule 5)."""
    r = Reader(buf, pos)
    ver = r.u8()
    if ver != VERSION:
        raise ProtocolError(f"yamux: version {ver}, expected {VERSION}")
    ftype = r.u8()
    if ftype not in TYPE_NAMES:
        raise ProtocolError(f"yamux: unknown frame type {ftype}")
    flags = r.u16()
    sid = r.u32()
    length = r.u32()
    if ftype != DATA:
        return ftype, flags, sid, length, b"", r.pos
    if length > max_data:
        raise ProtocolError(f"yamux: {length} bytes of data on stream {sid} exceed its window")
    return ftype, flags, sid, length, r.take(length), r.pos
