"""The loop's schedule, driven by a clock we control (pure logic: nothing here crosses a process)."""

import pytest

from sidekiq_metrics.errors import StopRequested
from sidekiq_metrics.loop.schedule import Shutdown, run_forever


class FakeTime:
    def __init__(self, poll_costs):
        self.now = 1000.0
        self.costs = iter(poll_costs)
        self.poll_starts = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds

    def poll(self):
        self.poll_starts.append(self.now - 1000.0)
        try:
            self.now += next(self.costs)
        except StopIteration:
            raise StopRequested from None


def test_polls_land_on_their_slots_and_a_slow_one_skips_missed_ticks():
    t = FakeTime([0.2, 0.3, 65.0, 0.1, 0.1])  # the third poll hangs for 65 s
    with pytest.raises(StopRequested):
        run_forever(t.poll, 30.0, Shutdown(), clock=t.clock, sleep=t.sleep)
    assert t.poll_starts == [0.0, 30.0, 60.0, 150.0, 180.0, 210.0]


def test_a_stop_requested_while_polling_ends_before_the_next_sleep():
    shutdown = Shutdown()
    t = FakeTime([0.1] * 10)

    def poll():
        t.poll()
        shutdown.requested = True  # as the signal handler does while we write output

    with pytest.raises(StopRequested):
        run_forever(poll, 30.0, shutdown, clock=t.clock, sleep=t.sleep)
    assert t.poll_starts == [0.0]
