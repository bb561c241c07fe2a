"""The l2met rendering, compared as whole lines."""

import random

import pytest

from sidekiq_metrics import catalogue as c
from sidekiq_metrics.metrics.samples import Measurements, QueueSeries, Sample
from sidekiq_metrics.outputs.l2met import MAX_LINE_BYTES, L2metFormat, format_value


def samples(*queues, totals=()):
    names = [q for q, _, _ in queues]
    return Measurements([QueueSeries(c.QUEUE_SIZE, names, [size for _, size, _ in queues]),
                         QueueSeries(c.QUEUE_LATENCY, names, [lat for _, _, lat in queues])], list(totals))


def test_sizes_and_latencies_on_their_own_lines_like_the_original():
    lines = L2metFormat().render(samples(("default", 3, 12.3456), ("mailers", 0, 0.0)))
    assert lines == [
        "sample#sidekiq.default.size=3 sample#sidekiq.mailers.size=0",
        "sample#sidekiq.default.latency=12.346 sample#sidekiq.mailers.latency=0.000",
    ]


def test_source_prefix_and_type():
    lines = L2metFormat(prefix="myapp.jobs", metric_type="measure", source="web.1").render(
        samples(("low priority", 1, 0.5)))
    assert lines == [
        "source=web.1 measure#myapp.jobs.low_priority.size=1",
        "source=web.1 measure#myapp.jobs.low_priority.latency=0.500",
    ]


def test_values_are_plain_non_negative_decimals():
    assert format_value(0.00001) == "0.000"
    assert format_value(1e-7) == "0.000"
    assert format_value(-3.0) == "0.000"
    assert format_value(1_794_999_990.123456) == "1794999990.123"
    assert format_value(12) == "12"


def test_lines_split_between_measurements_under_the_limit():
    queues = [(f"queue_{i:04d}_" + "x" * 150, i, i / 7) for i in range(300)]
    lines = L2metFormat(source="web.1").render(samples(*queues))
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    assert all(line.startswith("source=web.1 sample#") for line in lines)
    tokens = [t for line in lines for t in line.split(" ")[1:]]
    assert len(tokens) == 600
    assert tokens[0] == "sample#sidekiq.queue_0000_" + "x" * 150 + ".size=0"
    assert tokens[-1] == "sample#sidekiq.queue_0299_" + "x" * 150 + ".latency=42.714"
    # sizes and latencies never share a line
    assert not any(".size=" in line and ".latency=" in line for line in lines)


def test_no_samples_no_lines():
    assert L2metFormat().render(Measurements()) == []


def test_whole_sidekiq_samples_share_a_line_after_the_queues():
    lines = L2metFormat(source="web.1").render(samples(("default", 3, 1.5), totals=[
        Sample(c.ENQUEUED, 3), Sample(c.JOBS_PROCESSED, 5), Sample(c.UTILIZATION, 0.25), Sample(c.UP, 1)]))
    assert lines[-1] == ("source=web.1 sample#sidekiq.enqueued=3 count#sidekiq.jobs.processed=5 "
                         "sample#sidekiq.utilization=0.250 sample#sidekiq.metrics.up=1")


def test_a_queue_keeps_its_metric_name_on_every_line_when_another_lacks_a_latency():
    # "x y" and "x/y" both become "x_y", so both get a digest; "x/y" has no usable latency this poll.
    measurements = Measurements([QueueSeries(c.QUEUE_SIZE, ["x y", "x/y"], [1, 2]),
                                 QueueSeries(c.QUEUE_LATENCY, ["x y"], [0.5])])
    size_line, latency_line = L2metFormat().render(measurements)
    names = [t.split("=")[0].removeprefix("sample#sidekiq.").rsplit(".", 1)[0] for t in size_line.split(" ")]
    assert len(set(names)) == 2 and all(n.startswith("x_y-") for n in names)
    assert latency_line == f"sample#sidekiq.{names[0]}.latency=0.500"


def test_heads_made_for_one_poll_are_not_reused_for_other_queues():
    out = L2metFormat()
    assert out.render(samples(("a", 1, 1.0), ("b", 2, 2.0)))[0] == "sample#sidekiq.a.size=1 sample#sidekiq.b.size=2"
    assert out.render(samples(("a", 1, 1.0), ("c", 2, 2.0)))[0] == "sample#sidekiq.a.size=1 sample#sidekiq.c.size=2"
    assert out.render(samples(("a", 4, 1.0), ("c", 5, 2.0)))[0] == "sample#sidekiq.a.size=4 sample#sidekiq.c.size=5"


@pytest.mark.parametrize("source", [None, "web.1"])
def test_packing_is_greedy_and_exact_at_the_limit(source):
    """Against the plain rule: add measurements to a line while the line stays within the limit."""
    rng = random.Random(7)
    out = L2metFormat(source=source)
    head = f"source={source} " if source else ""
    for _ in range(300):
        measurements = [f"sample#q{i}=" + "9" * rng.choice([1, 5, 200, 600, 1100]) for i in range(rng.randint(1, 40))]
        expected, line = [], []
        for m in measurements:
            if line and len(head + " ".join(line + [m])) > MAX_LINE_BYTES:
                expected.append(head + " ".join(line))
                line = []
            line.append(m)
        expected.append(head + " ".join(line))
        assert out._pack(measurements) == expected
    exact = ["a" * 500, "b" * (MAX_LINE_BYTES - len(head) - 501)]  # joined: exactly the limit
    assert out._pack(exact) == [head + " ".join(exact)]
    assert out._pack([exact[0], exact[1] + "b"]) == [head + exact[0], head + exact[1] + "b"]
    assert out._pack([*exact, "c"]) == [head + " ".join(exact), head + "c"]
