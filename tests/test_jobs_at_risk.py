"""Which running jobs a scale-down would interrupt: `<identity>:work` values as Sidekiq writes them, and any other."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidekiq_metrics.autoscale.jobs_at_risk import RunningJob, at_risk, running_job
from support.sidekiq_data import busy_process, shut_down

NOW = 1_800_000_000.0


def work(payload: object, run_at: object = NOW - 40, queue: object = "default") -> bytes:
    return json.dumps({"queue": queue, "payload": payload, "run_at": run_at}).encode()


def test_the_payload_is_read_as_a_json_string_or_a_hash_and_activejob_wraps_the_class():
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


SLOW = """
require "sidekiq"
class SlowJob
  include Sidekiq::Job
  sidekiq_options queue: "work"
  def perform(seconds) = sleep(seconds)
end
"""


@pytest.mark.sidekiq
@pytest.mark.parametrize(("version", "suffix"), [("6", ":workers"), ("8", ":work")])
def test_what_real_sidekiq_writes_of_a_running_job_is_read_and_the_tests_stand_in_writes_the_same(
        r, redis_server, reference_sidekiq, tmp_path, version, suffix):
    """Real Sidekiq 6.4.1 (Debian) and 8.1 working a SlowJob on `worker.1`: the record of it is found under the
    key, and read as the class, queue and start it has; `support.sidekiq_data.busy_process`, which the autoscaling
    tests use in its place, writes a record of the same key, fields and types. Stopped by SIGTERM, as Heroku stops
    a dyno, it leaves what `support.sidekiq_data.shut_down` leaves."""
    workers = tmp_path / "workers.rb"
    workers.write_text(SLOW)
    env = {**os.environ, "REDIS_URL": redis_server.url, "DYNO": "worker.1"}
    server = ["sidekiq"] if version == "6" else reference_sidekiq["8-server"]
    client = ["ruby"] if version == "6" else reference_sidekiq["8"]
    proc = subprocess.Popen([*server, "-r", str(workers), "-q", "work", "-c", "2", "-t", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        pushed = time.time()
        subprocess.run([*client, "-r", str(workers), "-e", "SlowJob.perform_async(30)"], env=env, check=True,
                       timeout=60, capture_output=True)
        deadline, records = time.monotonic() + 40, {}
        while not records and time.monotonic() < deadline:
            time.sleep(0.5)
            identities = [i.decode() for i in r.smembers("processes")]
            records = {i: r.hgetall(i + suffix) for i in identities if r.hgetall(i + suffix)}
        (identity, record), = records.items()
        (raw,) = record.values()
        job = running_job(identity, raw)
        assert (job.dyno, job.job_class, job.queue) == ("worker.1", "SlowJob", "work")
        assert job.since is not None and pushed - 1 <= job.since <= time.time()
        proc.send_signal(signal.SIGTERM)  # Sidekiq waits its -t 1 for the job, pushes it back, and exits
        proc.wait(30)
        real_left = left_behind(r, identity, suffix)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    real = json.loads(raw)
    stand_in = busy_process(r, "worker.9", "SlowJob", 30, suffix[1:])
    (fake_raw,) = r.hgetall(stand_in + suffix).values()
    fake = json.loads(fake_raw)
    assert fake.keys() == real.keys()
    assert [type(fake[k]) for k in ("queue", "payload", "run_at")] == [type(real[k]) for k in ("queue", "payload",
                                                                                                 "run_at")]
    shut_down(r, stand_in, suffix[1:])
    assert left_behind(r, stand_in, suffix) == real_left == {"listed": False, "work": False, "heartbeat": True}


def left_behind(r, identity: str, suffix: str) -> dict[str, bool]:
    """What a stopped Sidekiq process leaves in Redis."""
    return {"listed": r.sismember("processes", identity), "work": bool(r.exists(identity + suffix)),
            "heartbeat": bool(r.exists(identity))}
