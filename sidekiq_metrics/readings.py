"""What one read of Sidekiq's state produces: plain values, with no Redis in them.

The metrics, `watch` and `doctor` take these; only snapshot.py makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sidekiq_metrics.jobs import Stamp


class QueueReading(NamedTuple):  # a tuple: 10,000 of them are made every poll
    name: str
    size: int | None  # None: the key could not be read (e.g. it is not a list)
    oldest: Stamp | None  # None: the queue is empty (or unreadable, see `problem`)
    problem: str | None = None  # why size or oldest is unknown


@dataclass(frozen=True, slots=True)
class ProcessReading:
    """A Sidekiq process whose heartbeat hash still exists (Sidekiq drops the others the same way)."""

    identity: str
    busy: int
    concurrency: int | None  # None: not readable from any field this Sidekiq version writes


@dataclass(frozen=True, slots=True)
class Totals:
    """What Sidekiq::Stats reports, read the way it reads it."""

    # None: Redis refused to read it (an ACL without access to that key): unknown, never 0.
    processed: int | None
    failed: int | None
    scheduled: int | None
    retries: int | None
    dead: int | None
    processes: int | None  # SCARD processes: Stats#processes_size, which may still count dead processes
    enqueued: int  # sum of LLEN over every queue in the `queues` set: Stats#enqueued
    live: tuple[ProcessReading, ...]

    @property
    def busy(self) -> int:
        """Stats#workers_size: an expired process hash counts 0."""
        return sum(p.busy for p in self.live)

    @property
    def concurrency(self) -> int:
        """ProcessSet#total_concurrency: the threads of the live processes."""
        return sum(p.concurrency or 0 for p in self.live)


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: tuple[QueueReading, ...]
    read_at: float  # epoch seconds, taken when the replies were in
    totals: Totals | None = None
    problems: tuple[str, ...] = ()  # one line for each key Redis would not let us read, but queues' own
