"""A ``-C`` source that is an ``http://`` or ``https://`` URL (GOST's parser takes those).

GOST's fetch, kept: one plain ``GET``, 30 s for the whole exchange, a 200 answer only, a body of
at most 10 MiB; JSON or YAML chosen by the Content-Type, then by the URL path's extension, else
YAML. Like Go's client: redirects are followed (at most 10), ``HTTP(S)_PROXY``/``NO_PROXY`` are
honoured, ``https`` is verified against the system's CA store (``SSL_CERT_FILE`` /
``SSL_CERT_DIR`` choose another) and ``user:pass@`` in the URL is sent as Basic auth (and
never printed). Safer than Go's: those credentials are not carried across a redirect.

The standard library's ``urllib.request`` does the work: in a serving process its sockets and
TLS are gevent's (the command line patches before it loads anything), so a slow server holds
one greenlet, not the process; ``--check`` and ``-O`` do not patch and simply block. Only
``urllib.parse`` is imported until a URL is fetched. ``GOSTG_CONFIG_URL_TIMEOUT`` (a duration)
replaces the 30 s.
"""
import os
import sys
import time
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ConfigError

TIMEOUT = 30.0                 # GOST: the shared client's Timeout (connect, redirects, body)
TIMEOUT_ENV = "GOSTG_CONFIG_URL_TIMEOUT"
MAX_SIZE = 10 << 20            # GOST: larger bodies are refused
_CHUNK = 64 << 10
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def is_url(s):
    """Whether a ``-C`` value is a remote source: scheme http or https and a host (Go's
    ``url.Parse`` + ``Scheme``/``Host`` test)."""
    try:
        u = urlsplit(s.strip())
        return u.scheme.lower() in ("http", "https") and bool(u.netloc.rpartition("@")[2])
    except ValueError:
        return False


def shown(url):
    """The URL as logs and errors print it: without ``user:pass@``."""
    u = urlsplit(url.strip())
    return urlunsplit(u._replace(netloc=u.netloc.rpartition("@")[2]))


def detect_format(content_type, url):
    """→ "json" or "yaml": the media type first, then the path's extension, else YAML."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in JSON_TYPES:
        return "json"
    if media in YAML_TYPES:
        return "yaml"
    ext = urlsplit(url).path.rpartition("/")[2].rpartition(".")
    return "json" if ext[1] and ext[2].lower() == "json" else "yaml"


def _gevent_sockets():
    """Whether the socket module is gevent's (a serving process): then a gevent.Timeout bounds
    the whole fetch. gevent is not imported for the answer (``--check`` never loads it)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def _reason(exc):
    """A short, stable text for a failed fetch (the -R loop logs each distinct one once)."""
    import http.client
    import socket
    import ssl
    import urllib.error

    if isinstance(exc, http.client.IncompleteRead):   # its text has byte counts: not stable
        return "connection closed before the whole body arrived"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".rstrip()
    r = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(r, ssl.SSLCertVerificationError):
        return f"TLS certificate not verified: {r.verify_message or r.reason}"
    if isinstance(r, ssl.SSLError):
        return f"TLS handshake failed: {r.reason or r}"
    if isinstance(r, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(r, socket.gaierror):
        return f"cannot resolve host: {r.strerror or r}"
    if isinstance(r, OSError) and r.strerror:
        return r.strerror
    return str(r) or type(r).__name__


def _get(url, timeout, limit, deadline):
    """The GET itself → (body bytes, Content-Type). Raises what urllib raises, or ConfigError."""
    import base64
    import http.client
    import urllib.request

    from .. import __version__

    u = urlsplit(url)
    userinfo, at, host = u.netloc.rpartition("@")
    req = urllib.request.Request(urlunsplit(u._replace(netloc=host)), method="GET",
                                 headers={"User-Agent": f"gostg/{__version__}"})
    if at:
        user, _, password = userinfo.partition(":")
        token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
        req.add_unredirected_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > limit:
            raise ConfigError(shown(url), f"config exceeds the maximum size of {limit} bytes")
        body = bytearray()
        while True:
            # read1: one receive at a time, so the deadline is looked at between receives
            chunk = resp.read1(_CHUNK)
            if not chunk:
                if resp.length:   # read1 does not say that the peer closed early: a cut document
                    raise http.client.IncompleteRead(bytes(body), resp.length)
                break
            body += chunk
            if len(body) > limit:
                raise ConfigError(shown(url), f"config exceeds the maximum size of {limit} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError("timed out")
        return bytes(body), resp.headers.get("Content-Type", "")


def timeout_from_env():
    """``GOSTG_CONFIG_URL_TIMEOUT`` (a Go duration, e.g. ``5s``; gostg's, GOST has no such knob)
    → seconds, else GOST's 30 s. A config server on the same host may want less."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return TIMEOUT
    from .metadata import parse_duration

    seconds = parse_duration(raw, TIMEOUT_ENV)
    if seconds <= 0:
        raise ConfigError(TIMEOUT_ENV, f"must be a positive duration, not {raw!r}")
    return seconds


def get(url, timeout, limit=MAX_SIZE):
    """GET ``url`` within ``timeout`` seconds → (body bytes, Content-Type). Raises OSError whose
    text says what went wrong (``_reason``), or ConfigError for a body over ``limit`` bytes."""
    import http.client
    import urllib.error

    deadline = time.monotonic() + timeout
    try:
        if _gevent_sockets():
            import gevent

            # the whole exchange, as Go's Client.Timeout: a server that trickles a byte a
            # second cannot hold the reload for longer
            with gevent.Timeout(timeout, TimeoutError("timed out")):
                return _get(url, timeout, limit, deadline)
        # unpatched (--check, -O, an unpatched embedding): each receive waits at most
        # ``timeout``, and the deadline is checked between them
        return _get(url, timeout, limit, deadline)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()   # its body is not read: the connection goes
        raise OSError(_reason(exc)) from None


def fetch(url, timeout=None, limit=MAX_SIZE):
    """GET a config document → (text, "json" or "yaml"). Every failure is a ConfigError whose
    path is the URL (credentials left out) and whose message says what went wrong."""
    where = shown(url)
    if timeout is None:
        timeout = timeout_from_env()
    try:
        body, ctype = get(url, timeout, limit)
    except OSError as exc:
        raise ConfigError(where, f"cannot fetch config: {exc}") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(where, f"cannot read config: not UTF-8 text (byte {exc.start})") from None
    return text, detect_format(ctype, url)


__all__ = ["is_url", "shown", "detect_format", "get", "fetch", "timeout_from_env", "TIMEOUT", "MAX_SIZE"]
