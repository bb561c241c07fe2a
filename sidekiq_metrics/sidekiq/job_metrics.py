"""Sidekiq's own execution metrics (Sidekiq::Metrics, 7.0 and later), read per complete minute.

Every Sidekiq process counts the jobs it runs and, on each heartbeat (every 10 s), adds the
counts to per-minute keys, in UTC, for the minute of the flush (not the minute the job ran):

    j|20261129|8:3      7.x: a hash per minute, fields <Class>|p (runs, failures included),
    j|261129|8:03       8.x  <Class>|f (failures) and <Class>|ms (milliseconds of successful runs)
    HardJob-29-08:3     7.x: a histogram per class and minute, 26 big-endian u16 counters of
    h|HardJob-29-8:3    8.x  successful run times (bucket upper bounds: BUCKETS_MS), kept 8 hours

Both generations' keys are read (a fleet that is being upgraded writes both); 8.x's 10-minute
rollups are not. A minute is read once it is complete: GRACE seconds after it ends, every flush
that started in it has landed. The hashes are read in the poll's own pipeline, the histograms of
the classes reported in one more round trip, only when a minute completes. Reads only.
"""

from __future__ import annotations

import collections
import fnmatch
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidekiq_metrics.redis.resp import Command, Reply
from sidekiq_metrics.sidekiq.readings import JobClassReading, JobMinutes

# Sidekiq's histogram buckets (lib/sidekiq/metrics/shared.rb): a run of t ms counts in the first bucket
# whose bound is above t; the 26th holds everything from 335 s on.
BUCKETS_MS = (20, 30, 45, 65, 100, 150, 225, 335, 500, 750, 1100, 1700, 2500, 3800, 5750, 8500, 13000, 20000,
              30000, 45000, 65000, 100000, 150000, 225000, 335000)
BUCKETS = len(BUCKETS_MS) + 1
# A minute's keys take their last writes from flushes that began in it: one heartbeat (BEAT_PAUSE, 10 s)
# covers a flush's own time and a few seconds of clock skew between dynos.
GRACE = 10.0
MAX_CATCH_UP = 10  # minutes read at once after Redis was away; older ones are skipped (and said so)
WINDOW = 60  # minutes of run time that rank the classes
OTHER = "other"  # the classes not reported one by one, summed
UNKNOWN = "unknown"  # the class of a job whose payload names none Sidekiq could show (breakdowns, running jobs)
RESERVED = (OTHER, UNKNOWN)


def minute_keys(minute: int) -> tuple[bytes, bytes]:
    """The 7.x and 8.x hash keys of an epoch minute (seconds // 60)."""
    t = time.gmtime(minute * 60)
    return (f"j|{t.tm_year:04d}{t.tm_mon:02d}{t.tm_mday:02d}|{t.tm_hour}:{t.tm_min}".encode(),
            f"j|{t.tm_year % 100:02d}{t.tm_mon:02d}{t.tm_mday:02d}|{t.tm_hour}:{t.tm_min:02d}".encode())


def histogram_keys(job_class: bytes, minute: int) -> tuple[bytes, bytes]:
    t = time.gmtime(minute * 60)
    return (job_class + f"-{t.tm_mday:02d}-{t.tm_hour:02d}:{t.tm_min}".encode(),
            b"h|" + job_class + f"-{t.tm_mday}-{t.tm_hour}:{t.tm_min}".encode())


def histogram(raw: object) -> list[int]:
    """The 26 counters of a BITFIELD string (GET of the key: read-only on any Redis, where BITFIELD_RO
    needs 6.2); missing bytes are zeros, as BITFIELD reads them."""
    data = raw if isinstance(raw, bytes) else b""
    data = data[:2 * BUCKETS].ljust(2 * BUCKETS, b"\0")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, 2 * BUCKETS, 2)]


def percentile(counts: Sequence[int], q: float) -> float | None:
    """Seconds: the upper bound of the bucket that holds the q-th run (nearest rank); the last bucket,
    which has no bound, reports its lower one (335 s: "at least"). None without runs."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for i, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return BUCKETS_MS[min(i, len(BUCKETS_MS) - 1)] / 1000
    return None


def reported_class(name: str) -> str:
    """A job's display_class as the breakdowns and the longest-running job report it: any text can be one (a
    `display_class` field, a client in another language), so a class named like one of our sums gets one more `_`
    (`other` -> `other_`, `other_` -> `other__`) and never shares their series. (Sidekiq's execution metrics name
    Ruby classes only, which cannot be named so.)"""
    return name + "_" if name.rstrip("_") in RESERVED else name


def named(name: str, patterns: tuple[str, ...] | None) -> bool:
    """Whether SIDEKIQ_METRICS_JOB_CLASSES (None: not set) lets a class be reported one by one."""
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass
class _Counts:
    runs: int = 0
    failures: int = 0
    ms: int = 0
    histogram: list[int] | None = None


@dataclass
class JobMetricsReader:
    """Which minutes to read, the commands that read them, and what to make of the replies."""

    prefix: bytes = b""
    patterns: tuple[str, ...] | None = None  # SIDEKIQ_METRICS_JOB_CLASSES: None, every class may be reported
    top: int = 20
    next_minute: int | None = None  # the first minute not read yet
    backfill: int = 0  # complete minutes to read at the first poll (0 for the emitter: never report one twice)
    skipped: int = 0  # minutes skipped after a long outage
    _window: collections.deque[dict[str, int]] = field(default_factory=lambda: collections.deque(maxlen=WINDOW))
    _generations: set[int] = field(default_factory=set)  # of the minutes being read: whose keys had data

    def due(self, now: float) -> list[int]:
        """The complete minutes not read yet. The first poll starts with the minute in progress GRACE
        seconds ago: a minute complete before this process started may have been reported by the one
        it replaces, and is never reported twice (it can be lost: see docs/metrics.md)."""
        last = math.floor((now - GRACE) / 60) - 1  # the latest complete minute
        if self.next_minute is None:
            self.next_minute = last + 1 - self.backfill
        first = max(self.next_minute, last + 1 - MAX_CATCH_UP)
        self.skipped += first - self.next_minute
        self.next_minute = first
        return list(range(first, last + 1))

    def restart(self) -> None:
        """Start again as at the first poll, from the minute in progress: after a while of not reading (another
        emitter held the lease and reported the minutes in between), so that none is reported twice."""
        self.next_minute = None

    def commands(self, minutes: Sequence[int]) -> list[Command]:
        return [["HGETALL", self.prefix + key] for minute in minutes for key in minute_keys(minute)]

    def counts(self, replies: Sequence[Reply]) -> dict[str, _Counts]:
        """Every class's counts over the minutes read (their replies, in commands' order), summed."""
        counts: dict[str, _Counts] = {}
        self._generations = set()
        for n, reply in enumerate(replies):
            if not isinstance(reply, list):
                continue  # an error (another type, no permission): nothing of that key this time
            if reply:
                self._generations.add(n % 2)  # 0: Sidekiq 7's keys, 1: Sidekiq 8's (minute_keys' order)
            for name, value in zip(reply[0::2], reply[1::2], strict=False):
                if not (isinstance(name, bytes) and isinstance(value, bytes)):
                    continue
                job_class, _, kind = name.rpartition(b"|")
                if not job_class or not value.isdigit() or len(value) > 18:
                    continue
                entry = counts.setdefault(job_class.decode("utf-8", "surrogateescape"), _Counts())
                if kind == b"p":
                    entry.runs += int(value)
                elif kind == b"f":
                    entry.failures += int(value)
                elif kind == b"ms":
                    entry.ms += int(value)
        return counts

    def chosen(self, counts: dict[str, _Counts]) -> list[str]:
        """The classes reported one by one: the top ones by run time over the last WINDOW minutes read
        (those SIDEKIQ_METRICS_JOB_CLASSES names, when it is set), that ran in these minutes."""
        self._window.append({name: c.ms for name, c in counts.items()})
        runtime: collections.Counter[str] = collections.Counter()
        for minute in self._window:
            runtime.update(minute)
        # A class literally named `other` is summed into `other` (no Ruby class has that name, so no such job can
        # run): reported one by one, it would give the aggregate's series twice, one lost in every output.
        eligible = [name for name in runtime if name != OTHER and self._named(name)]
        ranked = sorted(eligible, key=lambda name: (-runtime[name], name))[:self.top]
        return sorted(name for name in ranked if name in counts)

    def _named(self, name: str) -> bool:
        return named(name, self.patterns)

    def histogram_commands(self, minutes: Sequence[int], classes: Sequence[str]) -> list[Command]:
        """The histograms of the classes, in the key format of each Sidekiq generation whose hashes had data."""
        return [["GET", self.prefix + key] for name in classes for minute in minutes
                for generation, key in enumerate(histogram_keys(name.encode("utf-8", "surrogateescape"), minute))
                if generation in self._generations]

    def readings(self, minutes: Sequence[int], counts: dict[str, _Counts], classes: Sequence[str],
                 histograms: Sequence[Reply]) -> JobMinutes:
        per_class = len(minutes) * len(self._generations)
        out = []
        for n, name in enumerate(classes):
            replies = histograms[n * per_class:(n + 1) * per_class]
            # A histogram Redis refused is unknown: no percentiles from the part that was read.
            summed = None if any(isinstance(r, Exception) for r in replies) else \
                tuple(sum(column) for column in zip(*map(histogram, replies), strict=True))
            c = counts[name]
            out.append(JobClassReading(name, c.runs, c.failures, c.ms, summed))
        rest = [c for name, c in counts.items() if name not in set(classes)]
        if rest:
            out.append(JobClassReading(OTHER, sum(c.runs for c in rest), sum(c.failures for c in rest),
                                       sum(c.ms for c in rest), None))
        self.next_minute = minutes[-1] + 1
        return JobMinutes(minutes[0] * 60.0, (minutes[-1] + 1) * 60.0, tuple(out))
