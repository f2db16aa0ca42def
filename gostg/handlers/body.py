"""Moving HTTP/1 message bodies between a ``Stream`` and anything with ``sendall``: as framed
(``send_body``), or with the chunked framing taken off (``dechunk``)."""
from ..errors import ProtocolError
from ..protocols import http


def send_body(src, dst, framer, tally=None):
    """Pass a body from Stream ``src`` to ``dst`` until ``framer`` says it ended. → bytes sent.
    ``tally`` (a one-item list) is where they are counted, as they go: a caller's running
    total, which the live-tunnel registry reads during a long body (Context.bytes())."""
    if tally is None:
        tally = [0]
    start = tally[0]
    while not framer.done:
        if not src.buf and not src.fill():
            if isinstance(framer, http.UntilClose):
                break
            raise ProtocolError("peer closed in the middle of a body")
        n = framer.feed(src.buf)
        if n:
            dst.sendall(bytes(src.buf[:n]))
            del src.buf[:n]
            tally[0] += n
    return tally[0] - start


def dechunk(src, framer, dst):
    """Copy a chunked body's payload from Stream ``src`` to ``dst``; ``framer`` (a
    ChunkedFramer) parses the framing, fed one line or one data run at a time. → bytes sent"""
    sent = 0
    buf = src.buf
    while not framer.done:
        if not buf and not src.fill():
            raise ProtocolError("upstream closed in the middle of a chunked body")
        if framer.state == "data" and framer.left > 0:
            n = framer.feed(buf[:framer.left])
            dst.sendall(bytes(buf[:n]))
            sent += n
        else:
            j = buf.find(b"\n")
            n = framer.feed(buf if j < 0 else buf[:j + 1])
        del buf[:n]
    return sent
