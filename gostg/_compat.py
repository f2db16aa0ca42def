"""Every use of another library's private names, in one place.

Each entry says what we reach for, why no public API does it, and who uses it. A library
upgrade that renames one of them fails its own test in ``tests/unit/test_compat.py`` (which
names the library and the name) instead of breaking a relay somewhere at run time.

========== ================================ ====================================================
library    private name                     used by, and why
========== ================================ ====================================================
gevent     ``gevent.socket.socket._sock``   ``raw_socket``: the libev fast paths (relay/tcp.py,
                                            relay/udp.py, listeners/udp.py,
                                            handlers/httpfast.py) call the real
                                            non-blocking stdlib socket from a watcher callback,
                                            without a greenlet switch per read or write.
gevent     ``gevent.socket.socket           ``io_watchers``: the TCP relay (relay/tcp.py) waits on
           ._read_event / ._write_event``   the two sockets' own io watchers, idle while its
                                            greenlet owns them, instead of making (and
                                            fd-checking) new ones for every tunnel; the HTTP
                                            fast path (handlers/httpfast.py) keeps them
                                            started across requests.
gevent     ``Hub.cancel_wait`` calling      httpfast's session is a watcher callback's
           ``callback.__self__.throw``      ``__self__``: a socket closed under it by another
                                            greenlet ends it with gevent's read error, as a
                                            parked greenlet (tests/unit/test_httpfast.py).
gevent     ``gevent.socket.socket._wait``   ``wait_readable``: the HTTP forward path
                                            (transport/buffered.py) parks on the socket's read
                                            watcher before a recv that could only fail with
                                            EAGAIN; gevent's own wait, with the socket's timeout.
gevent     ``Pool._semaphore``              ``release_pool_slot``: a detached tunnel
                                            (core/connpool.py) keeps its ended greenlet's pool
                                            slot and gives it back when it ends; the semaphore
                                            is what the accept loop's ``full()`` and restart
                                            watch, and Pool has no public "release a slot".
gevent     ``BaseServer._stop_event``       ``mark_server_stopped``: a retired service marks its
                                            server stopped, so a freed pool slot cannot restart
                                            accepting, without ``close()``, which would close
                                            the listening socket a successor adopted.
gevent     ``gevent.socket.socket._sock,     ``adopt_socket``: ``gostg.patch_socket`` (embed/patch.py)
           _read_event, _write_event, hub``  gives the socket an app is connecting the tunnel
                                            the Router made: the app's object then reads and
                                            writes the tunnel's own fd (no copy); no public API
                                            swaps the OS socket under a gevent socket (``dup2``
                                            onto its fd would leave the tunnel's epoll
                                            registration behind, a busy loop in libev).
hyperframe ``hyperframe.frame               ``patch_hyperframe_repr``: h2 builds every received
           ._raw_data_repr``                frame's repr for its trace log even when nothing
                                            logs; the original hex-encodes the whole payload
                                            (two thirds of an HTTP/2 transfer's CPU).
========== ================================ ====================================================
"""
from operator import attrgetter

#: ``raw_socket(gevent_socket)`` → the C-level ``_socket.socket`` under a gevent socket (after ``close``,
#: gevent's closed-socket stand-in, whose methods raise EBADF). A C-level getter: it runs
#: once per datagram on the UDP fast path.
raw_socket = attrgetter("_sock")

#: ``io_watchers(gevent_socket)`` → its ``(read, write)`` libev io watchers (``start(cb, *args)``,
#: ``stop()``); gevent makes both when it makes the socket and closes them with it.
io_watchers = attrgetter("_read_event", "_write_event")


def wait_readable(sock):
    """Wait until the gevent socket ``sock`` is readable (its timeout applies, as to ``recv``);
    a closed socket returns at once, and its next ``recv`` raises what it always raises."""
    ev = sock._read_event
    if ev is not None:
        sock._wait(ev)


def has_raw_socket(sock):
    """True when ``sock`` carries a stdlib socket ``raw_socket`` can take."""
    return hasattr(sock, "_sock")


def adopt_socket(dst, src):
    """The gevent socket ``dst`` (not connected, nobody waiting on it) takes over the OS socket
    of the gevent socket ``src``, with its watchers; ``dst``'s own OS socket is closed and
    ``src`` is left closed without closing what it gave away. ``dst`` keeps its timeout."""
    if dst.hub is not src.hub:
        raise ValueError("adopt_socket: the two sockets belong to different hubs")
    old, old_r, old_w = dst._sock, dst._read_event, dst._write_event
    dst._sock, dst._read_event, dst._write_event = src._sock, src._read_event, src._write_event
    src._sock = src._read_event = src._write_event = None   # src.close() is a no-op now
    for w in (old_r, old_w):
        if w is not None:
            w.close()
    old.close()


def release_pool_slot(pool):
    """Give back a slot of a gevent Pool whose greenlet left without releasing it."""
    pool._semaphore.release()


def mark_server_stopped(server):
    """Mark a gevent server stopped (``started`` becomes False) without closing its socket."""
    server._stop_event.set()


def _raw_data_repr(data):
    """hyperframe's own, without hex-encoding all of a 1 MiB frame to keep 20 characters.
    Same output."""
    if not data:
        return "None"
    r = bytes(data[:11]).hex()
    return "<hex:" + (r[:20] + "..." if len(r) > 20 else r) + ">"


#: hyperframe's original, kept by ``patch_hyperframe_repr`` (the test compares the two)
hyperframe_raw_data_repr = None


def patch_hyperframe_repr():
    """Install the cheap frame repr into hyperframe (idempotent)."""
    global hyperframe_raw_data_repr
    import hyperframe.frame
    if hyperframe.frame._raw_data_repr is not _raw_data_repr:
        hyperframe_raw_data_repr = hyperframe.frame._raw_data_repr
        hyperframe.frame._raw_data_repr = _raw_data_repr
