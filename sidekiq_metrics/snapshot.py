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
(A third happens only when jobs of hundreds of kilobytes make a script call stop early.)
Only read commands are sent, and a read-only Lua script. This is the one module that talks to Redis.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sidekiq_metrics.jobs import BadPayload, Stamp, stamp_from_payload
from sidekiq_metrics.resp import Command, Connection, RedisError, Reply, ReplyError


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


QUEUE_SCAN = (Path(__file__).with_name("queue_scan.lua")).read_bytes()
QUEUE_SCAN_SHA = hashlib.sha1(QUEUE_SCAN).hexdigest()
SCAN_BATCH = 500  # queues per script call
SCAN_BUDGET = 1 << 20  # payload bytes one script call may scan (about a millisecond of Redis time)


class SidekiqReader:
    """Reads Snapshots over one Connection.

    The oldest job of each queue is examined inside Redis by a read-only Lua script
    (queue_scan.lua) that sends back only its timestamps, so a poll costs the same
    bytes whatever the size of the jobs. Where Redis refuses scripts (an ACL without
    EVALSHA, a provider that disables them) it reads each oldest job whole with
    LINDEX instead, and says so once through `log`.
    """

    def __init__(self, connection: Connection, *, namespace: str | None = None,
                 log: Callable[[str], None] = lambda message: None, scripts: bool = True) -> None:
        self.connection = connection
        self.prefix = key_prefix(namespace)
        self.log = log
        self.scripts = scripts

    def read(self, queues: Sequence[str] | None = None, *, totals: bool = False,
             clock: Callable[[], float] = time.time) -> Snapshot:
        """The reported queues (`queues`, else every queue in Sidekiq's set) and, with `totals`, Sidekiq::Stats.

        A problem with one queue (a key of the wrong type, a job that is not JSON) is
        recorded on that queue's reading and never stops the others. Redis being
        unreachable, or refusing to list the queues, raises RedisError.
        """
        ns = self.prefix
        first: list[Command] = []
        if queues is None or totals:
            first.append(["SMEMBERS", ns + b"queues"])
        if totals:
            first += [["GET", ns + b"stat:processed"], ["GET", ns + b"stat:failed"], ["ZCARD", ns + b"schedule"],
                      ["ZCARD", ns + b"retry"], ["ZCARD", ns + b"dead"], ["SCARD", ns + b"processes"],
                      ["SMEMBERS", ns + b"processes"]]
        scripts = self.scripts
        if scripts:
            # Every poll: cheap for a cached script, and a restarted Redis never answers NOSCRIPT.
            first.append(["SCRIPT", "LOAD", QUEUE_SCAN])
        head = self.connection.pipeline(first)
        if scripts and isinstance(loaded := head.pop(), ReplyError):
            self._refuse_scripts(loaded)
        for reply in head[:1] + head[-1:]:  # without the two sets there is nothing to read
            if isinstance(reply, ReplyError):
                raise reply
        known = sorted(decode(m) for m in head.pop(0)) if (queues is None or totals) else []
        reported = list(queues) if queues is not None else known
        listed = set(reported)
        unreported = [q for q in known if q not in listed] if totals else []
        identities = sorted(decode(m) for m in head[-1]) if totals else []

        keys = [ns + b"queue:" + encode(name) for name in reported]
        second: list[Command] = []
        if self.scripts:
            for i in range(0, len(keys), SCAN_BATCH):
                batch = keys[i:i + SCAN_BATCH]
                second.append(["EVALSHA", QUEUE_SCAN_SHA, len(batch), *batch, SCAN_BUDGET])
        else:
            for key in keys:
                second += [["LLEN", key], ["LINDEX", key, -1]]
        second += [["LLEN", ns + b"queue:" + encode(name)] for name in unreported]
        second += [["HMGET", ns + encode(identity), "busy", "concurrency", "info"] for identity in identities]
        replies = self.connection.pipeline(second)
        calls = len(second) - len(unreported) - len(identities)
        queue_replies, rest = replies[:calls], replies[calls:]
        readings = self._scanned(reported, keys, queue_replies) if self.scripts else \
            tuple(_queue(n, queue_replies[2 * i], queue_replies[2 * i + 1]) for i, n in enumerate(reported))
        now = clock()
        if not totals:
            return Snapshot(readings, now)
        sizes = {r.name: r.size or 0 for r in readings}
        sizes.update(zip(unreported, map(_int, rest[:len(unreported)]), strict=True))
        live = tuple(p for p in map(_process, identities, rest[len(unreported):]) if p is not None)
        processed, failed, scheduled, retries, dead, processes, _ = head
        return Snapshot(readings, now, Totals(
            processed=_int(processed), failed=_int(failed), scheduled=_int(scheduled), retries=_int(retries),
            dead=_int(dead), processes=_int(processes), enqueued=sum(sizes[q] for q in known), live=live))

    def _refuse_scripts(self, error: ReplyError) -> None:
        self.scripts = False
        self.log(f"Redis refuses our read-only Lua script ({str(error)[:100]}); reading each queue's "
                 "oldest job whole with LINDEX instead")

    def _scanned(self, names: list[str], keys: list[bytes], replies: list[Reply]) -> tuple[QueueReading, ...]:
        """Readings from the script's batches; a batch that stopped early (big jobs) is finished one key
        per call, all in one more round trip."""
        lines: list[bytes] = []
        pending: list[bytes] = []
        for i, reply in enumerate(replies):
            batch = keys[i * SCAN_BATCH:(i + 1) * SCAN_BATCH]
            if isinstance(reply, ReplyError):
                return self._after_script_error(reply, names)
            text, done = reply  # type: ignore[misc]
            lines += text.split(b"\n")
            pending += batch[done:]
        if pending:
            more = self.connection.pipeline([["EVALSHA", QUEUE_SCAN_SHA, 1, key, SCAN_BUDGET] for key in pending])
            for reply in more:
                if isinstance(reply, ReplyError):
                    return self._after_script_error(reply, names)
                lines.append(reply[0])  # type: ignore[index]
        return tuple(_scan_line(name, line) for name, line in zip(names, lines, strict=True))

    def _after_script_error(self, error: ReplyError, names: list[str]) -> tuple[QueueReading, ...]:
        if error.code != "NOSCRIPT":  # NOSCRIPT: a SCRIPT FLUSH between our two round trips
            self._refuse_scripts(error)
        raise RedisError(f"Redis could not run the queue scan script ({str(error)[:100]}); the next poll "
                         "reads the queues again")


_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS: dict[bytes, object] = {b"": None, b"null": None, b"true": True, b"false": False}
UNUSABLE = "not a timestamp"  # epoch_seconds() refuses it, as it refuses any non-numeric text


def _token(raw: bytes) -> object:
    """A JSON value from the script's raw text, typed as json.loads would type it."""
    if raw in _LITERALS:
        return _LITERALS[raw]
    number = _JSON_NUMBER.fullmatch(raw)
    if number:
        return float(raw) if number.group(1) or number.group(2) else int(raw)
    if raw[:1] == b'"':
        try:
            return json.loads(raw)
        except ValueError:
            return UNUSABLE
    return UNUSABLE


def _scan_line(name: str, line: bytes) -> QueueReading:
    size, kind, enqueued, created = line.split(b"\t")
    if kind == b"t":
        return QueueReading(name, int(size), Stamp(_token(enqueued), _token(created)))
    if kind == b"e":
        return QueueReading(name, int(size), None)
    if kind == b"x":
        return QueueReading(name, int(size), None, "the oldest job is not a JSON object")
    return QueueReading(name, None, None, enqueued.decode("utf-8", "replace")[:120])


def _queue(name: str, size: object, oldest: object) -> QueueReading:
    """A reading from plain LLEN and LINDEX replies (when scripts are refused)."""
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
