"""One JSON object per poll on stdout, for log pipelines that parse JSON (Datadog logs, Better Stack, ...).

    {"time": "2026-11-22T21:00:00.123Z", "queues": {"default": {"size": 3, "latency": 12.345}},
     "totals": {"enqueued": 3, ..., "metrics.up": 1}, "counts": {"jobs.processed": 30},
     "process_type": {"worker": {"process.count": 2, ...}}, "job_class": {"ReportJob": {"job.processed": 5, ...}}}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from sidekiq_metrics.metrics import Measurements


def iso_time(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


class JsonOutput:
    def __init__(self, write: Callable[[list[str]], None]) -> None:
        self.write = write

    def emit(self, measurements: Measurements, at: float) -> None:
        queues: dict[str, dict[str, float]] = {}
        totals: dict[str, float] = {}
        counts: dict[str, float] = {}
        labelled: dict[str, dict[str, dict[str, float]]] = {}  # e.g. {"job_class": {"ReportJob": {...}}}
        for sample in measurements:
            value = round(sample.value, 3)
            label = sample.metric.label
            if sample.queue is not None:
                queues.setdefault(sample.queue, {})[sample.name] = value
            elif label and sample.subject is not None:
                labelled.setdefault(label, {}).setdefault(sample.subject, {})[sample.metric.bare_name] = value
            else:
                (counts if sample.delta else totals)[sample.name] = value
        # ensure_ascii: any queue name, even one that is not UTF-8, stays one valid line
        record: dict[str, object] = {"time": iso_time(at), "queues": queues, "totals": totals, "counts": counts,
                                     **labelled}
        self.write([json.dumps(record, ensure_ascii=True, separators=(",", ":"))])
