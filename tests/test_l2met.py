"""The l2met rendering, compared as whole lines."""

from sidekiq_metrics.formats.l2met import MAX_LINE_BYTES, L2metFormat, format_value
from sidekiq_metrics.metrics import Sample


def samples(*queues):
    out = [Sample("size", size, q) for q, size, _ in queues]
    return out + [Sample("latency", lat, q) for q, _, lat in queues]


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
    assert L2metFormat().render([]) == []
