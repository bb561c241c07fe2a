"""Metrics derived from a Snapshot: plain values, no formatting, no I/O.

A Sample names what was measured and, for per-queue values, the real queue name.
Each output format decides how to spell that: l2met puts the queue into the
metric name, tag-based systems make it a tag. Names here are the part after the
prefix: "<prefix>.<queue>.size", "<prefix>.enqueued".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sidekiq_metrics.jobs import latency
from sidekiq_metrics.snapshot import Snapshot, Totals

QUEUE_SIZE = "size"
QUEUE_LATENCY = "latency"
UP = "metrics.up"
ERRORS = "metrics.errors"


class Sample(NamedTuple):  # a tuple: two or three per queue are made every poll
    name: str
    value: float
    queue: str | None = None  # the real queue name, for per-queue samples
    counter: bool = False  # an increase since the previous poll, not a level


@dataclass(frozen=True, slots=True)
class Problem:
    queue: str
    reason: str


def queue_samples(snapshot: Snapshot) -> tuple[list[Sample], list[Problem]]:
    """Per-queue size and latency (seconds). A value that cannot be known is left out, with a Problem."""
    queues = snapshot.queues
    now = snapshot.read_at
    new = tuple.__new__  # Sample(...) without its Python-level __new__: these run for every queue
    sizes = [new(Sample, (QUEUE_SIZE, q[1], q[0], False)) for q in queues if q[1] is not None]
    waits = [None if q[3] else latency(q[2], now) for q in queues]
    latencies = [new(Sample, (QUEUE_LATENCY, w, q[0], False))
                 for q, w in zip(queues, waits, strict=True) if w is not None]
    problems = [Problem(q[0], q[3] or "the oldest job's timestamp is not a usable time")
                for q, w in zip(queues, waits, strict=True) if w is None]
    return sizes + latencies, problems


def total_samples(totals: Totals, queue_samples: list[Sample]) -> list[Sample]:
    """Whole-Sidekiq levels, as Sidekiq::Stats and Sidekiq::ProcessSet report them."""
    latencies = [s.value for s in queue_samples if s.name == QUEUE_LATENCY]
    samples = [
        Sample("enqueued", totals.enqueued),
        Sample("scheduled", totals.scheduled),
        Sample("retries", totals.retries),
        Sample("dead", totals.dead),
        Sample("processes", totals.processes),
        Sample("busy", totals.busy),
        Sample("processed", totals.processed),
        Sample("failed", totals.failed),
    ]
    if latencies:
        samples.append(Sample("max_latency", max(latencies)))
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

    def update(self, totals: Mapping[str, int]) -> list[Sample]:
        samples = []
        for name, value in totals.items():
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
