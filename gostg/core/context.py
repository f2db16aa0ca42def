"""Per-connection context: ids, addresses and a logger bound to them."""
import itertools
import os

_counter = itertools.count(1)
_prefix = os.urandom(4).hex()


def new_sid():
    """Short unique connection id (GOST uses xid; any process-unique string serves)."""
    return f"{_prefix}{next(_counter):08x}"


class Context:
    __slots__ = ("sid", "service", "src", "local", "target", "log", "client_id", "stats")

    def __init__(self, service, src, local, log, stats=None):
        self.sid = new_sid()
        self.service = service
        self.src = src          # client address "ip:port"
        self.local = local      # local address the client reached
        self.target = ""        # where the handler is taking the client
        self.client_id = ""     # set by auth; feeds the hash selector
        self.stats = stats
        self.log = log.bind(sid=self.sid, remote=src, local=local)

    @property
    def client_ip(self):
        return self.src.rsplit(":", 1)[0].strip("[]")

    def stats_bytes(self, inp, out):
        if self.stats is not None:
            self.stats.input_bytes += inp
            self.stats.output_bytes += out
