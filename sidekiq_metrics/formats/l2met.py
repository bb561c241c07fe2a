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

import bisect
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sidekiq_metrics.config import Settings
from sidekiq_metrics.metrics import Sample
from sidekiq_metrics.names import queue_metric_names

MAX_LINE_BYTES = 1024


@dataclass
class L2metFormat:
    prefix: str = "sidekiq"
    metric_type: str = "sample"  # sample, measure or count, as SIDEKIQ_METRICS_TYPE says
    source: str | None = None
    # For each line group, the "sample#sidekiq.<queue>.size=" heads of the last poll's samples,
    # reused while the queues are the same: 10,000 queues make 20,000 of them.
    _heads: dict[str, tuple[list[tuple[str, str | None, bool]], list[str]]] = field(
        default_factory=dict, init=False, repr=False)

    def render(self, samples: Iterable[Sample]) -> list[str]:
        groups: dict[str, list[Sample]] = {}
        for sample in samples:  # per-queue kinds on lines apart, totals together
            key = sample[0] if sample[2] is not None else ""
            group = groups.get(key)
            if group is None:
                group = groups[key] = []
            group.append(sample)
        lines: list[str] = []
        for key, group in groups.items():
            heads = self._group_heads(key, group)
            values = [s[1] for s in group]
            if all(v.__class__ is int for v in values) and min(values) >= 0:
                formatted = map(str, values)
            elif all(v.__class__ is float for v in values) and min(values) >= 0:
                formatted = map("%.3f".__mod__, values)
            else:
                formatted = map(format_value, values)
            lines += self._pack(list(map(operator.add, heads, formatted)))
        return lines

    def _group_heads(self, key: str, group: list[Sample]) -> list[str]:
        ids = [(s[0], s[2], s[3]) for s in group]
        cached = self._heads.get(key)
        if cached and cached[0] == ids:
            return cached[1]
        queues = tuple(dict.fromkeys(q for _, q, _ in ids if q is not None))
        names = queue_metric_names(queues, self.prefix) if queues else {}
        heads = [f"{'count' if counter else self.metric_type}#{self.prefix}."
                 f"{name if queue is None else names[queue] + '.' + name}=" for name, queue, counter in ids]
        self._heads[key] = (ids, heads)
        return heads

    def _pack(self, measurements: list[str]) -> list[str]:
        """Join measurements into lines of at most MAX_LINE_BYTES, never splitting one.

        Every measurement is ASCII (names are sanitised, values are digits), so characters are bytes.
        """
        head = f"source={self.source} " if self.source else ""
        # ends[i]: the length of measurements[0..i] joined with a space after each
        ends = list(itertools.accumulate(len(m) + 1 for m in measurements))
        lines, start, before = [], 0, 0
        while start < len(measurements):
            # as many as fit (the last one's trailing space does not count), but at least one
            stop = max(start + 1, bisect.bisect_right(ends, before + MAX_LINE_BYTES - len(head) + 1))
            lines.append(head + " ".join(measurements[start:stop]))
            start, before = stop, ends[stop - 1]
        return lines


def format_value(value: float) -> str:
    """Integers as integers, anything else to the millisecond; never negative, never an exponent."""
    if value.__class__ is int:
        return str(value) if value >= 0 else "0"
    return "%.3f" % value if value >= 0 else "0.000"  # noqa: UP031 - the fastest spelling, run 20,000 times a poll


class L2metOutput:
    """Heroku log lines on stdout: the default output."""

    def __init__(self, settings: Settings, write: Callable[[list[str]], None]) -> None:
        self.format = L2metFormat(settings.prefix, settings.metric_type, settings.source)
        self.write = write

    def emit(self, samples: Sequence[Sample], at: float) -> None:
        self.write(self.format.render(samples))
