"""Admission: which client addresses a service accepts (GOST x/admission, spec §6.2).

Rules are IPs, CIDRs and (beyond GOST) IP ranges; any other entry is a host name, resolved
once when the rules are (re)built — GOST resolves admission names too — and a name that does
not resolve is dropped. Blacklist (default): a match is denied. Whitelist: only a match is
admitted (so an empty whitelist admits nobody). A group (``admission`` plus ``admissions``)
denies when any member denies. The Service closes a denied connection without a word.
"""
import gevent
from gevent import socket

from .group import LateGroup, UnreadSource
from .matcher import Matcher, go_split_host_port, is_ip_rule
from .source import LineSource

#: seconds allowed to resolve one admission name at build/reload time
RESOLVE_TIMEOUT = 5.0


def resolve_all(name, timeout=RESOLVE_TIMEOUT):
    """Every address ``name`` resolves to ([] on failure or timeout)."""
    with gevent.Timeout(timeout, False):
        try:
            infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError):
            return []
        return sorted({i[4][0].split("%", 1)[0] for i in infos})
    return []


def admission_rules(lines, resolve=resolve_all):
    """Entries → the IP rules a Matcher takes (names replaced by their addresses)."""
    out = []
    for line in lines:
        p = str(line).strip()
        if not p:
            continue
        if is_ip_rule(p):
            out.append(p)
        else:
            out.extend(resolve(p))
    return out


class Admission:
    def __init__(self, name, patterns=(), whitelist=False, file="", reload=0.0, log=None,
                 resolve=resolve_all, sources=(), push=False):
        self.name = name
        self.whitelist = bool(whitelist)
        self.source = LineSource([str(p) for p in patterns], file=file, reload=reload,
                                 parse=lambda lines: Matcher(admission_rules(lines, resolve)),
                                 name=name, log=log, sources=sources, push=push)

    def close(self):
        self.source.close()

    def admit(self, address, service=""):
        """``address`` is the client's ``ip:port`` / ``[v6]:port`` / bare IP."""
        if not address:
            return True
        hp = go_split_host_port(address)
        host = hp[0] if hp is not None and hp[0] else address
        m = self.source.value()
        if self.source.pending:
            raise UnreadSource("admissions", self.name)   # rules unknown: refused, with a log line
        hit = m.match(host)
        return hit if self.whitelist else not hit

    def __repr__(self):
        return f"Admission({self.name!r}, whitelist={self.whitelist})"


class AdmissionGroup(LateGroup):
    """Admissions of a service; any member that refuses refuses."""

    kind = "admissions"

    def admit(self, address, service=""):
        return all(m.admit(address, service) for m in self._live())
