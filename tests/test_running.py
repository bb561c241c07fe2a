"""The longest-running job (per queue, per job class) and Sidekiq Pro's paused queues: read from Redis as the
poll reads them, the script and the plain path alike, and reported as the catalogue names them."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidekiq_metrics.metrics.samples import queue_series, state_samples
from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq import running
from sidekiq_metrics.sidekiq.job_metrics import JobMetricsReader
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from sidekiq_metrics.sidekiq.running import WorkRecord, display_class, longest, parse_record
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
    by_script, errors = running.from_script(len(keys), connection.pipeline(
        [["SCRIPT", "LOAD", running.SCRIPT], running.call(keys)])[1])
    assert errors == [None] * len(keys)
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
    # `Slow` is the longest-running named class; a real `other` and `unknown` join the rest as `other`.
    assert found.by_class == (("Slow", 100.0), ("other", 50.0), ("unknown", 300.0))
    assert found.unreadable == 1
    assert longest(records, ("Q*",), 20).by_class == (("Quick", 200.0), ("other", 50.0), ("unknown", 300.0))


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
    assert len(plain) == len(work) + len(workers)


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
