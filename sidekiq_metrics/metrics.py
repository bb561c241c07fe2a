"""Metrics derived from a Snapshot: plain values, no formatting, no I/O.

A Sample names what was measured ("size", "latency") and, for per-queue values,
the real queue name. Each output format decides how to spell that: l2met puts
the queue into the metric name, tag-based systems make it a tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidekiq_metrics.jobs import latency
from sidekiq_metrics.snapshot import Snapshot

QUEUE_SIZE = "size"
QUEUE_LATENCY = "latency"


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    value: float
    queue: str | None = None  # the real queue name, for per-queue samples


@dataclass(frozen=True, slots=True)
class Problem:
    queue: str
    reason: str


def queue_samples(snapshot: Snapshot) -> tuple[list[Sample], list[Problem]]:
    """Per-queue size and latency (seconds). A value that cannot be known is left out, with a Problem."""
    samples: list[Sample] = []
    problems: list[Problem] = []
    for q in snapshot.queues:
        if q.size is not None:
            samples.append(Sample(QUEUE_SIZE, q.size, q.name))
        wait = None if q.problem else latency(q.oldest, snapshot.read_at)
        if wait is not None:
            samples.append(Sample(QUEUE_LATENCY, wait, q.name))
        elif not q.problem:
            problems.append(Problem(q.name, "the oldest job's timestamp is not a usable time"))
        if q.problem:
            problems.append(Problem(q.name, q.problem))
    return samples, problems
