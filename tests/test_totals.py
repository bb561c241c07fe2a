"""Whole-Sidekiq metrics against a real Sidekiq server working real jobs, with Sidekiq's own API as reference."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import redis

from sidekiq_metrics.catalogue import JOBS_PROCESSED, PROCESSED
from sidekiq_metrics.metrics.samples import Counts, Sample, increases
from support.commands import ROOT, cli, parse_l2met, read_lines_until, spawn
from support.redis_server import reader
from support.sidekiq_data import push, sidekiq


@pytest.fixture
def sidekiq_server(r, redis_server):
    """`sidekiq -q work -c 4` working for our tests, stopped (TERM, then KILL) afterwards."""
    env = {**os.environ, "REDIS_URL": redis_server.url, "DYNO": "worker.1"}
    proc = subprocess.Popen(["sidekiq", "-r", str(ROOT / "tests/support/workers.rb"), "-q", "work", "-c", "4",
                             "-t", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while not r.scard("processes"):
        assert time.monotonic() < deadline and proc.poll() is None, "sidekiq did not start"
        time.sleep(0.1)
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def sidekiq_stats(url: str) -> dict:
    return sidekiq(url, [{"stats": True}])["stats"]


def wait_for(url: str, done, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        stats = sidekiq_stats(url)
        if done(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


def ours(url: str, **env: str) -> dict[str, str]:
    result = cli("run", "--once", env={"REDIS_URL": url, **env})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return parse_l2met(result.stdout)


@pytest.mark.sidekiq
def test_totals_equal_sidekiq_stats_for_jobs_a_real_sidekiq_worked(r, redis_server, sidekiq_server):
    url = redis_server.url
    sidekiq(url, [
        {"push": {"queue": "work", "class": "SlowJob", "args": [60]}},
        {"push": {"queue": "work", "class": "SlowJob", "args": [60]}},
        *[{"push": {"queue": "work", "class": "QuickJob"}}] * 3,
        {"push": {"queue": "work", "class": "FailingJob"}},
        {"push": {"queue": "work", "class": "DoomedJob", "retry": 0}},
        {"schedule": {"queue": "work", "in": 3600}},
        {"push": {"queue": "idle"}}, {"push": {"queue": "idle"}},  # no process works this queue
    ])
    # Sidekiq flushes its counters with each heartbeat (every 5 s in 6.x).
    before = wait_for(url, lambda s: s["busy"] == 2 and s["processed"] >= 5 and s["retries"] == 1 and s["dead"] == 1)
    measured = ours(url)
    after = sidekiq_stats(url)
    assert before == after, "Sidekiq's numbers moved during the test"
    assert (before["busy"], before["processed"], before["failed"], before["processes"]) == (2, 5, 2, 1)
    for name in ("enqueued", "scheduled", "retries", "dead", "processes", "busy", "processed", "failed"):
        assert measured[f"sample#sidekiq.{name}"] == str(before[name]), name
    assert measured["sample#sidekiq.enqueued"] == "2" and measured["sample#sidekiq.scheduled"] == "1"
    assert before["concurrency"] == 4
    assert measured["sample#sidekiq.utilization"] == f"{before['live_busy'] / before['concurrency']:.3f}" == "0.500"
    assert float(measured["sample#sidekiq.max_latency"]) == max(
        float(measured["sample#sidekiq.idle.latency"]), float(measured["sample#sidekiq.work.latency"]))
    assert measured["sample#sidekiq.metrics.up"] == "1"
    assert not any(k.startswith("count#") for k in measured)  # a first poll has nothing to compare with


def add_process(r: redis.Redis, identity: str, *, busy: int, info: dict | None, concurrency: int | None = None,
                namespace: str = "") -> None:
    """A process as Sidekiq's heartbeat leaves it: SADD processes, then HSET on its identity."""
    r.sadd(f"{namespace}processes", identity)
    if info is None:
        return  # its hash expired: the process died without cleaning up
    fields = {"busy": busy, "beat": time.time(), "quiet": "false", "info": json.dumps(info)}
    if concurrency is not None:
        fields["concurrency"] = concurrency
    r.hset(f"{namespace}{identity}", mapping=fields)


def test_concurrency_as_each_sidekiq_version_stores_it_and_stale_processes(r, redis_server):
    add_process(r, "web.1:1:a", busy=3, info={"concurrency": 10})  # <= 8.1.1 (7.x: total over capsules)
    add_process(r, "worker.1:2:b", busy=1, info={"capsules": {"default": {"concurrency": 5},
                                                                "single": {"concurrency": 1}}})  # 8.0.9+
    add_process(r, "worker.2:3:c", busy=2, info={"capsules": {}}, concurrency=4)  # 8.1.2+: a field of its own
    add_process(r, "worker.3:4:d", busy=0, info=None)  # expired
    totals = reader(redis_server).read(totals=True).totals
    assert totals.processes == 4  # SCARD, as Stats#processes_size
    assert [(p.identity, p.busy, p.concurrency) for p in totals.live] == [
        ("web.1:1:a", 3, 10), ("worker.1:2:b", 1, 6), ("worker.2:3:c", 2, 4)]
    measured = ours(redis_server.url)
    assert measured["sample#sidekiq.busy"] == "6"
    assert measured["sample#sidekiq.utilization"] == f"{6 / 20:.3f}"
    assert measured["sample#sidekiq.processes"] == "4"


@pytest.mark.sidekiq
def test_stale_process_counts_as_sidekiq_counts_it(r, redis_server):
    add_process(r, "web.1:1:a", busy=2, info={"concurrency": 5, "hostname": "web.1", "pid": 1, "identity": "web.1:1:a"})
    add_process(r, "worker.9:9:z", busy=0, info=None)
    measured = ours(redis_server.url)
    reference = sidekiq_stats(redis_server.url)  # Stats first; its ProcessSet then prunes the stale entry
    assert measured["sample#sidekiq.processes"] == str(reference["processes"]) == "2"
    assert measured["sample#sidekiq.busy"] == str(reference["busy"]) == "2"
    assert measured["sample#sidekiq.utilization"] == "0.400"


@pytest.mark.sidekiq
def test_namespaced_totals(r, redis_server):
    sidekiq(redis_server.url, [{"push": {"queue": "a"}}, {"schedule": {"queue": "a", "in": 60}}], namespace="app")
    add_process(r, "web.1:1:a", busy=1, info={"concurrency": 2}, namespace="app:")
    measured = ours(redis_server.url, SIDEKIQ_METRICS_NAMESPACE="app")
    reference = sidekiq(redis_server.url, [{"stats": True}], namespace="app")["stats"]
    for name in ("enqueued", "scheduled", "processes", "busy"):
        assert measured[f"sample#sidekiq.{name}"] == str(reference[name]), name
    assert measured["sample#sidekiq.utilization"] == "0.500"


@pytest.mark.sidekiq
@pytest.mark.parametrize("listed", [None, "default,ghost", "ghost"])
def test_enqueued_counts_the_queues_sidekiq_lists_whatever_we_report(r, redis_server, listed):
    """Stats#enqueued sums LLEN over the `queues` set: a reported list outside it counts nothing,
    a queue of the set left out of SIDEKIQ_METRICS_QUEUES still counts."""
    sidekiq(redis_server.url, [{"push": {"queue": "default"}}] * 2 + [{"push": {"queue": "other"}}] * 3)
    r.lpush("queue:ghost", *[json.dumps({"enqueued_at": time.time()})] * 4)  # a list Sidekiq does not know
    measured = ours(redis_server.url, **({"SIDEKIQ_METRICS_QUEUES": listed} if listed else {}))
    assert measured["sample#sidekiq.enqueued"] == str(sidekiq_stats(redis_server.url)["enqueued"]) == "5"
    if listed:
        assert measured["sample#sidekiq.ghost.size"] == "4"


def test_no_processes_no_utilization_and_zeros_with_no_queues(r, redis_server):
    measured = ours(redis_server.url)
    health = {name for name in measured if name.startswith("sample#sidekiq.redis.")}
    assert health == {f"sample#sidekiq.redis.{n}" for n in ("memory.used", "clients", "evicted_keys", "ops_per_second")}
    assert {k: v for k, v in measured.items() if k not in health} == {f"sample#sidekiq.{n}": "0" for n in
                        ("enqueued", "scheduled", "retries", "dead", "processes", "busy", "processed", "failed",
                         "queues.paused")} | {
        "sample#sidekiq.metrics.up": "1", "sample#sidekiq.scheduled.lag": "0.000",
        "sample#sidekiq.retries.lag": "0.000"}


def test_stats_false_gives_the_originals_lines_and_the_heartbeat(r, redis_server):
    push(r, "default")
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_STATS": "false"})
    assert result.stdout == ("sample#sidekiq.default.size=0\nsample#sidekiq.default.latency=0.000\n"
                             "sample#sidekiq.metrics.up=1\n")


def test_prefix_and_type_apply_to_totals_but_counts_stay_counts(r, redis_server):
    r.set("stat:processed", 7)
    measured = ours(redis_server.url, SIDEKIQ_METRICS_PREFIX="jobs", SIDEKIQ_METRICS_TYPE="measure")
    assert measured["measure#jobs.processed"] == "7" and measured["measure#jobs.metrics.up"] == "1"


def test_counts_are_increases_between_polls_and_survive_a_reset(r, redis_server):
    r.set("stat:processed", 100)
    r.set("stat:failed", 10)
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "0.3"})
    try:
        lines = read_lines_until(proc, r"metrics\.up=1", 5)
        r.incrby("stat:processed", 30)  # as Sidekiq's heartbeat flushes them
        r.incrby("stat:failed", 2)
        lines += read_lines_until(proc, r"jobs\.processed=30", 5)
        r.set("stat:processed", 4)  # Sidekiq::Stats#reset, or a new Redis
        r.set("stat:failed", 0)
        lines += read_lines_until(proc, r"processed=4 ", 5)
        lines += read_lines_until(proc, r"metrics\.up=1", 5)
        r.incrby("stat:processed", 5)
        lines += read_lines_until(proc, r"jobs\.processed=5", 5)
    finally:
        proc.terminate()
        proc.wait(5)
    counts = [(k, int(v)) for _, line in lines for k, _, v in (t.partition("=") for t in line.split())
              if k.startswith("count#")]
    processed = [v for k, v in counts if k == "count#sidekiq.jobs.processed"]
    failed = [v for k, v in counts if k == "count#sidekiq.jobs.failed"]
    assert sum(processed) == 35 and sorted(set(processed)) == [0, 5, 30]
    assert sum(failed) == 2 and max(failed) == 2
    assert "count#sidekiq.jobs.processed" not in lines[0][1]  # the first poll has nothing to compare with


def test_counter_deltas_unit():
    counts = Counts(0.0)

    def update(total: int, at: float) -> list[Sample]:
        return increases(counts.update([Sample(PROCESSED, total)], at))

    assert update(100, 1.0) == []
    assert update(130, 2.0) == [Sample(JOBS_PROCESSED, 30)]
    assert update(2, 3.0) == []  # went down: nothing this poll
    assert update(9, 4.0) == [Sample(JOBS_PROCESSED, 7)]


def test_a_set_the_user_may_not_read_is_unknown_not_zero(r, redis_server):
    """An ACL user without access to `schedule` and `retry` got scheduled=0 retries=0, silently."""
    push(r, "default")
    r.zadd("schedule", {"job-1": time.time() + 60, "job-2": time.time() + 90})
    r.zadd("retry", {"job-3": time.time() + 60})
    r.zadd("dead", {"job-4": time.time()})
    r.set("stat:processed", 40)
    r.execute_command("ACL", "SETUSER", "metrics", "on", ">metrics-pw", "~queues", "~queue:*", "~stat:*",
                      "~processes", "~dead", "+@read", "+@connection", "+@scripting")
    try:
        url = f"redis://metrics:metrics-pw@127.0.0.1:{redis_server.port}/0"
        result = cli("run", "--once", env={"REDIS_URL": url})
    finally:
        r.execute_command("ACL", "DELUSER", "metrics")
    assert result.returncode == 0, result.stderr
    measured = parse_l2met(result.stdout)
    assert "sample#sidekiq.scheduled" not in measured and "sample#sidekiq.retries" not in measured
    assert measured["sample#sidekiq.dead"] == "1" and measured["sample#sidekiq.processed"] == "40"
    assert measured["sample#sidekiq.metrics.up"] == "1"
    warning = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1, result.stderr
    assert "schedule: Redis refused to read it (NOPERM); give the user read access to that key" in warning[0]
    assert "retry: Redis refused to read it (NOPERM)" in warning[0]
    assert "metrics-pw" not in result.stderr


def test_lag_of_the_scheduled_and_retry_sets(r, redis_server):
    """Seconds since the earliest job of each set became due; 0 when none is due, or none is there."""
    sidekiq(redis_server.url, [{"schedule": {"queue": "default", "in": 600}}])  # due in ten minutes: no lag
    assert ours(redis_server.url)["sample#sidekiq.scheduled.lag"] == "0.000"
    sidekiq(redis_server.url, [{"schedule": {"queue": "default", "in": -42}}, {"schedule": {"queue": "d", "in": -5}}])
    r.zadd("retry", {json.dumps({"class": "X", "retry_count": 1}): time.time() - 90})
    measured = ours(redis_server.url)
    assert 42 <= float(measured["sample#sidekiq.scheduled.lag"]) < 45  # the earliest of the two, as Sidekiq scores it
    assert 90 <= float(measured["sample#sidekiq.retries.lag"]) < 93
    assert measured["sample#sidekiq.scheduled"] == "3"


@pytest.mark.sidekiq
def test_processes_by_heroku_process_type_as_sidekiq_reports_them(r, redis_server, sidekiq_server):
    """A real Sidekiq server on `worker.1` (Sidekiq names itself after $DYNO): its memory, Redis round trip,
    busy threads and quiet state under `process.worker.*`, equal to what Sidekiq::ProcessSet says."""
    sidekiq(redis_server.url, [{"push": {"queue": "work", "class": "SlowJob", "args": [20]}}] * 2)
    stats = wait_for(redis_server.url, lambda s: s["live_busy"] == 2 and s["live"][0].get("rtt_us"))
    measured = ours(redis_server.url)
    (live,) = sidekiq_stats(redis_server.url)["live"]
    assert live["hostname"] == "worker.1" and stats["live_busy"] == 2
    assert measured["sample#sidekiq.process.worker.count"] == "1"
    assert measured["sample#sidekiq.process.worker.busy"] == "2"
    assert measured["sample#sidekiq.process.worker.utilization"] == "0.500"  # 2 of -c 4
    assert measured["sample#sidekiq.process.worker.quiet"] == "0"
    # rss and rtt_us move at every heartbeat: within what two heartbeats can change
    assert abs(float(measured["sample#sidekiq.process.worker.memory.max"]) - live["rss"] / 1024) < 20
    memory = "sample#sidekiq.process.worker.memory"
    assert measured[f"{memory}.max"] == measured[f"{memory}.total"]
    assert 0 < float(measured["sample#sidekiq.process.worker.redis_rtt.max"]) < 1000
    os.killpg(sidekiq_server.pid, signal.SIGTSTP)  # quiet: takes no new jobs
    wait_for(redis_server.url, lambda s: s["live"] and s["live"][0].get("quiet") == "true")
    assert ours(redis_server.url)["sample#sidekiq.process.worker.quiet"] == "1"


def test_a_process_off_heroku_is_of_type_other_and_bad_fields_are_left_out(r, redis_server):
    beat = {"busy": "1", "concurrency": "5", "rss": "not a number", "rtt_us": "9" * 40, "quiet": "false",
            "info": json.dumps({"hostname": "ip-10-0-0-1.ec2.internal", "concurrency": 5})}
    r.sadd("processes", "ip-10-0-0-1:1:abc")
    r.hset("ip-10-0-0-1:1:abc", mapping=beat)
    measured = ours(redis_server.url)
    assert measured["sample#sidekiq.process.other.count"] == "1"
    assert measured["sample#sidekiq.process.other.utilization"] == "0.200"
    assert not any(".memory." in k or ".redis_rtt." in k for k in measured if ".process." in k)


@pytest.mark.sidekiq
def test_sidekiq_6_has_no_execution_metrics_said_once_and_doctor_says_so(r, redis_server, sidekiq_server):
    sidekiq(redis_server.url, [{"push": {"queue": "work", "class": "QuickJob"}}] * 3)
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    assert result.stderr.count("Sidekiq 6 and earlier write no execution metrics") == 1
    assert not any(k.startswith(("count#sidekiq.job.", "sample#sidekiq.job.")) for k in parse_l2met(result.stdout))
    doctor = cli("doctor", env={"REDIS_URL": redis_server.url})
    assert "1 live Sidekiq process(es), Sidekiq 6 or earlier" in doctor.stdout  # 7.0 put versions in heartbeats
    assert "no execution metrics in the last ten minutes: Sidekiq 6 writes none" in doctor.stdout
