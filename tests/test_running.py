"""The longest-running job (per queue, per job class) and Sidekiq Pro's paused queues: read from Redis as the
poll reads them, the script and the plain path alike, and reported as the catalogue names them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidekiq_metrics.metrics.samples import queue_series, state_samples
from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq import running
from sidekiq_metrics.sidekiq.job_metrics import JobMetricsReader, reported_class
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from sidekiq_metrics.sidekiq.readings import Running
from sidekiq_metrics.sidekiq.running import WorkRecord, display_class, longest, parse_record
from support.commands import cli
from support.redis_server import RedisServer, wait_until
from support.sidekiq_data import idle_process, push

WRAPPER = "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"
NOW = time.time()


def reader(url: str, *, scripts: bool = True, **jobs: object) -> SidekiqReader:
    return SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=5), scripts=scripts,
                         jobs=JobMetricsReader(**jobs) if jobs else None)


def record(job: object, run_at: object, queue: object = "default", payload_as_string: bool = True) -> bytes:
    """A work record as Sidekiq writes it: compact JSON, the payload a JSON string (or, `payload_as_string`
    False, an object)."""
    compact = (",", ":")
    payload = json.dumps(job, separators=compact) if payload_as_string and not isinstance(job, str) else job
    return json.dumps({"queue": queue, "payload": payload, "run_at": run_at}, separators=compact).encode()


def both_paths(r, redis_server, records: dict[str, list[bytes]]) -> tuple[list[WorkRecord], list[WorkRecord]]:
    """The records of each process's work hash as the script reads them, and as HGETALL + Python reads them."""
    r.flushdb()
    keys = []
    for n, (suffix, values) in enumerate(records.items()):
        identity = idle_process(r, f"worker.{n + 1}")
        key = f"{identity}:{suffix}"
        keys.append(key.encode())
        if values:
            r.hset(key, mapping={f"tid-{i}": v for i, v in enumerate(values)})
    connection = Connection(parse_redis_url(redis_server.url, "url"), timeout=5)
    by_script, errors, deferred = running.from_script(len(keys), connection.pipeline(
        [["SCRIPT", "LOAD", running.SCRIPT], running.call(keys)])[1])
    assert errors == [None] * len(keys) and deferred == []
    plain = [rec for reply in connection.pipeline([["HGETALL", k] for k in keys])
             for rec in running.from_hgetall(reply)[0]]
    return sorted((rec for each in by_script for rec in each), key=repr), sorted(plain, key=repr)


def test_sidekiqs_display_class_activejob_and_mailers():
    assert display_class({"class": "HardJob"}) == "HardJob"
    assert display_class({"class": WRAPPER, "wrapped": "Billing::MonthEndJob", "args": [{}]}) == "Billing::MonthEndJob"
    assert display_class({"class": "Sidekiq::ActiveJob::Wrapper", "args": ["Old::Job"]}) == "Old::Job"
    mail = {"class": WRAPPER, "wrapped": "ActionMailer::MailDeliveryJob",
            "args": [{"arguments": ["UserMailer", "welcome", "deliver_now"]}]}
    assert display_class(mail) == "UserMailer#welcome"
    assert display_class({"class": "HardJob", "display_class": "Shown"}) == "Shown"
    # Wrapped without `wrapped`: Sidekiq would show args[0], here a hash: no class name.
    assert display_class({"class": WRAPPER, "args": [{"job_class": "X"}]}) is None
    assert display_class({"class": 5}) is None and display_class([1]) is None


def test_run_at_in_seconds_or_milliseconds_and_records_read_by_their_ends():
    assert parse_record(record({"class": "A"}, 1_733_600_000)).since == 1_733_600_000
    assert parse_record(record({"class": "A"}, 1_733_600_000_250)).since == 1_733_600_000.25
    assert parse_record(record({"class": "A"}, 1_733_600_000.5)).since == 1_733_600_000.5
    assert parse_record(record({"class": "A"}, 0)).since is None  # no job started in 1970
    assert parse_record(record({"class": "A"}, True)).since is None
    big = record({"class": "A", "args": ["x" * running.LARGE_RECORD]}, 1_733_600_000, "q")
    assert parse_record(big) == WorkRecord("q", None, 1_733_600_000)


def test_the_cap_and_the_reserved_names(monkeypatch):
    records = [WorkRecord("a", "Slow", 100.0), WorkRecord("a", "Quick", 200.0), WorkRecord("b", "other", 50.0),
               WorkRecord(None, None, 300.0), WorkRecord("b", "unknown", 60.0), WorkRecord("c", "Quick", None)]
    found = longest(records, None, 1)
    assert found.by_queue == (("a", 100.0), ("b", 50.0))
    # A real `other` and `unknown` are classes like any other, named `other_` and `unknown_` as the breakdowns
    # name them: `other_` has run longest, the rest (`unknown_`, `Slow`, `Quick`) are summed as `other`.
    assert found.by_class == (("other", 60.0), ("other_", 50.0), ("unknown", 300.0))
    assert found.unreadable == 1
    assert longest(records, ("Q*",), 20).by_class == (("Quick", 200.0), ("other", 50.0), ("unknown", 300.0))
    assert longest(records, None, 20).by_class == (("Quick", 200.0), ("Slow", 100.0), ("other_", 50.0),
                                                   ("unknown", 300.0), ("unknown_", 60.0))


classes = st.one_of(st.none(), st.integers(), st.sampled_from(["HardJob", "Billing::MonthEndJob", WRAPPER,
                                                                 "ActionMailer::DeliveryJob", "other", ""]),
                    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12))
values = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                   classes, st.lists(classes, max_size=2))
jobs = st.one_of(values, st.fixed_dictionaries({}, optional={
    "class": classes, "wrapped": classes, "display_class": values,
    "args": st.lists(st.one_of(classes, st.fixed_dictionaries({"arguments": st.lists(classes, max_size=3)})),
                     max_size=2)}))
run_ats = st.one_of(st.integers(-10, 2**64), st.floats(allow_nan=False), st.sampled_from(
    [1_733_600_000, 1_733_600_000_123, 1_733_600_000.25, 10**400 // 10**380]), classes)
raw_records = st.one_of(
    st.builds(record, jobs, run_ats, classes, st.booleans()),
    st.binary(max_size=60),  # invalid JSON, or not an object
    st.builds(lambda j, r, pad: record({"class": j, "args": ["x" * pad]}, r), classes, run_ats,
              st.sampled_from([running.LARGE_RECORD, running.LARGE_RECORD + 5])))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(raw_records, max_size=6), st.lists(raw_records, max_size=3))
def test_any_work_record_is_read_alike_by_the_script_and_the_plain_path_and_never_fails(r, redis_server, work,
                                                                                        workers):
    """No class, a non-string class, invalid JSON, ActiveJob without `wrapped`, an odd run_at: the script (cjson in
    Redis) and HGETALL read by Python agree on each record, and an unreadable part is None (unknown), never an
    error nor a dropped job."""
    by_script, plain = both_paths(r, redis_server, {"work": work, "workers": workers})
    assert by_script == plain
    assert len(plain) == sum(1 for raw in work + workers if raw)  # an empty value is no job, as for WorkSet
    for scripts in (True, False):  # and a whole poll over them reads, counting each record somewhere
        read = reader(redis_server.url, scripts=scripts).read(totals=True).running
        assert read is not None and read.unreadable == sum(1 for rec in plain if rec.since is None)
        assert {c for c, _ in read.by_class} <= {reported_class(rec.job_class) for rec in plain
                                                 if rec.job_class} | {"unknown", "other"}


def test_a_poll_reads_the_longest_running_job_and_the_paused_queues(r, redis_server):
    """As the poll reads them, with the script and without, in the poll's own round trip: per reported queue and
    per class; a queue not running anything and not paused gets neither series."""
    r.flushdb()
    push(r, "default", b"{}")
    push(r, "mail", b"{}")
    push(r, "idle", b"{}")
    one = idle_process(r, "worker.1")
    r.hset(f"{one}:work", mapping={"t1": record({"class": "HardJob"}, int(NOW) - 100),
                                  "t2": record({"class": WRAPPER, "wrapped": "Billing::MonthEndJob", "args": [{}]},
                                               int(NOW * 1000) - 30_000, "mail")})
    two = idle_process(r, "worker.2", "6.4.1").replace("worker.1", "worker.2")
    r.hset(f"{two}:workers", "t1", record({"class": "HardJob"}, int(NOW) - 20, "mail"))
    r.sadd("paused", "mail", "not-reported")
    for scripts in (True, False):
        snapshot = reader(redis_server.url, scripts=scripts).read(["default", "mail", "idle"], totals=True,
                                                                  clock=lambda: NOW)
        assert snapshot.complete and snapshot.paused == {"mail", "not-reported"}
        series = {s.metric.name: dict(zip(s.queues, s.values, strict=True)) for s in queue_series(snapshot)[0]}
        assert series["running.longest"] == pytest.approx({"default": 100, "mail": 30}, abs=1)
        assert series["paused"] == {"mail": 1}
        samples = {s.name: s.value for s in state_samples(snapshot)}
        assert samples == pytest.approx({"job.HardJob.running.longest": 100,
                                         "job.Billing::MonthEndJob.running.longest": 30, "queues.paused": 2}, abs=1)
    r.delete("paused", f"{one}:work", f"{two}:workers")
    snapshot = reader(redis_server.url).read(totals=True)
    assert [s.metric.name for s in queue_series(snapshot)[0]] == ["size", "latency"]
    assert [(s.name, s.value) for s in state_samples(snapshot)] == [("queues.paused", 0)]


WORKERS = """
require "sidekiq"
class SlowJob
  include Sidekiq::Job
  def perform(seconds) = sleep(seconds)
end
# A stand-in for ActiveJob's wrapper (no Rails here): the class name Sidekiq's display_class unwraps, run by the
# real server as any job is; `wrapped` says which class it runs, as ActiveJob's adapter writes it.
module ActiveJob; module QueueAdapters; class SidekiqAdapter; class JobWrapper
  include Sidekiq::Job
  def perform(data) = sleep(data["seconds"])
end; end; end; end
"""

PUSH = """
queue = ARGV[0]
SlowJob.set(queue: queue).perform_async(60)
Sidekiq::Client.push("class" => ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper, "queue" => queue,
                     "wrapped" => "Billing::MonthEndJob",
                     "args" => [{"job_class" => "Billing::MonthEndJob", "seconds" => 60}])
"""

# What Sidekiq's own API says runs: queue, display_class, run_at. 6.4 names the hash `:workers` and parses the payload.
WORKSET = """
require "sidekiq/api"
require "json"
works = Sidekiq::WorkSet.new.map do |_, _, w|
  w.is_a?(Hash) ? [w["queue"], Sidekiq::JobRecord.new(w["payload"]).display_class, w["run_at"].to_f] :
                  [w.queue, w.job.display_class, w.run_at.to_f]
end
puts JSON.dump(works)
"""


@pytest.fixture(scope="module")
def real_work(tmp_path_factory, reference_sidekiq):
    """Real Sidekiq 6.4.1 (Debian), 7.3 and 8.1 servers on one Redis, each working a SlowJob and an ActiveJob-wrapped
    job of its own queue (`slow6`, `slow7`, `slow8`) for a minute; stopped by SIGTERM at the end. Sidekiq's own
    WorkSet of each generation (6.4.1's reads `:workers`, 8.1's `:work`, which 7.3 writes too) is the reference."""
    server = RedisServer().start()
    folder = tmp_path_factory.mktemp("real-work")
    workers = folder / "workers.rb"
    workers.write_text(WORKERS)
    push_rb, workset_rb = folder / "push.rb", folder / "workset.rb"
    push_rb.write_text(PUSH)
    workset_rb.write_text(WORKSET)
    env = {**os.environ, "REDIS_URL": server.url}
    commands = {"6": (["sidekiq"], ["ruby"]), "7": (reference_sidekiq["7-server"], reference_sidekiq["7"]),
                "8": (reference_sidekiq["8-server"], reference_sidekiq["8"])}
    procs = [subprocess.Popen([*run, "-r", str(workers), "-q", f"slow{v}", "-c", "2", "-t", "1"],
                              env={**env, "DYNO": f"worker.{v}"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
             for v, (run, _) in commands.items()]
    try:
        for v, (_, ruby) in commands.items():
            subprocess.run([*ruby, "-r", str(workers), str(push_rb), f"slow{v}"], env=env, check=True, timeout=60,
                           capture_output=True)
        r = redis.Redis.from_url(server.url)
        seen = "every job running, as each process's heartbeat writes it"
        assert wait_until(lambda: sum(len(r.hgetall(i + suffix)) for i in r.smembers("processes")
                                      for suffix in (b":work", b":workers")) == 6, 60), seen
        reference = [tuple(w) for v in ("6", "8") for w in json.loads(subprocess.run(
            [*commands[v][1], str(workset_rb)], env=env, check=True, timeout=60, capture_output=True,
            text=True).stdout.splitlines()[-1])]  # after Sidekiq's own log lines
        yield server, reference
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        server.cleanup()


@pytest.mark.sidekiq
@pytest.mark.parametrize("scripts", [True, False])
def test_the_longest_running_job_is_sidekiqs_own_workset_of_6_7_and_8(real_work, scripts):
    """Real servers running real jobs: the earliest start of each queue and each display_class, as the poll reads
    them (with our script, and with HGETALL), equal those of Sidekiq's WorkSet, to the second Sidekiq writes."""
    server, reference = real_work
    assert sorted({(q, c) for q, c, _ in reference}) == [
        (f"slow{v}", c) for v in "678" for c in ("Billing::MonthEndJob", "SlowJob")]
    snapshot = reader(server.url, scripts=scripts).read(totals=True)
    assert snapshot.complete and snapshot.running is not None and snapshot.running.unreadable == 0
    expected_queues = {q: min(at for queue, _, at in reference if queue == q) for q, _, _ in reference}
    expected_classes = {c: min(at for _, job_class, at in reference if job_class == c) for _, c, _ in reference}
    assert dict(snapshot.running.by_queue) == expected_queues
    assert dict(snapshot.running.by_class) == expected_classes
    series = {s.metric.name: dict(zip(s.queues, s.values, strict=True)) for s in queue_series(snapshot)[0]}
    assert series["running.longest"] == {q: round(snapshot.read_at - at, 3) for q, at in expected_queues.items()}


def test_records_past_a_calls_budget_take_one_more_round_trip_and_one_too_long_to_copy_is_never_read(r,
                                                                                                    redis_server):
    """Records whose sum passes a script call's budget are read by more calls, in one more round trip, as the plain
    path reads them, and the bytes of the budget's records never cross the network. A record over
    running.OUTSIDE is read by neither path (review of issue 34: it was taken whole with HGET every poll): left out
    of the longest-running job, with a warning that says why."""
    r.flushdb()
    push(r, "default", b"{}")
    identity = idle_process(r, "worker.1")
    now = int(NOW)
    r.hset(f"{identity}:work", mapping={f"t{i}": record({"class": "HardJob", "args": ["x" * 30_000]}, now - i)
                                        for i in range(20)})  # 600 KB: past one call's budget
    readings = []
    for scripts in (True, False):
        connection = Connection(parse_redis_url(redis_server.url, "url"), timeout=5)
        polls = SidekiqReader(connection, scripts=scripts)
        polls.read(totals=True)
        got = connection.received
        readings.append(polls.read(totals=True).running)
        if scripts:
            assert connection.received - got < 20_000  # not the 600 KB of records
    assert readings[0] == readings[1] == Running((("default", now - 19.0),), (("HardJob", now - 19.0),))
    big = record({"class": "BigJob", "args": ["x" * running.OUTSIDE]}, now - 500)
    r.hset(f"{identity}:work", "t-big", big)
    snapshots = [reader(redis_server.url, scripts=scripts).read(totals=True) for scripts in (True, False)]
    assert snapshots[0].running == snapshots[1].running == readings[0]
    for snapshot in snapshots:
        assert "1 running job(s) have a work record over 1 MiB (large arguments): not read" in \
            " ".join(snapshot.problems), snapshot.problems


def test_running_jobs_with_megabytes_of_arguments_never_cross_the_network_each_poll(r, redis_server):
    """Review of issue 34: a job carrying a 5 MB argument running on each of 3 dynos had each whole record copied
    out of Redis with HGET every poll (15 MB a poll), where the bytes of a poll must not follow the arguments. Now
    they are not read: the poll stays up, says why their jobs are left out, and moves a few KB."""
    r.flushdb()
    now = int(time.time())
    for n in range(3):
        identity = idle_process(r, f"worker.{n + 1}").replace("worker.1:", f"worker.{n + 1}:")
        r.sadd("processes", identity)
        payload = json.dumps({"class": "ImportJob", "queue": "default", "jid": "f" * 24, "args": ["x" * 5_000_000]})
        r.hset(f"{identity}:work", "tid", json.dumps({"queue": "default", "payload": payload, "run_at": now - 600},
                                                    separators=(",", ":")))
    r.sadd("queues", "default")
    polls = reader(redis_server.url)
    before = r.info("stats")["total_net_output_bytes"]
    snapshots = [polls.read(totals=True) for _ in range(3)]
    sent = r.info("stats")["total_net_output_bytes"] - before
    assert sent / 3 < 100_000, f"{sent / 3 / 1e6:.1f} MB a poll"
    assert all(s.complete and s.running is not None and s.running.by_queue == () for s in snapshots)
    assert "3 running job(s) have a work record over 1 MiB" in " ".join(snapshots[-1].problems)


def test_a_long_queue_name_keeps_the_size_and_latency_names_it_had_before_the_running_metrics(r, redis_server):
    """Review of issue 34: a 235-character queue name fitted as `sidekiq.<queue>.size` and `.latency` in 0.1.0; the
    new `.running.longest` suffix cut every queue name 8 characters shorter, renaming those series to the digest
    form. Only the new metric's name of such a queue takes it now."""
    r.flushdb()
    queue = "tenant_" + "a" * 228
    push(r, queue, json.dumps({"class": "ImportJob", "queue": queue, "enqueued_at": NOW}).encode())
    identity = idle_process(r, "worker.1")
    r.hset(f"{identity}:work", "t", record({"class": "ImportJob"}, int(NOW) - 60, queue))
    done = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    assert f"sample#sidekiq.{queue}.size=1" in done.stdout.split() and f"sample#sidekiq.{queue}.latency=" in done.stdout
    (longest,) = re.findall(r"sample#(sidekiq\.tenant_\S+\.running\.longest)=", done.stdout)
    assert len(longest) <= 255 and re.fullmatch(r"sidekiq\.tenant_a+-[0-9a-f]{8}\.running\.longest", longest)


SUMMARIES = """
require "sidekiq/api"
require "json"
puts JSON.dump(Sidekiq::Stats.new.queue_summaries.to_h { |q| [q.name, q.paused?] })
"""


@pytest.mark.sidekiq
def test_paused_queues_are_those_sidekiq_8_1s_queue_summaries_calls_paused(r, redis_server, reference_sidekiq,
                                                                              tmp_path):
    """`SADD paused <queue>` stands in for Sidekiq Pro's Queue#pause! (what it writes to Redis; not Pro's processes
    then no longer fetching from it). Sidekiq 8.1's own `Stats#queue_summaries` is the reference for which queues
    are paused; under a redis-namespace (Sidekiq <= 6) the set is the namespace's."""
    r.flushdb()
    for name in ("default", "imports", "low priority"):
        push(r, name, b"{}")
    r.sadd("paused", "imports", "low priority")
    script = tmp_path / "summaries.rb"
    script.write_text(SUMMARIES)
    reference = json.loads(subprocess.run([*reference_sidekiq["8"], str(script)], check=True, timeout=60, text=True,
                                          capture_output=True, env={**os.environ, "REDIS_URL": redis_server.url})
                           .stdout.splitlines()[-1])
    assert reference == {"default": False, "imports": True, "low priority": True}
    snapshot = reader(redis_server.url).read()
    assert snapshot.paused == {q for q, paused in reference.items() if paused}
    series = {s.metric.name: s for s in queue_series(snapshot)[0]}
    assert (series["paused"].queues, series["paused"].values) == (["imports", "low priority"], [1, 1])
    r.sadd("myapp:queues", "default")
    r.sadd("myapp:paused", "default")
    assert SidekiqReader(Connection(parse_redis_url(redis_server.url, "url"), timeout=5),
                         namespace="myapp").read().paused == {"default"}
