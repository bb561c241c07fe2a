"""Our read-only Lua script (queue_scan.lua): how it is called, and how its reply is read.

The script reads each queue's size and oldest job inside Redis and sends back only the
job's timestamps, so a poll moves the same bytes whether jobs weigh 300 bytes or 5 MB.
Its reply format is documented at the top of the script; the parser is here, beside it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable
from pathlib import Path

from sidekiq_metrics.redis.resp import Command, RedisError, Reply, TooLarge
from sidekiq_metrics.sidekiq.job_payload import BadPayload, Stamp, stamp_from_payload
from sidekiq_metrics.sidekiq.readings import QueueReading

SCRIPT = (Path(__file__).with_name("queue_scan.lua")).read_bytes()
SHA = hashlib.sha1(SCRIPT).hexdigest()
BATCH = 250  # queues per script call: about a millisecond of Redis time each
BUDGET = 1 << 20  # payload bytes one script call may scan (about a millisecond of Redis time)
# A queue whose oldest job is longer than this is read with LINDEX rather than scanned inside Redis.
# Measured (benchmarks: benchmarks/bench_poll.py --large-jobs): the script holds Redis about 1.4 ms a MB
# (2.9 at 20 MB), LINDEX 0.05-0.55 ms a MB but moves the whole job over the network. Below 1 MB the
# script's hold stays under the 5 ms cap and the bytes saved matter; above, Redis's time does.
LARGE_JOB = 1 << 20
MS_PER_MB = 1.4


def call(keys: list[bytes]) -> Command:
    """One EVALSHA of the script over these queue keys (at most BATCH of them)."""
    return ["EVALSHA", SHA, len(keys), *keys, BUDGET, LARGE_JOB]


def unpack(reply: Reply) -> tuple[bytes, int, list[bytes], list[int]]:
    """A script call's reply as {lines, done, jobs, large}; anything else is not our script's answer."""
    if isinstance(reply, list) and len(reply) == 4:
        text, done, whole, large = reply
        if isinstance(text, bytes) and isinstance(done, int) and isinstance(whole, list) and isinstance(large, list):
            jobs = [j for j in whole if isinstance(j, bytes)]
            sizes = [n for n in large if isinstance(n, int)]
            if len(jobs) == len(whole) and len(sizes) == len(large):
                return text, done, jobs, sizes
    raise RedisError("unexpected reply from the queue scan script; the next poll reads the queues again")


def job_reading(name: str, size: int, payload: bytes) -> QueueReading:
    """A reading from a queue's oldest job read whole (LINDEX, or handed back by the script). A job that ends as
    Sidekiq writes it is read by the script's fast path rule first, so that both paths read every job alike (one
    with NaN elsewhere but the usual end, which Ruby's JSON.parse would refuse, included: the script never looks
    past the end)."""
    if (stamp := _usual_stamp(payload[:1], payload[-TooLarge.KEPT:])) is not None:
        return QueueReading(name, size, stamp)
    try:
        return QueueReading(name, size, stamp_from_payload(payload))
    except BadPayload as exc:
        return QueueReading(name, size, None, str(exc))


_JSON_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS: dict[bytes, object] = {b"": None, b"null": None, b"true": True, b"false": False}
UNUSABLE = "not a timestamp"  # epoch_seconds() refuses it, as it refuses any non-numeric text


def _token(raw: bytes) -> object:
    """A JSON value from the script's raw text, typed as json.loads would type it."""
    # The usual cases first, without a regex: 1700000000123 (Sidekiq 8), 1700000000.123 (Sidekiq <= 7).
    # JSON allows no leading zero (0123) and no bare dot (1., .5); those go on to the strict check.
    leading_zero = raw[:1] == b"0" and raw[1:2] not in (b"", b".")
    if raw.isdigit() and not leading_zero:
        return _json_int(raw)
    if raw.replace(b".", b"", 1).isdigit() and not leading_zero and raw[:1] != b"." and raw[-1:] != b".":
        return float(raw)
    if raw in _LITERALS:
        return _LITERALS[raw]
    number = _JSON_NUMBER.fullmatch(raw)
    if number:
        return float(raw) if number.group(1) or number.group(2) else _json_int(raw)
    if raw[:1] == b'"':
        try:
            return json.loads(raw)
        except ValueError:
            return UNUSABLE
    return UNUSABLE


def _json_int(raw: bytes) -> object:
    """A JSON integer's value. Python refuses int() of more than 4,300 digits, and no timestamp has more
    than 20: a longer one is unusable (UNUSABLE), never an exception in the middle of a poll."""
    return int(raw) if len(raw) <= 21 else UNUSABLE


def parse_reply(readings: list[QueueReading], names: list[str], text: bytes, whole: list[bytes]) -> None:
    """A script call's lines (its reply's `lines` and `jobs`, for the queues it did), parsed into
    readings, appended to `readings`. This runs for every queue, every poll, so a call
    whose lines are all the usual `<size> TAB <number>` (one tab a line) is parsed whole, in C
    (measured: 6.5 ms for 10,000 queues instead of 13 ms line by line)."""
    if not names:
        return
    if text.count(b"\t") == len(names):
        fields = text.replace(b"\n", b"\t").split(b"\t")
        sizes, numbers = fields[0::2], fields[1::2]
        dots = text.count(b".")  # the script sends numbers with at most one dot, sizes with none
        if dots == len(names):  # Sidekiq <= 7: every stamp a float
            stamps: Iterable[float] = map(float, numbers)
        elif dots == 0:  # Sidekiq 8: every stamp an integer of milliseconds
            stamps = map(int, numbers)
        else:
            stamps = (float(n) if b"." in n else int(n) for n in numbers)
        new, nones = tuple.__new__, [None] * len(names)
        try:
            readings += list(map(new, itertools.repeat(QueueReading), zip(
                names, map(int, sizes), map(new, itertools.repeat(Stamp), zip(stamps, nones, strict=True)), nones,
                strict=True)))
            return
        except ValueError:  # a number of thousands of digits (int() refuses them): line by line, below
            pass
    for name, line in zip(names, text.split(b"\n"), strict=True):
        fields = line.split(b"\t")
        if len(fields) == 2:
            size, number = fields
            readings.append(QueueReading(name, int(size), Stamp(_token(number))))
        else:
            readings.append(_scan_line(name, fields, whole))


def _scan_line(name: str, fields: list[bytes], whole: list[bytes]) -> QueueReading:
    size, kind, enqueued, created = fields
    if kind == b"j":  # handed back whole: read as LINDEX's are, by the same parser
        return job_reading(name, int(size), whole[int(enqueued) - 1])
    if kind == b"t":
        return QueueReading(name, int(size), Stamp(_token(enqueued), _token(created) if created else None))
    if kind == b"e":
        return QueueReading(name, int(size), None)
    if kind == b"x":
        return QueueReading(name, int(size), None, "the oldest job is not a JSON object")
    return QueueReading(name, None, None, enqueued.decode("utf-8", "replace")[:120])


_USUAL_END = re.compile(rb"([1-9][0-9]*(?:\.[0-9]+)?)\}")


def usual_end(job: TooLarge) -> Stamp | None:
    """The stamp of a job too large to keep, from its ends: Sidekiq's jobs start with `{` and end with
    `,"enqueued_at":<number>}`. The same rule as the script's fast path, so both read it alike."""
    return _usual_stamp(job.head, job.tail)


def _usual_stamp(head: bytes, tail: bytes) -> Stamp | None:
    if head[:1] != b"{":
        return None
    k = tail.find(b',"enqueued_at":', max(0, len(tail) - 49))
    number = _USUAL_END.fullmatch(tail, k + 15) if k >= 0 else None
    return Stamp(_token(number[1])) if number else None


