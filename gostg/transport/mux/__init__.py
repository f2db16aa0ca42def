"""Multiplexed sessions: many streams over one conn (smux, HTTP/2)."""
