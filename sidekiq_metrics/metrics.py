"""Metrics derived from a Snapshot: plain values, no formatting, no I/O.

A Sample names what was measured and, for per-queue values, the real queue name;
per-queue values come in QueueSeries, one per kind, and reach the outputs with the
whole-Sidekiq Samples as one Measurements. Each output format decides how to spell
that: l2met puts the queue into the metric name, tag-based systems make it a tag.
Names here are the part after the prefix: "<prefix>.<queue>.size", "<prefix>.enqueued".
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from sidekiq_metrics.jobs import latency
from sidekiq_metrics.readings import Snapshot, Totals

QUEUE_SIZE = "size"
QUEUE_LATENCY = "latency"
UP = "metrics.up"
ERRORS = "metrics.errors"


class Sample(NamedTuple):
    name: str
    value: float
    queue: str | None = None  # the real queue name, for per-queue samples
    counter: bool = False  # an increase since the previous poll, not a level


@dataclass(frozen=True, slots=True)
class QueueSeries:
    """One per-queue value (every queue's size, say) for the queues where it could be read.

    Columns rather than a Sample per queue: 10,000 queues would make 20,000 Samples a poll, and
    the l2met output, whose speed matters most, renders straight from the columns.
    """

    name: str  # QUEUE_SIZE or QUEUE_LATENCY
    queues: list[str]
    values: list[float]

    def samples(self) -> Iterator[Sample]:
        return map(Sample, itertools.repeat(self.name), self.values, self.queues)


@dataclass
class Measurements:
    """What a poll hands to the outputs."""

    series: list[QueueSeries] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # whole-Sidekiq: levels, counts, autoscaling, heartbeat

    def __iter__(self) -> Iterator[Sample]:
        """Every measurement as a Sample, per-queue ones first (for outputs where a few ms do not matter)."""
        for series in self.series:
            yield from series.samples()
        yield from self.samples


@dataclass(frozen=True, slots=True)
class Problem:
    queue: str
    reason: str


def queue_series(snapshot: Snapshot) -> tuple[list[QueueSeries], list[Problem]]:
    """Per-queue sizes and latencies (seconds). A value that cannot be known is left out, with a Problem."""
    queues = snapshot.queues
    now = snapshot.read_at
    names = list(map(_NAME, queues))
    sizes = list(map(_SIZE, queues))
    waits = [None if q[3] else latency(q[2], now) for q in queues]
    series = [QueueSeries(QUEUE_SIZE, names, sizes), QueueSeries(QUEUE_LATENCY, names, waits)]
    if None not in waits:  # so every size is known too (an unknown size always comes with a problem)
        return series, []
    problems = [Problem(q[0], q[3] or "the oldest job's timestamp is not a usable time")
                for q, w in zip(queues, waits, strict=True) if w is None]
    return [_known(QUEUE_SIZE, names, sizes), _known(QUEUE_LATENCY, names, waits)], problems


_NAME, _SIZE = operator.itemgetter(0), operator.itemgetter(1)


def _known(name: str, queues: list[str], values: list[float | None]) -> QueueSeries:
    pairs = [(q, v) for q, v in zip(queues, values, strict=True) if v is not None]
    return QueueSeries(name, [q for q, _ in pairs], [v for _, v in pairs])


def total_samples(totals: Totals, series: list[QueueSeries]) -> list[Sample]:
    """Whole-Sidekiq levels, as Sidekiq::Stats and Sidekiq::ProcessSet report them."""
    worst = [max(s.values) for s in series if s.name == QUEUE_LATENCY and s.values]
    levels = [("enqueued", totals.enqueued), ("scheduled", totals.scheduled), ("retries", totals.retries),
              ("dead", totals.dead), ("processes", totals.processes), ("busy", totals.busy),
              ("processed", totals.processed), ("failed", totals.failed)]
    samples = [Sample(name, value) for name, value in levels if value is not None]  # None: unknown, left out
    if worst:
        samples.append(Sample("max_latency", max(worst)))
    if totals.concurrency:
        samples.append(Sample("utilization", min(1.0, totals.busy / totals.concurrency)))
    return samples


class CounterDeltas:
    """Increases of Sidekiq's running totals between polls, for `count#` metrics.

    The first poll only remembers. A total that went down (Sidekiq::Stats#reset,
    a flushed or replaced Redis) gives no sample for that poll rather than a
    negative number or a jump by the whole new total; counting resumes from there.
    """

    def __init__(self) -> None:
        self._previous: dict[str, int] = {}

    def update(self, totals: Mapping[str, int | None]) -> list[Sample]:
        samples = []
        for name, value in totals.items():
            if value is None:  # unknown this poll: no increase to report, and the last known value stays
                continue
            before = self._previous.get(name)
            if before is not None and value >= before:
                samples.append(Sample(name, value - before, counter=True))
            self._previous[name] = value
        return samples


def heartbeat(up: bool) -> list[Sample]:
    """`metrics.up` on every poll, so an alert can tell "no queues" from "no metrics"."""
    if up:
        return [Sample(UP, 1)]
    return [Sample(UP, 0), Sample(ERRORS, 1, counter=True)]
