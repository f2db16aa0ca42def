"""The ``tap`` handler (GOST ``x/handler/tap``): Ethernet frames between a TAP device and peers
over UDP — a virtual switch.

Rules (GOST's):
1. Client mode (a forwarder node: ``tap://:0/SERVER:8421``): every frame from the device goes
   to the server, every datagram from the server to the device (a datagram shorter than an
   Ethernet header is dropped with a warning: gostg checks, GOST writes it).
2. Server mode (``tap://:8421``): a UDP socket on the listener's address. A frame from a client
   teaches "its source MAC is at that UDP address"; a broadcast frame is copied to every other
   client; a frame whose destination MAC is a known client goes there, else to the device.
   A frame from the device goes to its destination's client, a broadcast to every client, an
   unknown destination is dropped.
3. A peer that fails is tried again after 1 s, 2 s … up to 6 s; the device failing ends the
   handler. GOST also exits the whole process then (``os.Exit(0)``): gostg does not.
4. With handler ``auth`` (method:password, GOST's: ``tap://aes-128-gcm:secret@…``) and
   optionally ``key`` (the raw key), each datagram is a Shadowsocks AEAD packet (salt ‖
   sealed frame, go-shadowsocks2's packet format, no target address). A datagram that fails to
   open is dropped with a warning (GOST ends the peer session and dials again). A key without a
   password encrypts too (GOST then runs unencrypted).
"""
import time

import gevent

from ..core import netns
from ..core.registry import handlers
from ..errors import DialError, ProtocolError
from ..protocols import ethernet, shadowsocks as ss
from ..protocols.addr import split_host_port
from ..relay.udp import MAX_DATAGRAM, UDPSocket, _fmt, bind_udp
from .base import Handler
from .ss import make_cipher
from .tun import device_packets, session

BACKOFF_MIN, BACKOFF_MAX = 1.0, 6.0
#: MAC addresses a server remembers (frames teach them without authentication)
MAX_MACS = 65536


@handlers.register("tap")
class TapHandler(Handler):

    def __init__(self, md, options):   # GOST's tap handler reads no readTimeout nor sniffing
        self.md, self.options, self.router = md, options, options.router
        self.sniffing = False
        # rule 4: handler auth = method:password (and ``key``) seal every datagram
        self.cipher = make_cipher(options.auth, md.str("key"))
        self.macs = {}   # server mode: MAC (6 bytes) → client sockaddr

    def _seal(self, frame):
        return ss.encrypt_packet(self.cipher, frame) if self.cipher is not None else frame

    def _open(self, data, ctx, sa):
        """→ (frame, its ethernet.header fields) of a datagram, or (None, None) (logged) when
        it fails to decrypt or is no frame."""
        try:
            frame = ss.decrypt_packet(self.cipher, data) if self.cipher is not None else data
            return frame, ethernet.header(frame)
        except ProtocolError as exc:   # (sa formatted only here: a server's is a sockaddr)
            ctx.log.warning(f"tap: {exc} from {_fmt(sa) if isinstance(sa, tuple) else sa}, discarded")
            return None, None

    def handle(self, conn, ctx):
        if getattr(conn, "config", None) is None:
            ctx.log.error("tap: wrong connection type (the tap handler needs the tap listener)")
            return
        ctx.log.info(f"{ctx.src} <> {ctx.local}")
        t0 = time.monotonic()
        fw = self.options.forwarder
        node = fw.select(ctx, "") if fw is not None else None
        if node is not None:
            ctx.target = f"{node.addr}/udp"
        delay = BACKOFF_MIN
        try:
            while not conn.closed:
                try:
                    peer = self._dial(node, conn, ctx) if node is not None else self._listen(conn, ctx)
                except (DialError, OSError) as exc:
                    ctx.log.error(f"tap: {exc}", dst=ctx.target or None)
                else:
                    try:
                        jobs = self._client_jobs if node is not None else self._server_jobs
                        if not session(conn, ctx, lambda n: jobs(conn, peer, node, ctx, n), "tap: udp",
                                       ctx.target or None):
                            return
                        delay = BACKOFF_MIN
                    finally:
                        peer.close()
                if conn.closed:
                    return
                gevent.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        finally:
            ctx.log.info(f"{ctx.src} >< {ctx.local}", duration=round(time.monotonic() - t0, 6))

    def _dial(self, node, dev, ctx):
        peer = self.router.dial("udp", "", ctx)   # GOST: an association, each frame to the server
        if isinstance(peer, UDPSocket):   # direct: take datagrams from the server only
            peer.connect(node.addr)
        return peer

    def _listen(self, dev, ctx):
        host, port = split_host_port(getattr(dev, "laddr", "") or ":0", 0)
        with netns.inside(self.options.netns):
            sock = bind_udp(host, port)
        ctx.log.info(f"tap: listening on udp {_fmt(sock.getsockname())}")
        return sock

    def _client_jobs(self, dev, peer, node, ctx, n):
        def up():
            while True:
                frame = dev.read()
                n[0] += len(frame)
                peer.write_to(self._seal(frame), node.addr)

        def down():
            while True:
                data, sa = peer.read_from()
                frame, _ = self._open(data, ctx, sa)
                if frame is not None:
                    dev.write(frame)
                    n[1] += len(frame)
        return [up, down]

    def _server_jobs(self, dev, sock, node, ctx, n):
        macs = self.macs

        def send_all(frame, but=None):
            data = self._seal(frame)
            for sa in list(macs.values()):
                if sa != but:
                    sock.sendto(data, sa)

        def from_device():
            for frame, (dst, src, et) in device_packets(dev, n, ethernet.header, ctx):
                if dst == ethernet.BROADCAST:
                    send_all(frame)
                    continue
                sa = macs.get(dst)
                if sa is None:
                    ctx.log.debug(f"no route for {ethernet.mac_text(src)} -> {ethernet.mac_text(dst)} "
                                  f"{ethernet.ethertype_text(et)} {len(frame)}")
                    continue
                sock.sendto(self._seal(frame), sa)

        def from_udp():
            buf = bytearray(MAX_DATAGRAM)
            view = memoryview(buf)
            while True:
                size, sa = sock.recvfrom_into(buf)
                frame, fields = self._open(view[:size], ctx, sa)
                if frame is None:
                    continue
                dst, src, _ = fields
                old = macs.get(src)
                if old != sa:
                    if old is None and len(macs) >= MAX_MACS:
                        ctx.log.warning(f"tap: {MAX_MACS} MAC addresses known, {ethernet.mac_text(src)} not added")
                    else:
                        macs[src] = sa
                        ctx.log.debug(f"{'update' if old else 'new'} route: {ethernet.mac_text(src)} -> {_fmt(sa)}")
                if dst == ethernet.BROADCAST:
                    send_all(frame, but=sa)
                to = macs.get(dst)
                if to is not None:
                    sock.sendto(self._seal(frame), to)
                    continue
                dev.write(frame)
                n[1] += len(frame)
        return [from_device, from_udp]
