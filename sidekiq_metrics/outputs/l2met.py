"""Heroku log metrics (l2met, as Librato's Heroku integration reads them).

    source=web.1 sample#sidekiq.default.size=3 sample#sidekiq.mailers.size=0
    source=web.1 sample#sidekiq.default.latency=12.345 sample#sidekiq.mailers.latency=0.000
    source=web.1 sample#sidekiq.enqueued=3 ... count#sidekiq.jobs.processed=120 sample#sidekiq.metrics.up=1

Each per-queue series (every size, every latency) shares a line, as the original
buildpack printed them, and whole-Sidekiq samples share another; lines are split
between measurements to stay under MAX_LINE_BYTES. Values are plain non-negative
decimals: l2met reads only a leading run of digits and dots, so `1e-05` or `-1`
would be misread or dropped.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from sidekiq_metrics.catalogue import CATALOGUE, PROCESS_BUSY, PROCESS_CONCURRENCY, PROCESS_COUNT, UP
from sidekiq_metrics.metrics.names import MAX_METRIC_NAME, queue_metric_names, queue_names_for
from sidekiq_metrics.metrics.samples import SHARDS_TOTAL, Labels, Measurements, QueueSeries, Sample

if TYPE_CHECKING:
    from sidekiq_metrics.outputs.recorded import Recorded

MAX_LINE_BYTES = 1024
# The most characters a named metric puts around its subject (`job.` + `.runtime.mean` around a job class): a
# subject is shortened to leave room for them, so no name passes Librato's 255 characters.
_AROUND_SUBJECT = max(len(m.name) - (m.name.index(">") + 1 - m.name.index("<")) for m in CATALOGUE if "<" in m.name)


@dataclass
class L2metFormat:
    prefix: str = "sidekiq"
    metric_type: str = "sample"  # sample, measure or count, as SIDEKIQ_METRICS_TYPE says
    source: str | None = None
    # The "sample#sidekiq.<queue>.size=" heads of each series of the last poll, reused while the
    # series list the same queues: 10,000 queues make 20,000 of them (measured: rendering them takes
    # 4.3 ms instead of 8.0; needed for the poll's target of at most 8x Redis's floor).
    _heads: tuple[list[list[str]], list[Labels], list[list[str]]] | None = field(default=None, init=False, repr=False)

    def render(self, measurements: Measurements) -> list[str]:
        lines: list[str] = []
        for series, heads in zip(measurements.series, self._queue_heads(measurements.series), strict=True):
            lines += self._pack(list(map(operator.add, heads, _formatted(series.values))))
        by_shard: dict[str | None, list[Sample]] = {}
        for sample in measurements.samples:
            by_shard.setdefault(sample.shard, []).append(sample)
        if None in by_shard:  # the default shard's last: its line ends with the poll's own metrics.up
            by_shard[None] = by_shard.pop(None)
        for shard, samples in by_shard.items():
            base = self._base(shard)
            queued = [s for s in samples if _queue_of(s) is not None]
            if queued:  # on lines of their own, before: the default shard's last line ends with metrics.up
                samples = [s for s in samples if _queue_of(s) is None]
                lines += self._pack(self._queued(base, queued))
            # A job class or process type in a name is mapped as queue names are: any text becomes a valid name.
            subjects = queue_metric_names(tuple(dict.fromkeys(s.subject for s in samples if s.subject)), base,
                                          _AROUND_SUBJECT)
            lines += self._pack([f"{'count' if s.delta else self.metric_type}#{base}."
                                 f"{s.metric.filled(subjects[subject]) if (subject := s.subject) else s.name}="
                                 f"{format_value(s.value)}" for s in samples])
        return lines

    def _queued(self, base: str, samples: list[Sample]) -> list[str]:
        """Values labelled with a queue and a job class: `<queue>.job.<class>.waiting`, each part mapped as queue
        names are, within half of the name's room each."""
        queues = queue_metric_names(tuple(dict.fromkeys(cast(str, _queue_of(s)) for s in samples)), base,
                                    MAX_METRIC_NAME // 2)
        classes = queue_metric_names(tuple(dict.fromkeys(cast(str, s.subject) for s in samples)), base,
                                     MAX_METRIC_NAME // 2 + _AROUND_SUBJECT)
        names = [f"{base}.{queues[cast(str, _queue_of(s))]}.{s.metric.filled(classes[cast(str, s.subject)])}"
                 for s in samples]
        # Each part is unique among its kind, but not the joined name: `a.job.b` + `c` and `a` + `b.job.c`. Every
        # pair of such a clash has its class part end with a digest of the pair.
        owners: dict[str, set[tuple[str, str]]] = {}
        for name, s in zip(names, samples, strict=True):
            owners.setdefault(name, set()).add((cast(str, _queue_of(s)), cast(str, s.subject)))
        for i, s in enumerate(samples):
            if len(owners[names[i]]) > 1:
                queue, subject = cast(str, _queue_of(s)), cast(str, s.subject)
                digest = hashlib.sha1(f"{queue}\0{subject}".encode("utf-8", "surrogateescape")).hexdigest()[:8]
                part = classes[subject]
                names[i] = f"{base}.{queues[queue]}.{s.metric.filled(part[:max(1, len(part) - 9)] + '-' + digest)}"
        return [f"{self.metric_type}#{name}={format_value(s.value)}" for name, s in zip(names, samples, strict=True)]

    def _base(self, shard: str | None) -> str:
        """What a name starts with: `sidekiq`, or `sidekiq:orders` for a shard other than the default one. No name
        of the default shard can start so (the prefix is always followed by a dot there), and shard names hold no
        dot: a shard's names never collide with another's, whatever its queues are called."""
        return self.prefix if shard is None else f"{self.prefix}:{shard}"

    def _queue_heads(self, series: list[QueueSeries]) -> list[list[str]]:
        queues = [s.queues for s in series]
        labels = [s.labels for s in series]
        if self._heads and self._heads[0] == queues and self._heads[1] == labels:  # usually the very same objects
            return self._heads[2]
        # Metric names are chosen over every queue of the poll (of each shard), so a queue keeps its name on every
        # line; a shard's queues never change another's names.
        every = {shard: tuple(dict.fromkeys(itertools.chain.from_iterable(
            s.queues for s in series if s.shard == shard))) for shard in dict.fromkeys(s.shard for s in series)}
        heads = []
        for s in series:
            names = queue_names_for(s.metric.name, every[s.shard], self._base(s.shard))
            heads.append([f"{self.metric_type}#{self._base(s.shard)}.{names[q]}.{s.metric.name}=" for q in s.queues])
        self._heads = ([list(q) for q in queues], labels, heads)
        return heads

    def _pack(self, measurements: list[str]) -> list[str]:
        """Join measurements into lines of at most MAX_LINE_BYTES, never splitting one.

        Every measurement is ASCII without spaces (names are sanitised, values are digits), so characters
        are bytes and a line can end at any space of the joined text.
        """
        head = f"source={self.source} " if self.source else ""
        room = MAX_LINE_BYTES - len(head)
        text = " ".join(measurements)
        lines, start, end = [], 0, len(text)
        while start < end:
            # the last space within reach: text[start:stop] then fits; else one measurement, however long
            stop = end if end - start <= room else text.rfind(" ", start, start + room + 1)
            if stop <= start:
                stop = text.find(" ", start)
                stop = end if stop < 0 else stop
            lines.append(head + text[start:stop])
            start = stop + 1
        return lines


def _queue_of(sample: Sample) -> str | None:
    """The queue of a value labelled with one beside its own label (a job class's jobs waiting in it)."""
    return next((value for name, value in sample.labels[1:] if name == "queue"), None) if len(sample.labels) > 1 \
        else None


def _formatted(values: list[float]) -> Iterator[str]:
    """format_value over a series, the usual cases (all sizes, all latencies) without a call per value."""
    kinds = set(map(type, values))
    if kinds == {int} and min(values) >= 0:
        return map(str, values)
    if kinds == {float} and min(values) >= 0:
        return map("%.3f".__mod__, values)
    return map(format_value, values)


def format_value(value: float) -> str:
    """Integers as integers, anything else to the millisecond; never negative, never an exponent."""
    if value.__class__ is int:
        return str(value) if value >= 0 else "0"
    return "%.3f" % value if value >= 0 else "0.000"  # noqa: UP031 - the fastest spelling, run 20,000 times a poll


class L2metOutput:
    """Heroku log lines on stdout: the default output."""

    def __init__(self, prefix: str, metric_type: str, source: str | None, write: Callable[[list[str]], None]) -> None:
        self.format = L2metFormat(prefix, metric_type, source)
        self.write = write

    def emit(self, measurements: Measurements, at: float) -> None:
        self.write(self.format.render(measurements))


_MEASUREMENT = re.compile(r"(?:sample|measure|count)#(?P<name>[^\s=]+)=(?P<value>\S*)")
_WRITTEN = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # what format_value writes: a plain non-negative decimal
_READ_BACK = {m.bare_name for m in (PROCESS_BUSY, PROCESS_CONCURRENCY, PROCESS_COUNT)}  # what simulate uses


def read_line(text: str, prefix: str) -> dict[str, float]:
    """The measurements of one line, by name after the prefix (`default.size`; a shard's as `:orders.default.size`).
    Raises ValueError naming the measurement when one of ours holds a value no emitter writes (`NaN`, `1e999`,
    `-1`, `1.2.3`): such a recording was not printed by us as it stands, and guessing would decide on numbers that
    were never measured."""
    values = {}
    for match in _MEASUREMENT.finditer(text):
        name, value = match["name"], match["value"]
        if name.startswith((prefix + ".", prefix + ":")):
            number = float(value) if _WRITTEN.fullmatch(value) else math.inf
            if number >= 1e18:  # (more than any count or second of ours; 400 digits are `inf`)
                raise ValueError(f"{name[:120]}={value[:20]} is not a number the emitter writes")
            values[name[len(prefix) + 1:] if name[len(prefix)] == "." else name[len(prefix):]] = number
    return values


def read_poll(values: dict[str, float]) -> Recorded:
    """A poll from the measurements of its lines: `<queue>.size`, `<queue>.latency` (a queue's name may hold
    dots), `process.<type>.busy`, and the totals. Another shard's queues are named `<shard>:<queue>`, as autoscaling
    names them; with shards, the process types and totals are those summed over every shard (`:all.`)."""
    from sidekiq_metrics.outputs.recorded import Recorded  # read back by `autoscale simulate` only

    recorded = Recorded(up=values.get(UP.name))
    summed = any(name.startswith(f":{SHARDS_TOTAL}.") for name in values)
    for key, value in values.items():
        shard, name = key[1:].split(".", 1) if key.startswith(":") else (None, key)
        head, _, rest = name.partition(".")
        process_type, _, metric = rest.rpartition(".")
        crew = head == "process" and f"process.{metric}" in _READ_BACK
        if shard is not None and name == UP.name:
            recorded.shards_up[shard] = value
        if shard == SHARDS_TOTAL or (shard is None and not summed):
            recorded.totals[name] = value
            if crew:
                recorded.process_types.setdefault(process_type, {})[f"process.{metric}"] = value
        if crew or shard == SHARDS_TOTAL:
            continue
        if name.endswith((".size", ".latency")):
            queue, _, column = name.rpartition(".")
            (recorded.sizes if column == "size" else recorded.waits)[queue if shard is None else f"{shard}:{queue}"] \
                = value
    return recorded
