"""The autoscaling policy and readings on their own: pure functions of readings and time."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sidekiq_metrics.autoscale.scaler import Decision, Policy, Reading, TypeState, Workers, readings
from sidekiq_metrics.autoscale.schedule import parse_schedule
from sidekiq_metrics.autoscale.settings import ScalingRule
from sidekiq_metrics.catalogue import QUEUE_LATENCY, QUEUE_SIZE
from sidekiq_metrics.metrics.samples import QueueSeries
from sidekiq_metrics.sidekiq.readings import ProcessReading, Totals

RULE = ScalingRule("worker", max_dynos=5, min_dynos=1, up_latency=30, down_latency=5, step=2, up_cooldown=60,
                   down_cooldown=300, up_polls=3)


def run(policy: Policy, state: TypeState, polls: list[tuple[float, Reading | None]], current: int) -> list[int]:
    """Feed (time, reading) polls; apply each decision at once. The quantity after every poll."""
    out = []
    for now, reading in polls:
        policy.observe(state, reading, now)
        decision = policy.step(state, reading, current, now)
        if decision.quantity != current:
            assert decision.reason
            current = decision.quantity
            policy.changed(state, now)
        out.append(current)
    return out


def high(latency: float = 60, backlog: int = 10) -> Reading:
    return Reading(latency, backlog)


def test_up_only_after_the_consecutive_polls_and_by_step_to_max():
    polls = [(t * 30.0, high()) for t in range(12)]
    assert run(Policy(RULE), TypeState(), polls, 1) == [1, 1, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5]


def test_a_poll_between_the_thresholds_restarts_the_count():
    polls = [(0, high()), (30, high()), (60, Reading(10, 5)), (90, high()), (120, high()), (150, high())]
    assert run(Policy(RULE), TypeState(), polls, 1) == [1, 1, 1, 1, 1, 3]


def test_down_only_after_the_down_cooldown_of_low_latency_and_never_below_min():
    polls = [(t * 60.0, Reading(0.5, 0)) for t in range(20)]
    quantities = run(Policy(RULE), TypeState(), polls, 5)
    assert quantities[:5] == [5] * 5  # low for 0..240 s: not yet
    assert quantities[5] == 3  # low for 300 s
    assert quantities[6:10] == [3] * 4  # a whole cool-down again
    assert quantities[10] == 1 and quantities[-1] == 1


def test_missing_readings_hold_still_and_restart_the_low_clock():
    low = Reading(0.5, 0)
    polls = [(0, low), (200, low), (250, None), (280, Reading(None, 3)), (320, low), (550, low), (620, low)]
    # 0..200 low, then silence: the low clock restarts at 320, so 550 is too early, 620 is due
    assert run(Policy(RULE), TypeState(), polls, 5) == [5, 5, 5, 5, 5, 5, 3]


def test_one_change_per_cooldown_even_when_latency_stays_high():
    rule = ScalingRule("worker", max_dynos=10, up_latency=30, down_latency=5, up_cooldown=120, up_polls=1)
    polls = [(t * 30.0, high()) for t in range(10)]
    assert run(Policy(rule), TypeState(), polls, 1) == [2, 2, 2, 2, 3, 3, 3, 3, 4, 4]


def test_during_a_cooldown_the_target_is_known_but_not_acted_on():
    rule = ScalingRule("worker", max_dynos=10, up_latency=30, down_latency=5, up_cooldown=120, up_polls=1)
    policy, state = Policy(rule), TypeState()
    policy.observe(state, high(), 0)
    assert policy.decide(state, high(), 1, 0)[:3] == (2, "latency above 30s for 1 polls", 2)
    policy.changed(state, 0)
    policy.observe(state, high(), 30)
    assert policy.decide(state, high(), 2, 30)[:3] == (2, "", 3)


def test_out_of_range_formations_are_brought_back():
    assert run(Policy(RULE), TypeState(), [(0, Reading(10, 0))], 0) == [1]
    assert run(Policy(RULE), TypeState(), [(0, Reading(10, 0))], 9) == [5]


def test_a_formation_at_zero_is_woken_by_a_backlog_whose_latency_is_still_zero():
    rule = ScalingRule("worker", max_dynos=4, min_dynos=0, step=1, up_polls=3)
    assert run(Policy(rule), TypeState(), [(0, Reading(0.0, 0))], 0) == [0]
    assert run(Policy(rule), TypeState(), [(0, Reading(0.0, 7))], 0) == [1]


@pytest.mark.parametrize(("queues", "expected"), [
    (None, Reading(None, 12)),  # every queue: "broken" and "refused" among them
    (("fast",), Reading(1.0, 2)),
    (("fast", "absent"), Reading(1.0, 2)),  # a queue Sidekiq does not know is empty
    (("broken",), Reading(None, 5)),  # its latency could not be read: unknown, not 0
    (("broken", "fast"), Reading(None, 7)),  # the worst of them is unknown: hold still (issue 25)
    (("refused", "fast"), Reading(None, 2)),  # Redis refused to read one: unknown, never empty
])
def test_readings_take_the_worst_latency_and_the_backlog_of_the_rules_queues(queues, expected):
    series = [QueueSeries(QUEUE_SIZE, ["broken", "fast", "slow"], [5, 2, 5]),
              QueueSeries(QUEUE_LATENCY, ["fast", "slow"], [1.0, 40.0])]
    rule = ScalingRule("worker", max_dynos=3, queues=queues)
    got = readings([rule], series, unread={"refused"})
    assert {t: reading._replace(sizes=()) for t, reading in got.items()} == {"worker": expected}


DRAINING = ScalingRule("worker", max_dynos=5, min_dynos=1, down_latency=5, down_cooldown=300, drain_wait=600)


def test_a_scale_down_waits_while_the_type_runs_jobs_then_goes_on_when_idle():
    policy, state = Policy(DRAINING), TypeState()
    busy, idle = Reading(1.0, 0, busy=2, running=("worker.2:1:a",)), Reading(1.0, 0)
    polls = [(0, busy), (300, busy), (400, busy), (500, idle)]
    assert run(policy, state, polls, 3) == [3, 3, 3, 2]  # held from 300 s (the cool-down's end) until idle at 500 s
    assert state.draining_since is None


def test_after_the_longest_wait_it_goes_on_and_says_it_interrupts():
    policy, state = Policy(DRAINING), TypeState()
    busy = Reading(1.0, 0, busy=1, running=("worker.2:1:a",))
    for now in (0, 300, 600):
        policy.observe(state, busy, now)
        assert policy.step(state, busy, 3, now).draining == (now >= 300)
    policy.observe(state, busy, 900)
    decision = policy.step(state, busy, 3, 900)  # 600 s of waiting since 300 s
    assert (decision.quantity, decision.interrupts) == (2, True) and "waited 600s for 1 running job(s)" in \
        decision.reason
    no_wait = Policy(ScalingRule("worker", max_dynos=5, down_cooldown=300, drain_wait=0))
    state = TypeState()
    no_wait.observe(state, busy, 0)
    no_wait.observe(state, busy, 300)
    assert no_wait.decide(state, busy, 3, 300).quantity == 2  # 0: the old behaviour, no wait


def test_readings_count_the_busy_processes_of_each_type_and_their_threads_a_dyno():
    processes = (ProcessReading("worker.1:1:a", 0, 5, "worker.1"), ProcessReading("worker.2:1:b", 3, 5, "worker.2"),
                 ProcessReading("worker.2:2:e", 1, 5, "worker.2"),  # two processes on one dyno
                 ProcessReading("urgent.1:1:c", 1, 5, "urgent.1"), ProcessReading("x:1:d", 4, 5, None))
    totals = Totals(1234, 0, 0, 0, 0, 5, 0, processes)
    got = readings([DRAINING], [QueueSeries(QUEUE_SIZE, [], []), QueueSeries(QUEUE_LATENCY, [], [])],
                   Workers.of(totals))
    assert got["worker"].busy == 4 and got["worker"].running == ("worker.2:1:b", "worker.2:2:e")
    assert (got["worker"].processed, got["worker"].busy_all, got["worker"].dyno_threads) == (1234, 9, 7.5)


def berlin(text: str) -> float:
    """Epoch seconds of a wall-clock time in Europe/Berlin."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Berlin")).timestamp()


SCHEDULED = ScalingRule("worker", max_dynos=10, min_dynos=1, down_latency=5, down_cooldown=300, up_cooldown=300,
                        timezone="Europe/Berlin",
                        schedule=parse_schedule("Mon-Fri 08:00-18:00 min=3; Sat,Sun 22:00-02:00 max=2"))


def test_a_window_sets_the_bounds_at_its_boundary_at_once_whatever_the_latency_and_the_cooldown():
    policy, state = Policy(SCHEDULED), TypeState()
    calm = Reading(10.0, 0)  # between the thresholds: latency alone would hold still
    # Monday 2026-03-02, a minute before and at 08:00 Berlin: 1 dyno, then at once the window's minimum of 3.
    assert policy.decide(state, calm, 1, 0, berlin("2026-03-02T07:59:00")).quantity == 1
    policy.changed(state, 0)  # a change a moment ago: a cool-down runs
    decision = policy.decide(state, calm, 1, 10, berlin("2026-03-02T08:00:00"))
    assert decision.quantity == 3 and "below the minimum of 3 (Mon-Fri 08:00-18:00 min=3)" in decision.reason
    # After 18:00 the window's minimum no longer holds: back to the rule's bounds, by latency, one step at a time.
    assert SCHEDULED.bounds(berlin("2026-03-02T18:00:00"))[:2] == (1, 10)


def test_windows_keep_their_wall_clock_hours_across_daylight_saving_and_midnight():
    # Berlin moves from UTC+1 to UTC+2 on 2026-03-29 at 02:00 local: 08:00 is 07:00 UTC before, 06:00 UTC after.
    assert SCHEDULED.bounds(berlin("2026-03-27T08:00:00"))[:2] == (3, 10)  # Friday, winter time
    assert SCHEDULED.bounds(berlin("2026-03-30T08:00:00"))[:2] == (3, 10)  # Monday, summer time
    assert SCHEDULED.bounds(berlin("2026-03-30T08:00:00") - 3600)[:2] == (1, 10)  # 07:00 local: not yet
    # A window past midnight: Saturday 22:00 to Sunday 02:00, and Sunday night into Monday 02:00.
    assert SCHEDULED.bounds(berlin("2026-03-28T23:30:00"))[:2] == (1, 2)
    assert SCHEDULED.bounds(berlin("2026-03-30T01:30:00"))[:2] == (1, 2)  # Monday 01:30: from Sunday's window
    assert SCHEDULED.bounds(berlin("2026-03-30T02:00:00"))[:2] == (1, 10)


@pytest.mark.parametrize("raw, says", [
    ("Mon-Fri 08:00-18:00", "sets neither min= nor max="),
    ("Someday 08:00-18:00 min=3", "names a day that is not one of"),
    ("Mon 25:00-26:00 min=3", "has a time that is not one"),
    ("every day min=3", "is not `<days> <HH:MM>-<HH:MM> [min=N] [max=N]`"),
])
def test_bad_schedules_say_what_is_wrong(raw, says):
    from sidekiq_metrics.config import load_settings
    from sidekiq_metrics.errors import ConfigError

    env = {"SIDEKIQ_METRICS_AUTOSCALE": "worker", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "5",
           "HEROKU_API_TOKEN": "t", "HEROKU_APP_NAME": "shop", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_SCHEDULE": raw}
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_settings(env)
    with pytest.raises(ConfigError, match="min 6 > max 5"):
        load_settings({**env, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_SCHEDULE": "Mon 08:00-09:00 min=6"})
    with pytest.raises(ConfigError, match="must be a time zone"):
        load_settings({**env, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_SCHEDULE": "Mon 08:00-09:00 min=2",
                       "SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE": "Mars/Olympus"})


SIZED = ScalingRule("worker", max_dynos=20, up_latency=30, down_latency=5, up_polls=2, up_cooldown=120,
                    catch_up=120)


def backlog_polls(start: int = 10_000, done: int = 50, arriving: int = 60, threads: float = 10.0) -> list[Reading]:
    """One dyno of `threads` threads, all busy, finishing `done` jobs a second while `arriving` arrive: polls 30 s
    apart, Sidekiq's processed total and the backlog moving accordingly."""
    return [Reading(200.0 + n, start + (arriving - done) * 30 * n, busy=int(threads), processed=1_000 + done * 30 * n,
                    busy_all=int(threads), dyno_threads=threads) for n in range(5)]


def decide_after(rule: ScalingRule, polls: list[Reading], current: int) -> Decision:
    policy, state = Policy(rule), TypeState()
    for n, reading in enumerate(polls):
        policy.observe(state, reading, 30.0 * n)
    return policy.decide(state, polls[-1], current, 30.0 * (len(polls) - 1))


def test_catch_up_sizes_the_step_to_the_backlog_and_the_measured_rates():
    polls = backlog_polls()
    # Over the window: 50 jobs/s done by 10 busy threads, so 5/s a thread and 50/s a dyno; the backlog grows
    # 10/s, so 60/s arrive. The last backlog is 11,200: capacity (11,200 + 60 × 120) / (120 + 30) = 122.7/s,
    # 2.45 dynos' worth: 3. Plain steps would add one.
    decision = decide_after(SIZED, polls, 1)
    assert decision.quantity == 3
    assert decision.reason == ("latency above 30s for 5 polls; 11200 waiting, 60.0/s arriving, 50.0/s a dyno: "
                               "3 dynos catch up within 120s")
    assert decide_after(dataclasses.replace(SIZED, catch_up=0), polls, 1).quantity == 2  # the default: STEP


def test_catch_up_is_capped_by_max_step_and_max_and_never_below_step():
    big = backlog_polls(start=100_000)  # (101,200 + 7,200) / 150 / 50 = 14.5: 15 dynos
    assert decide_after(SIZED, big, 1).quantity == 15
    capped = decide_after(dataclasses.replace(SIZED, max_step=4), big, 1)
    assert capped.quantity == 5 and capped.reason.endswith("(at most 4 more at once)")
    assert decide_after(dataclasses.replace(SIZED, max_dynos=8), big, 1).quantity == 8
    small = backlog_polls(start=100, arriving=50)  # one dyno is enough: the plain step still applies
    assert decide_after(dataclasses.replace(SIZED, step=2), small, 1).quantity == 3


@pytest.mark.parametrize("change", [
    lambda r, n: r._replace(processed=None),  # Sidekiq's totals not readable
    lambda r, n: r._replace(dyno_threads=None),  # no process says its concurrency
    lambda r, n: r._replace(busy_all=0),  # nothing running: no rate to learn from
    lambda r, n: r._replace(processed=r.processed - n * 10_000),  # the stats were reset each poll
])
def test_catch_up_falls_back_to_step_when_the_polls_cannot_tell(change):
    polls = [change(reading, n) for n, reading in enumerate(backlog_polls())]
    decision = decide_after(SIZED, polls, 1)
    assert decision.quantity == 2 and "catch up" not in decision.reason


def test_catch_up_waits_for_thirty_seconds_of_polls():
    polls = backlog_polls()
    policy, state = Policy(SIZED), TypeState()
    for n, reading in enumerate(polls[:2]):  # two polls 10 s apart: too short a span to trust the heartbeats
        policy.observe(state, reading, 10.0 * n)
    assert policy.decide(state, polls[1], 1, 10.0).quantity == 2


def test_only_jobs_at_risk_hold_a_scale_down_and_after_the_wait_it_goes_one_step():
    policy, state = Policy(DRAINING), TypeState()
    short = Reading(1.0, 0, busy=4, running=("worker.2:1:a",), at_risk=0)  # 4 busy, none past the shutdown
    assert run(policy, state, [(0, short), (300, short)], 3) == [3, 2]
    sized = dataclasses.replace(DRAINING, catch_up=120, step=1, max_dynos=10)
    policy, state = Policy(sized), TypeState()
    # Quiet: 1 job/s arrives, 10 threads finish 5/s a dyno: one dyno keeps them 20% busy, so 6 -> 1 at once...
    calm = [Reading(1.0, 0, busy=2, processed=100 + 30 * n, busy_all=2, dyno_threads=10.0, at_risk=0)
            for n in range(12)]
    assert run(policy, state, [(30.0 * n, reading) for n, reading in enumerate(calm)], 6)[-1] == 1
    # ...but with a job at risk running, it waits DRAIN_WAIT, then stops one dyno only.
    policy, state = Policy(sized), TypeState()
    risky = [reading._replace(at_risk=1) for reading in calm] * 3
    quantities = run(policy, state, [(30.0 * n, reading) for n, reading in enumerate(risky)], 6)
    assert quantities[:30] == [6] * 30 and quantities[30] == 5  # 300 s low, then 600 s waiting


def test_the_simulation_benchmark_runs_on_the_policy_as_it_is_and_catch_up_shortens_the_burst():
    """benchmarks/autoscale_sim.py drives this Policy; a change to it must not leave the benchmark broken."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "autoscale_sim.py"
    result = subprocess.run([sys.executable, str(script), "--seeds", "1", "--shape", "burst"], capture_output=True,
                            text=True, timeout=120, check=True)
    rows = {cells[2]: cells[3:] for line in result.stdout.splitlines()
            if (cells := [c.strip() for c in line.split("|")])[1:2] == ["burst: 20x for 10 min"]}
    assert float(rows["both"][0]) < float(rows["plain steps (0.1)"][0])  # minutes above the threshold
    assert float(rows["both"][2]) <= float(rows["plain steps (0.1)"][2])  # dyno-hours


counts = st.integers(min_value=-(10**30), max_value=10**30)


@given(st.lists(st.tuples(st.floats(0, 1e6), counts, st.integers(0, 10**18), st.integers(0, 10**18),
                          st.integers(0, 10**18), st.one_of(st.none(), st.floats(0.0, 1e18))), max_size=12),
       st.integers(0, 1000))
@example([(0.0, 0, 10**18, 1, 0, 5e-324), (1e6, 1, 10**18, 1, 0, 5e-324)], 0)  # a dyno's rate below a float's
def test_any_readings_give_catch_up_a_quantity_within_the_bounds_or_a_plain_step(polls, current):
    """Whatever Redis said (counters of 30 digits, reset, busy beyond the threads, time standing still)."""
    rule = dataclasses.replace(SIZED, min_dynos=0, max_dynos=1000, max_step=7)
    policy, state = Policy(rule), TypeState()
    for at, processed, busy_all, busy, backlog, threads in sorted(polls, key=lambda poll: poll[0]):
        reading = Reading(100.0, backlog, busy, processed=processed, busy_all=busy_all, dyno_threads=threads)
        policy.observe(state, reading, at)
        decision = policy.decide(state, reading, current, at)
        assert 0 <= decision.quantity <= 1000 and abs(decision.quantity - current) <= 7 + rule.step


def test_min_zero_never_scales_to_zero_while_jobs_wait_and_wakes_from_zero_at_once():
    """Issue 25.3: a recording with 3 jobs waiting at 1 s latency went from=1 to=0 backlog=3, then woke two
    minutes later, after the cool-down."""
    rule = ScalingRule("worker", max_dynos=4, min_dynos=0, step=1, up_polls=3, down_latency=5, down_cooldown=120,
                       up_cooldown=120)
    waiting = [(t, Reading(1.0, 3)) for t in range(0, 300, 30)]
    assert run(Policy(rule), TypeState(), waiting, 1) == [1] * 10  # low latency, but 3 jobs wait: stays at 1
    idle = [(t, Reading(0.0, 0)) for t in range(0, 300, 30)]
    state = TypeState()
    assert run(Policy(rule), state, idle, 1)[-1] == 0  # empty: down to 0 after the cool-down
    assert run(Policy(rule), state, [(300, Reading(0.0, 2))], 0) == [1]  # jobs arrive: woken within the cool-down


def test_decide_is_pure_and_step_keeps_what_it_says():
    """Issue 27: decide ran up to three times a step and wrote the state, though its class said pure."""
    policy, state = Policy(DRAINING), TypeState()
    busy = Reading(1.0, 0, busy=1, running=("worker.2:1:a",))
    for now in (0, 300):
        policy.observe(state, busy, now)
    before = dataclasses.replace(state)
    decision = policy.decide(state, busy, 3, 300)
    assert decision.draining and decision.draining_since == 300 and state == before  # nothing written
    asked: list[int] = []
    stepped = policy.step(state, busy, 3, 300, at_risk_of=lambda d: asked.append(d.target) or 0)
    assert asked == [2] and not stepped.draining and stepped.quantity == 2  # none at risk: no wait
    assert state.draining_since is None


def test_an_unknown_paused_set_holds_every_scale_up_but_low_latency_still_scales_down():
    """Review of issue 34: Redis refused the paused set, so a high latency may be a paused queue's, which no dyno
    can drain (rule 6): no scale-up, not even from zero, and the count of high polls starts again once it is
    known. A low latency is low whatever is paused: scale-downs go on."""
    unknown = Reading(60, 10, paused_unknown=True)
    assert run(Policy(RULE), TypeState(), [(t * 30.0, unknown) for t in range(8)], 1) == [1] * 8
    polls = [(0, unknown), (30, unknown), (60, unknown), (90, high()), (120, high()), (150, high())]
    assert run(Policy(RULE), TypeState(), polls, 1) == [1, 1, 1, 1, 1, 3]
    woken = ScalingRule("worker", max_dynos=4, min_dynos=0, step=1, up_polls=3)
    assert run(Policy(woken), TypeState(), [(0, Reading(0.0, 5, paused_unknown=True))], 0) == [0]
    assert run(Policy(RULE), TypeState(), [(0, unknown)], 0) == [1]  # MIN is no reading: still brought back
    low = [(t * 60.0, Reading(0.5, 0, paused_unknown=True)) for t in range(6)]
    assert run(Policy(RULE), TypeState(), low, 5)[5] == 3


@pytest.mark.parametrize(("paused", "arriving"), [((("b",), ("b",), ()), "50.0"), (((), (), ("b",)), "50.0")])
def test_catch_up_takes_the_backlog_over_the_same_queues_at_both_ends(paused, arriving):
    """Review of issue 34: a queue resumed within the window brought its jobs into the backlog at once, and they
    were read as arrivals too (6,000 in 120 s: 100/s arriving, not 50); a queue paused within it read as jobs
    done. Nothing arrives here: 10 busy threads finish 50 jobs a second."""
    sizes = (("a", 3_000), ("b", 6_000))
    polls = [Reading(200.0 + n, sum(size for q, size in sizes if q not in held), busy=10, processed=1_000 + 50 * 30 * n,
                     busy_all=10, dyno_threads=10.0, paused=held, sizes=sizes) for n, held in enumerate(paused)]
    decision = decide_after(SIZED, polls, 1)
    assert f"waiting, {arriving}/s arriving, 50.0/s a dyno" in decision.reason, decision.reason
