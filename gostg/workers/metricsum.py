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


def _lines(text):
    """An exposition → ("head", family, kind, line) for HELP/TYPE lines (kind: the TYPE's type,
    or "" for HELP) and ("sample", key, name, value) for samples; anything else is skipped."""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                kind = parts[3].strip() if parts[1] == "TYPE" and len(parts) == 4 else ""
                yield "head", parts[2], kind, line
            continue
        key, _, val = line.rpartition(" ")
        v = _value(val)
        if key and v is not None:
            yield "sample", key, key.split("{", 1)[0], v


def merge(texts):
    """Several expositions → one (families in first-seen order, each family's HELP/TYPE once)."""
    families = {}   # family → {"head": [lines], "samples": {key: value}}
    for text in texts:
        for what, a, b, c in _lines(text):
            if what == "head":
                fam = families.setdefault(a, {"head": [], "samples": {}})
                if not any(h.split(None, 2)[1] == c.split(None, 2)[1] for h in fam["head"]):
                    fam["head"].append(c)
                continue
            key, name, v = a, b, c
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


#: family types whose samples only grow while their process lives (a histogram's buckets, sum
#: and count; a summary's sum and count, not its quantiles)
MONOTONIC = ("counter", "histogram", "summary")


class Carry:
    """The last reported counters of workers that are gone: added to every later sum, so the
    group's counters never go back when a worker dies and a new one starts from zero (to
    Prometheus that would be a counter reset, and ``rate()`` would count the drop as a whole
    new total). What a dead worker counted after its last report is lost; the sum never falls.
    Its gauges (open connections, memory) are not carried: they ended with it."""

    def __init__(self):
        self.heads = {}     # family → its HELP/TYPE lines
        self.samples = {}   # sample key → value

    def add(self, text):
        """A dead worker's last exposition: its monotonic samples join the carried ones."""
        kinds, heads = {}, {}
        for what, a, b, c in _lines(text):
            if what == "head":
                heads.setdefault(a, []).append(c)
                if b:
                    kinds[a] = b
                continue
            key, name, v = a, b, c
            fam = _family(name, kinds)
            if kinds.get(fam) not in MONOTONIC or 'quantile="' in key or name.endswith("_created"):
                continue
            self.heads.setdefault(fam, heads.get(fam, []))
            self.samples[key] = self.samples.get(key, 0.0) + v

    def text(self):
        """The carried samples as an exposition (to merge with the live workers')."""
        out = [h for lines in self.heads.values() for h in lines]
        out.extend(f"{k} {_fmt(v)}" for k, v in self.samples.items())
        return "\n".join(out) + "\n" if self.samples else ""


def _sum(a, b):
    return a + b
