"""Metrics derived from a Snapshot: plain values, no formatting, no I/O.

A Sample is one value of a metric of the catalogue (catalogue.py: its name, kind and unit
travel with it) and its labels: the queue of a per-queue value, the process type or job
class of a labelled one. Per-queue values come in QueueSeries, one per metric, and reach
the outputs with the other Samples as one Measurements. An output only spells what it is
given: l2met puts the metric's own label into the name, tag-based systems make each
label a tag. Running totals, and increases turned into totals, are kept by Counts.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar, cast

from sidekiq_metrics import catalogue as m
from sidekiq_metrics.catalogue import Kind, Metric
from sidekiq_metrics.sidekiq.job_metrics import percentile
from sidekiq_metrics.sidekiq.job_payload import latency
from sidekiq_metrics.sidekiq.readings import Breakdown, JobMinutes, RedisHealth, Snapshot, Totals

K = TypeVar("K")
Labels = tuple[tuple[str, str], ...]  # (name, value) pairs, the metric's own label first


class Sample(NamedTuple):
    metric: Metric
    value: float
    labels: Labels = ()

    @classmethod
    def of(cls, metric: Metric, value: float, subject: str) -> Sample:
        """A value of a labelled metric: `Sample.of(PROCESS_COUNT, 2, "worker")`."""
        return cls(metric, value, ((cast(str, metric.label), subject),))

    @property
    def subject(self) -> str | None:
        """The value of the metric's own label: the queue, the process type, the job class."""
        label = self.metric.label
        return next((value for name, value in self.labels if name == label), None) if label else None

    @property
    def name(self) -> str:
        """The metric's name after the prefix with its `<...>` part filled in, for outputs that name rather than
        label (a per-queue name has no `<...>` part: l2met puts the queue before it)."""
        subject = self.subject
        return self.metric.name if subject is None else self.metric.filled(subject)

    def tagged(self) -> tuple[str, Labels]:
        """Its name and labels for an output that tags: `process.count` and process_type=worker, `autoscale.max`
        and process_type=worker; a per-queue one's name is `queue.size`."""
        return self.metric.tag_name, self.labels

    @property
    def delta(self) -> bool:
        return self.metric.kind is Kind.DELTA

    @property
    def shard(self) -> str | None:
        return shard_of(self.labels)


@dataclass(frozen=True, slots=True)
class QueueSeries:
    """One per-queue value (every queue's size, say) for the queues where it could be read.

    Columns rather than a Sample per queue: 10,000 queues would make 20,000 Samples a poll, and
    the l2met output, whose speed matters most, renders straight from the columns.
    """

    metric: Metric  # a per-queue one: catalogue.QUEUE_SIZE or QUEUE_LATENCY
    queues: list[str]
    values: list[float]
    labels: Labels = ()  # those every value has beside its queue: the shard's

    def samples(self) -> Iterator[Sample]:
        labels = self.labels
        return map(Sample, itertools.repeat(self.metric), self.values, ((("queue", q), *labels) for q in self.queues))

    @property
    def shard(self) -> str | None:
        return shard_of(self.labels)


SHARD = "shard"  # the label of the readings of a shard other than the default one (docs/metrics.md)
SHARDS_TOTAL = "all"  # the shard label of the sums over every shard: no shard may take the name


def shard_of(labels: Labels) -> str | None:
    """The shard a value was read from; None for the default one (whose names stay as without shards)."""
    return next((value for name, value in labels if name == SHARD), None)


def with_shard(samples: Iterable[Sample], shard: str | None) -> list[Sample]:
    """The samples of one shard, labelled with it (unchanged for the default one)."""
    if shard is None:
        return list(samples)
    return [Sample(s.metric, s.value, (*s.labels, (SHARD, shard))) for s in samples]


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
                QueueSeries(m.QUEUE_LATENCY, names, cast("list[float]", waits)),  # no None in it: checked
                *state_series(snapshot, names)], []
    problems = [Problem(q[0], q[3] or "the oldest job's timestamp is not a usable time")
                for q, w in zip(queues, waits, strict=True) if w is None]
    return [_known(m.QUEUE_SIZE, names, sizes), _known(m.QUEUE_LATENCY, names, waits),
            *state_series(snapshot, names)], problems


def state_series(snapshot: Snapshot, names: list[str]) -> list[QueueSeries]:
    """The reported queues' longest-running job (seconds), and those Sidekiq Pro holds paused (1): only the queues
    that have one, so 10,000 idle queues add no line. None when nothing runs and nothing is paused."""
    running = snapshot.running.by_queue if snapshot.running else ()
    paused = snapshot.paused or frozenset()
    if not running and not paused:
        return []
    reported = set(names)
    out = []
    if started := [(q, since) for q, since in running if q in reported]:
        out.append(QueueSeries(m.QUEUE_RUNNING_LONGEST, [q for q, _ in started],
                               [_ran(since, snapshot.read_at) for _, since in started]))
    if held := sorted(paused & reported):
        out.append(QueueSeries(m.QUEUE_PAUSED, held, [1] * len(held)))
    return out


def _ran(since: float, now: float) -> float:
    """Seconds since a job started, to the millisecond; 0 for a start in the future (clocks of dynos differ)."""
    return round(max(0.0, now - since), 3)


def state_samples(snapshot: Snapshot) -> list[Sample]:
    """The longest-running job of each job class, and how many queues Sidekiq Pro holds paused (on every poll with
    the totals, once the paused set was read: 0 says "none", where silence would say nothing)."""
    samples = [Sample.of(m.JOB_RUNNING_LONGEST, _ran(since, snapshot.read_at), name)
               for name, since in (snapshot.running.by_class if snapshot.running else ())]
    if snapshot.paused is not None and snapshot.totals is not None:  # with the other whole-Sidekiq levels
        samples.append(Sample(m.QUEUES_PAUSED, len(snapshot.paused)))
    return samples


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
    if totals.last_death is not None:  # none with an empty dead set: no job has died that it still holds
        samples.append(Sample(m.DEAD_LAST_DEATH, max(0.0, now - totals.last_death)))
    return samples + process_samples(totals)


def health_samples(health: RedisHealth) -> list[Sample]:
    """The Redis's own health, as INFO reports it; a value INFO did not give is left out."""
    mib = 1024 * 1024
    found: list[tuple[Metric, float | None]] = [
        (m.REDIS_MEMORY_USED, None if health.used_memory is None else round(health.used_memory / mib, 3)),
        (m.REDIS_MEMORY_MAX, round(health.maxmemory / mib, 3) if health.maxmemory else None),
        (m.REDIS_MEMORY_RATIO, health.memory_ratio), (m.REDIS_CLIENTS, health.clients),
        (m.REDIS_EVICTED, health.evicted_keys), (m.REDIS_OPS, health.ops_per_second)]
    return [Sample(metric, value) for metric, value in found if value is not None]


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
        samples += [Sample.of(metric, value, job.name) for metric, value in found]
    return samples


_BREAKDOWN = {"retries": (m.JOB_RETRIES, m.JOB_RETRIES_OLDEST, m.ERROR_RETRIES, m.RETRIES_BREAKDOWN_AGE),
              "dead": (m.JOB_DEAD, m.JOB_DEAD_OLDEST, m.ERROR_DEAD, m.DEAD_BREAKDOWN_AGE),
              "scheduled": (m.JOB_SCHEDULED, None, None, m.SCHEDULED_BREAKDOWN_AGE)}


def breakdown_samples(breakdowns: Iterable[Breakdown], now: float) -> list[Sample]:
    """The sets and queues by job class (and error class), each from its latest whole pass, with how old it is."""
    samples: list[Sample] = []
    oldest_queue: float | None = None
    for b in breakdowns:
        if b.kind == "queues":
            oldest_queue = b.started if oldest_queue is None else min(oldest_queue, b.started)
            samples += [Sample(m.JOB_WAITING, n, (("job_class", name), ("queue", b.queue)))
                        for name, n in b.classes.items()]
            continue
        count, oldest, errors, age = _BREAKDOWN[b.kind]
        samples += [Sample.of(count, n, name) for name, n in b.classes.items()]
        if oldest:
            samples += [Sample.of(oldest, max(0.0, now - at), name) for name, at in b.oldest.items()]
        if errors:
            samples += [Sample.of(errors, n, name) for name, n in b.errors.items()]
        if b.classes:  # an empty set's breakdown has no line to date (`retries=0` says it is empty)
            samples.append(Sample(age, max(0.0, now - b.started)))
    if oldest_queue is not None:
        samples.append(Sample(m.QUEUES_BREAKDOWN_AGE, max(0.0, now - oldest_queue)))
    return samples


def process_samples(totals: Totals) -> list[Sample]:
    """The live processes grouped by Heroku process type: counts, the worst and the total, never one series
    per dyno (a metric service bills each series)."""
    samples = []
    for process_type, processes in sorted(totals.by_process_type().items()):
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
        samples += [Sample.of(metric, value, process_type) for metric, value in found]
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


@dataclass(slots=True)
class Count:
    """A running total as a poll leaves it: Sidekiq's own (processed), or one we add up from increases (failed
    polls, a job class's runs)."""

    metric: Metric  # a TOTAL, or a DELTA with no total of Sidekiq's behind it
    labels: Labels
    total: int
    start: float  # when this run of the total began: its first sight, our start, or the poll before a reset
    seen: float  # the poll that last saw it
    increase: int | None = None  # since the previous poll that saw it; None at its first sight and across a reset
    since: float = 0.0  # that previous poll's time


class Counts:
    """Every running total the outputs report, in one place, updated once per poll in the poll's order.

    - Sidekiq's totals (TOTAL samples) are taken as they are. Their first sight starts a run (the OpenTelemetry
      data model's form for an unknown start); a total that went down (Sidekiq::Stats#reset, a flushed or
      replaced Redis) starts a new run at the previous poll and has no increase for that poll, rather than a
      negative one or a jump by the whole new total.
    - Our own increases (DELTA samples with no total behind them) are added up from 0, starting at the poll
      before their first sight; those in `from_start` from our own start, and reported even before they grow.
    - A labelled count of ours (a job class's) that has not grown for SERIES_IDLE seconds is forgotten (stale()).
    """

    def __init__(self, started: float, from_start: Iterable[Metric] = ()) -> None:
        self.previous = started  # when the previous poll was
        self.counts: dict[tuple[Metric, Labels], Count] = {(metric, ()): Count(metric, (), 0, started, started)
                                                            for metric in from_start}
        self.grown: dict[tuple[Metric, Labels], float] = {}  # a labelled count of ours: when it last grew

    def update(self, samples: Iterable[Sample], at: float) -> list[Count]:
        """The counts this poll saw, Sidekiq's totals first (in the samples' order), then our own."""
        seen: dict[tuple[Metric, Labels], int] = {}
        ours: list[tuple[Metric, Labels]] = [key for key in self.counts if key[0].kind is Kind.DELTA]
        for sample in samples:
            metric = sample.metric
            key = (metric, sample.labels)
            if metric.kind is Kind.TOTAL:
                seen[key] = int(sample.value)
            elif metric.kind is Kind.DELTA and metric.total is None:
                count = self.counts.get(key)
                if count is None:  # it was 0 at the previous poll
                    count = self.counts[key] = Count(metric, sample.labels, 0, self.previous, self.previous)
                    ours.append(key)
                if metric.label is not None and (sample.value or key not in self.grown):
                    self.grown[key] = at
                seen[key] = seen.get(key, count.total) + int(sample.value)
        for key in stale(self.grown, at):  # bounded: not every class name ever seen, for ever
            del self.grown[key], self.counts[key]
        self.previous = at
        out = []
        for key in [k for k in seen if k[0].kind is Kind.TOTAL] + [k for k in ours if k in self.counts]:
            count = self.counts.get(key)
            value = seen.get(key)
            if count is None:  # the first sight of one of Sidekiq's totals: a run starts, no increase yet
                count = self.counts[key] = Count(key[0], key[1], seen[key], at, at)
            else:
                value = count.total if value is None else value  # ours, unchanged this poll: it grew by 0
                reset = value < count.total
                if reset:
                    count.start = count.seen
                count.increase, count.since = (None if reset else value - count.total), count.seen
                count.total, count.seen = value, at
            out.append(dataclasses.replace(count))  # a copy: the otlp sender encodes it later, in its thread
        return out


def increases(counts: list[Count]) -> list[Sample]:
    """The increases of Sidekiq's totals as the DELTA metrics they are reported under (`count#` lines)."""
    return [Sample(_INCREASE_OF[c.metric], c.increase, c.labels) for c in counts
            if c.increase is not None and c.metric in _INCREASE_OF]


_INCREASE_OF = {metric.total: metric for metric in m.CATALOGUE if metric.total is not None}


def heartbeat(up: bool) -> list[Sample]:
    """`metrics.up` on every poll, so an alert can tell "no queues" from "no metrics". 1 only when Redis answered
    every read the poll needs (Snapshot.complete): a refused read is never reported as a calm, empty Sidekiq."""
    if up:
        return [Sample(m.UP, 1)]
    return [Sample(m.UP, 0), Sample(m.ERRORS, 1)]
