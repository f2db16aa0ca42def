"""GOST's ``mux.*`` metadata (x/internal/util/mux Config) and the session it makes: smux
version 1 or 2, or yamux, over any conn.

Rules:
1. Keys and defaults as GOST 3.3: ``mux.type`` smux (default) or yamux; ``mux.version`` 1
   (mtls, mws, mwss, BIND sessions) or 2 (mtcp's default); smux's keepalive 10s/30s, frame
   32768, receive buffer 4 MiB; yamux's keepalive 30s and stream window 256 KiB
   (``mux.maxStreamWindow``). The older ``mux*`` spellings are read too. One difference: the
   smux v2 stream buffer (the window this side grants per stream) defaults to 1 MiB, not
   GOST's 64 KiB: with 64 KiB every window is a round trip and v2 runs at half v1's speed.
   Each receiver announces its own window, so a GOST peer keeps its 64 KiB and interoperates.
2. What smux or yamux itself would refuse when a session starts (version not 1 or 2, a
   keepalive timeout shorter than its interval, a frame over 65535 bytes, a stream buffer
   larger than the receive buffer, a yamux window under 256 KiB) is a ConfigError when the
   component is built, not an error on every connection as in GOST.
"""
from ...errors import ConfigError
from ...protocols import smux, yamux

TYPES = ("smux", "yamux")
#: smux v2 per-stream window this side grants (rule 1); bounded by mux.maxReceiveBuffer
STREAM_BUFFER = 1024 * 1024


class MuxConfig:
    """Immutable after build."""

    __slots__ = ("type", "version", "frame_size", "max_receive", "max_stream_buffer", "max_stream_window",
                 "keepalive_interval", "keepalive_timeout")

    def __init__(self, type="smux", version=1, frame_size=smux.DEFAULT_FRAME_SIZE, max_receive=4 * 1024 * 1024,
                 max_stream_buffer=STREAM_BUFFER, max_stream_window=yamux.INITIAL_WINDOW, keepalive_interval=None,
                 keepalive_timeout=30.0):
        self.type = type
        self.version = version
        self.frame_size = frame_size
        self.max_receive = max_receive
        self.max_stream_buffer = max_stream_buffer
        self.max_stream_window = max_stream_window
        if keepalive_interval is None:
            keepalive_interval = 30.0 if type == "yamux" else 10.0
        self.keepalive_interval = keepalive_interval
        self.keepalive_timeout = keepalive_timeout

    @classmethod
    def from_md(cls, md, version=1):
        """GOST 3.x's ``mux.*`` keys, or the older ``mux*`` spellings; ``version`` is the
        transport's default smux version (rule 1)."""
        kind = (md.str("mux.type", "muxType", default="smux") or "smux").lower()
        if kind not in TYPES:
            raise ConfigError("metadata.mux.type", f"mux type {kind!r} is not supported (smux or yamux)")
        version = md.int("mux.version", "muxVersion", default=0) or version
        if kind == "smux" and version not in (1, 2):
            raise ConfigError("metadata.mux.version", f"smux version {version} is not supported (1 or 2)")
        d = cls(type=kind)
        interval = 0.0 if md.bool("mux.keepaliveDisabled", "muxKeepAliveDisabled") else (
            md.duration("mux.keepaliveInterval", "muxKeepAliveInterval", default=0) or d.keepalive_interval)
        max_receive = md.int("mux.maxReceiveBuffer", "muxMaxReceiveBuffer", default=0) or d.max_receive
        c = cls(type=kind, version=version,
                frame_size=md.int("mux.maxFrameSize", "muxMaxFrameSize", default=0) or d.frame_size,
                max_receive=max_receive,
                # the default window never exceeds a smaller receive buffer set by the user
                max_stream_buffer=md.int("mux.maxStreamBuffer", "muxMaxStreamBuffer", default=0)
                or min(d.max_stream_buffer, max_receive),
                max_stream_window=md.int("mux.maxStreamWindow", "muxMaxStreamWindow", default=0)
                or d.max_stream_window,
                keepalive_interval=interval,
                keepalive_timeout=md.duration("mux.keepaliveTimeout", "muxKeepAliveTimeout", default=0)
                or d.keepalive_timeout)
        c.check()
        return c

    def check(self):
        """Rule 2 (smux's and yamux's VerifyConfig)."""
        if self.type == "yamux":
            if self.max_stream_window < yamux.INITIAL_WINDOW:
                raise ConfigError("metadata.mux.maxStreamWindow", f"the yamux stream window must be at least "
                                                                  f"{yamux.INITIAL_WINDOW} bytes")
            return
        if not 0 < self.frame_size <= smux.MAX_PAYLOAD:
            raise ConfigError("metadata.mux.maxFrameSize", f"the smux frame size must be 1 … {smux.MAX_PAYLOAD}")
        if self.keepalive_interval > 0 and self.keepalive_timeout < self.keepalive_interval:
            raise ConfigError("metadata.mux.keepaliveTimeout", "the keepalive timeout must not be shorter "
                                                               "than the keepalive interval")
        if self.max_stream_buffer > self.max_receive:
            raise ConfigError("metadata.mux.maxStreamBuffer", "the stream buffer must not be larger than "
                                                              "the receive buffer (mux.maxReceiveBuffer)")
        if self.max_receive <= 0 or self.max_stream_buffer <= 0:
            raise ConfigError("metadata.mux.maxReceiveBuffer", "buffers must be positive")

    def session(self, conn, client, log=None):
        """A new session of this type over ``conn`` (a client's must be ``start()``-ed)."""
        if self.type == "yamux":
            from .yamux import Session
        else:
            from .smux import Session
        return Session(conn, client, config=self, log=log)
