"""CloudWatch Embedded Metric Format: JSON lines that CloudWatch Logs turns into metrics, no API client.

One line per queue (dimension `Queue`: QueueSize, QueueLatency) and one for the totals (no dimension).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sidekiq_metrics.catalogue import Unit
from sidekiq_metrics.metrics import Measurements, Sample

UNITS = {Unit.SECONDS: "Seconds", Unit.RATIO: "None", Unit.BOOLEAN: "None", Unit.MEGABYTES: "Megabytes",
         Unit.MILLISECONDS: "Milliseconds"}  # every other unit counts things


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_"))


def metric_name(sample: Sample) -> str:
    """`jobs.processed` -> `JobsProcessed`, CloudWatch's usual spelling; a queue's `size` -> `QueueSize`; a
    labelled one without its subject, which is a dimension: `process.count` -> `ProcessCount`."""
    words = _camel(sample.metric.bare_name if _dimension(sample) else sample.name)
    return "Queue" + words if sample.metric.per_queue else words


def _dimension(sample: Sample) -> tuple[str, str] | None:
    """The dimension a sample has beside Queue: ProcessType=worker, JobClass=ReportJob."""
    label = sample.metric.label
    return (_camel(label), sample.subject) if label and sample.subject is not None else None


def _metric(sample: Sample) -> dict[str, str]:
    return {"Name": metric_name(sample), "Unit": UNITS.get(sample.metric.unit, "Count")}


class CloudWatchOutput:
    def __init__(self, namespace: str, write: Callable[[list[str]], None]) -> None:
        self.namespace = namespace
        self.write = write

    def emit(self, measurements: Measurements, at: float) -> None:
        stamp = int(at * 1000)
        queues: dict[str, list[Sample]] = {}
        labelled: dict[tuple[str, str], list[Sample]] = {}
        totals: list[Sample] = []
        for sample in measurements:
            if sample.queue is not None:
                queues.setdefault(sample.queue, []).append(sample)
            elif (dimension := _dimension(sample)) is not None:
                labelled.setdefault(dimension, []).append(sample)
            else:
                totals.append(sample)
        lines = [self._record(stamp, samples, {"Queue": queue}) for queue, samples in queues.items()]
        lines += [self._record(stamp, samples, {name: value}) for (name, value), samples in labelled.items()]
        if totals:
            lines.append(self._record(stamp, totals, {}))
        self.write(lines)

    def _record(self, stamp: int, samples: list[Sample], dimensions: dict[str, str]) -> str:
        record: dict[str, object] = {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": [{
            "Namespace": self.namespace, "Dimensions": [list(dimensions)],
            "Metrics": [_metric(s) for s in samples]}]}, **dimensions}
        record.update((metric_name(s), round(s.value, 3)) for s in samples)
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))
