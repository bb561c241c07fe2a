"""One JSON object per poll on stdout, for log pipelines that parse JSON (Datadog logs, Better Stack, ...).

    {"time": "2026-11-22T21:00:00.123Z", "queues": {"default": {"size": 3, "latency": 12.345}},
     "totals": {"enqueued": 3, ..., "metrics.up": 1}, "counts": {"jobs.processed": 30},
     "process_type": {"worker": {"process.count": 2, ...}}, "job_class": {"ReportJob": {"job.processed": 5, ...}}}
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from sidekiq_metrics.metrics import Measurements
from sidekiq_metrics.outputs import Recorded


def iso_time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


class JsonOutput:
    def __init__(self, write: Callable[[list[str]], None]) -> None:
        self.write = write

    def emit(self, measurements: Measurements, at: float) -> None:
        totals: dict[str, float] = {}
        counts: dict[str, float] = {}
        # by label, then its value: {"queue": {"default": {"size": 3}}, "job_class": {"ReportJob": {...}}}
        labelled: dict[str, dict[str, dict[str, float]]] = {"queue": {}}
        for sample in measurements:
            value = round(sample.value, 3)
            name, labels = sample.tagged()
            if labels:
                (label, subject), = labels
                labelled.setdefault(label, {}).setdefault(subject, {})[sample.metric.bare_name] = value
            else:
                (counts if sample.delta else totals)[name] = value
        # ensure_ascii: any queue name, even one that is not UTF-8, stays one valid line
        record: dict[str, object] = {"time": iso_time(at), "queues": labelled.pop("queue"), "totals": totals,
                                     "counts": counts, **labelled}
        self.write([json.dumps(record, ensure_ascii=True, separators=(",", ":"))])


def read_record(text: str) -> tuple[str, Recorded]:
    """A poll's time (ISO 8601, as written) and what it says, from one object this output wrote. Raises
    ValueError for anything else: no `time` or `queues`, or a value that is not a finite number."""
    try:
        record = json.loads(text)
        queues = record["queues"]
        recorded = Recorded(
            sizes={name: _finite(values["size"]) for name, values in queues.items() if "size" in values},
            waits={name: _finite(values["latency"]) for name, values in queues.items() if "latency" in values},
            totals={name: _finite(value) for name, value in record.get("totals", {}).items()},
            process_types={kind: {name: _finite(value) for name, value in crew.items()}
                           for kind, crew in record.get("process_type", {}).items()})
        at = record["time"]
        if not isinstance(at, str):
            raise TypeError(at)
    except (KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise ValueError(exc) from None
    return at, recorded


def _finite(value: object) -> float:
    """A number this output writes; NaN, infinities (JSON's NaN, 1e999) and anything else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or \
            abs(value) >= 1e18:
        raise ValueError(value)
    return float(value)
