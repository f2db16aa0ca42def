"""The workers' Prometheus expositions (text format 0.0.4) → one: samples with the same name
and labels are summed (counters, gauges of open connections, histogram buckets, process CPU and
memory all add up across processes), except the few that describe one thing all workers share.

Pure text in, text out: no prometheus_client here."""
#: families whose samples are not a sum over processes
COMBINE = {
    "gost_services": max,             # worker 0 runs every service
    "gost_service_status": max,
    "python_info": max,
    "process_max_fds": max,
    "process_start_time_seconds": min,   # the group started with its first worker
}


def _value(text):
    try:
        return float(text)
    except ValueError:
        return None


def _fmt(v):
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _family(name, families):
    """The family a sample name belongs to (``x_bucket``, ``x_sum``, ``x_count`` → ``x``)."""
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count", "_total", "_created", "_info"):
        if name.endswith(suffix) and name[:-len(suffix)] in families:
            return name[:-len(suffix)]
    return name


def merge(texts):
    """Several expositions → one (families in first-seen order, each family's HELP/TYPE once)."""
    families = {}   # family → {"head": [lines], "samples": {key: value}}
    for text in texts:
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    fam = families.setdefault(parts[2], {"head": [], "samples": {}})
                    if not any(h.split(None, 2)[1] == parts[1] for h in fam["head"]):
                        fam["head"].append(line)
                continue
            key, _, val = line.rpartition(" ")
            v = _value(val)
            if not key or v is None:
                continue
            name = key.split("{", 1)[0]
            fam_name = _family(name, families)
            fam = families.setdefault(fam_name, {"head": [], "samples": {}})
            old = fam["samples"].get(key)
            if old is None:
                fam["samples"][key] = v
            else:
                fam["samples"][key] = COMBINE.get(fam_name, _sum)(old, v)
    out = []
    for fam in families.values():
        out.extend(fam["head"])
        out.extend(f"{k} {_fmt(v)}" for k, v in fam["samples"].items())
    return "\n".join(out) + "\n" if out else ""


def _sum(a, b):
    return a + b
