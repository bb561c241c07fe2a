"""Throughput-sized scale-ups (CATCH_UP): how many dynos a backlog needs, from what the polls saw.

Sidekiq keeps no count of finished jobs per queue or per process, only `stat:processed`, one
running total for the whole app, which each process adds to at its heartbeat (every 10 s from
Sidekiq 7, every 5 s before). So, over the polls of the last WINDOW seconds:

    rate     = Δprocessed / Δt / busy_all       jobs a second one busy thread finishes (any type's)
    done     = rate × busy                      jobs a second this type's processes finish
    arriving = max(0, done + Δbacklog / Δt)     jobs a second arriving in this type's queues (Δbacklog over
                                                the queues not paused now, at both ends: a resumed queue's
                                                jobs are backlog, not arrivals)
    per_dyno = rate × threads                   jobs a second one of its dynos finishes, every thread busy
    capacity = (backlog + arriving × T) / (T + U)
    needed   = ceil(capacity / per_dyno)           a scale-up's dynos
    enough   = ceil(arriving / (per_dyno × BUSIEST))  a scale-down's: the arrivals keep them at most BUSIEST busy

with busy_all and busy (every live process's running jobs, and this type's) taken as their mean
over those polls, threads as a dyno of this type runs now, T = CATCH_UP and U = UP_LATENCY.
The capacity: with c jobs a second for T seconds the backlog becomes backlog + (arriving − c)·T,
and the newest of those jobs waits about that backlog / c; asking that to be at most U gives
c ≥ (backlog + arriving·T) / (T + U).

The rate is per busy thread of any process type: with several Sidekiq types whose jobs take
very different times, one type's estimate is rough; with one type it is what was measured.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

WINDOW = 120.0  # seconds of polls the rates are taken over: twelve heartbeats of Sidekiq 7
SHORTEST = 30.0  # seconds: over less, one heartbeat's step of stat:processed is a third of the count or more
BUSIEST = 0.8  # a scale-down leaves dynos enough for the arrivals to keep at most 80% of their threads busy
MOST_DYNOS = 1_000_000  # an estimate from absurd readings stays a number (MAX caps it anyway)


class Flow(NamedTuple):
    """One poll's numbers for one process type."""

    at: float  # seconds (the policy's clock)
    processed: int  # Sidekiq's running total of finished jobs, every type's
    busy_all: int  # jobs every live process runs
    busy: int  # jobs this type's processes run
    backlog: int  # jobs waiting in this type's queues, paused ones left out
    sizes: tuple[tuple[str, int], ...] = ()  # each of its queues' size, paused ones included
    paused: frozenset[str] = frozenset()  # those of its queues Sidekiq Pro held paused


def grown(first: Flow, last: Flow) -> int:
    """Δbacklog over the same queues at both ends: those not paused at the last poll. A queue resumed within the
    window brings its jobs into the backlog at once; they are not arrivals, so its size at the first poll counts
    too, whether or not it was paused then (and a queue paused since counts at neither end)."""
    if first.paused == last.paused or not (first.sizes or last.sizes):
        return last.backlog - first.backlog
    before, now = dict(first.sizes), dict(last.sizes)
    return sum(now.get(q, 0) - before.get(q, 0) for q in before.keys() | now.keys() if q not in last.paused)


class Estimate(NamedTuple):
    arriving: float  # jobs a second arriving in the type's queues
    per_dyno: float  # jobs a second one dyno finishes with every thread busy
    needed: int  # dynos that bring latency under UP_LATENCY within CATCH_UP seconds
    enough: int  # dynos the arrivals keep at most BUSIEST busy


def remember(flows: deque[Flow], flow: Flow) -> None:
    """Add a poll, keeping the newest one that is WINDOW seconds old and every later one. A running total
    that went down (Sidekiq's stats were reset) starts the window again."""
    if flows and (flow.processed < flows[-1].processed or flow.at <= flows[-1].at):
        flows.clear()
    flows.append(flow)
    while len(flows) > 2 and flow.at - flows[1].at >= WINDOW:
        flows.popleft()


def estimate(flows: deque[Flow], threads: float | None, catch_up: float, up_latency: float) -> Estimate | None:
    """The dynos the newest backlog needs; None when the polls cannot tell (too short a span, no job
    finished or running, no thread count)."""
    if not flows or not threads or threads <= 0:
        return None
    first, last = flows[0], flows[-1]
    span = last.at - first.at
    busy_all = sum(f.busy_all for f in flows) / len(flows)
    if span < SHORTEST or busy_all <= 0:
        return None
    rate = (last.processed - first.processed) / span / busy_all
    if not rate > 0:
        return None
    busy = sum(f.busy for f in flows) / len(flows)
    arriving = max(0.0, rate * busy + grown(first, last) / span)
    per_dyno = rate * threads
    if not per_dyno > 0:  # too small for a float: nothing to size with
        return None
    capacity = (last.backlog + arriving * catch_up) / (catch_up + up_latency)
    return Estimate(arriving, per_dyno, math.ceil(min(capacity / per_dyno, MOST_DYNOS)),
                    math.ceil(min(arriving / per_dyno / BUSIEST, MOST_DYNOS)))
