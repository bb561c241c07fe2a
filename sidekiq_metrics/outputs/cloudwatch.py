"""CloudWatch Embedded Metric Format: JSON lines that CloudWatch Logs turns into metrics, no API client.

One line per queue (dimension `Queue`: QueueSize, QueueLatency) and one for the totals (no dimension).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sidekiq_metrics.catalogue import Unit
from sidekiq_metrics.metrics.samples import Measurements, Sample

UNITS = {Unit.SECONDS: "Seconds", Unit.RATIO: "None", Unit.BOOLEAN: "None", Unit.MEGABYTES: "Megabytes",
         Unit.MILLISECONDS: "Milliseconds", Unit.PER_SECOND: "Count/Second"}  # every other unit counts things


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_"))


def metric_name(sample: Sample) -> str:
    """`jobs.processed` -> `JobsProcessed`, CloudWatch's usual spelling; a queue's `size` -> `QueueSize`; a
    labelled one without its label, which is a dimension: `process.count` -> `ProcessCount`."""
    return _camel(sample.tagged()[0])


def _dimensions(sample: Sample) -> tuple[tuple[str, str], ...]:
    """Its labels as dimensions: Queue=default, ProcessType=worker, JobClass=ReportJob."""
    return tuple((_camel(label), value) for label, value in sample.tagged()[1])


def _metric(sample: Sample) -> dict[str, str]:
    return {"Name": metric_name(sample), "Unit": UNITS.get(sample.metric.unit, "Count")}


class CloudWatchOutput:
    def __init__(self, namespace: str, write: Callable[[list[str]], None]) -> None:
        self.namespace = namespace
        self.write = write

    def emit(self, measurements: Measurements, at: float) -> None:
        stamp = int(at * 1000)
        records: dict[tuple[tuple[str, str], ...], list[Sample]] = {}  # by dimensions: one line each
        for sample in measurements:
            records.setdefault(_dimensions(sample), []).append(sample)
        totals = records.pop((), None)  # those without a dimension: last
        lines = [self._record(stamp, samples, dict(dimensions)) for dimensions, samples in records.items()]
        if totals:
            lines.append(self._record(stamp, totals, {}))
        self.write(lines)

    def _record(self, stamp: int, samples: list[Sample], dimensions: dict[str, str]) -> str:
        record: dict[str, object] = {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": [{
            "Namespace": self.namespace, "Dimensions": [list(dimensions)],
            "Metrics": [_metric(s) for s in samples]}]}, **dimensions}
        record.update((metric_name(s), round(s.value, 3)) for s in samples)
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))
