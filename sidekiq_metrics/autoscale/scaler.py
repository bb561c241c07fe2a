"""Autoscaling worker dynos on queue latency, through the Heroku Platform API. Off unless configured.

Three pieces, each testable alone:
- `readings`: each process type's worst queue latency and backlog, from a poll's per-queue series;
- `Policy`: when to scale, as a pure function of the readings over time (no I/O);
- `Autoscaler`: a daemon thread that asks the API, applies the policy, takes the lock and acts.
  The poll loop only hands it the latest readings, so a slow or failing API never delays a metric.

Several emitters may run at once (preboot overlaps the old web.1 with the new one). Before each
change an emitter takes a lock in Redis, SET <key> NX PX <ttl>: the only key we ever write,
named `sidekiq-metrics:autoscale:lock:<type>` (no Sidekiq key starts like that). The TTL is the
shorter cool-down, so whoever acts first also holds the others off for a cool-down.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sidekiq_metrics.autoscale.jobs_at_risk import RunningJob, at_risk, running_job
from sidekiq_metrics.autoscale.settings import AutoscaleSettings, ScalingRule, autoscale_variable
from sidekiq_metrics.autoscale.sizing import BUSIEST, Estimate, Flow, estimate, remember
from sidekiq_metrics.autoscale.stopped_dynos import StopWatch
from sidekiq_metrics.catalogue import (
    AUTOSCALE_CURRENT,
    AUTOSCALE_DESIRED,
    AUTOSCALE_MAX,
    QUEUE_LATENCY,
    QUEUE_PAUSED,
    QUEUE_SIZE,
)
from sidekiq_metrics.heroku.platform_api import NOT_FOUND, RATE_LIMITED, REFUSED, ApiError, PlatformApi
from sidekiq_metrics.metrics.samples import QueueSeries, Sample
from sidekiq_metrics.redact import describe_error
from sidekiq_metrics.redis.lease import Lease
from sidekiq_metrics.redis.resp import Connection, RedisError, ReplyError
from sidekiq_metrics.sidekiq.keys import SidekiqKeys, encode
from sidekiq_metrics.sidekiq.readings import Totals

LOCK_KEY = "sidekiq-metrics:autoscale:lock:"
FORMATION_MAX_AGE = 60.0  # seconds a formation quantity read from the API is trusted while nothing changes


class Reading(NamedTuple):
    """What a process type's queues and processes show in one poll."""

    latency: float | None  # the worst latency of its queues; None: unknown this poll (hold still)
    backlog: int  # jobs waiting in its queues
    busy: int = 0  # jobs its Sidekiq processes run now (quiet ones included: they are draining)
    running: tuple[str, ...] = ()  # the identities of its processes that run jobs
    processed: int | None = None  # Sidekiq's running total of finished jobs, every type's (Stats#processed)
    busy_all: int = 0  # jobs every live Sidekiq process runs, of any type
    dyno_threads: float | None = None  # threads one of its dynos runs; None: none of its processes says
    at_risk: int | None = None  # running jobs a scale-down would interrupt (jobs_at_risk.py); None: all count
    hostnames: frozenset[str] = frozenset()  # its live processes' dynos: `worker.3`
    paused: tuple[str, ...] = ()  # its queues Sidekiq Pro holds paused: left out of latency and backlog
    paused_unknown: bool = False  # Redis refused the paused set: any queue may be paused, so no scale-up
    sizes: tuple[tuple[str, int], ...] = ()  # each of its queues' size, paused ones included (for CATCH_UP)


class Crew(NamedTuple):
    """A process type's live Sidekiq processes, summed."""

    busy: int
    threads: int  # their concurrency
    dynos: int  # the dynos they run on
    running: tuple[str, ...] = ()  # the identities of those that run jobs
    hostnames: frozenset[str] = frozenset()  # their dynos' names: `worker.3`


class Workers(NamedTuple):
    """What a poll saw of Sidekiq's processes, as autoscaling needs it: from the live process hashes, or from
    a recording's per-type metrics."""

    processed: int | None = None  # Stats#processed
    busy: int = 0  # every live process's running jobs
    crews: Mapping[str, Crew] = {}  # by process type (never changed: a shared default is safe)

    @classmethod
    def of(cls, totals: Totals | None) -> Workers:
        if totals is None:
            return cls()
        if totals.busy is None:
            return cls(totals.processed)
        crews = {process_type: Crew(group.busy, group.concurrency, len({p.hostname for p in group}), group.running,
                            group.hostnames) for process_type, group in totals.by_process_type().items()}
        return cls(totals.processed, totals.busy, crews)


NO_WORKERS = Workers()


def readings(rules: Sequence[ScalingRule], series: Sequence[QueueSeries],
             workers: Workers = NO_WORKERS, unread: Collection[str] = (),
             paused_unknown: bool = False) -> dict[str, Reading]:
    """Each rule's reading from a poll's per-queue series and live processes. A queue of a rule that the
    poll did not find is empty (Sidekiq's own API says so of a queue it does not know). A rule any of whose
    queues could not be read (`unread`, or sized without a usable latency) has no latency: it holds still,
    as the worst of its queues is unknown. `paused_unknown`: Redis refused Sidekiq Pro's paused set, so any queue
    may be paused: every reading then says so, and no type scales up on it (rule 6 of docs/autoscaling.md)."""
    latencies: dict[str, float] = {}
    sizes: dict[str, float] = {}
    paused: set[str] = set()
    for s in series:
        if s.metric is QUEUE_LATENCY:
            latencies.update(zip(s.queues, s.values, strict=True))
        elif s.metric is QUEUE_SIZE:
            sizes.update(zip(s.queues, s.values, strict=True))
        elif s.metric is QUEUE_PAUSED:
            paused.update(s.queues)
    unreadable = (sizes.keys() - latencies.keys()) | set(unread)  # refused, or sized but no usable timestamp
    out = {}
    for rule in rules:
        queues = rule.queues if rule.queues is not None else list(sizes | dict.fromkeys(unread))
        # A paused queue's backlog cannot drain, whatever the dynos: it never asks for more of them.
        held = tuple(q for q in queues if q in paused)
        every = tuple((q, int(sizes[q])) for q in queues if q in sizes)
        queues = [q for q in queues if q not in paused] if held else queues
        backlog = int(sum(sizes.get(q, 0) for q in queues))
        if any(q in unreadable for q in queues):
            latency = None
        else:
            latency = max((latencies.get(q, 0.0) for q in queues), default=0.0)
        crew = workers.crews.get(rule.process_type, Crew(0, 0, 0))
        threads = crew.threads / crew.dynos if crew.threads and crew.dynos else None
        out[rule.process_type] = Reading(latency, backlog, crew.busy, crew.running, workers.processed,
                                         workers.busy, threads, hostnames=crew.hostnames, paused=held,
                                         paused_unknown=paused_unknown, sizes=every)
    return out


@dataclass
class TypeState:
    """What the policy remembers of one process type between polls."""

    high_polls: int = 0  # polls in a row with latency above up_latency
    low_since: float | None = None  # when latency went below down_latency (and has stayed there)
    last_change: float | None = None  # when the type was last changed, by us or (seen by the lock) another emitter
    current: int | None = None  # the formation's quantity, as last read or set
    desired: int | None = None  # where the policy is heading: the quantity it wants, cool-downs aside
    read_at: float = -math.inf  # when `current` was read from the API
    simulated: int | None = None  # in a dry run: the quantity the decisions would have set
    draining_since: float | None = None  # when a scale-down began to wait for running jobs
    flows: deque[Flow] = field(default_factory=deque)  # the last polls' numbers, for CATCH_UP (sizing.py)


class Decision(NamedTuple):
    quantity: int  # what to set now: the current quantity to hold still
    reason: str  # why; empty when holding still
    target: int  # what the policy wants, whether or not a cool-down lets it act now
    draining: bool = False  # held back: a scale-down waits for running jobs
    interrupts: bool = False  # a scale-down that waited its longest and goes ahead with jobs running
    draining_since: float | None = None  # what the type's state is to remember: when a scale-down began to wait


class Policy:
    """When to scale one process type. `observe` and `step` keep the type's state; `decide` is pure: time comes in
    as `now`, nothing is read or written."""

    def __init__(self, rule: ScalingRule) -> None:
        self.rule = rule

    def observe(self, state: TypeState, reading: Reading | None, now: float) -> None:
        """Track how long latency has been high or low. A missing reading resets both: silence is not calm."""
        if reading is not None and reading.processed is not None:
            remember(state.flows, Flow(now, reading.processed, reading.busy_all, reading.busy, reading.backlog,
                                       reading.sizes, frozenset(reading.paused)))
        if reading is None or reading.latency is None:
            state.high_polls, state.low_since = 0, None
            return
        # Paused state unknown: a high latency may be a paused queue's, so it is no reading for a scale-up (its count
        # starts again, as after any unknown reading); a low one is low whatever is paused.
        high = reading.latency > self.rule.up_latency and not reading.paused_unknown
        state.high_polls = state.high_polls + 1 if high else 0
        if reading.latency < self.rule.down_latency:
            state.low_since = now if state.low_since is None else state.low_since
        else:
            state.low_since = None

    def decide(self, state: TypeState, reading: Reading | None, current: int, now: float,
               at: float | None = None) -> Decision:
        """The quantity `current` should become now (`current` itself to hold still). `now` is the clock of the
        cool-downs (monotonic); `at` the wall clock (epoch seconds) of the schedule's windows, if any. It writes
        nothing: what the state is to remember comes back in the Decision, for `step` to keep."""
        rule = self.rule
        since = state.draining_since
        if reading is None or reading.latency is None:
            return Decision(current, "", current, draining_since=since)
        low, high, window = rule.bounds(at)
        during = f" ({window.text})" if window else ""
        target, reason = current, ""
        if current < low:
            target, reason = low, f"below the minimum of {low}{during}"
        elif current > high:
            target, reason = high, f"above the maximum of {high}{during}"
        elif current == 0 and reading.backlog > 0:
            target, reason = min(high, rule.step), f"{reading.backlog} jobs waiting and no dynos"
        elif state.high_polls >= rule.up_polls and current < high:
            target, reason = self._scale_up(state, reading, current, high, now)
        elif state.low_since is not None and now - state.low_since >= rule.down_cooldown and current > low:
            target, reason = self._scale_down(state, reading, current, low, now)
        if target > current and reading.paused_unknown and not current < low:
            target, reason = current, ""  # the backlog may be a paused queue's: no dyno can run it
        if target >= current:
            since = None
        if target == current:
            return Decision(current, "", current, draining_since=since)
        cooldown = rule.up_cooldown if target > current else rule.down_cooldown
        # At once: into the bounds (a window boundary does not wait), and from zero dynos while jobs wait.
        bound = current < low or current > high or current == 0 < target
        if not bound and state.last_change is not None and now - state.last_change < cooldown:
            return Decision(current, "", target, draining_since=since)  # one change per cool-down
        at_risk = reading.busy if reading.at_risk is None else reading.at_risk
        if target < current and at_risk and rule.drain_wait > 0:
            # Wait while jobs at risk run where the scale-down may stop them, at most drain_wait seconds. Which
            # dynos those are is the caller's to count (stopped_dynos.py): every one of the type's until known.
            since = now if since is None else since
            waited = now - since
            if waited < rule.drain_wait:
                return Decision(current, "", target, draining=True, draining_since=since)
            # Over running jobs, as few dynos as a step: each one stopped may interrupt some.
            fewer = max(target, current - rule.step)
            return Decision(fewer, f"{reason}; waited {waited:.0f}s for {at_risk} running job(s)", target,
                            interrupts=True, draining_since=since)
        return Decision(target, reason, target)

    def step(self, state: TypeState, reading: Reading | None, current: int, now: float, at: float | None = None,
             at_risk_of: Callable[[Decision], int | None] | None = None) -> Decision:
        """One autoscaling step of this type, the one the live autoscaler, `autoscale simulate` and the benchmark
        all take: decide; when a scale-down would wait for running jobs, ask `at_risk_of` how many of them the
        change to the decision's target would interrupt (None: not known, so every busy thread counts) and decide
        again; keep what the decision says of the wait. Observing each poll's reading is the caller's, and so is
        making the change (then `changed`)."""
        decision = self.decide(state, reading, current, now, at)
        if reading is not None and at_risk_of is not None and (decision.draining or decision.interrupts):
            risky = at_risk_of(decision)
            if risky is not None:
                decision = self.decide(state, reading._replace(at_risk=risky), current, now, at)
        state.draining_since = decision.draining_since
        return decision

    def _scale_up(self, state: TypeState, reading: Reading, current: int, high: int, now: float) -> tuple[int, str]:
        """STEP dynos more. With CATCH_UP, as many as the backlog needs (sizing.py), and none while the last
        change's dynos are still catching up: within CATCH_UP seconds of it, when the estimate finds them enough."""
        rule = self.rule
        reason = f"latency above {rule.up_latency:g}s for {state.high_polls} polls"
        sized = self._estimate(state, reading)
        if sized is None:
            return min(high, current + rule.step), reason
        if sized.needed <= current and state.last_change is not None and now - state.last_change < rule.catch_up:
            return current, ""
        step = max(rule.step, min(sized.needed - current, rule.max_step or high))
        reason += (f"; {reading.backlog} waiting, {sized.arriving:.1f}/s arriving, {sized.per_dyno:.1f}/s a dyno: "
                   f"{sized.needed} dynos catch up within {rule.catch_up:g}s")
        if current + step < min(sized.needed, high):
            reason += f" (at most {rule.max_step} more at once)"
        return min(high, current + step), reason

    def _scale_down(self, state: TypeState, reading: Reading, current: int, low: int, now: float) -> tuple[int, str]:
        """STEP dynos fewer. With CATCH_UP, down to the dynos the measured arrivals keep at most BUSIEST busy
        (sizing.py) when that is more than STEP fewer (at most MAX_STEP fewer)."""
        rule = self.rule
        reason = f"latency below {rule.down_latency:g}s for {now - (state.low_since or now):.0f}s"
        sized = self._estimate(state, reading)
        step = rule.step
        if sized is not None and current - sized.enough > step:
            step = min(current - sized.enough, rule.max_step or current)
            reason += (f"; {sized.arriving:.1f}/s arriving, {sized.per_dyno:.1f}/s a dyno: {sized.enough} dyno(s) "
                       f"keep them at most {BUSIEST:.0%} busy")
        # Never to zero while jobs wait: nothing would run them, and latency would look low only until it rose.
        return max(low, current - step, 1 if reading.backlog > 0 else 0), reason

    def _estimate(self, state: TypeState, reading: Reading) -> Estimate | None:
        rule = self.rule
        return estimate(state.flows, reading.dyno_threads, rule.catch_up, rule.up_latency) if rule.catch_up else None

    def changed(self, state: TypeState, now: float) -> None:
        """A change was made (by us, or by another emitter): the cool-down, the count of high polls and the
        time latency has been low all start again from now."""
        state.last_change = now
        state.high_polls = 0
        state.low_since = now if state.low_since is not None else None


class ScalingLock:
    """The autoscaler's lock, <ns:>sidekiq-metrics:autoscale:lock:<type> = <owner> (lease.py): taken when free,
    and taken again when its value is our own. A change whose API call failed leaves our lock set, and the
    retry must not read it as another emitter's (it delayed a needed scale-up by a whole cool-down). Taking it
    again restarts its TTL, so the cool-down it holds runs from the change that is made."""

    def __init__(self, connection: Connection, namespace: str | None, owner: str) -> None:
        self.connection = connection  # our own: the poll's connection belongs to the poll thread
        self.keys = SidekiqKeys.under(namespace)  # our lock is kept under Sidekiq's namespace too
        self.owner = owner
        self._leases: dict[str, Lease] = {}

    def take(self, process_type: str, ttl: float) -> bool:
        """True if we hold the lock now. Raises RedisError when Redis cannot be asked."""
        if process_type not in self._leases:
            key = self.keys.prefix + LOCK_KEY.encode() + encode(process_type)
            self._leases[process_type] = Lease(self.connection, key, self.owner)
        return self._leases[process_type].hold(ttl)


class Autoscaler:
    """Acts on the latest readings in a thread of its own. `observe` and `samples` never block."""

    def __init__(self, config: AutoscaleSettings, lock: ScalingLock, log: Callable[[str], None],
                 secrets: tuple[str, ...] = (), clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.config = config
        self.wall = wall  # the schedules' clock: windows are wall-clock times
        self.api = PlatformApi(config.api_url, config.token, config.app)
        self.lock = lock
        self.log = log
        self.secrets = (*secrets, config.token)
        self.clock = clock
        self.policies = {rule.process_type: Policy(rule) for rule in config.rules}
        self.states = {rule.process_type: TypeState() for rule in config.rules}
        self._refused = False  # 401/403: no more API calls until restart
        self._unknown: set[str] = set()  # 404: types the app does not have
        self._paused_until = -math.inf  # 429
        self._pending: list[tuple[Sequence[QueueSeries], Totals | None, Collection[str], bool] | None] = []
        self._paused_unknown = False  # Redis refused the paused set at the last poll (said as it changes)
        self._draining: set[str] = set()  # types whose scale-down waits for running jobs (said once)
        self._paused: dict[str, tuple[str, ...]] = {}  # each type's paused queues, as last said
        self.stops = StopWatch()  # which dynos Heroku stops, as our scale-downs showed it (stopped_dynos.py)
        self._guard = threading.Lock()
        self._wake = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="autoscale", daemon=True).start()
        mode = " (dry run: decisions are logged, nothing is changed)" if self.config.dry_run else ""
        for rule in self.config.rules:
            queues = ",".join(rule.queues) if rule.queues else "every queue"
            self.log(f"autoscale {rule.process_type}: {rule.min_dynos}..{rule.max_dynos} dynos on the latency of "
                     f"{queues}: up above {rule.up_latency:g}s, down below {rule.down_latency:g}s{mode}")

    def observe(self, series: Sequence[QueueSeries] | None, totals: Totals | None = None,
                unread: Collection[str] = (), paused_unknown: bool = False) -> None:
        """A poll's per-queue series, Sidekiq's totals and the queues it could not read (None: the poll failed,
        missed a read every type needs, or this emitter did not poll for a while, as a new term of the lease
        begins). Only the newest unhandled poll is kept, after a None not handled yet: silence is never skipped,
        or the polls on either side of it would count as polls in a row."""
        entry = None if series is None else (series, totals, unread, paused_unknown)
        with self._guard:
            if self._pending and self._pending[0] is None:
                self._pending[1:] = [] if entry is None else [entry]
            else:
                self._pending[:] = [entry]
        self._wake.set()

    def samples(self) -> list[Sample]:
        """sidekiq.autoscale.<type>.current, .desired and .max (the ceiling now, a time window's if one holds),
        once the formation has been read: an alert tells "at its ceiling" from the data alone."""
        out = []
        at = self.wall()
        for process_type, state in self.states.items():
            if state.current is not None:
                desired = state.desired if state.desired is not None else state.current
                out.append(Sample.of(AUTOSCALE_CURRENT, state.current, process_type))
                out.append(Sample.of(AUTOSCALE_DESIRED, desired, process_type))
                out.append(Sample.of(AUTOSCALE_MAX, self.policies[process_type].rule.bounds(at)[1], process_type))
        return out

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._guard:
                self._wake.clear()
                polls = self._pending[:]  # none: a wake-up for polls already taken, not a failed poll
                self._pending.clear()
            for poll in polls:
                if poll is not None and poll[3] != self._paused_unknown:  # said as it changes
                    self._paused_unknown = poll[3]
                    self.log("autoscale: Redis refused Sidekiq Pro's paused set, so any queue may be paused: no type "
                             "scales up until it can be read (scale-downs go on by every queue's latency)"
                             if poll[3] else "autoscale: Sidekiq Pro's paused set is read again; scale-ups go on")
                self.step(None if poll is None else readings(self.config.rules, poll[0], Workers.of(poll[1]), poll[2],
                                                             poll[3]))

    def step(self, latest: dict[str, Reading] | None) -> None:
        """One round for every type: what the thread does with each poll."""
        for process_type, policy in self.policies.items():
            try:
                self._step_type(policy, self.states[process_type], latest.get(process_type) if latest else None)
            except Exception as exc:  # noqa: BLE001 - autoscaling must never take the metrics down with it
                self.log(f"autoscale {process_type}: unexpected error, holding still: "
                         f"{describe_error(exc, self.secrets)}")

    def _step_type(self, policy: Policy, state: TypeState, reading: Reading | None) -> None:
        process_type = policy.rule.process_type
        now = self.clock()
        policy.observe(state, reading, now)
        if reading is not None and reading.paused != self._paused.get(process_type, ()):  # said as it changes
            self._paused[process_type] = reading.paused
            named = ", ".join(ascii(q)[:80] for q in reading.paused[:5])
            self.log(f"autoscale {process_type}: paused (Sidekiq Pro), left out as their jobs cannot run whatever "
                     f"the dynos: {named}" if reading.paused else f"autoscale {process_type}: no queue of it is paused")
        if reading is not None and (seen := self.stops.look(process_type, now, reading.hostnames)):
            self.log(seen)
        dry_run = self.config.dry_run
        if reading is None or reading.latency is None:
            state.desired = state.simulated if dry_run and state.simulated is not None else state.current
            return
        if self._refused or process_type in self._unknown or now < self._paused_until:
            return
        # The API is asked before every change, and otherwise once a minute: ~75 requests a minute is
        # Heroku's refill rate for a whole account, which a 1 s interval would use up on its own.
        # A dry run decides from the quantity its decisions would have set, so it shows what a real run does.
        base = state.simulated if dry_run and state.simulated is not None else state.current
        if base is None or now - state.read_at >= FORMATION_MAX_AGE or \
                policy.decide(state, reading, base, now, self.wall()).quantity != base:
            current = self._api(process_type, lambda: self.api.quantity(process_type))
            if current is None:
                return
            state.current, state.read_at = current, now
            base = state.simulated if dry_run and state.simulated is not None else current
        risky: list[RunningJob] = []

        def at_risk_of(decision: Decision) -> int | None:
            """The jobs a scale-down would interrupt, on the dynos it may stop: any of the type's, until known."""
            running = self._running_jobs(reading.running)
            if running is None:
                return None
            risky[:] = at_risk(self.stops.on_stopping(process_type, running, decision.target), self.wall())
            return len(risky)

        decision = policy.step(state, reading, base, now, self.wall(), at_risk_of)
        state.desired = decision.target
        if decision.draining and process_type not in self._draining:
            self._draining.add(process_type)
            self.log(f"autoscale: holding the scale-down of {process_type} from {base} to {decision.target} while "
                     f"{len(risky) or reading.busy} job(s) that may outlast Sidekiq's shutdown run on "
                     f"{'the dynos it stops' if self.stops.known else 'its dynos'} "
                     f"(at most {policy.rule.drain_wait:g}s: {autoscale_variable(process_type, 'DRAIN_WAIT')})")
        elif not decision.draining:
            self._draining.discard(process_type)
        if decision.quantity == base:
            return
        change = (f"type={process_type} from={base} to={decision.quantity} latency={reading.latency:.3f} "
                  f"backlog={reading.backlog} reason=\"{decision.reason}\"")
        if dry_run:
            self.log(f"autoscale: would scale {change} (dry run)")
            state.simulated = decision.quantity
            policy.changed(state, now)
            return
        try:
            held = self.lock.take(process_type, min(policy.rule.up_cooldown, policy.rule.down_cooldown))
        except (RedisError, OSError) as exc:
            self.log(f"autoscale {process_type}: holding still, the lock could not be taken: "
                     f"{describe_error(exc, self.secrets)}")
            return
        if not held:
            self.log(f"autoscale: another emitter scaled {process_type} within the cool-down; not scaling {change}")
            policy.changed(state, now)
            state.read_at = -math.inf  # it may have changed the quantity: read it again next time
            return
        scaled = self._api(process_type, lambda: self.api.scale(process_type, decision.quantity))
        if scaled is not None:
            # The cool-down runs from when Heroku had the change, not from when it was decided.
            now = self.clock()
            policy.changed(state, now)
            state.current, state.read_at = scaled, now
            self.log(f"autoscale: scaled {change}")
            if decision.quantity < base:
                if fir := self.stops.scaled_down(process_type, now, reading.hostnames, base, decision.quantity,
                                                 policy.rule.down_cooldown):
                    self.log(fir)
            if decision.interrupts:
                risky = self.stops.on_stopping(process_type, risky, decision.quantity)
                wall = self.wall()
                said = [job.describe(wall) for job in risky[:10]] + ([f"{len(risky) - 10} more"] if
                                                                       len(risky) > 10 else [])
                self.log(f"autoscale: {process_type}'s scale-down may interrupt: "
                         f"{', '.join(said) or f'{reading.busy} job(s) whose work could not be read'}")

    def _running_jobs(self, identities: Sequence[str]) -> list[RunningJob] | None:
        """What the busy processes run, from the hashes Sidekiq keeps of it (`<identity>:work`, `:workers`
        up to 6.4.1). None when that cannot be told: Redis refused, or a busy process lists no work. Read on
        the lock's connection, never the poll's."""
        try:
            replies = self.lock.connection.pipeline([["HGETALL", key] for i in identities
                                                     for key in self.lock.keys.work(i)])
        except (RedisError, OSError):
            return None
        if any(isinstance(reply, ReplyError) for reply in replies):
            return None  # a refused record is unknown work, not none: every busy thread counts
        jobs = []
        for n, identity in enumerate(identities):
            values = [raw for reply in replies[2 * n:2 * n + 2] if isinstance(reply, list) for raw in reply[1::2]]
            if not values:
                return None
            jobs += [running_job(identity, raw) for raw in values]
        return jobs

    def _api(self, process_type: str, call: Callable[[], int]) -> int | None:
        """The call's quantity, or None after saying (once, where once is enough) why there is none."""
        try:
            return call()
        except ApiError as exc:
            message = describe_error(exc, self.secrets)
            if exc.kind == REFUSED:
                self._refused = True
                self.log(f"autoscale off until restart: {message}; metrics go on. Set HEROKU_API_TOKEN to a "
                         f"token that may scale {self.api.app}'s dynos, then restart the dynos")
            elif exc.kind == NOT_FOUND:
                self._unknown.add(process_type)
                self.log(f"autoscale {process_type} off until restart: {message}; check SIDEKIQ_METRICS_AUTOSCALE "
                         "and HEROKU_APP_NAME against `heroku ps`")
            elif exc.kind == RATE_LIMITED:
                self._paused_until = self.clock() + exc.retry_after
                self.log(f"autoscale paused for {exc.retry_after:g}s: {message}")
            else:
                self.log(f"autoscale {process_type}: holding still this poll: {message}")
            return None

