"""GOST's data sources for loader-capable objects: inline items, ``file``, ``redis``, ``http``."""
