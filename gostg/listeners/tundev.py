"""A Linux TUN (or TAP) device: opened with TUNSETIFF, configured with iproute2, read and
written as whole IP packets (TAP: Ethernet frames) from gevent.

Why ``ip`` (iproute2) for addresses, MTU, link state and routes rather than ioctls: the ioctl
interface (SIOCSIFADDR, SIOCADDRT) covers IPv4 only and IPv6 needs netlink; GOST uses netlink
(vishvananda/netlink), and ``ip`` speaks the same netlink messages for both families, with
error texts a user knows. It runs as a ``gevent.subprocess`` (the hub is not blocked), once per
device, never per packet.

Rules:
1. The device is opened ``IFF_TUN | IFF_NO_PI``: each read is one IP packet, each write one
   packet, no 4-byte packet-information prefix. The fd is non-blocking and close-on-exec.
2. Opening is a few non-blocking syscalls (it may run inside a network-namespace window,
   gostg.core.netns rule 1); configuring runs ``ip`` afterwards, in the same namespace.
3. An address that cannot be added is logged and skipped, a route that cannot be set fails the
   device (GOST's createTun does the same).
4. Every failure of the device, and its closing, is :class:`DeviceGone` (an EOFError), so a
   tunnel tells "the device is gone" from "the peer failed". ``close()`` wakes a greenlet
   waiting on the fd before the fd is closed (the number could be reused at once), and is
   idempotent. Closing the fd removes the device, its
   addresses and its routes (the kernel does it).
"""
import errno
import fcntl
import os
import struct

from gevent import subprocess
from gevent.hub import get_hub

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
_IFREQ = struct.Struct("16sH22x")   # struct ifreq: name, flags, the union's rest

#: seconds one ``ip`` command may take
IP_TIMEOUT = 10.0


def available():
    """Can this process create TUN devices (the device node exists and ``ip`` is installed)?"""
    from shutil import which
    return os.path.exists(TUN_PATH) and which("ip") is not None


def open_tun(name="", tap=False):
    """→ ``(fd, name)`` of a new TUN device, or TAP with ``tap`` (Ethernet frames instead of IP
    packets); the kernel picks ``tunN``/``tapN`` for an empty name."""
    raw = name.encode()
    if len(raw) >= IFNAMSIZ:
        raise OSError(errno.EINVAL, f"tun: device name {name!r} longer than {IFNAMSIZ - 1} bytes")
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"open {TUN_PATH}: {exc.strerror}{_hint(exc)}") from None
    try:
        res = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(raw, (IFF_TAP if tap else IFF_TUN) | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise OSError(exc.errno, f"create device {name or ('tap%d' if tap else 'tun%d')}: "
                                 f"{exc.strerror}{_hint(exc)}") from None
    return fd, _IFREQ.unpack(res)[0].rstrip(b"\0").decode()


def _hint(exc):
    if exc.errno in (errno.EPERM, errno.EACCES):
        return " (needs root or CAP_NET_ADMIN)"
    if exc.errno == errno.EBUSY:
        return " (a device of that name is open elsewhere)"
    return ""


def ip_command(netns=""):
    """The argv prefix of an ``ip`` command run in namespace ``netns`` ("" = ours)."""
    if not netns:
        return ["ip"]
    if netns.startswith("/"):
        return ["nsenter", f"--net={netns}", "ip"]
    return ["ip", "-n", netns]


def run_ip(args, netns=""):
    """Run ``ip args…``; OSError with ip's own message when it fails."""
    run(ip_command(netns) + list(args), "iproute2")


def run(argv, package):
    """Run a system command; OSError with its own message when it fails (or is missing:
    ``package`` names what to install)."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT)
    except FileNotFoundError:
        raise OSError(errno.ENOENT, f"{argv[0]}: command not found (the tun listener needs {package})") from None
    except subprocess.TimeoutExpired:
        raise OSError(errno.ETIMEDOUT, f"{' '.join(argv)}: no answer in {IP_TIMEOUT:g}s") from None
    if p.returncode != 0:
        raise OSError(errno.EIO, f"{' '.join(argv)}: {(p.stderr or p.stdout).strip()}")


def configure(name, nets, mtu, routes, netns="", log=None, dns=()):
    """Addresses (``ipaddress`` interfaces), MTU, link up, then ``routes``: (network, gateway
    or "") pairs; a route without a gateway goes to the device (rule 3); then ``dns`` servers
    for the device with systemd-resolved's ``resolvectl`` (GOST: its failure fails the device;
    resolved is reached over D-Bus, so no namespace applies)."""
    for net in nets:
        try:
            run_ip(["addr", "add", str(net), "dev", name], netns)
        except OSError as exc:
            if log is not None:
                log.error(str(exc))
    run_ip(["link", "set", "dev", name, "mtu", str(mtu), "up"], netns)
    for net, gw in routes:
        target = ["via", gw] if gw else ["dev", name]
        run_ip(["route", "replace", str(net), *target], netns)
    if dns:
        if log is not None:
            log.debug(f"resolvectl dns {name} {' '.join(dns)}")
        run(["resolvectl", "dns", name, *dns], "systemd-resolved's resolvectl for dns")


class DeviceGone(EOFError):
    """The TUN device failed or was closed (rule 4)."""


class TunDevice:
    """One open TUN device: ``read()`` → one packet (bytes), ``write(packet)``."""

    is_packet = True
    multiplex = False

    def __init__(self, fd, name, mtu, bufsize=65535):
        self.fd = fd
        self.name = name
        self.mtu = mtu
        self.bufsize = bufsize
        self.closed = False
        self.hub = get_hub()
        self._rw = self.hub.loop.io(fd, 1)
        self._ww = self.hub.loop.io(fd, 2)

    def read(self):
        return self._io(os.read, self.bufsize, self._rw, "read")

    def write(self, packet):
        return self._io(os.write, packet, self._ww, "write")

    def _io(self, call, arg, watcher, what):
        while True:
            if self.closed:
                raise DeviceGone(f"tun device {self.name} closed")
            try:
                return call(self.fd, arg)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise DeviceGone(f"tun device {self.name}: {what}: {exc.strerror or exc}") from exc
            self.hub.wait(watcher)

    def close(self):
        if self.closed:
            return
        self.closed = True
        err = DeviceGone(f"tun device {self.name} closed")
        for w in (self._rw, self._ww):
            self.hub.cancel_wait(w, err, True)
        os.close(self.fd)
        self.fd = -1
