"""Where policy objects get their items: :mod:`gostg.loader.source` (inline items, ``file``,
``redis``, ``http``). Kept under this name for the objects that import it from here."""
from ..loader.source import LineSource, read_lines

__all__ = ["LineSource", "read_lines"]
