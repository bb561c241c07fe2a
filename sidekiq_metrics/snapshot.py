"""Reading Sidekiq's state from Redis: one Snapshot per poll, in a fixed number of round trips.

Keys, as Sidekiq writes them (with an optional redis-namespace prefix "<ns>:"):
  queues          SET of queue names (the only place queues are listed; never KEYS/SCAN,
                  which would also find Sidekiq Pro's private `queue:sq|...` lists)
  queue:<name>    LIST of JSON jobs, pushed on the left, so the oldest is at index -1

Only read commands are sent. This is the one module that talks to Redis.
"""

from __future__ import annotations

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
class Snapshot:
    queues: tuple[QueueReading, ...]
    read_at: float  # epoch seconds, taken when the replies were in


def key_prefix(namespace: str | None) -> bytes:
    return encode(namespace) + b":" if namespace else b""


def encode(name: str) -> bytes:
    # surrogateescape round-trips queue names that are not valid UTF-8.
    return name.encode("utf-8", "surrogateescape")


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def read_snapshot(
    client: redis.Redis,
    *,
    namespace: str | None = None,
    queues: Sequence[str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Snapshot:
    """Size and oldest job of each queue: SMEMBERS (unless `queues` is given), then one pipeline.

    A problem with one queue (a key of the wrong type, a job that is not JSON) is
    recorded on that queue's reading and never stops the others. Connection
    problems raise redis.RedisError.
    """
    prefix = key_prefix(namespace)
    if queues is None:
        names = sorted(decode(m) for m in client.smembers(prefix + b"queues"))
    else:
        names = list(queues)

    pipe = client.pipeline(transaction=False)
    for name in names:
        key = prefix + b"queue:" + encode(name)
        pipe.llen(key)
        pipe.lindex(key, -1)
    replies = pipe.execute(raise_on_error=False) if names else []
    now = clock()
    return Snapshot(tuple(_reading(n, replies[2 * i], replies[2 * i + 1]) for i, n in enumerate(names)), now)


def _reading(name: str, size: object, oldest: object) -> QueueReading:
    if isinstance(size, Exception):
        return QueueReading(name, None, None, _short(size))
    if isinstance(oldest, Exception):
        return QueueReading(name, int(size), None, _short(oldest))  # type: ignore[call-overload]
    if oldest is None:
        return QueueReading(name, int(size), None)  # type: ignore[call-overload]
    try:
        return QueueReading(name, int(size), stamp_from_payload(oldest))  # type: ignore[call-overload,arg-type]
    except BadPayload as exc:
        return QueueReading(name, int(size), None, str(exc))  # type: ignore[call-overload]


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:120]
