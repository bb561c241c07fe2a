"""Queue names as parts of Librato metric names (A-Za-z0-9.:_-, 255 characters in all).

The rule, which docs/metrics.md states for users:
- a queue name made only of those characters, short enough, is used as it is;
- any other has each other character replaced by "_" (`low priority` -> `low_priority`),
  and is cut to fit with "-" and 8 hex digits of its SHA-1 added when too long;
- if that would give two queues of one poll the same name, every mapped name
  involved gets the "-<8 hex digits>" suffix (the name that already fitted keeps
  its own), so no two queues ever share a metric.
"""

from __future__ import annotations

import functools
import hashlib
import re

MAX_METRIC_NAME = 255
_INVALID = re.compile(r"[^A-Za-z0-9.:_-]")
# The room a queue's name gets is what 0.1.0's metrics left it (`.size`, `.latency`): a metric added later never
# renames the series users already chart. A later, longer suffix (`.running.longest`) maps a queue with its own room
# (queue_names_for), so only that metric's name of a queue that long takes the digest form.
_LONGEST_SUFFIX = len(".latency")


def queue_names_for(metric_name: str, queues: tuple[str, ...], prefix: str) -> dict[str, str]:
    """queue_metric_names for `<prefix>.<queue>.<metric_name>`: 0.1.0's names for any suffix that fits in their
    room, else names made to fit this suffix."""
    return queue_metric_names(queues, prefix, max(_LONGEST_SUFFIX, len("." + metric_name)))


def _digest(name: str, digits: int) -> str:
    return hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:digits]


@functools.lru_cache(maxsize=16)  # per shard: two rooms of queues (0.1.0's, .running.longest), subjects
def queue_metric_names(queues: tuple[str, ...], prefix: str, around: int = _LONGEST_SUFFIX) -> dict[str, str]:
    """Map each real queue name to the metric-safe name used in `<prefix>.<name>.size`. `around`: the most
    characters a metric name adds to the name after `<prefix>.` (`.latency` for a queue; `job.` and
    `.runtime.mean` for a job class), so that every name stays within MAX_METRIC_NAME.

    Cached: the set of queues rarely changes between polls. Callers must not modify the result.
    """
    room = MAX_METRIC_NAME - len(prefix) - 1 - around
    mapped: dict[str, str] = {}
    fitted: set[str] = set()
    for queue in queues:
        if queue and len(queue) <= room and not _INVALID.search(queue):
            mapped[queue] = queue
            fitted.add(queue)
        else:
            mapped[queue] = _shorten(_INVALID.sub("_", queue) or "_", queue, room)
    # Resolve clashes among mapped names, and with names that fitted as they were;
    # a clash that survives 8 hex digits gets all 40.
    for digits in (8, 40):
        owners_of: dict[str, list[str]] = {}
        for queue, name in mapped.items():
            owners_of.setdefault(name, []).append(queue)
        for owners in owners_of.values():
            if len(owners) > 1:
                for queue in owners:
                    if queue not in fitted:
                        mapped[queue] = _with_digest(_INVALID.sub("_", queue) or "_", queue, room, digits)
    return mapped


def _shorten(name: str, queue: str, room: int) -> str:
    return name if len(name) <= room else _with_digest(name, queue, room)


def _with_digest(name: str, queue: str, room: int, digits: int = 8) -> str:
    suffix = "-" + _digest(queue, digits)
    return name[: room - len(suffix)] + suffix
