"""Benchmark: the autoscaling policy on a simulated Sidekiq worker formation, before and after issue 19.

    .venv/bin/python benchmarks/autoscale_sim.py [--seeds 5] [--shape burst] [--policy plain]

Not the product and not part of the test run: a discrete-event simulation of one Heroku process
type running Sidekiq, driven by the product's own `Policy` (sidekiq_metrics.autoscale.scaler) exactly as
the autoscaler drives it. Jobs arrive by a trace (a Poisson process whose rate follows the shape),
wait in one FIFO queue, and run on the threads of the dynos that are up: the thread idle the
longest takes the next job, as Redis serves BRPOP's waiting clients. Every 30 s a poll reads
latency, backlog, busy threads and Sidekiq's processed total (as the heartbeats flushed it, every
10 s) and the policy decides. A new dyno takes jobs after BOOT seconds. A stopped dyno takes no new
job; what it still runs GRACE seconds later is interrupted and pushed back to the head of the queue
(as Sidekiq's shutdown does), and starts again from the beginning. Heroku does not say which dynos a
scale-down stops: here the highest-numbered go (dynos are numbered as Heroku numbers them, 1 to the
quantity), and the product's StopWatch learns it from the dynos it sees leave, as the autoscaler does.
A dyno is paid for from its scale-up until it has stopped.

It prints one markdown table: for each shape and policy, the median over the seeds of the minutes
with latency above UP_LATENCY (latency sampled every 5 s), the worst latency, dyno-hours, changes
and jobs interrupted by scale-downs (and of them, the jobs at risk that a scale-down stopped before its
longest wait: none may be, when DRAIN_WAIT is on); and the dyno-hours against plain steps on the same seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import math
import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from sidekiq_metrics.autoscale.jobs_at_risk import RunningJob, at_risk
from sidekiq_metrics.autoscale.scaler import Decision, Policy, Reading, TypeState
from sidekiq_metrics.autoscale.settings import ScalingRule
from sidekiq_metrics.autoscale.stopped_dynos import EVIDENCE, StopWatch

THREADS = 10  # Sidekiq's concurrency on each dyno
BOOT = 20.0  # seconds from a scale-up until the new dyno takes jobs (Heroku: about 10-30 s)
GRACE = 25.0  # seconds Sidekiq gives running jobs after SIGTERM (its default timeout)
POLL = 30.0  # the emitter's interval
HEARTBEAT = 10.0  # Sidekiq 7+ adds to stat:processed at each heartbeat
SAMPLE = 5.0  # seconds between the simulation's own latency samples

# Today's policy (plain steps, no wait for running jobs), and the new one: CATCH_UP and DRAIN_WAIT.
BASE = ScalingRule("worker", min_dynos=1, max_dynos=20, up_latency=30, down_latency=5, up_polls=2,
                   up_cooldown=120, down_cooldown=600, step=1, drain_wait=0)
POLICIES = {
    "plain steps (0.1)": BASE,
    "CATCH_UP=300": dataclasses.replace(BASE, catch_up=300),
    "DRAIN_WAIT=600": dataclasses.replace(BASE, drain_wait=600),
    "both": dataclasses.replace(BASE, catch_up=300, drain_wait=600),
    "both, CATCH_UP=120": dataclasses.replace(BASE, catch_up=120, drain_wait=600),
}
# The product learns which dynos Heroku stops from its own scale-downs (stopped_dynos.py); this one never does, and
# waits for jobs on every dyno of the type, as before that learning.
NEVER_LEARNS = "both, waiting on the whole type"
POLICIES[NEVER_LEARNS] = POLICIES["both"]


@dataclass(frozen=True)
class Shape:
    """A load: jobs a second at each moment, and each job's run time."""

    name: str
    hours: float
    rate: Callable[[float], float]  # jobs a second at t seconds
    peak: float  # the rate's largest value (for thinning)
    job: Callable[[random.Random, float], tuple[str, float]]  # a job's class and run time (s), arriving at t


def short_jobs(rng: random.Random, t: float) -> tuple[str, float]:
    return "SyncJob", rng.expovariate(1 / 5.0)  # 5 s on average: a dyno of 10 threads finishes 2 jobs a second


def long_jobs_always(rng: random.Random, t: float) -> tuple[str, float]:
    """One job in 200 runs 5 to 15 minutes (a report, an export), at any hour; the rest as short_jobs."""
    return ("ReportJob", rng.uniform(300, 900)) if rng.random() < 0.005 else short_jobs(rng, t)


def burst(t: float) -> float:
    return 20.0 if 1800 <= t < 2400 else 1.0  # 20× for 10 minutes, half a minute past the half hour


def daily(t: float) -> float:
    hour = (t / 3600) % 24
    return 1.0 + 11.0 * max(0.0, math.sin(math.pi * (hour - 6) / 14)) ** 2 if 6 <= hour <= 20 else 1.0


def ramp(t: float) -> float:
    return 1.0 + 11.0 * min(1.0, t / 10800) if t < 10800 else 12.0 - 11.0 * min(1.0, (t - 10800) / 3600)


def hourly_bursts(t: float) -> float:
    return 12.0 if (t % 3600) < 900 else 1.5  # a quarter hour of batch work at the top of every hour


def reports_in_bursts(rng: random.Random, t: float) -> tuple[str, float]:
    """The batch work brings the long jobs: one job in 100 of the bursts runs 5 to 15 minutes."""
    return ("ReportJob", rng.uniform(300, 900)) if t % 3600 < 900 and rng.random() < 0.01 else short_jobs(rng, t)


SHAPES = [
    Shape("burst: 20x for 10 min", 2, burst, 20.0, short_jobs),
    Shape("daily curve (24 h)", 24, daily, 12.0, short_jobs),
    Shape("slow ramp: 3 h up, 1 h down", 4, ramp, 12.0, short_jobs),
    Shape("hourly bursts bringing long jobs (1 in 100 runs 5-15 min)", 6, hourly_bursts, 12.0, reports_in_bursts),
    Shape("hourly bursts, long jobs at any hour (1 in 200)", 6, hourly_bursts, 12.0, long_jobs_always),
]


@dataclass
class Dyno:
    name: str  # as Heroku numbers a type's dynos: worker.1 to worker.<quantity>
    up_at: float
    stopping: bool = False
    gone: bool = False
    running: dict[int, float] = field(default_factory=dict)  # job -> when it started
    unwaited: frozenset[int] = frozenset()  # its jobs at risk when it was stopped without the longest wait


@dataclass
class Outcome:
    seconds_above: float = 0.0
    worst: float = 0.0
    dyno_seconds: float = 0.0
    changes: int = 0
    interrupted: int = 0
    unwaited: int = 0  # of them, jobs at risk (run GRACE s) when a scale-down went ahead before its longest wait


class Formation:
    """The simulated process type: its dynos, its queue, and the clock of events."""

    def __init__(self, shape: Shape, rule: ScalingRule, seed: int, learns: bool = True) -> None:
        self.shape, self.rng = shape, random.Random(seed)
        self.stops = StopWatch(EVIDENCE if learns else math.inf)
        self.policy, self.state = Policy(rule), TypeState()
        self.events: list[tuple[float, int, str, object]] = []
        self.order = itertools.count()
        self.queue: deque[tuple[int, float]] = deque()  # (job, enqueued at), the oldest on the left
        self.run_time: dict[int, float] = {}
        self.job_class: dict[int, str] = {}
        self.dynos: list[Dyno] = []
        self.idle: deque[Dyno] = deque()  # one entry per idle thread, the longest idle on the left
        self.jobs = itertools.count()
        self.done = self.flushed = 0
        self.now = self.last = 0.0
        self.out = Outcome()
        for _ in range(rule.min_dynos):
            self._add_dyno(booted=True)

    def at(self, when: float, kind: str, what: object = None) -> None:
        heapq.heappush(self.events, (when, next(self.order), kind, what))

    def run(self) -> Outcome:
        end = self.shape.hours * 3600
        self.at(self.rng.expovariate(self.shape.peak), "arrive")
        for kind, first in (("poll", POLL), ("heartbeat", HEARTBEAT), ("sample", SAMPLE)):
            self.at(first, kind)
        while self.events:
            when, _, kind, what = heapq.heappop(self.events)
            if when > end:
                break
            alive = sum(1 for d in self.dynos if not d.gone)
            self.out.dyno_seconds += alive * (when - self.last)
            self.now = self.last = when
            getattr(self, "_" + kind)(what)
        return self.out

    def _arrive(self, _: object) -> None:
        # Thinning: candidates at the peak rate, each kept with probability rate(t) / peak.
        if self.rng.random() < self.shape.rate(self.now) / self.shape.peak:
            job = next(self.jobs)
            self.job_class[job], self.run_time[job] = self.shape.job(self.rng, self.now)
            self.queue.append((job, self.now))
            self._dispatch()
        self.at(self.now + self.rng.expovariate(self.shape.peak), "arrive")

    def _dispatch(self) -> None:
        while self.queue and self.idle:
            dyno = self.idle.popleft()
            if dyno.stopping or dyno.gone:
                continue
            job, _ = self.queue.popleft()
            dyno.running[job] = self.now
            self.at(self.now + self.run_time[job], "finish", (dyno, job))

    def _finish(self, what: object) -> None:
        dyno, job = cast(tuple[Dyno, int], what)
        if job not in dyno.running:
            return  # interrupted meanwhile
        del dyno.running[job], self.run_time[job], self.job_class[job]
        self.done += 1
        if dyno.stopping:
            dyno.gone = dyno.gone or not dyno.running  # Sidekiq exits once its jobs are done
        else:
            self.idle.append(dyno)
            self._dispatch()

    def _booted(self, dyno: object) -> None:
        assert isinstance(dyno, Dyno)
        if not dyno.stopping:
            self.idle.extend([dyno] * THREADS)
            self._dispatch()

    def _stop(self, dyno: object) -> None:
        assert isinstance(dyno, Dyno)
        for job in sorted(dyno.running, key=dyno.running.__getitem__, reverse=True):
            self.queue.appendleft((job, self.now))  # pushed back to the head: the next to run
            self.out.interrupted += 1
            self.out.unwaited += job in dyno.unwaited
        dyno.running.clear()
        dyno.gone = True
        self._dispatch()

    def _heartbeat(self, _: object) -> None:
        self.flushed = self.done
        self.at(self.now + HEARTBEAT, "heartbeat")

    def _sample(self, _: object) -> None:
        latency = self.now - self.queue[0][1] if self.queue else 0.0
        self.out.worst = max(self.out.worst, latency)
        if latency > self.policy.rule.up_latency:
            self.out.seconds_above += SAMPLE
        self.at(self.now + SAMPLE, "sample")

    def _poll(self, _: object) -> None:
        busy = sum(len(d.running) for d in self.dynos if not d.gone)
        latency = self.now - self.queue[0][1] if self.queue else 0.0
        hostnames = frozenset(d.name for d in self.dynos if not d.gone)  # Sidekiq's live processes
        reading = Reading(latency, len(self.queue), busy, (), self.flushed, busy, float(THREADS), hostnames=hostnames)
        current = sum(1 for d in self.dynos if not d.stopping)
        self.policy.observe(self.state, reading, self.now)
        self.stops.look("worker", self.now, hostnames)

        def at_risk_of(decision: Decision) -> int:  # as the autoscaler does: read what runs, count what is at risk
            running = [RunningJob(d.name, self.job_class[job], "default", started)
                       for d in self.dynos if not d.gone for job, started in d.running.items()]
            return len(at_risk(self.stops.on_stopping("worker", running, decision.target), self.now, GRACE))

        decision = self.policy.step(self.state, reading, current, self.now, at_risk_of=at_risk_of)
        if decision.quantity != current:
            self.out.changes += 1
            self.policy.changed(self.state, self.now)
            if decision.quantity < current:
                self.stops.scaled_down("worker", self.now, hostnames, current, decision.quantity)
            for _ in range(decision.quantity - current):
                self._add_dyno(booted=False)
            serving = [d for d in self.dynos if not d.stopping]
            for dyno in serving[decision.quantity:]:  # the highest-numbered
                dyno.stopping = True
                if not decision.interrupts:
                    dyno.unwaited = frozenset(j for j, started in dyno.running.items() if self.now - started >= GRACE)
                dyno.gone = not dyno.running
                if dyno.running:
                    self.at(self.now + GRACE, "stop", dyno)
        self.at(self.now + POLL, "poll")

    def _add_dyno(self, booted: bool) -> None:
        serving = sum(1 for d in self.dynos if not d.stopping)
        dyno = Dyno(f"worker.{serving + 1}", self.now + (0 if booted else BOOT))
        self.dynos.append(dyno)
        if booted:
            self._booted(dyno)
        else:
            self.at(dyno.up_at, "booted", dyno)


def measure(shape: Shape, rule: ScalingRule, seeds: int, learns: bool = True) -> list[Outcome]:
    return [Formation(shape, rule, seed, learns).run() for seed in range(seeds)]


def summary(runs: list[Outcome], plain: list[Outcome] | None) -> dict[str, float | str]:
    """Medians over the seeds; and dyno-hours against plain steps on the same seeds (the same arrivals and run
    times), as the mean difference ± its standard error: the medians alone cannot tell a difference of 1% from
    the seeds' noise."""
    out: dict[str, float | str] = {
        "minutes above": statistics.median(r.seconds_above / 60 for r in runs),
        "worst latency": statistics.median(r.worst for r in runs),
        "dyno-hours": statistics.median(r.dyno_seconds / 3600 for r in runs),
        "changes": statistics.median(r.changes for r in runs),
        "interrupted": statistics.median(r.interrupted for r in runs),
        "unwaited": statistics.median(r.unwaited for r in runs),
        "against plain": "—",
    }
    if plain is not None and len(runs) > 1 and runs is not plain:
        diffs = [(r.dyno_seconds - p.dyno_seconds) / 3600 for r, p in zip(runs, plain, strict=True)]
        error = statistics.stdev(diffs) / math.sqrt(len(diffs))
        out["against plain"] = f"{statistics.mean(diffs):+.1f} ± {error:.1f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs of each shape and policy (the median is shown)")
    parser.add_argument("--shape", help="only the shapes whose name starts so")
    parser.add_argument("--policy", help="only the policies whose name starts so (and plain steps)")
    args = parser.parse_args()
    print(f"{args.seeds} seeds each, medians; {THREADS} threads a dyno, boot {BOOT:g} s, Sidekiq's shutdown "
          f"{GRACE:g} s, a poll every {POLL:g} s; UP_LATENCY {BASE.up_latency:g} s, MIN {BASE.min_dynos}, "
          f"MAX {BASE.max_dynos}\n")
    print("| load | policy | minutes above 30 s | worst latency | dyno-hours | changes | jobs interrupted "
          "| of them, not waited for | dyno-hours against plain steps |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape in SHAPES:
        if args.shape and not shape.name.startswith(args.shape):
            continue
        plain = None
        for name, rule in POLICIES.items():
            if args.policy and not name.startswith(args.policy) and rule is not BASE:  # plain: the reference
                continue
            runs = measure(shape, rule, args.seeds, learns=name != NEVER_LEARNS)
            plain = runs if rule is BASE else plain
            m = summary(runs, plain)
            print(f"| {shape.name} | {name} | {m['minutes above']:.1f} | {m['worst latency']:.0f} s | "
                  f"{m['dyno-hours']:.1f} | {m['changes']:.0f} | {m['interrupted']:.0f} | {m['unwaited']:.0f} | "
                  f"{m['against plain']} |",
                  flush=True)


if __name__ == "__main__":
    main()
