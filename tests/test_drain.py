"""Which running jobs a scale-down would interrupt: `<identity>:work` values as Sidekiq writes them, and any other."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sidekiq_metrics.drain import RunningJob, at_risk, running_job

NOW = 1_800_000_000.0


def work(payload: object, run_at: object = NOW - 40, queue: object = "default") -> bytes:
    return json.dumps({"queue": queue, "payload": payload, "run_at": run_at}).encode()


def test_sidekiq_7_and_8_write_the_payload_as_a_json_string_6_as_a_hash_activejob_wraps_the_class():
    wrapped = json.dumps({"class": "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
                          "wrapped": "Billing::MonthEndJob"})
    assert running_job("worker.2:4:abc", work(wrapped)) == RunningJob("worker.2", "Billing::MonthEndJob", "default",
                                                                      NOW - 40)
    assert running_job("worker.2:4:abc", work({"class": "HardJob"})).job_class == "HardJob"
    assert running_job("worker.2:4:abc", work({"class": "HardJob"})).describe(NOW) == "worker.2: HardJob (default, 40s)"


def test_a_job_is_at_risk_once_it_has_run_sidekiqs_shutdown_timeout_or_when_its_start_is_unknown():
    jobs = [RunningJob("worker.1", "QuickJob", "default", NOW - 24.9), RunningJob("worker.1", "Export", "default",
            NOW - 25), RunningJob("worker.2", "a job that could not be read", "?", None)]
    assert at_risk(jobs, NOW) == jobs[1:]


@given(st.one_of(st.binary(max_size=200), st.none(), st.integers()),
       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)))
def test_any_value_is_read_or_said_unreadable_never_an_exception(raw, run_at):
    job = running_job("worker.1:1:a", raw)
    assert job.dyno == "worker.1" and isinstance(job.describe(NOW), str)
    stamped = running_job("worker.1:1:a", work({"class": ["x"] * 3}, run_at, queue=[1]))
    assert stamped.since is None or abs(stamped.since) < 1e11
    assert isinstance(stamped.describe(NOW), str) and len(at_risk([job, stamped], NOW)) <= 2
