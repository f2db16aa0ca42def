"""The UDP relay's fast path: datagrams moved from libev io callbacks, without a greenlet
switch per datagram.

Used when the upstream is a direct socket (:class:`gostg.udp.UDPSocket`) and the client side
can deliver datagrams by callback (a udp listener session, a SOCKS5 UDP relay socket): a
ping-pong through greenlets costs a hub switch per read on each side, which halved the round
trip rate against C proxies. Rules for the callbacks, which run in the hub:
1. Never block: sockets are read and written with non-blocking calls on the raw socket; a
   full send buffer drops the datagram (UDP may, and the kernel would too).
2. A name that is not cached yet is resolved in a greenlet of its own (rule 1).
3. Anything raised is caught, remembered and ends the relay; nothing escapes into the hub.
4. Every watcher is stopped before its socket can be closed (``fast_start`` returns the stop).
"""
import gevent
from gevent.event import Event

from .udp import UDPSocket

#: datagrams handled per readiness callback before giving the loop back
BATCH = 64


def eligible(client, upstream):
    return isinstance(upstream, UDPSocket) and getattr(client, "fast_capable", False)


def read_batch(raw, buf, deliver, fail):
    """Read what is ready on ``raw`` (a non-blocking socket) into ``deliver(n, sockaddr)``."""
    try:
        for _ in range(BATCH):
            try:
                n, sockaddr = raw.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionError:
                continue      # an ICMP error for an earlier datagram: the socket is fine
            deliver(n, sockaddr)
    except Exception as exc:  # rule 3
        fail(exc)


def watch(sock, callback):
    """Start a read watcher on ``sock`` calling ``callback()``; → stop function."""
    w = gevent.get_hub().loop.io(sock.fileno(), 1)
    w.start(callback)
    state = [w]

    def stop():
        if state:
            w = state.pop()
            w.stop()
            w.close()
    return stop


def relay(client, upstream, ctx=None, target=None, bypassed=None, idle=None):
    """As :func:`gostg.udp.relay` (same arguments and result), by callbacks."""
    counts = [0, 0]
    if ctx is not None:
        ctx.flow = counts   # Context.bytes() reads them live
    loop = gevent.get_hub().loop
    last = [loop.now()]
    done = Event()
    errors = []

    def fail(exc):
        errors.append(exc)
        done.set()

    def up(data, dst):
        try:
            if target:
                dst = target
            elif bypassed is not None and bypassed(dst):
                if ctx is not None:
                    ctx.log.debug("bypass", dst=dst, network="udp")
                return
            upstream.send_nowait(data, dst)
            counts[0] += len(data)
            last[0] = loop.now()
        except Exception as exc:  # rule 3
            fail(exc)

    def down(data, src):
        try:
            client.send_nowait(data, src)
            counts[1] += len(data)
            last[0] = loop.now()
        except Exception as exc:
            fail(exc)

    stops = []
    try:
        stops.append(upstream.fast_start(down, fail))
        stops.append(client.fast_start(up, done.set, fail))
        while not done.is_set():
            if idle:
                left = last[0] + idle - loop.now()
                if left <= 0:
                    break
                done.wait(left)
            else:
                done.wait()
    finally:
        for stop in stops:
            stop()
    if errors and ctx is not None and not isinstance(errors[0], (EOFError, OSError)):
        ctx.log.warning(f"udp relay: {errors[0]!r}")
    return counts[0], counts[1]
