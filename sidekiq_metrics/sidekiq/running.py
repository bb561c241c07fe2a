"""What Sidekiq's processes run now: their `<identity>:work` hashes (`:workers` up to 6.4.1), read by our
read-only Lua script (work_scan.lua), or whole with HGETALL where Redis refuses scripts.

Each value of such a hash is one running job, as every Sidekiq from 6.4 to 8.1 writes it (processor.rb,
`WORK_STATE.set(tid, {queue:, payload: jobstr, run_at: Time.now.to_i})`, dumped to JSON by the heartbeat):
`{"queue":"default","payload":"<the job's JSON>","run_at":1733600000}`. `run_at` is whole epoch seconds in
all of them; a whole number from MS_CUTOFF up is read as milliseconds, as job timestamps are
(job_payload.epoch_seconds), so a client that writes milliseconds is read right too.

Both paths read a record alike (a test holds them equal over generated records): the class is
Sidekiq's `display_class`; a record longer than LARGE_RECORD is not parsed, only its two ends,
where Sidekiq puts `queue` and `run_at`, and its class is unknown.

What one script call holds Redis for is bounded: it reads at most BUDGET bytes of records (the
fields past it are handed back and read by more calls in one more round trip), and a record
longer than OUTSIDE is never read at all: Redis has no command that reads part of a hash's
value, and copying one into the script costs about 1.1 ms a MiB (docs/performance.md), so its
job is counted as too large to read (a warning says so) and left out of the longest-running job.
Its bytes never cross the network, so a poll's bytes do not grow with the jobs' arguments.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from sidekiq_metrics.redis.resp import Command, RedisError, Reply, ReplyError, TooLarge
from sidekiq_metrics.sidekiq.job_metrics import OTHER, UNKNOWN, named, reported_class
from sidekiq_metrics.sidekiq.job_payload import MS_CUTOFF, epoch_seconds
from sidekiq_metrics.sidekiq.keys import decode
from sidekiq_metrics.sidekiq.readings import Running

SCRIPT = Path(__file__).with_name("work_scan.lua").read_bytes()
SHA = hashlib.sha1(SCRIPT).hexdigest()
EARLIEST = MS_CUTOFF / 1000  # 2000-01-01, in epoch seconds
LATEST = 1e10  # 2286-11-20
BATCH = 16  # hashes per script call (8 processes' `:work` and `:workers`)
LARGE_RECORD = 32 << 10  # bytes: a record longer than this is read by its ends only
BUDGET = 256 << 10  # record bytes one script call reads at most (benchmarks/bench_poll.py --running)
OUTSIDE = 1 << 20  # bytes: a record longer than this is never read (a MiB holds Redis ~1.1 ms in the script)

WRAPPERS = frozenset({"ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper", "Sidekiq::ActiveJob::Wrapper"})
MAILERS = frozenset({"ActionMailer::DeliveryJob", "ActionMailer::MailDeliveryJob"})

_HEAD = re.compile(rb'\{"queue":"([^"\\]*)"')
_TAIL = re.compile(rb'"run_at":([-+0-9.eE]+)\}\Z')


class WorkRecord(NamedTuple):
    """One running job. None where the record does not say (or not in a form Sidekiq writes)."""

    queue: str | None
    job_class: str | None  # Sidekiq's display_class: ActiveJob's wrapped class, `Mailer#method` for a mailer job
    since: float | None  # epoch seconds it started


UNREADABLE = WorkRecord(None, None, None)


def longest(records: Iterable[WorkRecord], patterns: tuple[str, ...] | None, top: int) -> Running:
    """The earliest start of each queue and class. Classes share the job-class metrics' cap: those
    SIDEKIQ_METRICS_JOB_CLASSES names (any, unset), at most `top` of them, the longest-running first; the rest as
    `other`. A class literally named `other` or `unknown` joins `other`, so no real class takes a reserved series."""
    queues: dict[str, float] = {}
    classes: dict[str, float] = {}
    unreadable = 0
    for record in records:
        since = record.since
        if since is None:
            unreadable += 1
            continue
        if record.queue is not None:
            queues[record.queue] = min(queues.get(record.queue, since), since)
        name = UNKNOWN if record.job_class is None else reported_class(record.job_class)
        classes[name] = min(classes.get(name, since), since)
    eligible = sorted((name for name in classes if name not in (OTHER, UNKNOWN) and named(name, patterns)),
                      key=lambda name: (classes[name], name))[:top]
    shown = {name: classes[name] for name in eligible}
    if UNKNOWN in classes:
        shown[UNKNOWN] = classes[UNKNOWN]
    rest = [since for name, since in classes.items() if name not in shown]
    if rest:
        shown[OTHER] = min(rest)
    return Running(tuple(sorted(queues.items())), tuple(sorted(shown.items())), unreadable)


class Deferred(NamedTuple):
    """A record a script call handed back unread."""

    key: int  # its hash's index in the call
    field: bytes
    length: int
    whole: bool  # longer than OUTSIDE: never read; else past the call's budget: for another call


def call(keys: list[bytes], fields: Sequence[bytes] = ()) -> Command:
    """One EVALSHA of the script over these hashes (at most BATCH), or over only these fields of one hash."""
    return ["EVALSHA", SHA, len(keys), *keys, LARGE_RECORD, OUTSIDE, BUDGET, *fields]


def later(key: bytes, deferred: Iterable[Deferred]) -> list[Command]:
    """The reads of a hash's records handed back past a call's budget: script calls, as many fields to a call as
    its budget takes (each call reads its first field, at most OUTSIDE bytes). Those longer than OUTSIDE are never
    read (the caller counts them)."""
    commands: list[Command] = []
    batch: list[bytes] = []
    size = 0
    for d in deferred:
        if d.whole:
            continue
        if batch and size + d.length > BUDGET:
            commands.append(call([key], batch))
            batch, size = [], 0
        batch.append(d.field)
        size += d.length
    if batch:
        commands.append(call([key], batch))
    return commands


def _truthy(value: object) -> bool:
    """Ruby's truth: only nil and false are false (0 and "" are true)."""
    return value is not None and value is not False


def display_class(job: object) -> str | None:
    """Sidekiq::JobRecord#display_class of a job (a parsed payload); None when it is not a string."""
    if not isinstance(job, dict):
        return None
    if _truthy(shown := job.get("display_class")):
        return shown if isinstance(shown, str) else None
    klass = job.get("class")
    if not (isinstance(klass, str) and klass in WRAPPERS):
        return klass if isinstance(klass, str) else None
    args = job.get("args")
    first = args[0] if isinstance(args, list) and args else None
    wrapped = job.get("wrapped")
    shown = wrapped if _truthy(wrapped) else first
    if isinstance(shown, str) and shown in MAILERS:
        mail = first.get("arguments") if isinstance(first, dict) else None
        if isinstance(mail, list) and len(mail) >= 2 and isinstance(mail[0], str) and isinstance(mail[1], str):
            return f"{mail[0]}#{mail[1]}"
        return None
    return shown if isinstance(shown, str) else None


def started(value: object) -> float | None:
    """Epoch seconds from a record's run_at: a JSON number, whole ones read as job_payload.epoch_seconds reads an
    integer (seconds, milliseconds from MS_CUTOFF), others as seconds. Read as a double, as the script reads it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        return None
    if not math.isfinite(number):
        return None
    seconds = epoch_seconds(int(number) if number.is_integer() else number)
    # Before 2000 or after 2286 no Sidekiq ran this job: 0, a stray number, not a start to count from.
    return seconds if seconds is not None and EARLIEST <= seconds < LATEST else None


def _number(raw: bytes) -> float | None:
    try:
        return started(float(raw))
    except ValueError:
        return None


def by_ends(head: bytes, tail: bytes) -> WorkRecord:
    """A record not parsed: its queue and run_at where Sidekiq writes them (its first and last bytes); its class
    unknown."""
    queue, at = _HEAD.match(head), _TAIL.search(tail[-48:])
    return WorkRecord(decode(queue.group(1)) if queue else None, None, _number(at.group(1)) if at else None)


def parse_record(raw: bytes | TooLarge) -> WorkRecord:
    """One value of a work hash, read whole (HGETALL, HGET): as the script reads it."""
    if isinstance(raw, TooLarge):
        return by_ends(raw.head, raw.tail)
    if len(raw) > LARGE_RECORD:
        return by_ends(raw, raw)
    try:
        work = json.loads(raw.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return UNREADABLE
    if not isinstance(work, dict):
        return UNREADABLE
    job = work.get("payload")
    if isinstance(job, str):
        try:
            job = json.loads(job)
        except (ValueError, RecursionError):
            job = None
    queue = work.get("queue")
    return WorkRecord(queue if isinstance(queue, str) and queue else None, display_class(job) or None,
                      started(work.get("run_at")))


def from_script(keys: int, reply: Reply) -> tuple[list[list[WorkRecord]], list[str | None], list[Deferred]]:
    """A script call's reply as each key's records, each key's error (None: read), and the records handed back."""
    if not isinstance(reply, list) or len(reply) % 4 or not all(isinstance(r, bytes) for r in reply):
        raise RedisError("unexpected reply from the work scan script; the next poll reads the work again")
    records: list[list[WorkRecord]] = [[] for _ in range(keys)]
    errors: list[str | None] = [None] * keys
    deferred: list[Deferred] = []
    fields: list[bytes] = reply  # type: ignore[assignment]  # all bytes: checked above
    for n in range(0, len(fields), 4):
        index, queue, job_class, at = fields[n:n + 4]
        i = int(index) - 1
        if not 0 <= i < keys:
            raise RedisError("unexpected reply from the work scan script; the next poll reads the work again")
        if queue == b"!":
            errors[i] = decode(job_class)[:120]
        elif queue in (b">", b"+") and at.isdigit():
            deferred.append(Deferred(i, job_class, int(at), queue == b">"))
        else:
            records[i].append(WorkRecord(decode(queue) or None, decode(job_class) or None,
                                         _number(at) if at else None))
    return records, errors, deferred


def from_hgetall(reply: Reply) -> tuple[list[WorkRecord], str | None, int]:
    """One hash read whole: its records, or Redis's error; and how many records are longer than OUTSIDE (left out,
    as the script leaves them)."""
    if isinstance(reply, ReplyError):
        return [], str(reply)[:120], 0
    if not isinstance(reply, list):
        return [], "HGETALL did not answer with a hash", 0
    # An empty value is no job (Sidekiq's WorkSet skips it too; the script reads its length, 0, and skips it).
    values = [v for v in reply[1::2] if v != b""]
    large = [v for v in values if isinstance(v, bytes | TooLarge) and _length(v) > OUTSIDE]
    return [parse_record(v) if isinstance(v, bytes) else UNREADABLE for v in values if not
            (isinstance(v, bytes | TooLarge) and _length(v) > OUTSIDE)], None, len(large)


def _length(value: bytes | TooLarge) -> int:
    return value.size if isinstance(value, TooLarge) else len(value)
