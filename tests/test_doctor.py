"""`sidekiq-metrics doctor` against a real redis-server holding real Sidekiq data."""

from __future__ import annotations

import re
import time

import pytest
from test_autoscale import autoscale_env, run_for

from support.commands import cli
from support.fake_platform_api import FakePlatformApi
from support.redis_server import RedisServer, free_port, monitored
from support.sidekiq_data import busy_process, idle_process, job, push, sidekiq


def doctor(**env: str):
    return cli("doctor", env=env)


@pytest.mark.sidekiq
def test_a_correct_set_up(r, redis_server):
    sidekiq(redis_server.url, [{"push": {"queue": "default"}}, {"push": {"queue": "mailers"}}])
    result = doctor(REDIS_URL=redis_server.url, DYNO="web.1")
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "ok    redis url = redis://127.0.0.1:" in out and "(REDIS_URL)" in out
    assert "ok    interval = 30.0 (default)" in out
    assert "ok    this dyno (web.1) is the one that runs the emitter" in out
    assert f"ok    Redis answers at {redis_server.url} (no TLS), in " in out and ", version 7." in out
    assert "ok    Sidekiq's queues set lists 2 queue(s)" in out
    assert "      sample#sidekiq.default.size=1 sample#sidekiq.mailers.size=1\n" in out
    assert "info  oldest jobs: 2 with float seconds (Sidekiq <= 7)" in out
    assert "FAIL" not in out and out.rstrip().endswith("All good.")


@pytest.mark.sidekiq
def test_a_namespace_that_is_missing_is_found_and_named(r, redis_server):
    sidekiq(redis_server.url, [{"push": {"queue": "default"}}], namespace="myapp")
    result = doctor(REDIS_URL=redis_server.url)
    assert result.returncode == 1
    assert "FAIL  no `queues` set here, but Sidekiq's keys are under the prefix 'myapp'\n" \
           "      -> set SIDEKIQ_METRICS_NAMESPACE=myapp" in result.stdout
    fixed = doctor(REDIS_URL=redis_server.url, SIDEKIQ_METRICS_NAMESPACE="myapp")
    assert fixed.returncode == 0 and "under the namespace 'myapp'" in fixed.stdout


def test_a_wrong_namespace_over_plain_keys(r, redis_server):
    push(r, "default")
    result = doctor(REDIS_URL=redis_server.url, SIDEKIQ_METRICS_NAMESPACE="oldapp")
    assert result.returncode == 1
    assert "-> unset SIDEKIQ_METRICS_NAMESPACE (Sidekiq 7+ has no namespaces)" in result.stdout


def test_a_missing_url_and_an_unreachable_redis():
    result = doctor(DYNO="web.1", REDIS_URL="")
    assert result.returncode == 1
    assert "FAIL  no Redis URL is configured: the hook starts the emitter only with one" in result.stdout
    port = free_port()
    result = doctor(REDIS_URL=f"redis://:hunter2-pw@127.0.0.1:{port}/0")
    assert result.returncode == 1
    assert f"FAIL  Redis does not answer at redis://***@127.0.0.1:{port}/0 (no TLS): cannot connect" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


def test_every_bad_setting_is_listed_at_once(r, redis_server):
    result = doctor(REDIS_URL=redis_server.url, SIDEKIQ_METRICS_INTERVAL="soon", SIDEKIQ_METRICS_TYPE="gauge")
    assert result.returncode == 1
    assert "FAIL  SIDEKIQ_METRICS_INTERVAL must be a number of seconds" in result.stdout
    assert "FAIL  SIDEKIQ_METRICS_TYPE must be one of sample, measure, count, got 'gauge'" in result.stdout
    assert "ok    Redis answers at" in result.stdout  # the other checks still run


def test_the_off_switch_and_another_dyno_are_explained(r, redis_server):
    result = doctor(REDIS_URL=redis_server.url, DYNO="run.4321", SIDEKIQ_METRICS_DISABLE="1")
    assert "warn  SIDEKIQ_METRICS_DISABLE is set: the hook starts nothing on any dyno" in result.stdout
    assert "info  this dyno (run.4321) does not run the emitter; web.1 does (SIDEKIQ_METRICS_DYNO)" in result.stdout


def test_doctor_never_writes(r, redis_server):
    push(r, "default")
    with monitored(redis_server) as seen:
        doctor(REDIS_URL=redis_server.url, SIDEKIQ_METRICS_NAMESPACE="nothing_here")
        doctor(REDIS_URL=redis_server.url)
    verbs = {c.split(" ", 1)[0].upper() for c in seen}
    assert {"PING", "INFO", "SCARD", "EVALSHA"} <= verbs  # the record is really there
    assert verbs <= {"PING", "INFO", "SCARD", "EXISTS", "RANDOMKEY", "SMEMBERS", "GET", "ZCARD", "ZRANGE", "HMGET",
                     "SCRIPT", "EVALSHA", "LLEN", "LINDEX"}, verbs
    assert all(c.upper().startswith("SCRIPT LOAD") for c in seen if c.upper().startswith("SCRIPT"))


def test_an_invalid_url_is_a_failure_and_nothing_is_probed_in_its_place(own_redis):
    """An invalid URL was listed "ok" (the stand-in default) and then localhost was probed."""
    result = doctor(REDIS_URL="http://example.com/0")
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL  REDIS_URL must be a redis://, rediss:// or unix:// URL" in out
    assert "redis url = redis://localhost" not in out and "Redis answers" not in out
    assert "Redis does not answer" not in out
    assert "FAIL  not checked: the Redis URL is not valid (see Configuration above)" in out


def test_a_missing_password_is_said_as_such_not_as_a_wrong_key_type():
    from support.redis_server import RedisServer

    server = RedisServer("--requirepass", "needed-pw")
    server.client = lambda **kw: RedisServer.client(server, password="needed-pw", **kw)
    server.start()
    try:
        result = doctor(REDIS_URL=f"redis://127.0.0.1:{server.port}/0")
    finally:
        server.cleanup()
    assert result.returncode == 1
    assert "wants a password (NOAUTH) and the URL has none" in result.stdout
    assert "is not a set" not in result.stdout and "Redis answers" not in result.stdout


def test_a_queues_key_of_another_type_is_named(r, redis_server):
    r.set("queues", "not a set")
    result = doctor(REDIS_URL=redis_server.url)
    assert result.returncode == 1
    assert "FAIL  the key 'queues' is not a set (WRONGTYPE): Sidekiq keeps its queue list there" in result.stdout


def test_doctor_says_which_reads_redis_refuses_and_what_each_costs(r, redis_server):
    """Issue 25: `doctor` says which reads the user lacks and what each costs."""
    push(r, "default", job(time.time() - 2))
    push(r, "mailers", job(time.time() - 1))
    r.zadd("schedule", {"job": time.time() + 60})
    r.execute_command("ACL", "SETUSER", "narrow", "on", ">narrow-pass", "~queues", "~queue:default", "~stat:*",
                      "~processes", "~retry", "~dead", "+@all")
    try:
        result = cli("doctor", env={"REDIS_URL": f"redis://narrow:narrow-pass@127.0.0.1:{redis_server.port}/0"})
    finally:
        r.execute_command("ACL", "DELUSER", "narrow")
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    out = result.stdout
    assert "FAIL  reads: Redis refuses 'queue:mailers': that queue's size and latency are unknown; metrics.up is 0 " \
           "and autoscaling holds still until it can be read" in out
    assert "warn  reads: Redis refuses 'schedule': sidekiq.scheduled and sidekiq.scheduled.lag are left out" in out
    assert "narrow-pass" not in out
    whole = cli("doctor", env={"REDIS_URL": redis_server.url})
    assert "ok    reads: Redis answers every read the emitter makes" in whole.stdout


@pytest.mark.parametrize("refused", ["paused", "work"])
def test_a_refused_paused_set_or_work_hash_is_a_warning_never_every_read_answered(r, redis_server, refused):
    """Review of issue 34: an ACL user that may not read `paused` (autoscaling then cannot leave a paused queue's
    backlog out) or a process's `:work` hash (an hour-long stuck job is invisible) got "Redis answers every read the
    emitter makes" and "All good.". Now each is a warning saying what is unknown and what it does to autoscaling;
    warnings leave the exit status 0."""
    r.sadd("queues", "mail")
    r.sadd("paused", "mail")
    identity = busy_process(r, "worker.1", "StuckJob", 3600)
    keys = ["~queue*", "~processes", "~stat:*", "~schedule", "~retry", "~dead", "~sidekiq-metrics:*", f"~{identity}",
            "~paused" if refused == "work" else f"~{identity}:work"]
    r.execute_command("ACL", "SETUSER", "narrow34", "on", ">narrow34-pass", "resetkeys", *keys, "+@all")
    try:
        result = doctor(REDIS_URL=redis_server.url.replace("redis://", "redis://narrow34:narrow34-pass@"))
    finally:
        r.execute_command("ACL", "DELUSER", "narrow34")
    out = result.stdout
    assert result.returncode == 0 and "FAIL" not in out, out
    assert "reads: Redis answers every read the emitter makes" not in out and "All good." not in out
    if refused == "paused":
        assert "warn  reads: Redis refuses 'paused' (Sidekiq Pro's paused queues): which queues are paused is " \
               "unknown, so sidekiq.queue.paused is left out (with autoscaling on, no type would scale up)" in out, out
        assert "no queue is paused" not in out
    else:
        assert "warn  reads: Redis refuses a process's `<identity>:work` hash (what it runs): the longest-running " \
               "job is unknown" in out, out
        assert "1 queue(s) paused" in out  # the rest is read as usual


def test_paused_queues_and_the_longest_running_job_are_shown(r, redis_server):
    """Sidekiq Pro's `paused` set (SADD paused <queue> is what Queue#pause! writes) is named with what it means; the
    job that has run longest is said; neither fails the check."""
    push(r, "default")
    push(r, "imports")
    r.sadd("paused", "imports")
    busy_process(r, "worker.1", "Billing::MonthEndJob", 1210)
    result = doctor(REDIS_URL=redis_server.url)
    assert result.returncode == 0, result.stdout
    assert "warn  1 queue(s) paused by Sidekiq Pro/Enterprise (its `paused` set): 'imports'; their latency grows" \
           in result.stdout
    assert re.search(r"info  the longest-running job \(Billing::MonthEndJob\) has run 121[0-9]s", result.stdout)
    assert "sample#sidekiq.imports.paused=1" in result.stdout
    r.delete("paused")
    assert "ok    no queue is paused" in doctor(REDIS_URL=redis_server.url).stdout


def test_doctor_fails_when_autoscaling_cannot_read_the_paused_set(tmp_path):
    """docs/troubleshooting.md: doctor says `FAIL` for a refused read when "autoscaling holds still", `warn` for one
    whose metrics are only left out; exit status 0 "when the emitter would work". With autoscaling on and an ACL
    user that may not read `paused` (one written before this release: every existing narrow user), no type ever
    scales up (docs/autoscaling.md). Doctor, run in a release phase or by hand after the upgrade, exits 0 with a
    `warn`; the customer deploys, and the next traffic spike is met by no new dyno."""
    server = RedisServer().start()
    api = FakePlatformApi(formation={"worker": 1})
    try:
        r = server.client()
        push(r, "default", job(time.time() - 100))
        idle_process(r, "worker.1")
        keys = ["~queue*", "~processes", "~stat:*", "~schedule", "~retry", "~dead", "~sidekiq-metrics:*",
                "~worker.1*"]
        r.execute_command("ACL", "SETUSER", "narrow", "on", ">narrow-pass", "resetkeys", *keys, "+@all")
        url = server.url.replace("redis://", "redis://narrow:narrow-pass@")
        env = autoscale_env(url, api)
        # the emitter itself: the backlog is 100 s over UP_LATENCY 10 s, and no dyno is ever added
        run_for(2, env)
        assert api.patches() == []
        result = cli("doctor", env=env)
    finally:
        api.close()
        server.stop()
        server.cleanup()
    assert "autoscaling scales no type up" in result.stdout, result.stdout
    assert result.returncode == 1 and "FAIL" in result.stdout, result.stdout
