"""The autoscaling policy and readings on their own: pure functions of readings and time."""

from __future__ import annotations

import pytest

from sidekiq_metrics.autoscale import Policy, Reading, TypeState, readings
from sidekiq_metrics.catalogue import QUEUE_LATENCY, QUEUE_SIZE
from sidekiq_metrics.config import ScalingRule
from sidekiq_metrics.metrics import QueueSeries

RULE = ScalingRule("worker", max_dynos=5, min_dynos=1, up_latency=30, down_latency=5, step=2, up_cooldown=60,
                   down_cooldown=300, up_polls=3)


def run(policy: Policy, state: TypeState, polls: list[tuple[float, Reading | None]], current: int) -> list[int]:
    """Feed (time, reading) polls; apply each decision at once. The quantity after every poll."""
    out = []
    for now, reading in polls:
        policy.observe(state, reading, now)
        decision = policy.decide(state, reading, current, now)
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
    assert policy.decide(state, high(), 1, 0) == (2, "latency above 30s for 1 polls", 2)
    policy.changed(state, 0)
    policy.observe(state, high(), 30)
    assert policy.decide(state, high(), 2, 30) == (2, "", 3)


def test_out_of_range_formations_are_brought_back():
    assert run(Policy(RULE), TypeState(), [(0, Reading(10, 0))], 0) == [1]
    assert run(Policy(RULE), TypeState(), [(0, Reading(10, 0))], 9) == [5]


def test_a_formation_at_zero_is_woken_by_a_backlog_whose_latency_is_still_zero():
    rule = ScalingRule("worker", max_dynos=4, min_dynos=0, step=1, up_polls=3)
    assert run(Policy(rule), TypeState(), [(0, Reading(0.0, 0))], 0) == [0]
    assert run(Policy(rule), TypeState(), [(0, Reading(0.0, 7))], 0) == [1]


@pytest.mark.parametrize(("queues", "expected"), [
    (None, Reading(40.0, 12)),
    (("fast",), Reading(1.0, 2)),
    (("fast", "absent"), Reading(1.0, 2)),  # a queue Sidekiq does not know is empty
    (("broken",), Reading(None, 5)),  # its latency could not be read: unknown, not 0
    (("broken", "fast"), Reading(1.0, 7)),
])
def test_readings_take_the_worst_latency_and_the_backlog_of_the_rules_queues(queues, expected):
    series = [QueueSeries(QUEUE_SIZE, ["broken", "fast", "slow"], [5, 2, 5]),
              QueueSeries(QUEUE_LATENCY, ["fast", "slow"], [1.0, 40.0])]
    rule = ScalingRule("worker", max_dynos=3, queues=queues)
    assert readings([rule], series) == {"worker": expected}
