"""Checks every flow-controlled mux session must pass (smux v2 in test_smux, yamux in
test_yamux), run over a client and a server session on a socketpair."""
import gevent
import pytest


def read_exactly(stream, n, timeout, cap=None):
    """Read ``n`` bytes from ``stream``; with ``cap``, assert it never holds more unread."""
    got = 0
    with gevent.Timeout(timeout):
        while got < n:
            got += len(stream.recv(65536))
            if cap is not None:
                assert len(stream.buf) <= cap
    return got


def slow_reader_holds_back_only_its_writer(client, server, first_window, size=2000000):
    """A stream nobody reads stops its writer once ``first_window`` bytes (what the writer may
    send before any window update) are buffered; another stream of the same session runs
    meanwhile; reading the slow one lets its writer finish, never holding more than that."""
    accepted = []
    g = gevent.spawn(lambda: [accepted.append(x) for x in server.accept()])
    slow, fast = client.open(), client.open()
    writer = gevent.spawn(slow.sendall, b"s" * size)
    with gevent.Timeout(5):
        while len(accepted) < 2:
            gevent.sleep(0.01)
    gevent.sleep(0.2)
    assert not writer.ready(), "the writer must wait for a window update"
    assert len(accepted[0].buf) == first_window
    gevent.spawn(fast.sendall, b"f" * 1000000)
    read_exactly(accepted[1], 1000000, 5)
    read_exactly(accepted[0], size, 10, cap=first_window)
    writer.join(timeout=5)
    assert writer.successful()
    client.close()
    g.join(timeout=5)


def every_prefix_needs_data(parse, wire):
    """A codec fed any proper prefix of a frame asks for more bytes."""
    from gostg.errors import NeedData
    for i in range(len(wire)):
        with pytest.raises(NeedData):
            parse(wire[:i])


def parse_garbage(parse, buf, *args):
    """Frames of ``buf`` until the codec stops: only NeedData or ProtocolError may stop it."""
    from gostg.errors import NeedData, ProtocolError
    pos = 0
    try:
        while True:
            pos = parse(buf, pos, *args)[-1]
    except (NeedData, ProtocolError):
        pass


def flood_ends_the_session(session, peer, opening, frame, count, match):
    """``peer`` (the raw other end) opens a stream with ``opening``, then sends ``frame``
    ``count`` times without reading a window update: the session ends with a ProtocolError."""
    from gostg.errors import ProtocolError
    peer.sendall(opening)

    def flood():
        try:
            for _ in range(count):
                peer.sendall(frame)
        except OSError:
            pass
    gevent.spawn(flood)
    with pytest.raises(ProtocolError, match=match):
        list(session.accept())
    assert session.closed
    peer.close()


def echo_server(server):
    """A greenlet accepting ``server``'s streams and echoing each until its EOF."""
    def serve(stream):
        while True:
            data = stream.recv(65536)
            if not data:
                break
            stream.sendall(data)
        stream.close()

    return gevent.spawn(lambda: [gevent.spawn(serve, s) for s in server.accept()])
