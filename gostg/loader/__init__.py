"""Data sources shared by gostg's objects (the ``loaders`` part of issue 16 owns this package)."""
