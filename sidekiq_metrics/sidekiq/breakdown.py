"""The retry, dead and schedule sets and the largest queues, tallied by job class (and error class) inside Redis.

Our read-only Lua script (breakdown.lua) decodes the jobs where they are and sends back only class
names and counts. Each call does bounded work (BUDGET: bytes copied plus a weight per JSON value
decoded; ENTRIES jobs); a set larger than that is taken in passes that span calls and polls, with the
cursor kept here. A pass ends at the end its set had when it began. A job longer than LARGE is never
decoded (its class is read by pattern), but Redis still copies it into the script: a set that held
one over HEAVY is passed again only after RESCAN seconds. A poll makes at most ROUNDS round trips of calls (the
first inside the poll's own pipeline), one call per breakdown in each, whatever the number of queues,
classes or jobs. A tally is published when its pass ends, with the time its pass began: a reader knows
how old it is.
"""

from __future__ import annotations

import fnmatch
import hashlib
import heapq
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.parsing import quote, whole_number
from sidekiq_metrics.redis.resp import Command, RedisError, Reply
from sidekiq_metrics.setting import Setting
from sidekiq_metrics.sidekiq.job_metrics import OTHER, UNKNOWN, reported_class
from sidekiq_metrics.sidekiq.readings import Breakdown, QueueReading

SCRIPT = Path(__file__).with_name("breakdown.lua").read_bytes()
SHA = hashlib.sha1(SCRIPT).hexdigest()
# Per call: about 1 ms of Redis time for jobs of 2 KB, under 5 ms at worst (docs/performance.md).
BUDGET = 1 << 18
ENTRIES = 500
LARGE = 1 << 16  # a job longer (or costlier to decode) than this is read by pattern from windows this size
# Redis copies each job into the script whole: measured 2-3 ms for a job of 1 MB, 9-12 ms for 4 MB, 64-68 ms for
# 16 MB (docs/performance.md). A set whose pass copied a job over HEAVY is not passed again before RESCAN seconds.
HEAVY = 1 << 20
RESCAN = 600.0
ROUNDS = 4  # round trips of calls a poll makes at most (the first rides in the poll's pipeline)
QUEUE_KEYS = 50  # queue keys one call is given: it goes on to the next when one is done

SETS = {"retries": "retry", "dead": "dead", "scheduled": "schedule"}  # breakdown -> Sidekiq's key
KINDS = (*SETS, "queues")


def parse_breakdowns(raw: str, label: str) -> frozenset[str]:
    names = {p.strip() for p in raw.split(",") if p.strip()}
    if names == {"none"}:
        return frozenset()
    if not names or not names <= set(KINDS):
        raise ConfigError(label, f"must list some of {', '.join(KINDS)} separated by commas, or none; "
                          f"got {quote(raw)}")
    return frozenset(names)


def parse_size(raw: str, label: str) -> int:
    if whole_number(raw) is not None and 0 < int(raw) <= 10**9:
        return int(raw)
    raise ConfigError(label, f"must be a whole number from 1 to 1000000000, got {quote(raw)}")


def parse_queue_count(raw: str, label: str) -> int:
    if whole_number(raw) is not None and 0 <= int(raw) <= 1000:
        return int(raw)
    raise ConfigError(label, f"must be a whole number from 0 to 1000, got {quote(raw)}")


BREAKDOWN_SETTINGS = (
    # The queues are left out by default: a class in each of 20 queues can make hundreds of series, and metric
    # services bill each series (docs/metrics.md).
    Setting("breakdowns", ("SIDEKIQ_METRICS_BREAKDOWNS",), frozenset(SETS),
            "which sets to tally by job class inside Redis: retries, dead, scheduled, queues (comma-separated), "
            "or none", parse_breakdowns, flag="--breakdowns", shown="retries,dead,scheduled"),
    Setting("breakdown_max_size", ("SIDEKIQ_METRICS_BREAKDOWN_MAX_SIZE",), 10_000,
            "a set or queue holding more jobs than this is not tallied by class (each call stays short, but a "
            "pass over a large set spans many polls)", parse_size, flag="--breakdown-max-size"),
    Setting("breakdown_queues", ("SIDEKIQ_METRICS_BREAKDOWN_QUEUES",), 20,
            "how many queues, the largest ones, are tallied by job class (0: none)", parse_queue_count,
            flag="--breakdown-queues"),
)


Cursor = tuple[bytes, bytes, bytes]
START: Cursor = (b"", b"", b"")


def call(kind: str, keys: Sequence[bytes], max_size: int, failures: bool, cursor: Cursor) -> Command:
    return ["EVALSHA", SHA, len(keys), *keys, "z" if kind != "queues" else "l", BUDGET, ENTRIES, max_size,
            "1" if failures else "0", *cursor, LARGE]


@dataclass
class Part:
    """What one call says of one key."""

    done: int  # 1 passed to its end, 0 not yet, 2 larger than the limit, 3 not of the expected type, 4 empty
    cursor: Cursor
    entries: int
    classes: dict[str, int]
    oldest: dict[str, float]
    errors: dict[str, int]
    largest: int  # bytes of the longest job the call copied


def _name(raw: bytes) -> str:
    """A class as we report it: '' (the script could not read it) is `unknown`."""
    name = raw.decode("utf-8", "surrogateescape")
    return reported_class(name) if name else UNKNOWN


def parse(reply: Reply) -> list[Part]:
    """The parts of a call's reply; anything else is not our script's answer (RedisError)."""
    if not isinstance(reply, list):
        raise RedisError("unexpected reply from the breakdown script")
    parts = []
    for raw in reply:
        if not (isinstance(raw, list) and len(raw) == 8):
            raise RedisError("unexpected reply from the breakdown script")
        done, c1, c2, c3, entries, classes, errors, largest = raw
        if not (isinstance(done, int) and isinstance(c1, bytes) and isinstance(c2, bytes) and isinstance(c3, bytes)
                and isinstance(entries, int) and isinstance(classes, list) and isinstance(errors, list)
                and isinstance(largest, int)):
            raise RedisError("unexpected reply from the breakdown script")
        counts: dict[str, int] = {}
        oldest: dict[str, float] = {}
        for name, n, at in zip(classes[0::3], classes[1::3], classes[2::3], strict=True):
            if isinstance(name, bytes) and isinstance(n, int):
                key = _name(name)
                counts[key] = counts.get(key, 0) + n
                if isinstance(at, bytes) and at:
                    oldest[key] = min(float(at), oldest.get(key, float("inf")))
        errs: dict[str, int] = {}
        for name, n in zip(errors[0::2], errors[1::2], strict=True):
            if isinstance(name, bytes) and isinstance(n, int):
                key = _name(name)
                errs[key] = errs.get(key, 0) + n
        parts.append(Part(done, (c1, c2, c3), entries, counts, oldest, errs, largest))
    return parts


@dataclass
class _Tally:
    classes: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add(self, part: Part) -> None:
        for name, n in part.classes.items():
            self.classes[name] = self.classes.get(name, 0) + n
        for name, at in part.oldest.items():
            self.oldest[name] = min(at, self.oldest.get(name, at))
        for name, n in part.errors.items():
            self.errors[name] = self.errors.get(name, 0) + n


@dataclass
class _Pass:
    """One breakdown's pass in progress: where it is, what it has counted, when it began."""

    key: bytes  # the set's key, or the queue being walked
    started: float
    cursor: Cursor = START
    tally: _Tally = field(default_factory=_Tally)
    calls: int = 0
    largest: int = 0  # bytes of the longest job it copied


@dataclass
class Breakdowns:
    """Every breakdown's passes, kept across polls by one SidekiqReader (one shard)."""

    prefix: bytes
    kinds: frozenset[str] = frozenset(KINDS)
    max_size: int = 10_000
    queue_count: int = 20
    top: int = 20  # the cap shared with the job-class metrics (SIDEKIQ_METRICS_JOB_CLASSES_TOP)
    patterns: tuple[str, ...] | None = None  # ... and SIDEKIQ_METRICS_JOB_CLASSES
    passes: dict[str, _Pass] = field(default_factory=dict)  # by breakdown (`queues`: the queue being walked)
    published: dict[tuple[str, str], Breakdown] = field(default_factory=dict)  # (breakdown, queue or '')
    queue_order: list[str] = field(default_factory=list)  # the queues of the current round, largest first
    too_large: dict[tuple[str, str], None] = field(default_factory=dict)  # over max_size at their last pass
    resting: dict[tuple[str, str], float] = field(default_factory=dict)  # no pass begins before (RESCAN)

    def commands(self, now: float, queues: Sequence[QueueReading] | None,
                 going_on: bool = False) -> list[tuple[str, Command]]:
        """One call per breakdown whose pass goes on, or starts afresh (not with `going_on`: a pass begins with a
        poll, so that its age says when; nor while its set rests after a pass that copied a job over HEAVY).
        `queues`: the reported queues as the last poll read them, to choose the largest (None: no new round of the
        queues is started)."""
        out: list[tuple[str, Command]] = []
        for kind, name in SETS.items():
            if kind not in self.kinds or (kind not in self.passes and (going_on or self._resting(kind, "", now))):
                continue
            p = self.passes.get(kind) or self.passes.setdefault(kind, _Pass(self.prefix + name.encode(), now))
            out.append((kind, call(kind, [p.key], self.max_size, kind != "scheduled", p.cursor)))
        if "queues" in self.kinds and self.queue_count:
            first = not any(where[0] == "queues" for where in self.published)  # (the first poll knows no sizes)
            if not self.queue_order and queues and (first or not going_on):  # a new round: the largest queues now
                # (ties: in the readings' order, by name); at every poll of 10,000 small queues: in C, filter too
                largest = heapq.nlargest(self.queue_count, filter(_SIZE, queues), key=_SIZE)
                chosen = {q.name for q in largest}
                self.queue_order = [q.name for q in largest if not self._resting("queues", q.name, now)]
                for table in (self.published, self.too_large, self.resting):
                    for where in [w for w in table if w[0] == "queues" and w[1] not in chosen]:
                        del table[where]
            if self.queue_order:
                key = self._queue_key(self.queue_order[0])
                walking = self.passes.get("queues")
                if walking is None or walking.key != key:
                    walking = self.passes["queues"] = _Pass(key, now)
                keys = [self._queue_key(q) for q in self.queue_order[:QUEUE_KEYS]]
                out.append(("queues", call("queues", keys, self.max_size, False, walking.cursor)))
        return out

    def _resting(self, kind: str, queue: str, now: float) -> bool:
        return self.resting.get((kind, queue), now) > now

    def reset(self) -> None:
        """Every pass and tally forgotten (Redis refuses our script: a tally kept would be reported for ever)."""
        self.passes.clear()
        self.published.clear()
        self.queue_order.clear()
        self.too_large.clear()
        self.resting.clear()

    def _queue_key(self, queue: str) -> bytes:
        return self.prefix + b"queue:" + queue.encode("utf-8", "surrogateescape")

    def take(self, kind: str, reply: Reply, now: float) -> bool:
        """A call's reply into its pass; True when that pass goes on (another call can be made this poll)."""
        parts = parse(reply)
        if not parts:
            raise RedisError("unexpected reply from the breakdown script")
        if kind != "queues":
            p = self.passes[kind]
            part = parts[0]
            if _goes_on(p, part):
                return True
            del self.passes[kind]
            self._finish(kind, "", part.done, p, now)
            return False
        for part in parts:
            queue = self.queue_order[0]
            p = self.passes["queues"]
            if _goes_on(p, part):
                return True
            self._finish("queues", queue, part.done, p, now)
            self.queue_order.pop(0)
            if self.queue_order:
                self.passes["queues"] = _Pass(self._queue_key(self.queue_order[0]), now)
            else:
                del self.passes["queues"]
        return bool(self.queue_order)

    def _finish(self, kind: str, queue: str, done: int, p: _Pass, now: float) -> None:
        where = (kind, queue)
        if p.largest > HEAVY:
            self.resting[where] = p.started + RESCAN
        else:
            self.resting.pop(where, None)
        before = self.published.pop(where, None)
        if done == 2:
            self.too_large[where] = None
        if done not in (1, 4):  # too large now, or not a list: no tally is better than a stale one
            return
        self.too_large.pop(where, None)
        t = p.tally if done == 1 else _Tally()  # a set found empty (or gone) has no jobs, whatever was counted
        classes, rest = capped(t.classes, self.top, self.patterns)
        oldest = {n: t.oldest[n] for n in classes if n in t.oldest}
        folded = [t.oldest[n] for n in t.oldest if n not in set(classes)]
        if rest:
            classes[OTHER] = rest
            if folded:
                oldest[OTHER] = min(folded)
        errors, rest = capped(t.errors, self.top, self.patterns and ("*",))
        if rest:
            errors[OTHER] = rest
        if before:  # a class (error class) that left is said once as 0, so that a graph or an alert on it clears;
            # one that is still there but now summed into `other` (another overtook it) is not gone: no 0
            classes = {**{n: 0 for n, c in before.classes.items() if c and n not in classes and n not in t.classes},
                       **classes}
            errors = {**{n: 0 for n, c in before.errors.items() if c and n not in errors and n not in t.errors},
                      **errors}
        if classes or errors:
            self.published[where] = Breakdown(kind, queue, classes, oldest, errors, p.started, now, p.calls)

    def notes(self) -> list[str]:
        """A line for each set or queue left out for its size."""
        return [f"{f'queue {ascii(queue)[:80]}' if queue else f'the {kind} set'} holds more than {self.max_size} "
                "jobs: it is not tallied by class (SIDEKIQ_METRICS_BREAKDOWN_MAX_SIZE)"
                for kind, queue in self.too_large]

    def current(self, reported: Sequence[str] | None = None) -> tuple[Breakdown, ...]:
        """The published tallies; of the queues, those of the reported queues only."""
        if reported is not None:
            wanted = set(reported)
            for where in [w for w in self.published if w[0] == "queues" and w[1] not in wanted]:
                del self.published[where]
        return tuple(self.published.values())


def _goes_on(p: _Pass, part: Part) -> bool:
    """A call's part taken into its pass: True when the pass goes on from the part's cursor."""
    p.tally.add(part)
    p.calls += 1
    p.largest = max(p.largest, part.largest)
    if part.done == 0:
        p.cursor = part.cursor
        return True
    return False


_SIZE = operator.attrgetter("size")  # of a QueueReading: None or 0 are left out (filter), the rest compared


def capped(counts: dict[str, int], top: int, patterns: tuple[str, ...] | None) -> tuple[dict[str, int], int]:
    """The classes reported one by one (the `top` largest, among those `patterns` name; `unknown` always) and the
    count summed into `other` for the rest. (Error classes are capped by number only.)"""
    eligible = [n for n in counts if n != UNKNOWN and
                (patterns is None or any(fnmatch.fnmatchcase(n, p) for p in patterns))]
    chosen = sorted(eligible, key=lambda n: (-counts[n], n))[:top]
    if UNKNOWN in counts:
        chosen.append(UNKNOWN)
    kept = set(chosen)
    rest = sum(n for name, n in counts.items() if name not in kept)
    return {name: counts[name] for name in sorted(chosen)}, rest
