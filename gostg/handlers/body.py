"""Moving HTTP/1 message bodies between a ``Stream`` and anything with ``sendall``: as framed
(``send_body``), or with the chunked framing taken off (``dechunk``)."""
from ..errors import ProtocolError
from ..protocols import http
from ..transport.buffered import send_all

#: a Content-Length body at least this long (past what is buffered) is read straight into one
#: buffer and sent from it, as relay.pipe moves bytes, not through the Stream's buffer
_DIRECT = 64 * 1024
_CHUNK = 256 * 1024


def send_body(src, dst, framer, tally=None, at=0):
    """Pass a body from Stream ``src`` to ``dst`` until ``framer`` says it ended. → bytes sent.
    ``tally[at]`` is where they are counted, as they go: a caller's running total, which the
    live-tunnel registry reads during a long body (Context.bytes())."""
    if tally is None:
        tally = [0]
    start = tally[at]
    if type(framer) is http.LengthFramer and framer.left >= _DIRECT and not src.buf:
        _direct(src, dst, framer, tally, at)
    while not framer.done:
        if not src.buf and not src.fill():
            if isinstance(framer, http.UntilClose):
                break
            raise ProtocolError("peer closed in the middle of a body")
        n = framer.feed(src.buf)
        if n:
            dst.sendall(bytes(src.buf[:n]))
            del src.buf[:n]
            tally[at] += n
    return tally[at] - start


def _direct(src, dst, framer, tally, at):
    """A long Content-Length body: ``recv_into`` one buffer, send from it (one copy a chunk)."""
    buf = bytearray(min(_CHUNK, framer.left))
    mv = memoryview(buf)
    conn = src.conn
    while framer.left:
        n = conn.recv_into(buf, min(len(buf), framer.left))
        if not n:
            raise ProtocolError("peer closed in the middle of a body")
        src.received += n
        framer.left -= n
        send_all(dst, mv[:n])
        tally[at] += n


def dechunk(src, framer, dst, tally=None, at=0):
    """Copy a chunked body's payload from Stream ``src`` to ``dst``; ``framer`` (a
    ChunkedFramer) parses the framing, fed one line or one data run at a time. → bytes sent,
    counted in ``tally[at]`` as they go (as :func:`send_body`)."""
    if tally is None:
        tally = [0]
    start = tally[at]
    buf = src.buf
    while not framer.done:
        if not buf and not src.fill():
            raise ProtocolError("upstream closed in the middle of a chunked body")
        if framer.state == "data" and framer.left > 0:
            n = framer.feed(buf[:framer.left])
            dst.sendall(bytes(buf[:n]))
            tally[at] += n
        else:
            j = buf.find(b"\n")
            n = framer.feed(buf if j < 0 else buf[:j + 1])
        del buf[:n]
    return tally[at] - start
