"""Checks every flow-controlled mux session must pass (smux v2 in test_smux, yamux in
test_yamux), run over a client and a server session on a socketpair."""
import gevent


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
