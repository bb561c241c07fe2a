"""`sidekiq-metrics run` against a real redis-server, with jobs written by real Sidekiq as the reference."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sidekiq_metrics.config import load_settings
from sidekiq_metrics.metrics.names import queue_metric_names
from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from support.commands import Polling, cli, l2met_polls, parse_l2met, read_lines_until, spawn
from support.redis_server import RedisServer, monitored
from support.sidekiq_data import busy_process, job, push, seed, sidekiq

WHOLE_SIDEKIQ = {"enqueued", "scheduled", "retries", "dead", "processes", "busy", "processed", "failed",
                 "max_latency", "utilization", "jobs.processed", "jobs.failed", "metrics.up", "metrics.errors",
                 "scheduled.lag", "retries.lag", "queues.paused"}


def per_queue(measurements: dict[str, str], prefix: str = "sidekiq") -> dict[str, str]:
    """The per-queue measurements only (this file is about queues; test_totals.py about the rest)."""
    return {k: v for k, v in measurements.items() if (name := k.split("#", 1)[1][len(prefix) + 1:]) not in WHOLE_SIDEKIQ
            and not name.startswith(("process.", "redis.", "job.", "error.")) and not name.endswith(".breakdown.age")}


def poll_once(url: str, *args: str, **env: str) -> dict[str, str]:
    result = cli("run", "--once", *args, env={"REDIS_URL": url, **env})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return per_queue(parse_l2met(result.stdout))


def assert_matches_sidekiq(ours: dict[str, str], before: dict, after: dict, prefix: str = "sidekiq") -> None:
    """Sizes equal Sidekiq's; each latency lies between Sidekiq's readings taken just before and just after ours."""
    names = queue_metric_names(tuple(before), prefix)
    expected = {f"sample#{prefix}.{names[q]}.{m}" for q in before for m in ("size", "latency")}
    assert set(ours) == expected
    for queue, (size, latency_before) in before.items():
        size_after, latency_after = after[queue]
        assert size == size_after, "the test changed the queue between reads"
        assert int(ours[f"sample#{prefix}.{names[queue]}.size"]) == size
        ours_latency = float(ours[f"sample#{prefix}.{names[queue]}.latency"])
        assert latency_before - 0.001 <= ours_latency <= latency_after + 0.001, queue


@pytest.mark.sidekiq
def test_sizes_and_latencies_equal_sidekiqs_own_api(r, redis_server):
    url = redis_server.url
    sidekiq(url, [
        {"push": {"queue": "default"}}, {"sleep": 0.3},
        {"push": {"queue": "default"}}, {"push": {"queue": "mailers"}},
        {"push": {"queue": "low priority"}}, {"push": {"queue": "imports/csv"}},
        {"push": {"queue": "düsseldorf"}}, {"push_active_job": {"queue": "active"}},
        {"schedule": {"queue": "later", "in": 3600}},  # scheduled: not in a queue yet
        {"sleep": 0.2},
    ])
    r.sadd("queues", "drained")  # Sidekiq never removes a drained queue from the set
    before = sidekiq(url, [{"queues": True}])["queues"]
    ours = poll_once(url)
    after = sidekiq(url, [{"queues": True}])["queues"]
    assert set(before) == {"default", "mailers", "low priority", "imports/csv", "düsseldorf", "active", "drained"}
    assert before["default"][0] == 2 and before["default"][1] > 0.4
    assert_matches_sidekiq(ours, before, after)
    assert ours["sample#sidekiq.drained.latency"] == "0.000"
    assert "sample#sidekiq.low_priority.size" in ours and "sample#sidekiq.d_sseldorf.size" in ours


@pytest.mark.sidekiq
def test_redis_namespace_of_sidekiq_6_apps(r, redis_server):
    url = redis_server.url
    sidekiq(url, [{"push": {"queue": "default"}}, {"push": {"queue": "critical"}}, {"sleep": 0.2}], namespace="myapp")
    sidekiq(url, [{"push": {"queue": "other_app_queue"}}])
    assert r.exists("myapp:queues", "myapp:queue:default") == 2
    before = sidekiq(url, [{"queues": True}], namespace="myapp")["queues"]
    ours = poll_once(url, SIDEKIQ_METRICS_NAMESPACE="myapp")
    after = sidekiq(url, [{"queues": True}], namespace="myapp")["queues"]
    assert set(before) == {"default", "critical"}
    assert_matches_sidekiq(ours, before, after)


def test_sidekiq_8_milliseconds_mixed_queues_and_fallbacks(r, redis_server):
    now_ms = int(time.time() * 1000)
    push(r, "v8", job(queue="v8", enqueued_at=now_ms - 20_000), job(queue="v8", enqueued_at=now_ms - 1_000))
    # Right after a 7 -> 8 upgrade: float-second jobs at the tail, millisecond jobs at the head.
    push(r, "mixed", json.dumps({"queue": "mixed", "enqueued_at": now_ms / 1000 - 50.0}),
         job(queue="mixed", enqueued_at=now_ms - 2_000))
    # ActiveJob under Sidekiq 8: its own ISO "enqueued_at" inside args must be ignored.
    push(r, "aj8", job(queue="aj8", enqueued_at=now_ms - 30_000, wrapped="MyJob",
                                args=[{"job_class": "MyJob", "enqueued_at": "2001-01-01T00:00:00Z"}]))
    push(r, "created_only", job(queue="created_only", enqueued_at=None, created_at=now_ms - 40_000))
    push(r, "no_stamps", job(queue="no_stamps", enqueued_at=None, created_at=None))
    push(r, "int_seconds", json.dumps({"queue": "int_seconds", "enqueued_at": now_ms // 1000 - 60}))
    push(r, "future", job(queue="future", enqueued_at=now_ms + 60_000))
    push(r, "pro_string", json.dumps({"queue": "pro_string", "enqueued_at": f"{now_ms / 1000 - 70:.6f}"}))
    start = time.time()
    ours = poll_once(redis_server.url)
    elapsed = time.time() - start

    def latency(q):
        return float(ours[f"sample#sidekiq.{q}.latency"])

    for queue, age in [("v8", 20), ("mixed", 50), ("aj8", 30), ("created_only", 40), ("int_seconds", 60),
                       ("pro_string", 70)]:
        assert age - 0.002 <= latency(queue) <= age + elapsed + 1.001, queue  # int_seconds: whole seconds
    assert latency("no_stamps") == 0.0
    assert latency("future") == 0.0
    assert ours["sample#sidekiq.v8.size"] == "2"


def test_one_bad_queue_never_hides_the_others(r, redis_server):
    now = time.time()
    push(r, "good", job(now - 5.0))
    push(r, "bad_json", "{not json", job(now))
    push(r, "bad_stamp", job("yesterday"))
    push(r, "wrong_type")
    r.set("queue:wrong_type", "I am a string")
    push(r, "hash_type")
    r.hset("queue:hash_type", "a", "b")
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    # Two queue keys are not lists (WRONGTYPE): Redis's answer, not a refusal. They hold no job Sidekiq could run,
    # so they are left out with a warning and the poll is whole (issue 32.16; issue 25 had made it metrics.up=0)
    assert result.returncode == 0 and parse_l2met(result.stdout)["sample#sidekiq.metrics.up"] == "1"
    ours = per_queue(parse_l2met(result.stdout))
    assert ours["sample#sidekiq.good.size"] == "1" and 5 <= float(ours["sample#sidekiq.good.latency"]) < 7
    assert ours["sample#sidekiq.bad_json.size"] == "2"
    assert ours["sample#sidekiq.bad_stamp.size"] == "1"
    for missing in ("bad_json.latency", "bad_stamp.latency", "wrong_type.size", "wrong_type.latency",
                    "hash_type.size", "hash_type.latency"):
        assert f"sample#sidekiq.{missing}" not in ours
    assert "Traceback" not in result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("sidekiq-metrics: warning: queue 'bad_json'")
    assert "WRONGTYPE" in warnings[0] and "and 1 more" in warnings[0]


@pytest.mark.parametrize("scripts", [True, False])
@pytest.mark.parametrize("listed", [None, "default"])
def test_a_queue_key_that_is_not_a_list_is_left_out_with_a_warning_and_the_poll_is_up(r, redis_server, scripts,
                                                                                       listed):
    """Issue 32.16: `SADD queues x; SET queue:x oops` gave metrics.up=0, exit 1, no enqueued, and autoscaling held
    still for as long as the stray key existed. Read by our script or by LLEN + LINDEX (scripts refused), or only
    counted into enqueued (LLEN: SIDEKIQ_METRICS_QUEUES lists the others)."""
    seed(r, {"default": (5.0, 3)})
    r.sadd("queues", "x")
    r.set("queue:x", "oops")
    url = redis_server.url
    if not scripts:
        r.execute_command("ACL", "SETUSER", "noscript", "on", ">noscript-pass", "~*", "+@all", "-@scripting")
        url = f"redis://noscript:noscript-pass@127.0.0.1:{redis_server.port}/0"
    try:
        result = cli("run", "--once", env={"REDIS_URL": url, **({"SIDEKIQ_METRICS_QUEUES": listed} if listed else {})})
    finally:
        r.execute_command("ACL", "DELUSER", "noscript")
    seen = parse_l2met(result.stdout)
    assert result.returncode == 0 and seen["sample#sidekiq.metrics.up"] == "1", result
    assert seen["sample#sidekiq.enqueued"] == "3" and seen["sample#sidekiq.default.size"] == "3"
    assert 5 <= float(seen["sample#sidekiq.max_latency"]) < 7
    assert not any(".x." in key for key in seen) and "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "queue 'x': its key is not a list (WRONGTYPE)" in warnings[0], result.stderr


def test_a_queue_of_another_type_whose_name_holds_a_newline_is_warned_of_in_one_line(r, redis_server):
    """Found by the property test: the warning printed the key as it was, and its newline broke the line."""
    r.sadd("queues", "new\nline")
    r.set("queue:new\nline", "oops")
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    assert result.returncode == 0 and result.stderr.count("\n") == 1, result.stderr
    assert "queue 'new\\nline': its key is not a list (WRONGTYPE)" in result.stderr


@pytest.mark.parametrize("listed", [None, "default"])
def test_a_queue_key_redis_refuses_stays_unknown_and_the_poll_is_not_up(r, redis_server, listed):
    """WRONGTYPE is an answer; NOPERM is not: a queue this user may not read could hold any number of jobs."""
    seed(r, {"default": (5.0, 3), "x": (1.0, 2)})
    r.execute_command("ACL", "SETUSER", "narrow", "on", ">narrow-pass", "~queues", "~queue:default", "~stat:*",
                      "~processes", "~schedule", "~retry", "~dead", "+@all")
    url = f"redis://narrow:narrow-pass@127.0.0.1:{redis_server.port}/0"
    run = Polling({"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": "0.2",
                   **({"SIDEKIQ_METRICS_QUEUES": listed} if listed else {})})
    try:
        run.wait(3)
    finally:
        lines, err = run.stop()
        r.execute_command("ACL", "DELUSER", "narrow")
    polls = l2met_polls(lines)
    assert {p["sample#sidekiq.metrics.up"] for p in polls} == {"0"}, err
    assert not any("sample#sidekiq.enqueued" in p for p in polls)
    assert polls[-1]["sample#sidekiq.default.size"] == "3"
    assert any("warning" in line and "NOPERM" in line and ("'x'" in line or "queue:x" in line)
               for line in err.splitlines()), err


def test_a_queue_key_changing_type_between_polls_is_said_once_per_change_and_never_stops_the_heartbeat(
        r, redis_server):
    seed(r, {"default": (5.0, 3)})
    r.sadd("queues", "x")
    r.set("queue:x", "oops")
    run = Polling({"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    try:
        run.wait(4)
        r.delete("queue:x")
        push(r, "x", job(time.time() - 2.0))
        run.wait(4)
        with r.pipeline() as change:  # in one step: no poll sees it missing between
            change.delete("queue:x").zadd("queue:x", {"a": 1}).execute()
        run.wait(4)
    finally:
        lines, err = run.stop()
    polls = l2met_polls(lines)
    assert len(polls) >= 12 and {p["sample#sidekiq.metrics.up"] for p in polls} == {"1"}, err
    assert {p["sample#sidekiq.enqueued"] for p in polls} >= {"3", "4"}
    assert any(p.get("sample#sidekiq.x.size") == "1" for p in polls)  # while it held a job
    said = [line for line in err.splitlines() if "WRONGTYPE" in line]
    assert len(said) == 2, err  # a string, then a sorted set: once each, not every poll


def test_queue_filter_reports_listed_queues_only_and_missing_ones_as_zero(r, redis_server):
    push(r, "default", job(time.time() - 3.0))
    push(r, "mailers", job(time.time()))
    ours = poll_once(redis_server.url, SIDEKIQ_METRICS_QUEUES=" default , nope ")
    assert set(ours) == {"sample#sidekiq.default.size", "sample#sidekiq.default.latency",
                         "sample#sidekiq.nope.size", "sample#sidekiq.nope.latency"}
    assert ours["sample#sidekiq.nope.size"] == "0" and ours["sample#sidekiq.nope.latency"] == "0.000"


def test_queue_names_that_are_not_utf8_or_not_printable(r, redis_server):
    r.sadd("queues", b"\xff\xferaw", "new\nline", "eq=ual#hash")
    r.lpush(b"queue:\xff\xferaw", json.dumps({"enqueued_at": time.time()}))
    r.lpush("queue:new\nline", json.dumps({"enqueued_at": time.time()}))
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url})
    assert result.returncode == 0 and "Traceback" not in result.stderr
    ours = per_queue(parse_l2met(result.stdout))
    assert ours["sample#sidekiq.__raw.size"] == "1"
    assert ours["sample#sidekiq.new_line.size"] == "1"
    assert ours["sample#sidekiq.eq_ual_hash.size"] == "0"
    assert all(re.fullmatch(r"sample#sidekiq\.[A-Za-z0-9.:_-]+", k) for k in ours)


def test_no_queues_prints_only_the_heartbeat_in_the_originals_mode(r, redis_server):
    result = cli("run", "--once", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_STATS": "false"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "sample#sidekiq.metrics.up=1\n", "")


def test_unreachable_redis_once_exits_1_with_one_line_and_no_password(own_redis):
    url = f"redis://admin:pa55-w0rd-xyz@127.0.0.1:{own_redis.port}/0"
    own_redis.stop()
    result = cli("run", "--once", env={"REDIS_URL": url})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines == [f"sidekiq-metrics: poll failed: cannot connect to Redis at 127.0.0.1:{own_redis.port}: "
                     "Connection refused"]
    assert "pa55" not in result.stderr and "admin" not in result.stderr
    assert result.stdout == "sample#sidekiq.metrics.up=0 count#sidekiq.metrics.errors=1\n"


def test_only_read_commands_reach_redis(r, redis_server):
    push(r, "default", job(time.time()))
    identity = busy_process(r, "worker.1", "HardJob", 60)
    # A record too long to copy into our script: taken with HGET (MONITOR lists what scripts run, too).
    r.hset(f"{identity}:work", "tid-2", json.dumps({"queue": "default", "payload": "x" * (1 << 20),
                                                    "run_at": int(time.time())}))
    with monitored(redis_server) as seen:
        poll_once(redis_server.url)
        poll_once(redis_server.url, SIDEKIQ_METRICS_QUEUES="default,missing")
    commands = {c.split(" ", 1)[0].upper() for c in seen}
    assert {"SMEMBERS", "GET", "ZCARD", "ZRANGE", "SCARD", "SCRIPT", "EVALSHA", "LLEN", "LINDEX", "INFO", "HKEYS",
            "HSTRLEN", "HGET"} <= commands
    assert commands <= {"SMEMBERS", "GET", "ZCARD", "ZRANGE", "SCARD", "HMGET", "SCRIPT", "EVALSHA", "LLEN", "LINDEX",
                        "INFO", "HKEYS", "HSTRLEN", "HGET"}
    assert all(c.upper().startswith("SCRIPT LOAD") for c in seen if c.upper().startswith("SCRIPT"))


class CountingConnection(Connection):
    """Counts round trips: each pipeline() is one write of all its commands, then the replies."""

    sends = 0

    def replies(self, commands, *, max_bulk=None):
        CountingConnection.sends += bool(commands)
        return super().replies(commands, max_bulk=max_bulk)


@pytest.mark.parametrize("queues, processes", [(1, 0), (2000, 0), (2000, 300)])
def test_round_trips_do_not_grow_with_queues_or_processes(r, redis_server, queues, processes):
    for i in range(queues):
        push(r, f"q{i}", job(time.time()))
    for i in range(processes):
        r.sadd("processes", f"web.{i}:1:abc")
        r.hset(f"web.{i}:1:abc", mapping={"busy": 1, "info": json.dumps({"concurrency": 5})})
        r.hset(f"web.{i}:1:abc:work", "tid", json.dumps({"queue": "q0", "payload": json.dumps({"class": "A"}),
                                                         "run_at": int(time.time())}))  # what each runs, read too
    for scripts in (True, False):
        connection = CountingConnection(parse_redis_url(redis_server.url, "url"), timeout=5)
        sidekiq_reader = SidekiqReader(connection, scripts=scripts)
        sidekiq_reader.read(["q0"])  # connected (the TCP handshake is per connection, not per poll)
        # A listed filter without totals needs no sets: the first poll is one round trip (plus the
        # script's loading, in script mode).
        for queues_asked, totals, first_poll in [(None, True, 2), (None, False, 2), (["q0", "q1"], False, 1 + scripts)]:
            CountingConnection.sends = 0
            snapshot = sidekiq_reader.read(queues_asked, totals=totals)
            assert len(snapshot.queues) == (queues if queues_asked is None else 2)
            assert CountingConnection.sends == first_poll  # the sets, then what they list
            CountingConnection.sends = 0
            again = sidekiq_reader.read(queues_asked, totals=totals)
            assert CountingConnection.sends == 1  # unchanged sets: everything in one round trip
            assert [q[:3] for q in again.queues] == [q[:3] for q in snapshot.queues]
            assert again.totals == snapshot.totals
        if processes:
            assert len(sidekiq_reader.read(totals=True).totals.live) == processes
            assert sidekiq_reader.read(totals=True).running.by_class[0][0] == "A"
        push(r, "a_new_queue", job(time.time()))  # the set changed: two again
        CountingConnection.sends = 0
        assert "a_new_queue" in [q.name for q in sidekiq_reader.read().queues]
        assert CountingConnection.sends == 2
        r.delete("queue:a_new_queue")
        r.srem("queues", "a_new_queue")


def test_a_queue_replaced_between_polls_is_seen_in_one_round_trip_more(r, redis_server):
    """The sets are recognised unparsed when their bytes are the same as last poll; a queue swapped
    for another of the same name length (same count, same reply length) must still be seen."""
    for name in ("alpha", "bravo", "delta"):
        push(r, name, job(time.time()))
    connection = CountingConnection(parse_redis_url(redis_server.url, "url"), timeout=5)
    sidekiq_reader = SidekiqReader(connection)
    for _ in range(2):
        assert [q.name for q in sidekiq_reader.read(totals=True).queues] == ["alpha", "bravo", "delta"]
    r.srem("queues", "bravo")
    push(r, "bravx", job(time.time()), job(time.time()))
    CountingConnection.sends = 0
    snapshot = sidekiq_reader.read(totals=True)
    assert [(q.name, q.size) for q in snapshot.queues] == [("alpha", 1), ("bravx", 2), ("delta", 1)]
    assert snapshot.totals.enqueued == 4
    assert CountingConnection.sends == 2
    CountingConnection.sends = 0
    assert [q.name for q in sidekiq_reader.read(totals=True).queues] == ["alpha", "bravx", "delta"]
    assert CountingConnection.sends == 1


def test_the_same_sets_in_other_bytes_keep_the_plan_and_are_recognised_next_time(r, redis_server):
    """Redis may list an unchanged set in another order (after a rehash or a restart): the members
    are compared, the plan stands (one round trip), and the new listing is what the next poll compares."""
    for name in ("alpha", "bravo"):
        push(r, name, job(time.time()))
    connection = CountingConnection(parse_redis_url(redis_server.url, "url"), timeout=5)
    sidekiq_reader = SidekiqReader(connection)
    sidekiq_reader.read(totals=True)
    plan = sidekiq_reader._plan
    sidekiq_reader._plan = dataclasses.replace(plan, listed=[[b"bravo", b"alpha"]] * 2)
    CountingConnection.sends = 0
    assert [q.name for q in sidekiq_reader.read(totals=True).queues] == ["alpha", "bravo"]
    assert CountingConnection.sends == 1
    assert sidekiq_reader._plan.commands is plan.commands and sidekiq_reader._plan.listed == plan.listed


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_the_loop_within_a_second_exit_0(r, redis_server, sig):
    push(r, "default", job(time.time()))
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "30"})
    try:
        lines = read_lines_until(proc, r"\.latency=", 10)
        assert lines, "no metric lines: stdout not flushed?"
        time.sleep(0.2)  # now asleep until the next tick, 30 s away
        sent = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(5) == 0
        assert time.monotonic() - sent < 1.0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_steady_schedule_without_drift(r, redis_server):
    push(r, "default", job(time.time()))
    interval = 0.25
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": str(interval)})
    try:
        lines = read_lines_until(proc, r"XXX-never", 3.2)
    finally:
        proc.terminate()
        proc.wait(5)
    ticks = [t for t, line in lines if ".size=" in line]
    assert len(ticks) >= 10
    for k, t in enumerate(ticks):
        # Each poll lands on its slot: errors do not add up over the ticks.
        assert abs(t - (ticks[0] + k * interval)) < 0.08, (k, t - ticks[0])


def test_redis_lost_and_back_the_loop_survives():
    server = RedisServer("--requirepass", "secret-pw")
    server.client = functools.partial(server.client, password="secret-pw")
    server.start().client().sadd("queues", "default")
    proc = spawn("run", env={"REDIS_URL": f"redis://:secret-pw@127.0.0.1:{server.port}/0",
                             "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    try:
        assert read_lines_until(proc, r"default\.size=0", 5)
        server.stop()
        time.sleep(1.0)
        server.start()  # empty again: nothing is persisted
        push(server.client(), "default", job(time.time()))
        assert read_lines_until(proc, r"default\.size=1", 5)[-1][1].endswith("default.size=1")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(5)
        server.cleanup()
    errors = [line for line in proc.stderr.read().splitlines() if "poll failed" in line]
    assert 2 <= len(errors) <= 7, errors  # one per failed poll, about one per 0.2 s
    assert all(line.startswith("sidekiq-metrics: poll failed: ") for line in errors)
    assert all("secret-pw" not in line for line in errors)


def test_socket_timeout_is_shorter_than_the_interval():
    from sidekiq_metrics.wiring import redis_connection

    assert redis_connection(load_settings({"SIDEKIQ_METRICS_INTERVAL": "1"})).timeout == 0.5
    assert redis_connection(load_settings({})).timeout == 10.0


def test_a_hung_redis_never_stalls_the_loop_past_its_interval(own_redis):
    push(own_redis.client(), "default", job(time.time()))
    proc = spawn("run", env={"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_INTERVAL": "0.4"})
    try:
        assert read_lines_until(proc, r"default\.latency=", 5)
        own_redis.proc.send_signal(signal.SIGSTOP)  # replies now hang, the socket stays open
        time.sleep(2.0)
        own_redis.proc.send_signal(signal.SIGCONT)
        resumed = read_lines_until(proc, r"default\.latency=", 3)
        assert resumed and resumed[-1][1].startswith("sample#sidekiq.default.latency=")
    finally:
        proc.terminate()
        proc.wait(5)
    errors = [line for line in proc.stderr.read().splitlines() if "poll failed" in line]
    # 2 s of silence at 0.4 s per tick, 0.2 s timeout each: about five failed polls, each one line.
    assert 3 <= len(errors) <= 6, errors
    assert all(line.startswith("sidekiq-metrics: poll failed: no reply from Redis at 127.0.0.1:") and
               line.endswith("within 0.2s") for line in errors)


def test_sigterm_during_a_hung_redis_call_still_ends_within_a_second(own_redis):
    push(own_redis.client(), "default", job(time.time()))
    own_redis.proc.send_signal(signal.SIGSTOP)
    proc = spawn("run", env={"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_INTERVAL": "60"})  # 10 s timeout
    try:
        time.sleep(1.0)  # started, and now waiting on Redis
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - sent < 1.0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_redis_down_at_start_then_up_the_loop_starts_reporting(own_redis):
    own_redis.stop()
    proc = spawn("run", env={"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_INTERVAL": "0.2"})
    try:
        assert read_lines_until(proc, r"metrics\.up=0", 5)
        own_redis.start()
        ready = time.monotonic()
        push(own_redis.client(), "default", job(time.time()))
        lines = read_lines_until(proc, r"default\.size=1", 5)
        assert lines[-1][1].endswith("default.size=1")
        assert lines[-1][0] - ready < 0.2 + 0.15  # within one interval of Redis answering
    finally:
        proc.terminate()
        proc.wait(5)


def test_python_dash_m_is_the_same_command():
    result = subprocess.run([sys.executable, "-m", "sidekiq_metrics", "--version"], capture_output=True, text=True,
                            cwd="/")
    assert (result.returncode, result.stdout) == (0, "sidekiq-metrics, version 0.1.0\n")


def test_a_redis_still_loading_its_data_fails_polls_briefly_and_keeps_the_script(tmp_path):
    """LOADING says "not now": the polls fail until Redis is ready, then the script is used as before."""
    server = RedisServer("--enable-debug-command", "yes", "--dbfilename", "dump.rdb").start()
    try:
        r = server.client()
        r.execute_command("DEBUG", "POPULATE", 1_500_000, "filler", 200)  # enough data to load for a while
        push(r, "default", job(time.time()))
        r.save()
        server.stop()
        server.proc = subprocess.Popen(["redis-server", "--port", str(server.port), "--bind", "127.0.0.1",
                                        "--dir", server.dir, "--dbfilename", "dump.rdb", "--save", ""],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = spawn("run", env={"REDIS_URL": server.url, "SIDEKIQ_METRICS_INTERVAL": "0.1"})
        try:
            lines = read_lines_until(proc, r"default\.size=1", 30)
        finally:
            proc.terminate()
            proc.wait(5)
        err = proc.stderr.read()
    finally:
        server.cleanup()
    assert lines[-1][1] == "sample#sidekiq.default.size=1"
    assert "sample#sidekiq.metrics.up=0 count#sidekiq.metrics.errors=1" in [line for _, line in lines]
    failures = [line for line in err.splitlines() if "poll failed" in line]
    assert any("poll failed: LOADING Redis is loading the dataset in memory" in line for line in failures)
    assert all(("LOADING" in line or "cannot connect" in line or "no reply" in line) for line in failures)
    assert "refuses our read-only Lua script" not in err


def blocked_on_a_pipe(pid: int) -> list[str]:
    """Which of the process's threads wait in the kernel to write to a full pipe: "main", or "another"."""
    tasks = Path(f"/proc/{pid}/task")
    return ["main" if t.name == str(pid) else "another" for t in tasks.iterdir() if "pipe" in (t / "wchan").read_text()]


def test_sigterm_ends_it_even_when_stdout_is_blocked(r, redis_server):
    """A log reader that stops reading fills the pipe; the writing thread blocks. SIGTERM must still end us at
    once, and cleanly: no interpreter aborting on a stream's lock held by a blocked daemon thread."""
    for i in range(1000):
        r.sadd("queues", f"queue_with_a_long_name_{i:04d}")
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "0.05"})
    try:
        time.sleep(2.0)  # nobody reads: 60 KB a poll fill the 64 KB pipe at once
        assert proc.poll() is None
        assert blocked_on_a_pipe(proc.pid) == ["another"]  # the writing thread waits on the pipe; the poll does not
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - sent < 1.0
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and "Fatal Python error" not in err


def test_run_once_waits_for_its_reader_and_sigterm_still_ends_it(r, redis_server):
    """`run --once` writes all it has before it exits, however slow the reader (as any command does), and SIGTERM
    ends the wait within a second."""
    for i in range(1000):
        r.sadd("queues", f"queue_with_a_long_name_{i:04d}")
    proc = spawn("run", "--once", env={"REDIS_URL": redis_server.url})
    try:
        time.sleep(2.0)  # 60 KB for a 64 KB pipe nobody reads, plus the heartbeat: the writer waits on it
        assert proc.poll() is None and blocked_on_a_pipe(proc.pid) == ["another"]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - sent < 1.0
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and "Fatal Python error" not in err


def test_a_reader_that_stops_reading_never_stops_the_polls(r, redis_server):
    """While nobody reads stdout, the polls go on (the statsd output shows them) and the oldest lines are
    dropped; once the reader is back, one line says how many, and what it reads are whole lines."""
    for i in range(1000):
        r.sadd("queues", f"queue_with_a_long_name_{i:04d}")
    per_poll = len(cli("run", "--once", env={"REDIS_URL": redis_server.url}).stdout.splitlines())
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.bind(("127.0.0.1", 0))
    statsd.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    proc = spawn("run", env={"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_INTERVAL": "0.1",
                             "SIDEKIQ_METRICS_OUTPUT": "l2met,statsd",
                             "DD_DOGSTATSD_PORT": str(statsd.getsockname()[1])})
    try:
        time.sleep(1.0)  # the pipe is full after the first poll
        assert blocked_on_a_pipe(proc.pid) == ["another"]
        statsd.settimeout(0.5)
        polls, until = 0, time.monotonic() + 3.0
        while time.monotonic() < until:  # every poll sends queue 0000's size once
            with contextlib.suppress(TimeoutError):
                polls += statsd.recv(65536).count(b"sidekiq.queue.size:0|g|#queue:queue_with_a_long_name_0000\n")
        assert polls >= 10  # some 30 polls in 3 s; with a write that blocked the poll, none
        lines = read_lines_until(proc, r"(?!)", 2.0)  # the reader is back
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
        statsd.close()
    err = proc.stderr.read()
    dropped = re.findall(r"the log reader fell behind: (\d+) line\(s\) were dropped", err)
    assert len(dropped) == 1 and int(dropped[0]) >= 10 * per_poll, err  # the lines of ten polls or more
    assert all(re.fullmatch(r"(\S+#\S+=\S+ ?)+", text) for _, text in lines[:-1]), "a line cut or mixed"
