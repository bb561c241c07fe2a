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
    _heads: dict[str, tuple[tuple[list, ...], list[str]]] = field(default_factory=dict, init=False, repr=False)

    def render(self, samples: Iterable[Sample]) -> list[str]:
        lines: list[str] = []
        for key, group in _line_groups(samples).items():
            heads = self._group_heads(key, group)
            values = list(map(_VALUE, group))
            kinds = set(map(type, values))
            if kinds == {int} and min(values) >= 0:
                formatted = map(str, values)
            elif kinds == {float} and min(values) >= 0:
                formatted = map("%.3f".__mod__, values)
            else:
                formatted = map(format_value, values)
            lines += self._pack(list(map(operator.add, heads, formatted)))
        return lines

    def _group_heads(self, key: str, group: list[Sample]) -> list[str]:
        # Compared as columns: C-level list comparisons, where 20,000 tuples would cost a millisecond.
        ids = (list(map(_NAME, group)), list(map(_QUEUE, group)), list(map(_COUNTER, group)))
        cached = self._heads.get(key)
        if cached and cached[0] == ids:
            return cached[1]
        queues = tuple(dict.fromkeys(q for q in ids[1] if q is not None))
        names = queue_metric_names(queues, self.prefix) if queues else {}
        heads = [f"{'count' if counter else self.metric_type}#{self.prefix}."
                 f"{name if queue is None else names[queue] + '.' + name}="
                 for name, queue, counter in zip(*ids, strict=True)]
        self._heads[key] = (ids, heads)
        return heads

    def _pack(self, measurements: list[str]) -> list[str]:
        """Join measurements into lines of at most MAX_LINE_BYTES, never splitting one.

        Every measurement is ASCII (names are sanitised, values are digits), so characters are bytes.
        """
        head = f"source={self.source} " if self.source else ""
        # ends[i]: the length of measurements[0..i] joined with a space after each
        ends = list(itertools.accumulate(map(operator.add, map(len, measurements), itertools.repeat(1))))
        lines, start, before = [], 0, 0
        while start < len(measurements):
            # as many as fit (the last one's trailing space does not count), but at least one
            stop = max(start + 1, bisect.bisect_right(ends, before + MAX_LINE_BYTES - len(head) + 1))
            lines.append(head + " ".join(measurements[start:stop]))
            start, before = stop, ends[stop - 1]
        return lines


_NAME, _VALUE, _QUEUE, _COUNTER = map(operator.itemgetter, range(4))


def _line_groups(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Samples by line group: per-queue samples by kind ("size", "latency"), whole-Sidekiq ones together ("").

    Samples come in runs of one kind (10,000 sizes, then 10,000 latencies), so runs are taken whole
    with C-level iteration; only a run that mixes per-queue and whole-Sidekiq samples is split one by one.
    """
    groups: dict[str, list[Sample]] = {}
    for name, run in itertools.groupby(samples, _NAME):
        run = list(run)
        queues = list(map(_QUEUE, run))
        if None not in queues:
            groups.setdefault(name, []).extend(run)
        elif queues.count(None) == len(queues):
            groups.setdefault("", []).extend(run)
        else:
            for sample in run:
                groups.setdefault(name if sample[2] is not None else "", []).append(sample)
    return groups


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
