"""What one read of Sidekiq's state produces: plain values, with no Redis in them.

The metrics, `watch` and `doctor` take these; only reader.py makes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

from sidekiq_metrics.heroku.dynos import process_type
from sidekiq_metrics.sidekiq.job_payload import Stamp


class QueueReading(NamedTuple):  # a tuple: 10,000 of them are made every poll
    name: str
    size: int | None  # None: Redis refused to read the key (a key that is not a list has no reading at all)
    oldest: Stamp | None  # None: the queue is empty (or unreadable, see `problem`)
    problem: str | None = None  # why size or oldest is unknown


@dataclass(frozen=True, slots=True)
class ProcessReading:
    """A Sidekiq process whose heartbeat hash still exists (Sidekiq drops the others the same way)."""

    identity: str
    busy: int
    concurrency: int | None  # None: not readable from any field this Sidekiq version writes
    hostname: str | None = None  # `$DYNO` on Heroku (worker.3)
    rss_kb: int | None = None  # resident memory, as the process measures it
    rtt_us: int | None = None  # its Redis round trip, as Sidekiq measures it
    quiet: bool = False  # it takes no new jobs (TSTP, or shutting down)
    version: str | None = None  # Sidekiq's, as the process reports it

    @property
    def process_type(self) -> str:
        """The Heroku process type of the dyno it runs on (`worker` for `worker.3` and `worker-23z34x56y-w78k9`);
        `other` elsewhere."""
        return process_type(self.hostname or "") or "other"


@dataclass(frozen=True, slots=True)
class ProcessGroup:
    """The live processes of one Heroku process type, summed here once for all that read them (the process
    metrics, autoscaling)."""

    processes: tuple[ProcessReading, ...]

    def __iter__(self) -> Iterator[ProcessReading]:
        return iter(self.processes)

    def __len__(self) -> int:
        return len(self.processes)

    @property
    def busy(self) -> int:
        return sum(p.busy for p in self.processes)

    @property
    def concurrency(self) -> int:
        """Their threads; a process whose concurrency is not readable counts none."""
        return sum(p.concurrency or 0 for p in self.processes)

    @property
    def hostnames(self) -> frozenset[str]:
        """The dynos they run on: `worker.3`."""
        return frozenset(p.hostname for p in self.processes if p.hostname)

    @property
    def running(self) -> tuple[str, ...]:
        """The identities of those that run jobs."""
        return tuple(p.identity for p in self.processes if p.busy > 0)


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
    enqueued: int | None  # sum of LLEN over every queue in the `queues` set: Stats#enqueued
    live: tuple[ProcessReading, ...] | None  # None: the process set or a process's hash could not be read
    scheduled_due: float | None = None  # epoch seconds when the earliest scheduled job is due; None: none
    retry_due: float | None = None  # ... and the earliest retry
    last_death: float | None = None  # epoch seconds when the newest job of the dead set died; None: none

    @property
    def busy(self) -> int | None:
        """Stats#workers_size: an expired process hash counts 0. None: the processes are unknown."""
        return None if self.live is None else sum(p.busy for p in self.live)

    @property
    def concurrency(self) -> int | None:
        """ProcessSet#total_concurrency: the threads of the live processes. None: unknown."""
        return None if self.live is None else sum(p.concurrency or 0 for p in self.live)

    @classmethod
    def merged(cls, shards: Sequence[Totals]) -> Totals:
        """The totals of several shards as one Sidekiq: counts summed (unknown when any is), the live processes
        of all (each works one shard's Redis), the earliest due times."""
        def total(values: list[int | None]) -> int | None:
            return None if None in values else sum(cast("list[int]", values))

        def earliest(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return min(known) if known else None

        lives = [t.live for t in shards]
        return cls(total([t.processed for t in shards]), total([t.failed for t in shards]),
                   total([t.scheduled for t in shards]), total([t.retries for t in shards]),
                   total([t.dead for t in shards]), total([t.processes for t in shards]),
                   total([t.enqueued for t in shards]),
                   None if None in lives else tuple(p for live in lives for p in cast("tuple[ProcessReading]", live)),
                   earliest([t.scheduled_due for t in shards]), earliest([t.retry_due for t in shards]),
                   max((t.last_death for t in shards if t.last_death is not None), default=None))

    def by_process_type(self) -> dict[str, ProcessGroup]:
        """The live processes grouped by Heroku process type (`worker` for `worker.3`); none when unknown."""
        groups: dict[str, list[ProcessReading]] = {}
        for process in self.live or ():
            groups.setdefault(process.process_type, []).append(process)
        return {process_type: ProcessGroup(tuple(group)) for process_type, group in groups.items()}


@dataclass(frozen=True, slots=True)
class JobClassReading:
    """A job class's runs in the minutes read, as Sidekiq::Metrics counted them."""

    name: str  # as Sidekiq records it: ActiveJob's wrapped class; "other" for the classes summed together
    runs: int  # failures included
    failures: int
    ms: int  # milliseconds of the successful runs
    histogram: tuple[int, ...] | None  # runs by bucket (job_metrics.BUCKETS_MS); None: "other", or Redis refused it


@dataclass(frozen=True, slots=True)
class JobMinutes:
    """The complete minutes read in one poll (usually one), summed."""

    start: float  # epoch seconds
    end: float
    classes: tuple[JobClassReading, ...]


@dataclass(frozen=True, slots=True)
class RedisHealth:
    """What Redis's INFO says of its health (redis_health.py reads it)."""

    used_memory: int | None  # bytes
    maxmemory: int | None  # bytes; 0: no limit
    policy: str | None  # maxmemory-policy
    clients: int | None  # connected_clients
    evicted_keys: int | None  # a running total since Redis started
    ops_per_second: int | None  # instantaneous_ops_per_sec
    refused: tuple[tuple[str, str], ...] = ()  # (section, error code) of the INFO sections Redis refused

    @property
    def memory_ratio(self) -> float | None:
        """used / maxmemory; None with no limit (it can then only grow until the machine runs out)."""
        if self.used_memory is None or not self.maxmemory:
            return None
        return self.used_memory / self.maxmemory


@dataclass(frozen=True, slots=True)
class Running:
    """When the longest-running job of each queue and each job class started (epoch seconds), from the processes'
    work hashes (running.py). Only what runs is here: a queue or class with nothing running has no entry."""

    by_queue: tuple[tuple[str, float], ...]
    by_class: tuple[tuple[str, float], ...]  # past the class cap, as `other`; a class not readable, `unknown`
    unreadable: int = 0  # running jobs whose record holds no usable start: in neither of the above


@dataclass(frozen=True)
class Breakdown:
    """A set's (or a queue's) jobs by class, as one whole pass of breakdown.lua counted them."""

    kind: str  # retries, dead, scheduled or queues
    queue: str  # the queue, for `queues`; '' for a set
    classes: dict[str, int]  # by Sidekiq's display_class; `unknown`: jobs whose class could not be read
    oldest: dict[str, float]  # retries and dead: epoch seconds of each class's earliest first failure
    errors: dict[str, int]  # retries and dead: by error_class
    started: float  # when the pass began (epoch seconds): the tally is at most this old
    finished: float
    calls: int  # script calls the pass took


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: tuple[QueueReading, ...]
    read_at: float  # epoch seconds, taken when the replies were in
    totals: Totals | None = None
    problems: tuple[str, ...] = ()  # one line for each key Redis would not let us read, but queues' own
    jobs: JobMinutes | None = None  # Sidekiq's execution metrics, when a minute became complete
    # The keys of the reads a poll needs that Redis refused: the `queues` and `processes` sets, a queue's LLEN or
    # oldest job, a process's hash. Any of them, and the poll is not a whole reading (metrics.up=0).
    unread: tuple[str, ...] = ()
    health: RedisHealth | None = None  # INFO's readings; None: not asked, or refused (`health_refused` says why)
    health_refused: str | None = None  # the error code of a refused INFO (NOPERM, or ERR for a renamed command)
    running: Running | None = None  # None: not read (the totals were not asked), or Redis refused a work hash
    paused: frozenset[str] | None = None  # the queues Sidekiq Pro holds paused; None: Redis refused the set
    breakdowns: tuple[Breakdown, ...] = ()  # the latest whole pass of each breakdown (breakdown.py)

    @property
    def complete(self) -> bool:
        """Redis answered every read the poll needs. (A queue whose oldest job holds no usable time was read: its
        latency is left out with a warning, and autoscaling holds its process type still.)"""
        return not self.unread
