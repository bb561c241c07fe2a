"""Per-job-class metrics from Sidekiq's own execution metrics, against real Sidekiq 7.3 and 8.1.

The data is written by Sidekiq's own ExecutionTracker at minutes the test picks (tests/support/
metrics_ref.rb), and Sidekiq::Metrics::Query over the same minutes is the reference. The reader runs
in this process with its clock given, so that minutes complete without waiting for the wall clock;
one test runs a real Sidekiq 8.1 server and a real emitter across minutes of wall-clock time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from sidekiq_metrics.catalogue import CATALOGUE
from sidekiq_metrics.config import load_settings
from sidekiq_metrics.metrics.samples import Measurements, Sample, job_samples
from sidekiq_metrics.outputs.l2met import L2metFormat
from sidekiq_metrics.redis.resp import Connection, ConnectionFailed, RedisError
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq.job_metrics import GRACE, JobMetricsReader, histogram_keys, minute_keys, percentile
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from support.commands import ROOT, cli, parse_l2met, spawn
from support.sidekiq_data import sidekiq

VERSIONS = ["7", "8"]
BASE = (int(time.time()) // 3600 - 3) * 3600  # a whole hour, three hours ago: inside Sidekiq's 8 h TTL


def metrics_ref(ruby: list[str], url: str, commands: list[dict]) -> dict:
    out = subprocess.run([*ruby, str(ROOT / "tests/support/metrics_ref.rb")], input=json.dumps(commands),
                         env={**os.environ, "REDIS_URL": url}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def reader(url: str, **kw: object) -> SidekiqReader:
    return SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=5), jobs=JobMetricsReader(**kw))


def read_at(sidekiq_reader: SidekiqReader, at: float):
    return sidekiq_reader.read([], clock=lambda: at).jobs


def minute(n: int) -> int:
    return BASE + 60 * n


WORK = [  # class, successful run times (ms), failures, the minute (from BASE) whose flush holds them
    ("HardJob", [12, 300, 40], 1, 1), ("HardJob", [7, 7, 2900], 0, 2),
    ("Billing::Invoice", [1500], 0, 1), ("ReportJob", [65000, 340000], 0, 2),  # an ActiveJob's wrapped class
    ("FlakyJob", [], 3, 2),
]


@pytest.mark.parametrize("version", VERSIONS)
def test_counts_means_and_histograms_equal_sidekiqs_own_query(r, redis_server, reference_sidekiq, version):
    ruby = reference_sidekiq[version]
    metrics_ref(ruby, redis_server.url, [{"track": {"class": c, "ms": ms, "failures": f, "at": minute(m) + 5}}
                                         for c, ms, f, m in WORK])
    expected = metrics_ref(ruby, redis_server.url, [{"query": {"now": minute(2) + 30, "minutes": 3}}])["query"]
    ours = reader(redis_server.url)
    assert read_at(ours, minute(0) + 30) is None  # the first read: from the minute then in progress
    jobs = read_at(ours, minute(3) + GRACE + 1)  # minutes 0, 1 and 2 are complete
    assert (jobs.start, jobs.end) == (minute(0), minute(3))
    got = {job.name: job for job in jobs.classes}
    assert set(got) == set(expected) == {"HardJob", "Billing::Invoice", "ReportJob", "FlakyJob"}
    for name, reference in expected.items():
        assert (got[name].runs, got[name].failures, got[name].ms) == (reference["p"], reference["f"], reference["ms"])
        assert list(got[name].histogram) == reference["hist"]  # decoded as Sidekiq's own BITFIELD_RO reads it
    samples = {(s.name, s.metric.name): s.value for s in job_samples(jobs)}
    assert samples[("job.HardJob.processed", "job.<class>.processed")] == 7
    assert samples[("job.HardJob.failed", "job.<class>.failed")] == 1
    assert samples[("job.HardJob.runtime.mean", "job.<class>.runtime.mean")] == pytest.approx(
        expected["HardJob"]["avg_ms"] / 1000)
    # Percentiles: the upper bound of the bucket that holds the run of that rank (docs/metrics.md).
    assert samples[("job.HardJob.runtime.p50", "job.<class>.runtime.p50")] == 0.02  # 6 runs: the 3rd is 12 ms
    assert samples[("job.HardJob.runtime.p99", "job.<class>.runtime.p99")] == 3.8  # 2900 ms: bucket < 3800
    assert samples[("job.ReportJob.runtime.p99", "job.<class>.runtime.p99")] == 335.0  # the last bucket: at least
    assert ("job.FlakyJob.runtime.mean", "job.<class>.runtime.mean") not in samples  # no successful run
    assert read_at(ours, minute(3) + 50) is None  # nothing new is complete: nothing read again


def test_percentile_rule():
    counts = [0] * 26
    counts[0], counts[7], counts[25] = 50, 45, 5  # < 20 ms, < 335 ms, >= 335 s
    assert (percentile(counts, 0.5), percentile(counts, 0.95), percentile(counts, 0.99)) == (0.02, 0.335, 335.0)
    assert percentile([0] * 26, 0.5) is None


def test_each_minute_exactly_once_as_polls_come_and_go(r, redis_server, reference_sidekiq):
    """Polls every 7 s over six minutes, flushes into each: every minute is read once, when complete, and the
    sum of what was read equals Sidekiq's totals; a read failing in between loses nothing."""
    ruby = reference_sidekiq["8"]
    metrics_ref(ruby, redis_server.url, [{"track": {"class": "HardJob", "ms": [10] * (m + 1), "at": minute(m) + s}}
                                         for m in range(6) for s in (1, 30, 59)])
    ours = reader(redis_server.url)
    read_at(ours, minute(0) + GRACE + 1)  # the first read: minute 0 is the one in progress GRACE seconds ago
    seen = []
    for n, at in enumerate(range(minute(0) + int(GRACE) + 8, minute(6) + 20, 7)):
        if n == 12:  # Redis away for one poll: the minute that poll would have read comes with the next
            original, ours.connection.replies = ours.connection.replies, broken
            with pytest.raises(RedisError):
                read_at(ours, at)
            ours.connection.replies = original
            continue
        jobs = read_at(ours, at)
        if jobs:
            seen.append((at, jobs.start, jobs.end, {j.name: j.runs for j in jobs.classes}))
    minutes = [m for _, start, end, _ in seen for m in range(int(start), int(end), 60)]
    assert minutes == [minute(m) for m in range(6)]  # each once, in order
    assert sum(c["HardJob"] for *_, c in seen) == 3 * sum(range(1, 7))
    assert all(at >= end + GRACE for at, _, end, _ in seen)  # never before it is complete


def broken(commands, **kw):
    raise ConnectionFailed("Redis went away (a test)")


def test_a_restarted_emitter_never_reports_a_minute_its_predecessor_may_have(r, redis_server, reference_sidekiq):
    ruby = reference_sidekiq["8"]
    metrics_ref(ruby, redis_server.url, [{"track": {"class": "HardJob", "ms": [10], "at": minute(m) + 3}}
                                         for m in range(4)])
    before = reader(redis_server.url)
    read_at(before, minute(0) + GRACE + 1)
    reported = read_at(before, minute(2) + GRACE + 1)  # minutes 0 and 1
    assert (reported.start, reported.end) == (minute(0), minute(2))
    after = reader(redis_server.url)  # restarted 4 s later: minute 2 is not complete yet
    assert read_at(after, minute(2) + GRACE + 5) is None
    assert (read_at(after, minute(3) + GRACE + 1).start, minute(2)) == (minute(2), minute(2))
    late = reader(redis_server.url)  # restarted after minute 2 completed: it may have been reported; skipped
    assert read_at(late, minute(3) + GRACE + 1) is None


def test_the_top_classes_by_run_time_one_by_one_and_the_rest_as_other(r, redis_server, reference_sidekiq):
    ruby = reference_sidekiq["8"]
    metrics_ref(ruby, redis_server.url, [{"track": {"class": f"Job{i:02d}", "ms": [100 * (i + 1)] * 3, "failures": 1,
                                                    "at": minute(1) + 5}} for i in range(30)])
    ours = reader(redis_server.url, top=5)
    read_at(ours, minute(1))
    jobs = read_at(ours, minute(2) + GRACE + 1)
    names = [j.name for j in jobs.classes]
    assert names == ["Job25", "Job26", "Job27", "Job28", "Job29", "other"]
    other = jobs.classes[-1]
    assert (other.runs, other.failures, other.histogram) == (25 * 4, 25, None)
    assert sum(j.runs for j in jobs.classes) == 30 * 4  # the totals still add up
    named = reader(redis_server.url, patterns=("Job0*", "Job12"), top=20)
    read_at(named, minute(1))
    assert [j.name for j in read_at(named, minute(2) + GRACE + 1).classes] == [
        *(f"Job{i:02d}" for i in range(10)), "Job12", "other"]


def test_sidekiq_6_writes_no_execution_metrics_and_nothing_else_changes(r, redis_server):
    """Debian's Sidekiq 6.4 (no Sidekiq::Metrics): no job lines; the rest as before."""
    sidekiq(redis_server.url, [{"push": {"queue": "default"}}])
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    assert result.returncode == 0 and not any(k.startswith("count#sidekiq.job.") for k in parse_l2met(result.stdout))
    settings = load_settings({"REDIS_URL": redis_server.url})
    assert settings.job_metrics and settings.job_classes_top == 20


def test_commands_read_only_and_round_trips(r, redis_server, reference_sidekiq):
    """A minute's hashes join the poll's pipeline; the histograms of the reported classes take one more
    round trip, only when a minute completes."""
    metrics_ref(reference_sidekiq["8"], redis_server.url, [{"track": {"class": f"C{i}", "ms": [5], "at": minute(1) + 1}}
                                                          for i in range(500)])
    sends = []
    ours = reader(redis_server.url)
    original = ours.connection.replies

    def counted(commands, **kw):
        if commands:
            sends.append([c[0] for c in commands])
        return original(commands, **kw)

    ours.connection.replies = counted
    read_at(ours, minute(1) + GRACE + 1)
    sends.clear()
    jobs = read_at(ours, minute(2) + GRACE + 1)
    assert len(jobs.classes) == 21  # the top 20 and the other 480
    # One GET a class: only Sidekiq 8's histogram keys, as only its minute hash had data.
    assert len(sends) == 2 and set(sends[1]) == {"GET"} and len(sends[1]) == 20
    assert "HGETALL" in sends[0]
    sends.clear()
    read_at(ours, minute(2) + GRACE + 5)
    assert len(sends) == 1 and "HGETALL" not in sends[0]


def l2met_lines(proc_out: str) -> list[dict[str, str]]:
    return [parse_l2met(line) for line in proc_out.splitlines() if "count#sidekiq.job." in line]


@pytest.mark.long
def test_a_real_sidekiq_8_server_over_minutes_each_minute_once_and_the_sums_equal_sidekiqs(
        r, redis_server, reference_sidekiq, tmp_path):
    """A real Sidekiq 8.1 server works jobs across two whole minutes of wall-clock time while the emitter polls every
    3 s: what the count# lines add up to, per class, is what Sidekiq::Metrics::Query reports for the minutes the
    emitter covered; no minute twice, none skipped. (The one test on the wall clock: the others inject the time.)"""
    workers = tmp_path / "workers.rb"
    workers.write_text(WORKERS)
    env = {**os.environ, "REDIS_URL": redis_server.url, "DYNO": "worker.1"}
    server = subprocess.Popen([*reference_sidekiq["8-server"], "-r", str(workers), "-c", "5", "-t", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    if (time.time() - GRACE) % 60 > 57:  # the first poll's minute must be the one `started` says
        time.sleep(4)
    started = time.time()
    # Run until the second whole minute is complete and past its grace, with two polls to spare; feed until a
    # heartbeat's flush before that.
    end = (int(started - GRACE) // 60) * 60 + 120 + GRACE + 7
    stop = end - 15
    feeder = subprocess.Popen([*reference_sidekiq["8"], "-r", str(workers), "-e", FEED.format(until=stop)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    emitter = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "3"})
    printed: list[str] = []  # read as it comes: a full pipe would drop the lines the test looks for
    reader = threading.Thread(target=lambda: printed.extend(emitter.stdout), daemon=True)
    reader.start()
    try:
        time.sleep(max(0.0, stop - time.time()) + 1)
        feeder.wait(30)
        time.sleep(max(0.0, end - time.time()))
        emitter.send_signal(signal.SIGTERM)
        emitter.wait(10)
        reader.join(10)
        out, err = "".join(printed), emitter.stderr.read()
    finally:
        emitter.kill()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    first = (int(started - GRACE) // 60) * 60  # the minute in progress at the first poll
    last = (int(end - GRACE) // 60 - 1) * 60  # the latest minute complete at the last poll
    minutes = (last - first) // 60 + 1
    assert minutes == 2
    expected = metrics_ref(reference_sidekiq["8"], redis_server.url,
                           [{"query": {"now": last + 30, "minutes": minutes}}])["query"]
    summed: dict[str, list[int]] = {}
    for line in l2met_lines(out):
        for key, value in line.items():
            match = re.fullmatch(r"count#sidekiq\.job\.(.+)\.(processed|failed)", key)
            if match:
                summed.setdefault(match[1], [0, 0])[match[2] == "failed"] += int(value)
    assert "Traceback" not in err
    assert summed and {name: [e["p"], e["f"]] for name, e in expected.items()} == summed
    assert {"HardJob", "ReportJob", "Billing::Invoice", "FlakyJob"} <= set(summed)


WORKERS = '''
require "sidekiq"
class HardJob
  include Sidekiq::Job
  def perform(ms) = sleep(ms / 1000.0)
end
module Billing
  class Invoice
    include Sidekiq::Job
    def perform = nil
  end
end
class FlakyJob
  include Sidekiq::Job
  sidekiq_options retry: false
  def perform = raise("fails on purpose")
end
module ActiveJob; module QueueAdapters; class SidekiqAdapter
  class JobWrapper  # as ActiveJob's adapter pushes them: Sidekiq records the wrapped class
    include Sidekiq::Job
    def perform(job) = nil
  end
end; end; end
'''

FEED = '''
until Time.now.to_f > {until}
  HardJob.perform_async(rand(50))
  Billing::Invoice.perform_async
  FlakyJob.perform_async if rand < 0.3
  Sidekiq::Client.push("class" => "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper", "wrapped" => "ReportJob",
                       "queue" => "default", "args" => [{{"job_class" => "ReportJob", "arguments" => []}}])
  sleep 0.2
end
'''


def test_off_and_bad_settings():
    from sidekiq_metrics.wiring import job_reader

    assert job_reader(load_settings({"SIDEKIQ_METRICS_JOB_METRICS": "false"})) is None
    on = job_reader(load_settings({"SIDEKIQ_METRICS_JOB_CLASSES": " ReportJob , Billing::* ",
                                   "SIDEKIQ_METRICS_JOB_CLASSES_TOP": "5"}))
    assert (on.patterns, on.top) == (("ReportJob", "Billing::*"), 5)
    for variable, raw in [("SIDEKIQ_METRICS_JOB_CLASSES_TOP", "0"), ("SIDEKIQ_METRICS_JOB_CLASSES_TOP", "many"),
                          ("SIDEKIQ_METRICS_JOB_CLASSES", " , "), ("SIDEKIQ_METRICS_JOB_METRICS", "perhaps")]:
        result = cli("run", "--once", env={variable: raw})
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and variable in result.stderr


def test_job_classes_in_every_output_by_its_conventions():
    """A class is a name part in l2met, a label in Prometheus (its runs a counter summed since the start), a tag in
    DogStatsD, an attribute of OTLP Sums and Gauges."""
    from sidekiq_metrics.metrics.samples import Counts, Measurements
    from sidekiq_metrics.outputs.l2met import L2metFormat
    from sidekiq_metrics.outputs.otlp import Encoder, Sums
    from sidekiq_metrics.outputs.prometheus import counters, render
    from sidekiq_metrics.outputs.statsd import StatsdOutput
    from sidekiq_metrics.sidekiq.readings import JobClassReading, JobMinutes

    histogram = tuple([0, 3] + [0] * 24)
    jobs = JobMinutes(0.0, 60.0, (JobClassReading("Billing::Invoice", 4, 1, 90, histogram),))
    samples = job_samples(jobs)
    line = L2metFormat().render(Measurements(samples=samples))[0]
    assert line == ("count#sidekiq.job.Billing::Invoice.processed=4 count#sidekiq.job.Billing::Invoice.failed=1 "
                    "sample#sidekiq.job.Billing::Invoice.runtime.mean=0.030 "
                    "sample#sidekiq.job.Billing::Invoice.runtime.p50=0.030 "
                    "sample#sidekiq.job.Billing::Invoice.runtime.p95=0.030 "
                    "sample#sidekiq.job.Billing::Invoice.runtime.p99=0.030")
    counts = Counts(0.0)
    counts.update(samples, 30.0)
    body = render("sidekiq", [s for s in samples if s.metric.kind.value == "gauge"] + counters(counts.update(samples,
                                                                                                            60.0)))
    assert 'sidekiq_job_processed_total{job_class="Billing::Invoice"} 8\n' in body  # 4 + 4: a running total
    assert 'sidekiq_job_runtime_mean_seconds{job_class="Billing::Invoice"} 0.03\n' in body
    assert "sidekiq.job.processed:4|c|#job_class:Billing::Invoice" in StatsdOutput("sidekiq", "127.0.0.1", 9).lines(
        samples)
    config = load_settings({"SIDEKIQ_METRICS_OUTPUT": "otlp"}).otlp
    request = Encoder("sidekiq", config, "cumulative").request(Measurements(samples=samples), 60.0,
                                                                Sums("cumulative", 0.0).points(samples, 60.0))
    metrics = {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}
    point = metrics["sidekiq.job.processed"].sum.data_points[0]
    assert point.as_int == 4 and point.attributes[0].key == "job_class"
    assert point.attributes[0].value.string_value == "Billing::Invoice"
    assert metrics["sidekiq.job.runtime.p95"].gauge.data_points[0].as_double == 0.03


def test_after_a_long_outage_the_latest_minutes_are_read_and_the_skipped_ones_said(r, redis_server, reference_sidekiq):
    metrics_ref(reference_sidekiq["8"], redis_server.url,
                [{"track": {"class": "HardJob", "ms": [10], "at": minute(m) + 3}} for m in range(16)])
    said: list[str] = []
    ours = SidekiqReader(Connection(parse_redis_url(redis_server.url, "url"), timeout=5), jobs=JobMetricsReader(),
                         log=said.append)
    read_at(ours, minute(0) + GRACE + 1)
    jobs = read_at(ours, minute(15) + GRACE + 1)  # 15 minutes complete since: only the latest MAX_CATCH_UP are read
    assert (jobs.start, jobs.end) == (minute(5), minute(15)) and jobs.classes[0].runs == 10
    assert said == ["job-class metrics: 5 minute(s) were not read, as Redis could not be read for longer than 10 "
                    "minutes; reading the latest ones"]


def test_a_class_named_other_is_summed_into_other_and_long_names_fit_librato(r, redis_server):
    """Issue 25.18: a class literally named `other` collided with the `other` aggregate (duplicate l2met names, a
    duplicate Prometheus series, duplicate OTLP points, one lost in JSON); class names over about 230 characters
    made l2met names of up to 264 characters, above Librato's 255."""
    long_names = ["Deeply::" + "Nested" * 40 + str(n) for n in range(2)]  # 250 characters each, alike at the start
    for name, ms in (("other", 5000), ("RealJob", 100), (long_names[0], 900), (long_names[1], 800)):
        for key in minute_keys(minute(1) // 60):
            r.hset(key, mapping={f"{name}|p": 4, f"{name}|f": 1, f"{name}|ms": ms})
    ours = reader(redis_server.url, top=2)  # the most run time first: `other`, were it a class like the others
    assert read_at(ours, minute(1) + 30) is None  # the first read: from the minute then in progress
    jobs = read_at(ours, minute(2) + GRACE + 1)
    names = [c.name for c in jobs.classes]
    assert names.count("other") == 1 and set(names) == {"other", *long_names}
    assert next(c for c in jobs.classes if c.name == "other").runs == 2 * (4 + 4)  # with RealJob; both key forms
    lines = L2metFormat("sidekiq").render(Measurements(samples=job_samples(jobs)))
    measured = [part.split("=")[0].split("#")[1] for line in lines for part in line.split()]
    assert len(measured) == len(set(measured))  # no series twice
    assert max(map(len, measured)) <= 255, max(measured, key=len)
    for prefix in ("sidekiq", "a.long.prefix.of.an.app"):  # every named metric, not only the job-class ones
        samples = [Sample.of(metric, 1, name) for metric in CATALOGUE if "<" in metric.name for name in long_names]
        rendered = L2metFormat(prefix).render(Measurements(samples=samples))
        assert max(len(part.split("=")[0].split("#")[1]) for line in rendered for part in line.split()) <= 255


@pytest.mark.parametrize("refused", ["~j|*", "~h|*"])
def test_execution_metrics_redis_refuses_are_unknown_never_a_smaller_number(r, redis_server, refused):
    """Issue 25 (the review of every read): a refused minute hash counted as no runs, and a refused histogram as
    an empty one. Refused counts leave the minutes unread (read again later); a refused histogram, no percentiles."""
    for key in minute_keys(minute(1) // 60):
        r.hset(key, mapping={"HardJob|p": 4, "HardJob|f": 1, "HardJob|ms": 900})
    for key in histogram_keys(b"HardJob", minute(1) // 60):
        r.set(key, b"\x00\x03" + b"\x00" * 50)
    allowed = [pattern for pattern in ("~j|*", "~h|*", "~HardJob*") if pattern != refused]
    r.execute_command("ACL", "SETUSER", "partial", "on", ">partial-pass", *allowed, "+@all")
    try:
        url = f"redis://partial:partial-pass@127.0.0.1:{redis_server.port}/0"
        ours = reader(url, backfill=3)
        jobs = read_at(ours, minute(2) + GRACE + 1)
    finally:
        r.execute_command("ACL", "DELUSER", "partial")
    if refused == "~j|*":
        assert jobs is None
    else:
        (hard,) = [c for c in jobs.classes if c.name == "HardJob"]
        assert hard.runs == 8 and hard.histogram is None  # counted, but no percentiles from a part
        assert not [s for s in job_samples(jobs) if s.metric.name.endswith((".p50", ".p95", ".p99"))]
