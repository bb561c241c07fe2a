"""CloudWatch Embedded Metric Format: JSON lines that CloudWatch Logs turns into metrics, no API client.

One line per queue (dimension `Queue`: QueueSize, QueueLatency) and one for the totals (no dimension).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sidekiq_metrics.metrics import Measurements

QUEUE_METRICS = {"size": ("QueueSize", "Count"), "latency": ("QueueLatency", "Seconds")}
TOTAL_UNITS = {"max_latency": "Seconds", "utilization": "None", "metrics.up": "None"}


def metric_name(name: str) -> str:
    """`jobs.processed` -> `JobsProcessed`, CloudWatch's usual spelling."""
    return "".join(part.capitalize() for part in name.replace(".", "_").split("_"))


class CloudWatchOutput:
    def __init__(self, namespace: str, write: Callable[[list[str]], None]) -> None:
        self.namespace = namespace
        self.write = write

    def emit(self, measurements: Measurements, at: float) -> None:
        stamp = int(at * 1000)
        queues: dict[str, dict[str, float]] = {}
        totals: dict[str, float] = {}
        for name, value, queue, _counter in measurements:
            if queue is not None:
                queues.setdefault(queue, {})[name] = value
            else:
                totals[name] = value
        lines = []
        for queue, values in queues.items():
            record: dict[str, object] = {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": [{
                "Namespace": self.namespace, "Dimensions": [["Queue"]],
                "Metrics": [{"Name": QUEUE_METRICS[n][0], "Unit": QUEUE_METRICS[n][1]} for n in values]}]},
                "Queue": queue}
            record.update((QUEUE_METRICS[n][0], round(v, 3)) for n, v in values.items())
            lines.append(json.dumps(record, ensure_ascii=True, separators=(",", ":")))
        if totals:
            record = {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": [{
                "Namespace": self.namespace, "Dimensions": [[]],
                "Metrics": [{"Name": metric_name(n), "Unit": TOTAL_UNITS.get(n, "Count")} for n in totals]}]}}
            record.update((metric_name(n), round(v, 3)) for n, v in totals.items())
            lines.append(json.dumps(record, ensure_ascii=True, separators=(",", ":")))
        self.write(lines)
