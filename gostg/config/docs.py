"""The config reference, generated from the declared schema:
``python -m gostg.config.docs > docs/config-reference.md``."""
from . import schema as S


def _status(key):
    if key.status == S.UNBUILT_ERROR:
        return f"not built yet: **error** ([GOST]({S.docs_url(key.docs)}))"
    if key.status == S.UNBUILT_WARN:
        return f"not built yet: warning, not active ([GOST]({S.docs_url(key.docs)}))"
    if key.status == S.IGNORED:
        return "accepted, no effect"
    return ""


def _row(key):
    names = f"`{key.name}`" + "".join(f" / `{a}`" for a in key.aliases)
    kind = key.kind + (" (required)" if key.required else "")
    default = "" if key.default is None else f"`{key.default}`"
    extra = [x for x in (_status(key), key.meaning if key.meaning and not key.meaning.startswith(("ref:", "metadata:"))
                         else "", f"one of {', '.join(c for c in key.choices if c)}" if key.choices else "",
                         f"names a `{key.meaning[4:]}` object" if key.meaning.startswith("ref:") else "") if x]
    return f"| {names} | {kind} | {default} | {'; '.join(extra)} |"


def _table(spec):
    return ["| key | type | default | notes |", "|---|---|---|---|"] + [_row(k) for k in spec.values()]


def _objects(name, spec, seen, out):
    if id(spec) in seen:
        return
    seen.add(id(spec))
    out += [f"### {name}", ""] + _table(spec) + [""]
    for key in spec.values():
        sub = key.fields if key.fields is not None else key.item
        if isinstance(sub, dict) and sub and key.status == S.BUILT:
            _objects(f"{name}.{key.name}", sub, seen, out)


def render():
    from .. import builtins
    out = ["# gostg configuration reference", "",
           "Generated from `gostg/config/schema.py` by `python -m gostg.config.docs`; do not edit by hand.",
           "Keys are GOST's (case-insensitive, as GOST reads them). A key not listed here is reported as",
           "unknown with a did-you-mean; a GOST feature marked *not built yet* is an error when it decides who",
           "gets in or where traffic goes, and a warning (not active) when it only observes.", "",
           "## Objects", ""]
    seen = set()
    out += ["### top level", ""] + _table(S.TOP) + [""]
    for key in S.TOP.values():
        sub = key.fields if key.fields is not None else key.item
        if isinstance(sub, dict) and key.status == S.BUILT:
            _objects(key.name, sub, seen, out)
    out += ["## Component metadata", "",
            "Metadata of a service is checked against what its service, handler and listener read together",
            "(GOST's command line copies each query key into all three); a node's against its node,",
            "connector and dialer.", ""]
    for kind in ("service", "hop", "node"):
        out += [f"### {kind} metadata", ""] + _table(_merged(kind, "")) + [""]
    for kind, types in builtins.MODULES.items():
        for t in sorted(types):
            out += [f"### {kind} `{t}`", ""] + _table(_merged(kind, t)) + [""]
    for kind in ("handler", "listener", "connector", "dialer"):
        rest = sorted(S.GOST_TYPES[kind] - set(builtins.MODULES[kind]))
        out += [f"GOST {kind}s not built yet (an error naming GOST's page): {', '.join(rest)}.", ""]
    return "\n".join(out)


def _merged(kind, t):
    seen, spec = set(), {}
    for key in S.component_md(kind, t).values():
        if id(key) not in seen:
            seen.add(id(key))
            spec[key.name] = key
    return spec


if __name__ == "__main__":
    print(render(), end="")
