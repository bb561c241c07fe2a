"""Every output's rendering of one poll, held byte for byte (tests/rendered_poll.txt, made by the code of
a148375, before the outputs were moved onto labelled samples and one Counts): the lines and requests users'
dashboards, alerts and parsers are built on do not move when the code under them does."""

from __future__ import annotations

from pathlib import Path

from sidekiq_metrics import __version__
from sidekiq_metrics import catalogue as c
from sidekiq_metrics.config import load_settings
from sidekiq_metrics.metrics.samples import Counts, Measurements, QueueSeries, Sample
from sidekiq_metrics.outputs import prometheus
from sidekiq_metrics.outputs.cloudwatch import CloudWatchOutput
from sidekiq_metrics.outputs.json_lines import JsonOutput
from sidekiq_metrics.outputs.l2met import L2metFormat
from sidekiq_metrics.outputs.otlp import Encoder, Sums
from sidekiq_metrics.outputs.statsd import StatsdOutput

EXPECTED = Path(__file__).with_name("rendered_poll.txt")


def lab(metric: c.Metric, value: float, subject: str) -> Sample:
    return Sample.of(metric, value, subject)


def rendered() -> list[str]:
    """A poll with a value of every shape: per queue, plain, per process type, per job class, named by process type
    (autoscaling), Sidekiq's totals and their increases, our own counts; OTLP over three polls, both temporalities."""
    samples = [Sample(c.ENQUEUED, 3), Sample(c.PROCESSED, 120), Sample(c.FAILED, 4), Sample(c.MAX_LATENCY, 1.5),
               Sample(c.UTILIZATION, 0.25), lab(c.PROCESS_COUNT, 2, "worker"), lab(c.PROCESS_BUSY, 1, "worker"),
               lab(c.PROCESS_COUNT, 1, "urgent worker"), Sample(c.JOBS_PROCESSED, 30),
               lab(c.JOB_PROCESSED, 5, "Billing::Invoice"), lab(c.JOB_RUNTIME_MEAN, 0.03, "Billing::Invoice"),
               lab(c.AUTOSCALE_CURRENT, 2, "worker"), lab(c.AUTOSCALE_DESIRED, 3, "worker"),
               Sample(c.UP, 0), Sample(c.ERRORS, 1)]
    m = Measurements([QueueSeries(c.QUEUE_SIZE, ["default", "x y"], [3, 0]),
                      QueueSeries(c.QUEUE_LATENCY, ["default", "x y"], [1.5, 0.0])], samples)
    out = []
    out += L2metFormat(source="web.1").render(m)
    JsonOutput(out.extend).emit(m, 1000.5)
    CloudWatchOutput("Sidekiq", out.extend).emit(m, 1000.5)
    out += StatsdOutput("sidekiq", "127.0.0.1", 9).lines(m)
    cnt = Counts(0.0)
    cnt.update(samples, 1.0)
    extra = prometheus.counters(cnt.update(samples, 2.0))
    out += prometheus.render("sidekiq", [s for s in m if s.metric.kind is not c.Kind.DELTA] + extra).splitlines()
    for temporality in ("cumulative", "delta"):
        config = load_settings({"SIDEKIQ_METRICS_OUTPUT": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}).otlp
        enc = Encoder("sidekiq", config, temporality)
        sums = Sums(temporality, 0.5)
        for at in (1.0, 2.0, 3.0):
            pts = sums.points([*m.samples, Sample(c.OTLP_DROPPED, 0)], at)
            out.append(enc.encode(enc.request(m, at, pts)).decode())
    return out


def test_every_output_renders_a_poll_as_before() -> None:
    got = "\n".join(rendered()).replace(f'"version": "{__version__}"', '"version": "<version>"') + "\n"
    assert got == EXPECTED.read_text()
