"""Late-bound groups of named policy objects (GOST's ``bypasses``, ``admissions`` …)."""


class LateGroup:
    """Members are names looked up on every use (a Web API change is seen by the next
    connection; an unknown name is skipped, as in GOST) or the objects themselves."""

    #: the Registries attribute the names are looked up in
    kind = ""

    def __init__(self, members, registries=None):
        self.members = [m for m in members if m]
        self.registries = registries

    @classmethod
    def of(cls, names, registries):
        """A group for ``names`` (None when there are none, so callers skip the check)."""
        names = [n for n in names if n]
        return cls(names, registries) if names else None

    def _live(self):
        out = []
        for m in self.members:
            if isinstance(m, str):
                m = getattr(self.registries, self.kind).get(m) if self.registries is not None else None
            if m is not None:
                out.append(m)
        return out

    def __repr__(self):
        return f"{type(self).__name__}({self.members!r})"
