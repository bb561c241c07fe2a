"""Queue names in metric names: exact when they fit, mapped deterministically otherwise, never shared."""

import re

from sidekiq_metrics.metrics.names import MAX_METRIC_NAME, queue_metric_names, queue_names_for

VALID = re.compile(r"[A-Za-z0-9.:_-]+")


def test_names_that_fit_are_kept_exactly():
    names = ["default", "mailers", "within_30.seconds", "a:b-c"]
    assert queue_metric_names(tuple(names), "sidekiq") == {n: n for n in names}


def test_other_characters_become_underscores():
    assert queue_metric_names(("low priority", "imports/csv", "düsseldorf"), "sidekiq") == {
        "low priority": "low_priority", "imports/csv": "imports_csv", "düsseldorf": "d_sseldorf"}


def test_mapping_is_deterministic_whatever_the_order():
    queues = ["x y", "x/y", "x_y", "a b"]
    assert queue_metric_names(tuple(queues), "p") == queue_metric_names(tuple(reversed(queues)), "p")


def test_two_queues_never_share_a_name():
    names = queue_metric_names(("x y", "x/y", "x_y", "", " ", "\udcff", "x\ny"), "sidekiq")
    assert len(set(names.values())) == len(names)
    assert names["x_y"] == "x_y"  # the name that fitted keeps its own
    assert re.fullmatch(r"x_y-[0-9a-f]{8}", names["x y"])
    assert all(VALID.fullmatch(n) for n in names.values())


def test_long_names_are_cut_to_fit_with_a_digest():
    long_a, long_b = "a" * 10_000, "a" * 9_999 + "b"
    names = queue_metric_names((long_a, long_b), "sidekiq")
    assert names[long_a] != names[long_b]
    for n in names.values():  # the longest of 0.1.0's names, `<queue>.latency`, fits exactly (never renamed since)
        assert len(f"sidekiq.{n}.latency") == MAX_METRIC_NAME
        assert VALID.fullmatch(n)
    longer = queue_names_for("running.longest", (long_a, long_b), "sidekiq")  # a later, longer suffix: its own room
    assert longer[long_a] != longer[long_b]
    assert all(len(f"sidekiq.{n}.running.longest") == MAX_METRIC_NAME for n in longer.values())
