"""Sidekiq job payloads: their timestamps, and queue latency computed from them.

Sidekiq's own rule (api.rb, 8.1.1+): take `enqueued_at`, else `created_at`; a JSON
float is epoch seconds (Sidekiq <= 7), a JSON integer is epoch milliseconds
(Sidekiq 8); no timestamp at all means latency 0. Where Sidekiq would crash or
report nonsense, we are stricter; each case is named below.
"""

from __future__ import annotations

import json
import math
import re
from typing import NamedTuple

# An integer below this many milliseconds (2000-01-01T00:00:00Z) cannot be a
# Sidekiq 8 timestamp of this century: it is epoch *seconds* from a third-party
# client. (Sidekiq 8 itself would read it as ms and report ~1.7e9 s of latency.)
MS_CUTOFF = 946_684_800_000
# No clock writes an integer timestamp this large (2**63 ms is some 292 million years away).
MAX_INT_STAMP = 2**63

_NUMERIC_STRING = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?")


class Stamp(NamedTuple):
    """The two timestamps of a job, as raw JSON values (float, int, str, or anything else)."""

    enqueued_at: object = None
    created_at: object = None


class BadPayload(ValueError):
    """The oldest job of a queue is not a JSON object; its latency is unknown."""


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def stamp_from_payload(payload: bytes) -> Stamp:
    """The timestamps of one job as Sidekiq stores it: a JSON object.

    Only top-level keys count: an ActiveJob payload carries its own ISO-8601
    "enqueued_at" inside `args`, which Sidekiq ignores and so do we. Parsed by the
    rules of Ruby's JSON.parse, which Sidekiq uses: UTF-8 text (no byte-order mark, no
    UTF-16), no NaN or Infinity, nothing after the object; escapes in keys decoded.
    """
    try:
        job = json.loads(payload.decode("utf-8", "surrogateescape"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadPayload("the oldest job is not valid JSON") from None
    if not isinstance(job, dict):
        raise BadPayload("the oldest job is not a JSON object")
    return Stamp(job.get("enqueued_at"), job.get("created_at"))


def epoch_seconds(value: object) -> float | None:
    """A Sidekiq timestamp in seconds, or None when it is not a usable timestamp.

    - float: seconds (Sidekiq <= 7 writes `Time.now.to_f`, always with a decimal point)
    - int: milliseconds (Sidekiq 8), or seconds when below MS_CUTOFF
    - numeric string (Sidekiq Pro's Lua scheduler has written these): the same
      rules, a decimal point meaning seconds
    - NaN, infinities, negatives, integers from 2**63 up, booleans, arrays, objects: None
    """
    if isinstance(value, float):
        return value if 0 <= value < math.inf else None
    if isinstance(value, bool):  # an int to Python, never a time
        return None
    if isinstance(value, int):
        # Beyond a 64-bit clock no float division is safe (10**310 overflows): not a timestamp.
        if not 0 <= value < MAX_INT_STAMP:
            return None
        return float(value) if value < MS_CUTOFF else value / 1000.0
    if isinstance(value, str):
        if not _NUMERIC_STRING.fullmatch(value):
            return None
        return epoch_seconds(float(value) if "." in value else int(value))
    return None  # None, list, dict, ...


def latency(stamp: Stamp | None, now: float) -> float | None:
    """Seconds the oldest job has waited, as Sidekiq::Queue#latency reports it.

    `stamp` None is an empty queue (latency 0). A timestamp in the future (clock
    skew between dynos) gives 0, never a negative number. None means the
    timestamp is there but unusable, so the latency is unknown.
    """
    if stamp is None:
        return 0.0
    value = stamp[0]  # enqueued_at
    if value.__class__ is float and 0 <= value < math.inf:  # Sidekiq <= 7, the usual case: no more to decide
        return now - value if now > value else 0.0
    # Ruby's `job["enqueued_at"] || job["created_at"]`: nil and false are both falsy.
    # (Identity checks: 0 == False in Python, but 0 is truthy in Ruby.)
    if value is None or value is False:
        value = stamp.created_at
    if value is None or value is False:
        return 0.0
    seconds = epoch_seconds(value)
    if seconds is None:
        return None
    return max(0.0, now - seconds)
