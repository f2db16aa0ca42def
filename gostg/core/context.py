"""Per-connection context: ids, addresses and a logger bound to them."""
import itertools
import os
import time

_counter = itertools.count(1)
_prefix = os.urandom(4).hex()


def new_sid():
    """Short unique connection id (GOST uses xid; any process-unique string serves)."""
    return f"{_prefix}{next(_counter):08x}"


def client_ip_of(src):
    """The IP of a client address ``ip:port`` / ``[ip6]:port``."""
    return src.rsplit(":", 1)[0].strip("[]")


#: ``Context.route`` of a direct connection (shared: a direct tunnel allocates no list)
DIRECT = ()


class Context:
    """One connection. The live-tunnel registry (``Service.tunnels``, the Web API's
    ``/api/connections``) reads ``started``, ``route``, ``target`` and :meth:`bytes`; each is
    one slot, set where it becomes known, so a tunnel pays a few pointers for being listed."""

    __slots__ = ("sid", "service", "src", "peer", "local", "target", "log", "client_id", "stats", "proxied_dst",
                 "started", "route", "flow", "task", "meter")

    def __init__(self, service, src, local, log, stats=None, peer=None):
        self.sid = new_sid()
        self.service = service
        self.src = src          # client address "ip:port" (a PROXY header's, when one came)
        self.peer = peer or src  # the socket's peer: differs from src behind a PROXY sender
        self.local = local      # local address the client reached
        self.proxied_dst = None  # the address a PROXY header says the client reached
        self.target = ""        # where the handler is taking the client
        self.client_id = ""     # set by auth; feeds the hash selector
        self.stats = stats
        self.started = time.time()
        #: node names of the chain route the router took (core/router.py); DIRECT when none
        self.route = DIRECT
        #: the relay's live counters (see :meth:`bytes`), None until bytes are relayed
        self.flow = None
        #: what runs the connection: its greenlet, or the detached tunnel (relay/tcp.py rule 6)
        #: that went on without it; ``Service.close_tunnel`` ends it
        self.task = None
        #: the connection's metrics tally (observe/metrics.py Tally) while metrics are on, else None
        self.meter = None
        # GOST's fields: remote is the socket's peer, client the (PROXY header's) client
        self.log = log.bind(sid=self.sid, remote=self.peer, local=local, client=src)

    @property
    def client_ip(self):
        return client_ip_of(self.src)

    def bytes(self):
        """→ ``(input, output)`` bytes so far (from the client, to the client), read from the
        counters the relay keeps anyway: nothing is counted for this."""
        f = self.flow
        if f is None:
            return 0, 0
        if type(f) is list:            # [in, out, …]: relay/tcp.py's generic pump, relay/udp*.py
            return f[0], f[1]
        if type(f) is not tuple:       # relay/tcp.py's detached tunnel
            f = f.up, f.down
        a, b = f
        if type(b) is list:            # handlers/http.py: (the client's Stream, [bytes sent to it])
            return a.received, b[0]
        return a.count, b.count        # relay/tcp.py's two _Direction

    def stats_bytes(self, inp, out):
        """The tunnel's end: its bytes go to the service's stats, and :meth:`bytes` reads 0
        from now on (``/api/status`` adds the open tunnels' bytes to the stats: never twice)."""
        self.flow = None
        if self.stats is not None:
            self.stats.input_bytes += inp
            self.stats.output_bytes += out
        if self.meter is not None:
            self.meter.bytes(inp, out)

    def stats_error(self):
        """The connection ended in an error (GOST's totalErrs; gost_service_handler_errors_total
        while metrics are on)."""
        if self.stats is not None:
            self.stats.total_errs += 1
        if self.meter is not None:
            self.meter.error()
