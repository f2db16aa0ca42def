"""Per-connection context: ids, addresses and a logger bound to them."""
import itertools
import os

_counter = itertools.count(1)
_prefix = os.urandom(4).hex()


def new_sid():
    """Short unique connection id (GOST uses xid; any process-unique string serves)."""
    return f"{_prefix}{next(_counter):08x}"


class Context:
    __slots__ = ("sid", "service", "src", "peer", "local", "target", "log", "client_id", "stats", "proxied_dst",
                 "meter")

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
        #: the connection's metrics tally (observe/metrics.py Tally) while metrics are on, else None
        self.meter = None
        # GOST's fields: remote is the socket's peer, client the (PROXY header's) client
        self.log = log.bind(sid=self.sid, remote=self.peer, local=local, client=src)

    @property
    def client_ip(self):
        return self.src.rsplit(":", 1)[0].strip("[]")

    def stats_bytes(self, inp, out):
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
