"""Prometheus metrics (owned by the metrics part of issue 14). Until it lands: the module
functions other parts call, as no-ops (metrics off costs nothing)."""


def recorder_record(recorder):
    """gost_recorder_records_total{recorder}: one record sent to ``recorder``."""
