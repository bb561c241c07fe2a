"""Reading Sidekiq's state from Redis: one Snapshot per poll, in at most two round trips.

Keys, as Sidekiq writes them (with an optional redis-namespace prefix "<ns>:"):
  queues                    SET of queue names (the only place queues are listed; never KEYS/SCAN,
                            which would also find Sidekiq Pro's private `queue:sq|...` lists)
  queue:<name>              LIST of JSON jobs, pushed on the left, so the oldest is at index -1
  stat:processed, :failed   STRING counters, flushed by each process's heartbeat
  schedule, retry, dead     ZSETs
  processes                 SET of process identities; each identity's HASH (busy, concurrency,
                            info JSON, ...) expires 60 s after its last heartbeat

Round trip 1 reads the two sets and the totals; round trip 2 reads every queue and every process.
Only read commands are sent. This is the one module that talks to Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from sidekiq_metrics.jobs import BadPayload, Stamp, stamp_from_payload


@dataclass(frozen=True, slots=True)
class QueueReading:
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

    processed: int
    failed: int
    scheduled: int
    retries: int
    dead: int
    processes: int  # SCARD processes: Stats#processes_size, which may still count dead processes
    enqueued: int  # sum of LLEN over every queue in the `queues` set: Stats#enqueued
    live: tuple[ProcessReading, ...]

    @property
    def busy(self) -> int:
        """Stats#workers_size: an expired process hash counts 0."""
        return sum(p.busy for p in self.live)


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: tuple[QueueReading, ...]
    read_at: float  # epoch seconds, taken when the replies were in
    totals: Totals | None = None


def key_prefix(namespace: str | None) -> bytes:
    return encode(namespace) + b":" if namespace else b""


def encode(name: str) -> bytes:
    # surrogateescape round-trips names that are not valid UTF-8.
    return name.encode("utf-8", "surrogateescape")


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def read_snapshot(
    client: redis.Redis,
    *,
    namespace: str | None = None,
    queues: Sequence[str] | None = None,
    totals: bool = False,
    clock: Callable[[], float] = time.time,
) -> Snapshot:
    """Read the reported queues (`queues`, else every queue in the set) and, with `totals`, Sidekiq::Stats.

    A problem with one queue (a key of the wrong type, a job that is not JSON) is
    recorded on that queue's reading and never stops the others. Connection
    problems raise redis.RedisError.
    """
    ns = key_prefix(namespace)
    first = client.pipeline(transaction=False)
    if queues is None or totals:
        first.smembers(ns + b"queues")
    if totals:
        first.get(ns + b"stat:processed").get(ns + b"stat:failed")
        first.zcard(ns + b"schedule").zcard(ns + b"retry").zcard(ns + b"dead")
        first.scard(ns + b"processes").smembers(ns + b"processes")
    head = list(first.execute(raise_on_error=False)) if len(first) else []
    for reply in (head[:1] + head[-1:]):  # without the two sets there is nothing to read
        if isinstance(reply, Exception):
            raise reply
    known = sorted(decode(m) for m in head.pop(0)) if (queues is None or totals) else []
    reported = list(queues) if queues is not None else known
    listed = set(reported)
    unreported = [q for q in known if q not in listed] if totals else []
    identities = sorted(decode(m) for m in head[-1]) if totals else []

    second = client.pipeline(transaction=False)
    for name in reported:
        key = ns + b"queue:" + encode(name)
        second.llen(key).lindex(key, -1)
    for name in unreported:
        second.llen(ns + b"queue:" + encode(name))
    for identity in identities:
        second.hmget(ns + encode(identity), "busy", "concurrency", "info")
    replies = second.execute(raise_on_error=False) if len(second) else []
    now = clock()

    readings = tuple(_queue(n, replies[2 * i], replies[2 * i + 1]) for i, n in enumerate(reported))
    if not totals:
        return Snapshot(readings, now)
    sizes = {r.name: r.size or 0 for r in readings}
    sizes.update((n, _int(replies[2 * len(reported) + i])) for i, n in enumerate(unreported))
    process_replies = replies[2 * len(reported) + len(unreported):]
    live = tuple(p for p in map(_process, identities, process_replies) if p is not None)
    processed, failed, scheduled, retries, dead, processes, _ = head
    return Snapshot(readings, now, Totals(
        processed=_int(processed), failed=_int(failed), scheduled=_int(scheduled), retries=_int(retries),
        dead=_int(dead), processes=_int(processes), enqueued=sum(sizes[q] for q in known), live=live))


def _queue(name: str, size: object, oldest: object) -> QueueReading:
    if isinstance(size, Exception):
        return QueueReading(name, None, None, _short(size))
    if isinstance(oldest, Exception):
        return QueueReading(name, _int(size), None, _short(oldest))
    if oldest is None:
        return QueueReading(name, _int(size), None)
    try:
        return QueueReading(name, _int(size), stamp_from_payload(oldest))  # type: ignore[arg-type]
    except BadPayload as exc:
        return QueueReading(name, _int(size), None, str(exc))


def _process(identity: str, reply: object) -> ProcessReading | None:
    """A process from HMGET busy concurrency info; None when its heartbeat hash has expired."""
    if isinstance(reply, Exception):
        return None
    busy, concurrency, info = reply  # type: ignore[misc]
    if info is None:
        return None  # Sidekiq's ProcessSet skips these too
    return ProcessReading(identity, _int(busy), _concurrency(concurrency, info))


def _concurrency(field: bytes | None, info: bytes) -> int | None:
    """Where each Sidekiq version keeps it: a hash field (8.1.2+), info.concurrency (<= 8.1.1,
    the total over all capsules in 7.x), or the sum over info.capsules (8.0.9+)."""
    if field is not None and field.isdigit():
        return int(field)
    try:
        data = json.loads(info)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("concurrency")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    capsules = data.get("capsules")
    if isinstance(capsules, dict):
        counts = [c.get("concurrency") for c in capsules.values() if isinstance(c, dict)]
        counts = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c >= 0]
        if counts:
            return sum(counts)
    return None


def _int(value: object) -> int:
    """Ruby's `.to_i` on a Redis reply, for counters: nil, junk or an error count as 0."""
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):
        digits = value.strip()
        sign = -1 if digits[:1] == b"-" else 1
        digits = digits.lstrip(b"+-")
        n = len(digits) - len(digits.lstrip(b"0123456789"))
        return sign * int(digits[:n]) if n and n <= 30 else 0
    return 0


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120]
