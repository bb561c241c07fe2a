"""Which dynos a scale-down stops, learned from our own scale-downs (sidekiq_metrics/autoscale/stopped_dynos.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sidekiq_metrics.autoscale.stopped_dynos import WATCH, ScaleDown, StopWatch, judge
from sidekiq_metrics.heroku.dynos import dyno_number


def names(*numbers: int, kind: str = "worker") -> list[str]:
    return [f"{kind}.{n}" for n in numbers]


def test_dyno_numbers_are_read_only_from_the_types_own_names():
    assert dyno_number("worker", "worker.3") == 3
    assert [dyno_number("worker", h) for h in ("web.3", "worker.", "worker.x", "worker_2.3", "worker.1234567",
                                              "urgent.worker.3", "")] == [None] * 7


def test_each_scale_down_that_stops_the_highest_numbered_adds_evidence_until_it_is_known():
    watch = StopWatch()
    said = []
    for old, new in ((6, 5), (5, 4), (4, 3)):  # 6 x 5 x 4 = 120 times likelier than chance
        assert not watch.known and watch.stops("worker", "worker.1", new)  # until known, any dyno may stop
        watch.scaled_down("worker", 0.0, names(*range(1, old + 1)), old, new)
        assert watch.look("worker", 1.0, names(*range(1, old + 1))) is None  # still shutting down
        said.append(watch.look("worker", 2.0, names(*range(1, new + 1))))
    assert said[0] == "autoscale: scaling worker from 6 to 5 stopped the highest-numbered dyno(s), worker.6"
    assert said[2].endswith("; seen often enough that chance does not explain it: a scale-down now waits only "
                            "for jobs on the dynos it stops")
    assert watch.known and watch.evidence == 120
    assert not watch.stops("worker", "worker.2", 2) and watch.stops("worker", "worker.3", 2)
    assert watch.stops("worker", "a-laptop", 2)  # a process not named after a dyno of the type may stop


def test_one_scale_down_that_stops_another_dyno_puts_every_dyno_back_under_protection():
    watch = StopWatch(evidence=6)  # C(4, 2): one scale-down from 4 to 2 makes it known
    watch.scaled_down("worker", 0.0, names(1, 2, 3, 4), 4, 2)
    assert watch.look("worker", 1.0, names(1, 2)).endswith("worker.3..worker.4; seen often enough that chance "
                                                          "does not explain it: a scale-down now waits only for "
                                                          "jobs on the dynos it stops")
    watch.scaled_down("worker", 2.0, names(1, 2), 2, 1)
    assert watch.look("worker", 3.0, names(2)) is None  # worker.1 may be restarting: judged when the watch ends
    assert watch.look("worker", 3.0 + WATCH, names(2)) == (
        "autoscale: scaling worker from 2 to 1 stopped worker.1, not only the highest-numbered: a scale-down waits "
        "for jobs on every dyno of the app's types again until restart")
    assert not watch.known and watch.stops("worker", "worker.1", 1)
    watch.scaled_down("worker", 4.0, names(1, 2, 3), 3, 2)
    watch.look("worker", 5.0, names(1, 2))
    assert not watch.known  # for good


def test_a_scale_down_it_cannot_judge_is_forgotten_after_a_while():
    watch = StopWatch()
    watch.scaled_down("worker", 0.0, names(1, 3), 3, 2)  # worker.2 ran no Sidekiq: nothing to learn
    assert watch.look("worker", 1.0, names(1)) is None
    watch.scaled_down("worker", 10.0, names(1, 2, 3), 3, 2)
    assert watch.look("worker", 10.0 + WATCH / 2, names(1, 2, 3)) is None  # worker.3 still shutting down
    assert watch.look("worker", 11.0 + WATCH, names(1, 2, 3)) is None
    assert watch.look("worker", 12.0 + WATCH, names(1, 2)) is None  # too late to tell it from a crash
    assert watch.evidence == 1


def test_a_kept_dyno_that_restarts_during_the_watch_is_not_taken_for_one_stopped():
    """Issue 25.4: a crash or the daily restart of worker.1 while a 3 -> 2 scale-down was watched was read as
    "stopped worker.1, not only the highest-numbered", and turned the learning off with a false line."""
    watch = StopWatch()
    watch.scaled_down("worker", 0.0, names(1, 2, 3), 3, 2)
    assert watch.look("worker", 5.0, names(2)) is None  # worker.3 stopped, and worker.1 restarting
    assert watch.look("worker", 20.0, names(1, 2)) == ("autoscale: scaling worker from 3 to 2 stopped the "
                                                       "highest-numbered dyno(s), worker.3")
    assert not watch.contradicted and watch.evidence == 3
    watch.scaled_down("worker", 30.0, names(1, 2), 2, 1)  # worker.1 restarts and never comes back in time
    assert watch.look("worker", 35.0, []) is None
    assert watch.look("worker", 31.0 + WATCH, []) is None  # every dyno to stop stopped: it teaches nothing
    assert not watch.contradicted


@given(old=st.integers(1, 12), data=st.data())
def test_only_exactly_the_highest_numbered_leaving_counts_for_the_rule(old, data):
    new = data.draw(st.integers(0, old - 1))
    before = frozenset(data.draw(st.sets(st.integers(1, 14))) | set(range(1, old + 1)))
    after = data.draw(st.sets(st.integers(1, 14)))
    final = data.draw(st.booleans())
    verdict = judge(ScaleDown(0.0, before, old, new), after, final)
    gone, kept, stopped = set(range(1, old + 1)) - after, set(range(1, new + 1)), set(range(new + 1, old + 1))
    assert (verdict is True) == (gone == stopped)
    assert (verdict is False) == (final and bool(gone & kept) and not stopped <= gone)


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.lists(st.text(max_size=12), max_size=8),
                          st.lists(st.text(max_size=12), max_size=8)), max_size=6))
def test_no_hostnames_break_it(changes):
    watch = StopWatch()
    for old, new, before, after in changes:
        watch.scaled_down("worker", 0.0, before, max(old, new) + 1, min(old, new))
        said = watch.look("worker", 1.0, after)
        assert said is None or said.startswith("autoscale: scaling worker from ")
