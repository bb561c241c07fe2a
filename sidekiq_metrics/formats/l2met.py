"""Heroku log metrics (l2met, as Librato's Heroku integration reads them).

    source=web.1 sample#sidekiq.default.size=3 sample#sidekiq.mailers.size=0
    source=web.1 sample#sidekiq.default.latency=12.345 sample#sidekiq.mailers.latency=0.000
    source=web.1 sample#sidekiq.enqueued=3 ... count#sidekiq.jobs.processed=120 sample#sidekiq.metrics.up=1

Per-queue samples of one kind share a line, as the original buildpack printed
them, and whole-Sidekiq samples share another; lines are split between measurements to stay under MAX_LINE_BYTES. Values
are plain non-negative decimals: l2met reads only a leading run of digits and
dots, so `1e-05` or `-1` would be misread or dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sidekiq_metrics.metrics import Sample
from sidekiq_metrics.names import queue_metric_names

MAX_LINE_BYTES = 1024


@dataclass(frozen=True)
class L2metFormat:
    prefix: str = "sidekiq"
    metric_type: str = "sample"  # sample, measure or count, as SIDEKIQ_METRICS_TYPE says
    source: str | None = None

    def render(self, samples: Iterable[Sample]) -> list[str]:
        samples = list(samples)
        names = queue_metric_names(dict.fromkeys(s.queue for s in samples if s.queue is not None),
                                   self.prefix)
        groups: dict[str, list[str]] = {}
        for s in samples:
            metric = f"{self.prefix}.{names[s.queue]}.{s.name}" if s.queue is not None else \
                f"{self.prefix}.{s.name}"
            group = s.name if s.queue is not None else ""  # per-queue kinds apart, totals together
            kind = "count" if s.counter else self.metric_type
            groups.setdefault(group, []).append(f"{kind}#{metric}={format_value(s.value)}")
        lines: list[str] = []
        for measurements in groups.values():
            lines.extend(self._pack(measurements))
        return lines

    def _pack(self, measurements: list[str]) -> list[str]:
        """Join measurements into lines of at most MAX_LINE_BYTES, never splitting one."""
        head = f"source={self.source}" if self.source else ""
        lines, line = [], head
        for m in measurements:
            candidate = f"{line} {m}" if line else m
            if len(candidate.encode()) > MAX_LINE_BYTES and line != head:
                lines.append(line)
                candidate = f"{head} {m}" if head else m
            line = candidate
        if line != head:
            lines.append(line)
        return lines


def format_value(value: float) -> str:
    """Integers as integers, anything else to the millisecond; never negative, never an exponent."""
    if isinstance(value, int):
        return str(max(0, value))
    return f"{max(0.0, value):.3f}"
