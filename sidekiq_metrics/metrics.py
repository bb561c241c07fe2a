"""Metrics derived from a Snapshot: plain values, no formatting, no I/O.

A Sample is one value of a metric of the catalogue (catalogue.py: its name, kind and unit
travel with it) and, for per-queue values, the real queue name; per-queue values come in
QueueSeries, one per metric, and reach the outputs with the whole-Sidekiq Samples as one
Measurements. Each output decides how to spell that: l2met puts the queue into the
metric name, tag-based systems make it a tag.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar, cast

from sidekiq_metrics import catalogue as m
from sidekiq_metrics.catalogue import Kind, Metric
from sidekiq_metrics.job_metrics import percentile
from sidekiq_metrics.jobs import latency
from sidekiq_metrics.readings import JobMinutes, Snapshot, Totals

K = TypeVar("K")


class Sample(NamedTuple):
    metric: Metric
    value: float
    queue: str | None = None  # the real queue name, for per-queue samples
    subject: str | None = None  # what the `<...>` part of the metric's name stands for: a process type, a job class

    @property
    def name(self) -> str:
        """The metric's name after the prefix, its `<...>` part filled in (for outputs that name, not tag)."""
        if self.subject is None:
            return self.metric.name
        head, _, rest = self.metric.name.partition("<")
        return head + self.subject + rest[rest.index(">") + 1:]

    @property
    def delta(self) -> bool:
        return self.metric.kind is Kind.DELTA


@dataclass(frozen=True, slots=True)
class QueueSeries:
    """One per-queue value (every queue's size, say) for the queues where it could be read.

    Columns rather than a Sample per queue: 10,000 queues would make 20,000 Samples a poll, and
    the l2met output, whose speed matters most, renders straight from the columns.
    """

    metric: Metric  # a per-queue one: catalogue.QUEUE_SIZE or QUEUE_LATENCY
    queues: list[str]
    values: list[float]

    def samples(self) -> Iterator[Sample]:
        return map(Sample, itertools.repeat(self.metric), self.values, self.queues)


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
    if None not in waits:  # so every size is known too (an unknown size always comes with a problem)
        return [QueueSeries(m.QUEUE_SIZE, names, sizes),
                QueueSeries(m.QUEUE_LATENCY, names, cast("list[float]", waits))], []  # no None in it: checked
    problems = [Problem(q[0], q[3] or "the oldest job's timestamp is not a usable time")
                for q, w in zip(queues, waits, strict=True) if w is None]
    return [_known(m.QUEUE_SIZE, names, sizes), _known(m.QUEUE_LATENCY, names, waits)], problems


_NAME, _SIZE = operator.itemgetter(0), operator.itemgetter(1)


def _known(metric: Metric, queues: list[str], values: list[float | None]) -> QueueSeries:
    pairs = [(q, v) for q, v in zip(queues, values, strict=True) if v is not None]
    return QueueSeries(metric, [q for q, _ in pairs], [v for _, v in pairs])


def total_samples(totals: Totals, series: list[QueueSeries], now: float) -> list[Sample]:
    """Whole-Sidekiq levels, as Sidekiq::Stats and Sidekiq::ProcessSet report them; how late the scheduled
    and retry sets run; and the live processes by Heroku process type."""
    worst = [max(s.values) for s in series if s.metric is m.QUEUE_LATENCY and s.values]
    levels: list[tuple[Metric, int | None]] = [
        (m.ENQUEUED, totals.enqueued), (m.SCHEDULED, totals.scheduled), (m.RETRIES, totals.retries),
        (m.DEAD, totals.dead), (m.PROCESSES, totals.processes), (m.BUSY, totals.busy),
        (m.PROCESSED, totals.processed), (m.FAILED, totals.failed)]
    samples = [Sample(metric, value) for metric, value in levels if value is not None]  # None: unknown, left out
    if worst:
        samples.append(Sample(m.MAX_LATENCY, max(worst)))
    if totals.concurrency and totals.busy is not None:
        samples.append(Sample(m.UTILIZATION, min(1.0, totals.busy / totals.concurrency)))
    for metric, due, size in ((m.SCHEDULED_LAG, totals.scheduled_due, totals.scheduled),
                              (m.RETRIES_LAG, totals.retry_due, totals.retries)):
        if size is not None:  # None: the set could not be read, so neither can its lag
            samples.append(Sample(metric, max(0.0, now - due) if due is not None else 0.0))
    return samples + process_samples(totals)


def job_samples(jobs: JobMinutes) -> list[Sample]:
    """Each job class's runs, failures and run times in the minutes that became complete."""
    samples = []
    for job in jobs.classes:
        found: list[tuple[Metric, float]] = [(m.JOB_PROCESSED, job.runs), (m.JOB_FAILED, job.failures)]
        if job.runs > job.failures:
            found.append((m.JOB_RUNTIME_MEAN, job.ms / (job.runs - job.failures) / 1000))
        if job.histogram is not None:
            for metric, q in ((m.JOB_RUNTIME_P50, 0.5), (m.JOB_RUNTIME_P95, 0.95), (m.JOB_RUNTIME_P99, 0.99)):
                if (seconds := percentile(job.histogram, q)) is not None:
                    found.append((metric, seconds))
        samples += [Sample(metric, value, subject=job.name) for metric, value in found]
    return samples


def process_samples(totals: Totals) -> list[Sample]:
    """The live processes grouped by Heroku process type: counts, the worst and the total, never one series
    per dyno (a metric service bills each series)."""
    samples = []
    for kind, processes in sorted(totals.by_process_type().items()):
        busy, concurrency = processes.busy, processes.concurrency
        memory = [p.rss_kb / 1024 for p in processes if p.rss_kb is not None]
        rtts = [p.rtt_us / 1000 for p in processes if p.rtt_us is not None]
        found: list[tuple[Metric, float]] = [(m.PROCESS_COUNT, len(processes)), (m.PROCESS_BUSY, busy),
                                             (m.PROCESS_QUIET, sum(1 for p in processes if p.quiet))]
        if concurrency:
            found += [(m.PROCESS_CONCURRENCY, concurrency), (m.PROCESS_UTILIZATION, min(1.0, busy / concurrency))]
        if memory:
            found += [(m.PROCESS_MEMORY_MAX, max(memory)), (m.PROCESS_MEMORY_TOTAL, sum(memory))]
        if rtts:
            found.append((m.PROCESS_REDIS_RTT_MAX, max(rtts)))
        samples += [Sample(metric, value, subject=kind) for metric, value in found]
    return samples


class CounterDeltas:
    """Increases of Sidekiq's running totals between polls, for `count#` metrics.

    The first poll only remembers. A total that went down (Sidekiq::Stats#reset,
    a flushed or replaced Redis) gives no sample for that poll rather than a
    negative number or a jump by the whole new total; counting resumes from there.
    """

    def __init__(self) -> None:
        self._previous: dict[Metric, int] = {}

    def update(self, totals: Mapping[Metric, int | None]) -> list[Sample]:
        """The increase of each running total, as the DELTA metric it is given under."""
        samples = []
        for metric, value in totals.items():
            if value is None:  # unknown this poll: no increase to report, and the last known value stays
                continue
            before = self._previous.get(metric)
            if before is not None and value >= before:
                samples.append(Sample(metric, value - before))
            self._previous[metric] = value
        return samples


SERIES_IDLE = 3600.0  # seconds after which a job class's summed count that has not grown is no longer sent
MAX_SERIES = 2000  # job-class counts summed at most; past it the longest unchanged are forgotten first


def stale(last_grown: Mapping[K, float], at: float) -> list[K]:
    """The summed counts to forget at `at`: those that have not grown for SERIES_IDLE seconds, and the longest
    unchanged past MAX_SERIES. A count of ours summed per job class would otherwise be kept and sent for ever,
    one series per class name ever seen (57,601 points an export after a day of 20 new names a minute); one
    that comes back starts again from 0, which every backend reads as a counter restart."""
    old = [key for key, when in last_grown.items() if at - when >= SERIES_IDLE]
    excess = len(last_grown) - len(old) - MAX_SERIES
    if excess > 0:
        gone = set(old)
        old += sorted((k for k in last_grown if k not in gone), key=last_grown.__getitem__)[:excess]
    return old


def heartbeat(up: bool) -> list[Sample]:
    """`metrics.up` on every poll, so an alert can tell "no queues" from "no metrics". 1 only when Redis answered
    every read the poll needs (Snapshot.complete): a refused read is never reported as a calm, empty Sidekiq."""
    if up:
        return [Sample(m.UP, 1)]
    return [Sample(m.UP, 0), Sample(m.ERRORS, 1)]
