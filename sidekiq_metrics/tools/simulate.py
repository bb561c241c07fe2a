"""`sidekiq-metrics autoscale simulate`: what the autoscaling policy would have done with recorded readings.

It reads what the emitter printed (the `json` output, one object a poll, or l2met lines as
`heroku logs` shows them, each with its timestamp) and feeds each poll's queues to the same
Policy the autoscaler runs, as if every change it asked for were made at once. No Redis, no
Platform API. The per-type busy and concurrency numbers, and Sidekiq's processed total, come
from the recording too (CATCH_UP needs them); a scale-down's wait for running jobs uses the
recorded busy count, and as nothing stops in a recording, no job is ever interrupted.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TextIO

from sidekiq_metrics.autoscale.scaler import NO_WORKERS, Crew, Policy, Reading, TypeState, Workers, readings
from sidekiq_metrics.autoscale.settings import ScalingRule
from sidekiq_metrics.catalogue import QUEUE_LATENCY, QUEUE_SIZE
from sidekiq_metrics.config import check_settings
from sidekiq_metrics.errors import EXIT_CONFIG
from sidekiq_metrics.metrics.samples import QueueSeries
from sidekiq_metrics.outputs.choice import DEFAULT_PREFIX
from sidekiq_metrics.outputs.json_lines import read_record
from sidekiq_metrics.outputs.l2met import read_line, read_poll
from sidekiq_metrics.outputs.recorded import Recorded

_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?)\s")
_SOURCE = re.compile(r"\S+\s+app\[([^\]\s]+)\]:")  # `heroku logs`: `<time> app[web.1]: ...`


class RecordingError(ValueError):
    """The recording cannot be read: the message says where and why."""


@dataclass(frozen=True)
class Poll:
    at: float  # epoch seconds
    series: list[QueueSeries]
    workers: Workers = NO_WORKERS
    # metrics.up was 1: Redis answered every read the poll needed. A poll that was not whole (Redis down, a shard
    # down, a refused read) holds every type still, as the live autoscaler does (docs/autoscaling.md, rule 1).
    up: bool = True
    shards_up: dict[str, float] = field(default_factory=dict)  # with shards, each one's own metrics.up


@dataclass(frozen=True)
class Change:
    at: float
    process_type: str
    before: int
    after: int
    reading: Reading
    reason: str


@dataclass
class Outcome:
    changes: list[Change] = field(default_factory=list)
    dyno_seconds: dict[str, float] = field(default_factory=dict)
    seconds_above: dict[str, float] = field(default_factory=dict)  # latency above UP_LATENCY
    final: dict[str, int] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)  # shards the settings name of which some poll had no heartbeat


def polls(lines: Iterable[str], prefix: str = DEFAULT_PREFIX, dyno: str | None = None) -> Iterator[Poll]:
    """The polls of a recording: JSON objects of the json output, or l2met lines with their timestamps
    (a poll ends with its metrics.up measurement; `prefix` is SIDEKIQ_METRICS_PREFIX's).

    A `heroku logs` file holds every dyno's lines, and another dyno's may look like ours (a second metrics
    buildpack, an app that logs l2met itself). Only the emitter's are read: `dyno`, or else the one dyno whose
    lines carry metrics.up; lines from several such dynos are refused. Polls must go forward in time."""
    lines = list(lines)
    heartbeat = f"#{prefix}.metrics.up="
    if dyno is None:
        emitters = sorted({source[1] for line in lines if heartbeat in line and (source := _SOURCE.match(line))})
        if len(emitters) > 1:
            raise RecordingError(f"lines from {len(emitters)} dynos carry {prefix}.metrics.up ("
                                 f"{', '.join(e[:20] for e in emitters[:5])}): choose the emitter's with --dyno")
        dyno = emitters[0] if emitters else None
    values: dict[str, float] = {}
    last = -math.inf
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("{"):
            poll = _json_poll(text, number)
        else:
            stamp = _STAMP.match(text)
            if not stamp:
                raise RecordingError(f"line {number} is neither a JSON object of the json output nor an l2met line "
                                     "that starts with its time (as `heroku logs` prints them)")
            source = _SOURCE.match(text)
            if dyno is not None and (source is None or source[1] != dyno):
                continue  # another dyno's, or Heroku's own
            try:
                values.update(read_line(text, prefix))
            except ValueError as exc:
                raise RecordingError(f"line {number}: {exc}") from None
            if heartbeat not in text:  # the poll's own, which ends it (not a shard's)
                continue
            poll = _poll(_epoch(stamp[1], number), read_poll(values))
            values = {}
        if poll.at < last:
            raise RecordingError(f"line {number} is earlier than the poll before it: a recording must be in time "
                                 "order (simulate each one alone, or sort them)")
        last = poll.at
        yield poll


def _json_poll(text: str, number: int) -> Poll:
    try:
        stamp, recorded = read_record(text)
        at = _epoch(stamp, number)
    except ValueError:  # RecordingError (a time that is not one) included
        raise RecordingError(f"line {number} is not an object of the json output (time, queues, metrics.up, "
                             "and finite numbers)") from None
    return _poll(at, recorded)


def _poll(at: float, recorded: Recorded) -> Poll:
    """A poll as the policy reads it; one Sidekiq process a dyno (as on Heroku)."""
    totals = recorded.totals
    processed = totals.get("processed")
    crews = {process_type: Crew(int(crew.get("process.busy", 0)), int(crew.get("process.concurrency", 0)),
                                int(crew.get("process.count", 0)))
             for process_type, crew in recorded.process_types.items()}
    workers = Workers(None if processed is None else int(processed), int(totals.get("busy", 0)), crews)
    sizes, waits = recorded.sizes, recorded.waits
    return Poll(at, [QueueSeries(QUEUE_SIZE, list(sizes), list(sizes.values())),
                     QueueSeries(QUEUE_LATENCY, list(waits), list(waits.values()))], workers,
                up=recorded.up is not None and recorded.up >= 1, shards_up=recorded.shards_up)


def _epoch(text: str, number: int) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise RecordingError(f"line {number} has a time that is not one") from None


def simulate(rules: Sequence[ScalingRule], recorded: Iterable[Poll], start: dict[str, int],
             shards: Sequence[str] = ()) -> Outcome:
    """The policy over the recorded polls, every change made at once, as the autoscaler's own step does. `shards`:
    the shards besides the first that the settings name; a poll without a heartbeat of 1 from each of them is no
    whole reading (a recording made before a shard was added, say), and holds every type still."""
    policies = {rule.process_type: Policy(rule) for rule in rules}
    states = {rule.process_type: TypeState() for rule in rules}
    current = {rule.process_type: start.get(rule.process_type, rule.min_dynos) for rule in rules}
    outcome = Outcome(dyno_seconds=dict.fromkeys(current, 0.0), seconds_above=dict.fromkeys(current, 0.0))
    previous: float | None = None
    for poll in recorded:
        missing = [shard for shard in shards if poll.shards_up.get(shard, 0) < 1]
        outcome.missing.update(shard for shard in missing if shard not in poll.shards_up)
        latest = readings(rules, poll.series, poll.workers) if poll.up and not missing else {}
        for rule in rules:
            process_type = rule.process_type
            reading = latest.get(process_type)
            if previous is not None:  # the time since the previous poll, at the quantity it left
                outcome.dyno_seconds[process_type] += current[process_type] * (poll.at - previous)
                if reading is not None and reading.latency is not None and reading.latency > rule.up_latency:
                    outcome.seconds_above[process_type] += poll.at - previous
            policy, state = policies[process_type], states[process_type]
            policy.observe(state, reading, poll.at)
            if reading is None:  # no reading, no action; the counts of high and low polls start again
                continue
            decision = policy.step(state, reading, current[process_type], poll.at, poll.at)
            if decision.quantity != current[process_type]:
                outcome.changes.append(Change(poll.at, process_type, current[process_type], decision.quantity, reading,
                                              decision.reason))
                current[process_type] = decision.quantity
                policy.changed(state, poll.at)
        previous = poll.at
    outcome.final = current
    return outcome


def report(outcome: Outcome, rules: Sequence[ScalingRule], out: TextIO) -> None:
    for change in outcome.changes:
        when = datetime.fromtimestamp(change.at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        latency = "?" if change.reading.latency is None else f"{change.reading.latency:.3f}"
        out.write(f"{when} scale type={change.process_type} from={change.before} to={change.after} "
                  f"latency={latency} backlog={change.reading.backlog} reason=\"{change.reason}\"\n")
    for rule in rules:
        process_type = rule.process_type
        changes = sum(1 for c in outcome.changes if c.process_type == process_type)
        out.write(f"{process_type}: {outcome.dyno_seconds[process_type] / 60:.0f} dyno-minutes, "
                  f"{outcome.seconds_above[process_type] / 60:.1f} minutes with latency above {rule.up_latency:g}s, "
                  f"{changes} change(s), ending at {outcome.final[process_type]} dyno(s)\n")


def run_simulation(env: Mapping[str, str], recording: str, starts: Sequence[str], out: TextIO,
                   dyno: str | None = None) -> int:
    """The `autoscale simulate` command: 0, or 2 with one line for bad settings or an unreadable recording."""
    # The token and the app matter only to the Platform API, which a simulation never calls.
    settings, errors = check_settings({**env, "HEROKU_API_TOKEN": env.get("HEROKU_API_TOKEN") or "simulation",
                                       "HEROKU_APP_NAME": env.get("HEROKU_APP_NAME") or "simulation"})
    problem = str(errors[0]) if errors else None
    if problem is None and settings.autoscale is None:
        problem = "SIDEKIQ_METRICS_AUTOSCALE must list the process types to simulate, e.g. worker"
    start: dict[str, int] = {}
    for item in starts:
        process_type, _, number = item.partition("=")
        if not number.isdigit() or len(number) > 4:
            problem = problem or f"--start must be TYPE=N, e.g. worker=3, got {item[:40]!r}"
        else:
            start[process_type] = int(number)
    if problem or settings.autoscale is None:
        sys.stderr.write(f"sidekiq-metrics: {problem}\n")
        return EXIT_CONFIG
    rules = settings.autoscale.rules
    try:
        with (open(recording, encoding="utf-8", errors="replace") if recording != "-" else
              contextlib.nullcontext(sys.stdin)) as lines:
            outcome = simulate(rules, polls(lines, settings.prefix, dyno), start,
                               [shard.name for shard in settings.shards[1:]])
    except (OSError, RecordingError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        sys.stderr.write(f"sidekiq-metrics: cannot read the recording {recording[:80]!r}: {reason}\n")
        return EXIT_CONFIG
    for shard in sorted(outcome.missing):
        sys.stderr.write(f"sidekiq-metrics: some polls of the recording have no heartbeat of the shard {shard} "
                         "(recorded before it was added?): they held every type still, as no reading does\n")
    report(outcome, rules, out)
    return 0
