"""The cooperative standard library a gostg process serves with (the command line only: an
embedding app patches for itself, and :class:`gostg.Gost` never patches).

gostg and the libraries it drives block on sockets (and name lookups), TLS, ``select`` /
``selectors`` and ``time.sleep`` only: its own children and signals go through gevent's API
(``gevent.subprocess``, ``gevent.signal_handler``), it starts no thread of its own (gevent's
resolver pool uses real threads by design) and takes no lock across a switch. So those
modules are patched and ``threading``, ``os``, ``subprocess``, ``signal`` and ``queue`` are
not: patching them is about half of ``patch_all()``'s own work (``patch_thread`` also imports
``concurrent.futures``) for nothing a gostg process uses.

gevent offers every patch to the plugins that installed distributions declare as entry points,
and looks them up again for each module (a scan of every installed distribution's metadata,
about a dozen times per start). When no distribution but gevent itself declares one, the scan
is skipped; gevent's own plugin warns only about patching ``signal`` without ``os``, which is
not done here.

The hub's ``format_context`` (how a failed greenlet's context is printed) defaults to
``pprint.saferepr``, whose import pulls ``dataclasses`` and ``inspect`` into every start;
``repr`` prints the same for the contexts gostg's greenlets have (a greenlet, a server).
``GEVENT_FORMAT_CONTEXT`` still chooses.
"""
import os
import sys

#: gevent.monkey.patch_all() arguments: what a gostg process needs cooperative
PATCH = dict(socket=True, dns=True, ssl=True, select=True, time=True, aggressive=True,
             thread=False, os=False, subprocess=False, signal=False, queue=False, sys=False)

_PLUGIN_GROUP = b"[gevent.plugins."


def _third_party_plugins():
    """True if an installed distribution other than gevent may declare a gevent plugin (or
    if that cannot be told cheaply: a zip on sys.path, a finder that lists distributions)."""
    import importlib.machinery

    if any(hasattr(f, "find_distributions") and f is not importlib.machinery.PathFinder for f in sys.meta_path):
        return True
    for d in sys.path:
        try:
            entries = os.scandir(d or ".")
        except NotADirectoryError:
            return True     # a zip archive: importlib.metadata would look inside
        except OSError:
            continue
        with entries:
            for e in entries:
                if not e.name.endswith((".dist-info", ".egg-info")) or e.name.split("-", 1)[0] == "gevent":
                    continue
                try:
                    with open(os.path.join(e.path, "entry_points.txt"), "rb") as f:
                        if _PLUGIN_GROUP in f.read():
                            return True
                except OSError:
                    pass
    return False


def patch():
    """Make the modules gostg blocks on cooperative, once. A process that patched already
    (``patch_all()`` of a host app, or this) is left as it is."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return
    if "GEVENT_FORMAT_CONTEXT" not in os.environ:
        import gevent

        gevent.config.format_context = "builtins.repr"
    if _third_party_plugins():
        monkey.patch_all(**PATCH)
        return
    from gevent import events

    lookup = events.notify_and_call_entry_points
    events.notify_and_call_entry_points = events.notify   # subscribers yes, entry-point scan no
    try:
        monkey.patch_all(**PATCH)
    finally:
        events.notify_and_call_entry_points = lookup
