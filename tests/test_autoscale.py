"""Autoscaling end to end: real emitter processes polling a real redis-server, scaling through a
Platform API on loopback (tests/support/fake_platform_api.py) as the queue latency rises and falls."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support.commands import cli, cli_env, console_script, parse_l2met, read_lines_until, spawn
from support.fake_platform_api import FakePlatformApi
from support.redis_server import monitored, wait_until
from support.sidekiq_data import busy_process, idle_process, job, push, seed, shut_down

INTERVAL = 0.2


@pytest.fixture
def api():
    server = FakePlatformApi(formation={"worker": 1})
    yield server
    server.close()


def set_latency(r, queue: str, seconds: float, jobs: int = 3) -> None:
    """Queue `queue` holds `jobs` Sidekiq jobs, the oldest enqueued `seconds` ago (0 jobs: empty)."""
    r.delete(f"queue:{queue}")
    now = time.time()
    push(r, queue, *[job(now - seconds + i * 0.001, created_at=now - seconds, queue=queue, args=[i])
                     for i in range(jobs)])


def autoscale_env(url: str, api: FakePlatformApi, **rule: str) -> dict[str, str]:
    env = {"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": str(INTERVAL), "SIDEKIQ_METRICS_AUTOSCALE": "worker",
           "HEROKU_API_TOKEN": api.token, "HEROKU_APP_NAME": api.app, "SIDEKIQ_METRICS_HEROKU_API_URL": api.url,
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MIN": "1", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "3",
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_LATENCY": "10", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_LATENCY": "1",
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_POLLS": "2", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_COOLDOWN": "0.5",
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_COOLDOWN": "1"}
    env.update({f"SIDEKIQ_METRICS_AUTOSCALE_WORKER_{k.upper()}": v for k, v in rule.items()})
    return env


def run_for(seconds: float, env: dict[str, str]) -> tuple[str, str]:
    """Run the emitter for `seconds` from when it says it is polling (a busy machine may take a while to start
    Python; SIGTERM during its imports would end it by the signal, before its handlers are in place)."""
    proc = spawn("run", env=env)
    out: list[str] = []
    err: list[str] = []
    polling = threading.Event()

    def read(stream, lines: list[str]) -> None:  # noqa: ANN001
        for line in stream:
            lines.append(line)
            if "polling" in line:
                polling.set()

    readers = [threading.Thread(target=read, args=(stream, lines), daemon=True)
               for stream, lines in ((proc.stdout, out), (proc.stderr, err))]
    for reader in readers:
        reader.start()
    polling.wait(30)
    time.sleep(seconds)
    proc.terminate()
    proc.wait(10)
    for reader in readers:
        reader.join(10)
    assert proc.returncode == 0, "".join(err)
    return "".join(out), "".join(err)


def decisions(err: str) -> list[str]:
    return [line for line in err.splitlines() if "autoscale: " in line]


def latency_said(text: str, change: str) -> float:
    """The latency a decision line gives for `change` (`from=1 to=2`): it grows with the wall clock, so tests
    hold it to what the queue held at the least, never to its digits (a busy machine reads 101.026 for 100)."""
    match = re.search(rf"{change} latency=([0-9.]+) ", text)
    assert match, text
    return float(match[1])


def test_latency_above_the_threshold_scales_up_step_by_step_to_max(r, redis_server, api):
    set_latency(r, "default", 100)
    out, err = run_for(3.5, autoscale_env(redis_server.url, api))
    assert api.patches() == [2, 3]
    patch_times = [q.at for q in api.requests if q.method == "PATCH"]
    assert patch_times[1] - patch_times[0] >= 0.5  # the up cool-down
    lines = decisions(err)
    assert len(lines) == 2
    assert latency_said(lines[0], "scaled type=worker from=1 to=2") >= 100 and "for 2 polls" in lines[0]
    assert "scaled type=worker from=2 to=3 latency=10" in lines[1]
    last = parse_l2met(out.splitlines()[-1])
    assert last["sample#sidekiq.autoscale.worker.current"] == "3"
    assert last["sample#sidekiq.autoscale.worker.desired"] == "3"
    assert api.token not in out + err
    # every request the way Heroku expects it, and not a GET a poll: the quantity is cached while nothing changes
    assert all(q.path == "/apps/shop/formation/worker" for q in api.requests)
    assert len(api.requests) <= 6


def test_low_latency_scales_down_only_after_the_down_cooldown_and_not_below_min(r, redis_server, api):
    api.formation["worker"] = 3
    set_latency(r, "default", 0, jobs=0)
    start = time.monotonic()
    out, err = run_for(4.0, autoscale_env(redis_server.url, api))
    assert api.patches() == [2, 1]
    first, second = (q.at for q in api.requests if q.method == "PATCH")
    assert first - start >= 1.0 and second - first >= 1.0
    assert "from=3 to=2 latency=0.000" in decisions(err)[0] and "latency below 1s" in decisions(err)[0]
    assert parse_l2met(out.splitlines()[-1])["sample#sidekiq.autoscale.worker.current"] == "1"


def test_a_holder_that_takes_the_lease_back_does_not_count_the_time_it_stood_by_as_calm(r, redis_server, api):
    """Found in review of issue 32: an emitter that saw a calm queue, stood by while another held the lease, and took
    it back scaled down at its first poll, counting the minutes it saw nothing as minutes of low latency."""
    api.formation["worker"] = 3
    set_latency(r, "default", 0, jobs=0)
    proc = spawn("run", env={**autoscale_env(redis_server.url, api, down_cooldown="3"), "SIDEKIQ_METRICS_LEASE": "1"})
    lines = read_lines_until(proc, r"(?!)", 0)
    try:
        time.sleep(1.0)  # a term of calm polls, shorter than the down cool-down
        r.set("sidekiq-metrics:lease", "web.9:1:another", px=3_000)  # another emitter holds it for 3 s
        taken_back = [0.0]

        def took_back() -> bool:
            taken_back[0] = time.monotonic()
            return r.get("sidekiq-metrics:lease") not in (None, b"web.9:1:another")

        assert wait_until(took_back, 10)
        assert wait_until(lambda: api.patches(), 10)
        assert api.requests[-1].at - taken_back[0] >= 3 * 0.9  # a down cool-down of calm seen in this term
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert lines


def test_dry_run_logs_decisions_and_changes_nothing(r, redis_server, api):
    set_latency(r, "default", 100)
    out, err = run_for(2.5, {**autoscale_env(redis_server.url, api), "SIDEKIQ_METRICS_AUTOSCALE_DRY_RUN": "true"})
    assert api.patches() == [] and api.formation["worker"] == 1
    # decided as a real run would, one cool-down apart, from the quantity it would have set
    assert latency_said(err, "would scale type=worker from=1 to=2") >= 100 and "(dry run)" in err
    assert latency_said(err, "would scale type=worker from=2 to=3") >= 100
    assert len(decisions(err)) == 2
    assert r.keys("sidekiq-metrics*") == []  # not even the lock
    last = parse_l2met(out.splitlines()[-1])
    assert last["sample#sidekiq.autoscale.worker.current"] == "1"
    assert last["sample#sidekiq.autoscale.worker.desired"] == "3"


def test_a_backlog_wakes_a_formation_at_zero_before_latency_builds(r, redis_server, api):
    api.formation["worker"] = 0
    set_latency(r, "default", 0.1)  # just enqueued: below the down threshold even
    _, err = run_for(1.5, autoscale_env(redis_server.url, api, min="0"))
    assert api.patches() == [1]
    assert "3 jobs waiting and no dynos" in err


def test_two_emitters_at_once_make_a_single_change(r, redis_server, api):
    set_latency(r, "default", 100)
    env = autoscale_env(redis_server.url, api, up_cooldown="30", down_cooldown="60")
    procs = [spawn("run", env=env) for _ in range(2)]
    time.sleep(3.0)
    errs = []
    for proc in procs:
        proc.terminate()
        errs.append(proc.communicate(timeout=10)[1])
    assert api.patches() == [2]
    assert sum("autoscale: scaled type=worker from=1 to=2" in e for e in errs) == 1
    assert sum("another emitter scaled worker within the cool-down" in e for e in errs) == 1
    ttl = r.pttl("sidekiq-metrics:autoscale:lock:worker")
    assert 25_000 < ttl <= 30_000


def test_silence_is_not_calm_no_scale_down_while_redis_is_down(own_redis, api):
    api.formation["worker"] = 3
    client = own_redis.client()
    set_latency(client, "default", 0, jobs=0)
    proc = spawn("run", env=autoscale_env(own_redis.url, api, down_cooldown="1.5"))
    time.sleep(1.0)  # low for a second: not yet the 1.5 s cool-down
    own_redis.stop()
    time.sleep(2.0)  # silence for longer than the cool-down
    assert api.patches() == []
    own_redis.start()
    set_latency(own_redis.client(), "default", 0, jobs=0)
    time.sleep(1.0)
    assert api.patches() == []  # the low clock started again with the first reading after the outage
    time.sleep(1.5)
    proc.terminate()
    proc.communicate(timeout=10)
    assert api.patches() == [2]


def lines_with_times(proc, seconds: float) -> list[tuple[float, str]]:
    """stdout lines with arrival times for `seconds`, then the process stopped."""
    import threading

    got: list[tuple[float, str]] = []

    def read():
        for line in proc.stdout:
            got.append((time.monotonic(), line))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    time.sleep(seconds)
    proc.terminate()
    thread.join(10)
    return got


def test_a_hanging_api_never_delays_the_metrics(r, redis_server, api):
    set_latency(r, "default", 100)
    api.delay = 5.0
    proc = spawn("run", env=autoscale_env(redis_server.url, api))
    got = lines_with_times(proc, 3.0)
    err = proc.stderr.read()
    beats = [t for t, line in got if "metrics.up=1" in line]
    assert len(beats) >= 10, err
    assert max(b - a for a, b in zip(beats, beats[1:], strict=False)) < 0.6
    assert api.patches() == []


@pytest.mark.parametrize(("status", "headers", "said", "requests_after"), [
    (401, {}, "autoscale off until restart: the Heroku API refused the token (401", 0),
    (403, {}, "autoscale off until restart: the Heroku API refused the token (403", 0),
    (404, {}, "autoscale worker off until restart: app 'shop' has no 'worker' process type (404", 0),
])
def test_refusals_stop_autoscaling_once_and_metrics_go_on(r, redis_server, api, status, headers, said,
                                                          requests_after):
    set_latency(r, "default", 100)
    api.scripted.append((status, headers, {"id": "x", "message": "Nope."}))
    out, err = run_for(2.0, autoscale_env(redis_server.url, api))
    assert err.count(said) == 1, err
    assert len(api.requests) == 1 + requests_after
    assert out.count("metrics.up=1") >= 6
    assert api.token not in out + err


def test_rate_limits_are_respected_and_server_errors_retried_next_poll(r, redis_server, api):
    set_latency(r, "default", 100)
    api.scripted += [(429, {"Retry-After": "1"}, {"id": "rate_limit", "message": "Your account reached the API "
                                                  "rate limit"}), (503, {}, {"id": "unavailable", "message": "Down."})]
    out, err = run_for(3.0, autoscale_env(redis_server.url, api))
    first, second = api.requests[0], api.requests[1]
    assert second.at - first.at >= 1.0  # nothing asked during Retry-After
    assert "autoscale paused for 1s: the Heroku API rate limit was reached (429" in err
    assert "holding still this poll: the Heroku API answered 503: Down." in err
    assert api.patches()[:1] == [2]  # then it scales as usual
    assert out.count("metrics.up=1") >= 10


def test_an_error_body_that_echoes_the_token_across_the_cut_leaks_no_part_of_it(r, redis_server, api):
    """A proxy in front of the API may echo the Authorization header. The message used to be cut to 160
    characters before the token was scrubbed, so a token straddling the cut leaked its first part."""
    set_latency(r, "default", 100)
    message = "Upstream said: " + "x" * 130 + f"Bearer {api.token} was not accepted"  # the token at 152..161
    api.scripted.append((503, {}, {"id": "unavailable", "message": message}))
    out, err = run_for(2.0, autoscale_env(redis_server.url, api))
    assert "holding still this poll: the Heroku API answered 503: Upstream said: xxx" in err
    assert api.token[:8] not in out + err, err


def test_two_emitters_with_one_dyno_name_and_one_pid_still_make_a_single_change(r, redis_server, api):
    """Issue 32.5: the lock's owner was `DYNO:pid`. During Cedar's preboot the old and the new `web.1` run side by
    side, each a container whose emitter can have the same pid: both held the lock and both scaled. Here each
    emitter is pid 1 of a pid namespace of its own, as in a container, and both are named web.1."""
    if subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True).returncode:
        pytest.skip("unshare --pid needs root (tests/run runs as root in CI)")
    set_latency(r, "default", 100)
    env = cli_env(DYNO="web.1", **autoscale_env(redis_server.url, api, up_cooldown="30", down_cooldown="60"))
    procs = [subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child=SIGTERM", console_script(), "run"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = []
    try:
        assert wait_until(lambda: api.patches(), 15)
        time.sleep(1.0)  # several polls of each, well within the cool-down
    finally:
        for proc in procs:
            proc.kill()  # unshare ignores SIGTERM while it waits; its death sends the emitter SIGTERM
            errs.append(proc.communicate(timeout=10)[1])
    assert api.patches() == [2], errs
    assert sum("autoscale: scaled type=worker from=1 to=2" in e for e in errs) == 1


def test_the_only_write_is_the_lock_key(own_redis, api):
    client = own_redis.client()
    set_latency(client, "default", 100)
    with monitored(own_redis) as seen:
        run_for(2.0, autoscale_env(own_redis.url, api))
    # (HGETALL: Sidekiq's execution metrics of a minute, read once a minute: a run that crosses a minute reads them)
    reads = ("SMEMBERS", "GET", "ZCARD", "ZRANGE", "SCARD", "HMGET", "HGETALL", "SCRIPT", "EVALSHA", "LLEN", "LINDEX",
             "LRANGE", "INFO")
    others = [c for c in seen if c.split(" ", 1)[0].upper() not in reads and not c.startswith(("CLIENT", "HELLO"))]
    # The lock's script (take it when free or ours) and, inside it, its GET and SET of the lock key: nothing else.
    lock = "sidekiq-metrics:autoscale:lock:worker"
    assert others and all((c.startswith("EVAL ") and f" 1 {lock} " in c and c.endswith(" 500"))
                          or (c.startswith(f"SET {lock} ") and c.endswith(" PX 500")) for c in others), others
    assert api.patches() == [2, 3]


@pytest.mark.parametrize(("env", "named"), [
    ({"HEROKU_API_TOKEN": ""}, "HEROKU_API_TOKEN must be set for autoscaling"),
    ({"HEROKU_API_TOKEN": "has a space s3cr3t"}, "HEROKU_API_TOKEN must be a Heroku API token"),
    ({"HEROKU_APP_NAME": ""}, "HEROKU_APP_NAME must be set for autoscaling"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": ""}, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX must be set"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_MIN": "5"}, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MIN must not be above"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_LATENCY": "10"}, "DOWN_LATENCY must be below"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_STEP": "0"}, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_STEP must be a whole number"),
    ({"SIDEKIQ_METRICS_AUTOSCALE": "worker,bad type"}, "SIDEKIQ_METRICS_AUTOSCALE must list Procfile process types"),
    ({"SIDEKIQ_METRICS_QUEUES": "critical", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "critical,low"},
     "names queues that SIDEKIQ_METRICS_QUEUES leaves out: 'low'"),
    ({"SIDEKIQ_METRICS_HEROKU_API_URL": "ftp://x"}, "SIDEKIQ_METRICS_HEROKU_API_URL must be an http"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_CATCH_UP": "soon"}, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_CATCH_UP must be a "
     "number of seconds"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX_STEP": "4"}, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX_STEP sets the "
     "largest CATCH_UP scale-up, but SIDEKIQ_METRICS_AUTOSCALE_WORKER_CATCH_UP is not set"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_CATCH_UP": "300", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_STEP": "3",
      "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX_STEP": "2"}, "MAX_STEP must be 0 or at least"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_DRAIN_WAIT": "-1"}, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DRAIN_WAIT must be"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_WORKER_SCHEDULE": "Mon 08:00-18:00 min=x"},
     "SIDEKIQ_METRICS_AUTOSCALE_WORKER_SCHEDULE"),
    ({"SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE": "Mars/Olympus"}, "SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE must be a time zone"),
])
def test_bad_autoscale_settings_are_one_line_and_status_2(api, env, named):
    result = cli("run", "--once", env={**autoscale_env("redis://127.0.0.1:1/0", api), **env})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and named in result.stderr, result.stderr
    assert "s3cr3t" not in result.stderr and api.token not in result.stderr


def test_the_documented_example_does_what_the_documentation_says(r, redis_server, api):
    readme = (Path(__file__).parent.parent / "docs" / "autoscaling.md").read_text()
    example = readme.split("## A worked example", 1)[1].split("## Settings", 1)[0]
    settings = dict(re.findall(r"^  (\w+)=(\S+)", example, re.MULTILINE))
    assert settings["SIDEKIQ_METRICS_AUTOSCALE"] == "worker" and settings["HEROKU_API_TOKEN"] == "<the"
    env = {**settings, "HEROKU_API_TOKEN": api.token, "HEROKU_APP_NAME": api.app, "REDIS_URL": redis_server.url,
           "SIDEKIQ_METRICS_HEROKU_API_URL": api.url, "SIDEKIQ_METRICS_INTERVAL": str(INTERVAL)}
    set_latency(r, "critical", 83.4)
    set_latency(r, "default", 5)
    _, err = run_for(1.5, env)
    assert ("autoscale worker: 1..6 dynos on the latency of critical,default: up above 60s, down below 10s "
            "(dry run: decisions are logged, nothing is changed)") in err
    assert latency_said(err, "would scale type=worker from=1 to=2") >= 83.4
    assert 'backlog=6 reason="latency above 60s for 2 polls" (dry run)' in err
    assert api.patches() == []


def test_doctor_reads_each_formation_and_scales_nothing(r, redis_server, api):
    set_latency(r, "default", 100)
    env = {**autoscale_env(redis_server.url, api), "DYNO": "web.1"}
    result = cli("doctor", env=env)
    assert result.returncode == 0, result.stdout
    assert ("ok    worker: 1 dyno(s) now, scaled 1..3 on the latency of every reported queue "
            "(up above 10s, down below 1s)") in result.stdout
    assert [q.method for q in api.requests] == ["GET"] and r.keys("sidekiq-metrics*") == []
    refused = cli("doctor", env={**env, "HEROKU_API_TOKEN": "tok-wrong-7d1e"})
    assert refused.returncode == 1
    assert "FAIL  worker: the Heroku API refused the token (401: Invalid credentials provided.)" in refused.stdout
    assert "tok-wrong-7d1e" not in refused.stdout + refused.stderr and api.token not in result.stdout
    assert api.patches() == []


def test_doctor_warns_of_an_autoscaled_queue_sidekiq_does_not_know(r, redis_server, api):
    """Found in review of issue 32: a misspelt queue (`urgnt`; `orders. urgent` and the like) was accepted silently,
    read as empty, and scaled its type down while the real queue waited. Live, a queue that does not exist yet
    counts as empty (it may be a new one); doctor says which of a type's queues Sidekiq does not know."""
    set_latency(r, "urgent", 100)
    env = {**autoscale_env(redis_server.url, api, queues="urgnt,urgent"), "DYNO": "web.1"}
    result = cli("doctor", env=env)
    assert result.returncode == 0, result.stdout
    assert ("warn  worker: Sidekiq has no queue 'urgnt' now: it counts as empty until a job is pushed to it "
            "(misspelt?)") in result.stdout, result.stdout
    assert "'urgent'" not in result.stdout.split("Autoscaling", 1)[1]


def test_a_scale_down_waits_while_a_dyno_of_the_type_runs_a_job_then_goes_on_when_idle(r, redis_server, api):
    api.formation["worker"] = 3
    set_latency(r, "default", 0, jobs=0)
    identity = busy_process(r, "worker.2", "LongJob", 30)
    proc = spawn("run", env=autoscale_env(redis_server.url, api, drain_wait="60"))
    try:
        time.sleep(2.5)  # the down cool-down (1 s) is over: without the job, it would have scaled down by now
        assert api.patches() == []
        r.hset(identity, "busy", 0)  # the job ended
        r.delete(f"{identity}:work")
        deadline = time.monotonic() + 5
        while not api.patches() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert api.patches()[:1] == [2]
    assert err.count("holding the scale-down of worker from 3 to 2 while 1 job(s) that may outlast Sidekiq's "
                     "shutdown run on its dynos") == 1
    assert "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DRAIN_WAIT" in err and "may interrupt" not in err


def test_after_the_longest_wait_the_scale_down_goes_on_naming_the_jobs_it_may_interrupt(r, redis_server, api):
    api.formation["worker"] = 2
    set_latency(r, "default", 0, jobs=0)
    busy_process(r, "worker.2", "Billing::MonthEndJob", 300)
    _, err = run_for(4.5, autoscale_env(redis_server.url, api, drain_wait="1.5"))
    assert api.patches() == [1]
    (scaled,) = [line for line in err.splitlines() if "scaled type=worker" in line]
    assert "waited 2s for 1 running job(s)" in scaled or "waited 1s for 1 running job(s)" in scaled
    assert "worker's scale-down may interrupt: worker.2: Billing::MonthEndJob (default, 30" in err


@pytest.mark.parametrize("work", ["work", "workers"])
def test_a_job_that_has_run_past_sidekiqs_shutdown_holds_a_scale_down_a_younger_one_does_not(r, redis_server, api,
                                                                                           work):
    """Short jobs finish within Sidekiq's 25 s after SIGTERM: a busy type whose jobs are all younger than that
    scales down as before. Sidekiq 6.4.1 and earlier keep the work under `<identity>:workers`."""
    api.formation["worker"] = 3
    set_latency(r, "default", 0, jobs=0)
    busy_process(r, "worker.2", "QuickJob", 3, work)
    _, err = run_for(2.5, autoscale_env(redis_server.url, api, drain_wait="60"))
    assert api.patches()[:1] == [2] and "holding" not in err
    api.requests.clear()
    api.formation["worker"] = 3
    busy_process(r, "worker.2", "ExportJob", 40, work)
    _, err = run_for(2.5, autoscale_env(redis_server.url, api, drain_wait="60"))
    assert api.patches() == [] and "while 1 job(s) that may outlast Sidekiq's shutdown" in err


def test_a_busy_process_whose_work_cannot_be_read_holds_the_scale_down(r, redis_server, api):
    api.formation["worker"] = 3
    set_latency(r, "default", 0, jobs=0)
    identity = busy_process(r, "worker.2", "QuickJob", 3)
    r.delete(f"{identity}:work")  # busy, but no record of what: every busy job counts
    _, err = run_for(2.5, autoscale_env(redis_server.url, api, drain_wait="60"))
    assert api.patches() == [] and "holding the scale-down of worker from 3 to 2 while 1 job(s)" in err


def heroku_stops(r, order: str):
    """What happens to Sidekiq when the formation shrinks: Heroku stops dynos (`highest`: the highest-numbered, as
    HireFire's maintainer reports; `lowest`: the others) and each Sidekiq shuts down (`shut_down`, held to real
    Sidekiq: its heartbeat hash is left to expire, so the emitter must go by the process set)."""
    def on_scale(process_type: str, old: int, new: int) -> None:
        stopped = range(new + 1, old + 1) if order == "highest" else range(1, old - new + 1)
        for n in stopped:
            shut_down(r, f"{process_type}.{n}:4:0123456789ab")
    return on_scale


def stderr_lines(proc) -> list[str]:
    """The process's stderr lines as they come (a list that grows)."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return lines


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_once_scale_downs_have_shown_heroku_stops_the_highest_numbered_only_those_dynos_jobs_hold_one(
        r, redis_server, api):
    """Before: a job at risk on any dyno holds a scale-down (Heroku does not document which dynos stop). After
    three scale-downs that stopped the highest-numbered (6 x 5 x 4 = 120 times likelier than chance), a job on
    worker.1 no longer holds going from 3 to 2; one on worker.2 holds going from 2 to 1."""
    api.formation["worker"] = 6
    api.on_scale = heroku_stops(r, "highest")
    set_latency(r, "default", 0, jobs=0)
    for n in range(1, 7):
        idle_process(r, f"worker.{n}")
    proc = spawn("run", env=autoscale_env(redis_server.url, api, max="6", drain_wait="60"))
    err = stderr_lines(proc)
    try:
        assert wait_for(lambda: any("seen often enough" in line for line in err), 15), err
        assert api.patches() == [5, 4, 3]
        busy_process(r, "worker.1", "ReportJob", 300)  # at risk, on a dyno that stays
        assert wait_for(lambda: api.patches()[3:] == [2], 5), err
        busy_process(r, "worker.2", "ExportJob", 300)  # at risk, on the dyno that would stop
        time.sleep(2.5)  # two down cool-downs
    finally:
        proc.terminate()
        proc.wait(10)
    assert api.patches() == [5, 4, 3, 2]
    said = [line.split("autoscale: ", 1)[1].rstrip("\n") for line in err if "stopped" in line]
    assert said == ["scaling worker from 6 to 5 stopped the highest-numbered dyno(s), worker.6",
                    "scaling worker from 5 to 4 stopped the highest-numbered dyno(s), worker.5",
                    "scaling worker from 4 to 3 stopped the highest-numbered dyno(s), worker.4; seen often enough "
                    "that chance does not explain it: a scale-down now waits only for jobs on the dynos it stops",
                    "scaling worker from 3 to 2 stopped the highest-numbered dyno(s), worker.3"]
    assert sum("holding the scale-down" in line for line in err) == 1
    assert any("holding the scale-down of worker from 2 to 1 while 1 job(s) that may outlast Sidekiq's shutdown "
               "run on the dynos it stops" in line for line in err)


def test_a_scale_down_that_stops_another_dyno_is_said_and_every_dyno_stays_protected(r, redis_server, api):
    api.formation["worker"] = 2
    api.on_scale = heroku_stops(r, "lowest")
    set_latency(r, "default", 0, jobs=0)
    idle_process(r, "worker.1")
    idle_process(r, "worker.2")
    _, err = run_for(4, autoscale_env(redis_server.url, api, drain_wait="60"))
    assert api.patches() == [1]  # judged when the watch ends: the down cool-down here, as worker.1 may restart
    assert ("autoscale: scaling worker from 2 to 1 stopped worker.1, not only the highest-numbered: a scale-down "
            "waits for jobs on every dyno of the app's types until restart") in err


def test_a_schedule_window_raises_the_minimum_at_once_in_a_live_emitter(r, redis_server, api):
    set_latency(r, "default", 3)  # between the thresholds: latency alone holds still
    env = {**autoscale_env(redis_server.url, api, schedule="Mon-Sun 00:00-24:00 min=2"),
           "SIDEKIQ_METRICS_AUTOSCALE_TIMEZONE": "Europe/Berlin"}
    _, err = run_for(1.5, env)
    assert api.patches() == [2]
    assert "reason=\"below the minimum of 2 (Mon-Sun 00:00-24:00 min=2)\"" in err


@pytest.mark.long
def test_catch_up_sizes_a_scale_up_to_the_backlog_and_a_resumed_queues_jobs_are_backlog_not_arrivals(r, redis_server,
                                                                                                    api):
    """One worker dyno of 10 threads, all busy, finishing 50 jobs a second (Sidekiq's processed total grows
    so), 9,000 jobs waiting since just before the emitter started: 3,000 in `default`, 6,000 in `bulk`, which
    Sidekiq Pro holds paused until 15 s in. Nothing new arrives. Once latency passes 35 s: capacity (9,000 +
    50 × 25) / (25 + 35) = 171 jobs/s, 3.4 dynos' worth, so 4 dynos at once where plain steps would add one.
    (Review of issue 34: the resumed queue's 6,000 jobs were also read as arrivals, 6,000 in 35 s, so 5 dynos:
    the window's backlog is now taken over the same queues at both ends.)"""
    r.sadd("processes", "worker.1:4:0123456789ab")
    r.hset("worker.1:4:0123456789ab", mapping={"busy": 10, "concurrency": 10, "quiet": "false", "info": json.dumps(
        {"hostname": "worker.1", "concurrency": 10, "version": "8.1.7"})})
    r.sadd("paused", "bulk")
    seed(r, {"default": (0.0, 3_000), "bulk": (0.0, 6_000)})  # waiting from now on: latency grows a second a second
    started, stop = time.monotonic(), threading.Event()

    def work() -> None:  # Sidekiq's heartbeats, every 50 ms rather than 10 s; `bulk` resumed 15 s in
        while not stop.wait(0.05):
            r.set("stat:processed", 1_000 + int(50 * (time.monotonic() - started)))
            if time.monotonic() - started > 15:
                r.srem("paused", "bulk")

    worker = threading.Thread(target=work)
    worker.start()
    env = autoscale_env(redis_server.url, api, max="10", up_latency="35", down_latency="1", catch_up="25",
                        up_cooldown="60")
    proc = spawn("run", env=env)
    try:
        read_lines_until(proc, r"autoscale\.worker\.current=4", timeout=50)  # (reading stdout as it comes)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        stop.set()
        worker.join()
    assert "autoscale worker: no queue of it is paused" in err, err  # it saw the resume before scaling
    assert api.patches() == [4], err
    (line,) = decisions(err)
    assert re.search(r'scaled type=worker from=1 to=4 latency=35\.\d+ backlog=9000 reason="latency above 35s for '
                     r'2 polls; 9000 waiting, [45]\d\.\d/s arriving, [45]\d\.\d/s a dyno: 4 dynos catch up within 25s"',
                     line), line


def test_a_paused_set_redis_refuses_holds_every_scale_up_and_is_said_once(r, redis_server, api):
    """Review of issue 34: an ACL user written before paused queues (Sidekiq's keys, not `~paused`), `default`
    paused with a 100 s backlog. Unknown paused state was read as "nothing paused" and scaled the worker up for a
    backlog no dyno can run (rule 6); now no type scales up while the set is refused, said once, metrics up."""
    set_latency(r, "default", 100)
    r.sadd("paused", "default")
    r.execute_command("ACL", "SETUSER", "old", "on", ">old-pass", "resetkeys", "~queue*", "~processes", "~stat:*",
                      "~schedule", "~retry", "~dead", "~sidekiq-metrics:*", "~*:work*", "~worker*", "+@all")
    try:
        out, err = run_for(1.5, autoscale_env(redis_server.url.replace("redis://", "redis://old:old-pass@"), api))
    finally:
        r.execute_command("ACL", "DELUSER", "old")
    assert api.patches() == [], err
    assert err.count("Redis refused Sidekiq Pro's paused set, so any queue may be paused: no type scales up") == 1, err
    assert "sample#sidekiq.metrics.up=1" in out and "sample#sidekiq.metrics.up=0" not in out


def test_a_redis_that_refuses_every_read_is_not_up_and_never_scales_down(r, redis_server, api):
    """Issue 25.1: with reads refused (the lock still writable), every poll printed metrics.up=1, an empty Sidekiq,
    and the autoscaler scaled down from 2 to 1."""
    api.formation["worker"] = 2
    set_latency(r, "default", 0, jobs=0)
    r.sadd("queues", "default")
    r.execute_command("ACL", "SETUSER", "blind", "on", ">blind-pass", "~*", "+@all", "-@read")
    try:
        url = f"redis://blind:blind-pass@127.0.0.1:{redis_server.port}/0"
        out, err = run_for(3, autoscale_env(url, api))
    finally:
        r.execute_command("ACL", "DELUSER", "blind")
    ups = [parse_l2met(line)["sample#sidekiq.metrics.up"] for line in out.splitlines() if "metrics.up" in line]
    assert len(ups) >= 5 and set(ups) == {"0"}, out
    assert api.patches() == [], err
    assert "queues: Redis refused to read it (NOPERM)" in err
    assert "blind-pass" not in out + err


@pytest.mark.parametrize("scripts", [True, False])
def test_a_failed_scale_leaves_our_own_lock_and_the_retry_is_not_held_off_by_it(r, redis_server, api, scripts):
    """Issue 25.2: after one 503 the lock we had set stayed, and the next poll read it as another emitter's: the
    scale-up waited a whole cool-down more, with a false line. Where scripts are refused, the fallback too."""
    api.scripted_patches.append((503, {}, {"id": "unavailable", "message": "Service unavailable."}))
    set_latency(r, "default", 100)
    url = redis_server.url
    if not scripts:
        r.execute_command("ACL", "SETUSER", "noscript", "on", ">noscript-pass", "~*", "+@all", "-@scripting")
        url = f"redis://noscript:noscript-pass@127.0.0.1:{redis_server.port}/0"
    try:
        out, err = run_for(2.5, autoscale_env(url, api, MAX="2", UP_COOLDOWN="30", DOWN_COOLDOWN="30"))
    finally:
        r.execute_command("ACL", "DELUSER", "noscript")
    assert api.patches() == [2, 2], err  # the 503, then the retry at the next poll, not 30 s later
    assert "another emitter" not in err
    assert "the Heroku API answered 503" in err and "scaled type=worker from=1 to=2" in err
    assert r.exists("sidekiq-metrics:autoscale:lock:worker")  # kept: it holds other emitters off the cool-down


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_a_retry_after_that_is_no_number_pauses_the_default_minute(r, redis_server, api, value):
    """Issue 25.5: `Retry-After: nan` logged "autoscale paused for nans" and did not pause."""
    set_latency(r, "default", 100)
    api.scripted += [(429, {"Retry-After": value}, {"id": "rate_limit", "message": "rate limit"})]
    _, err = run_for(1.5, autoscale_env(redis_server.url, api))
    assert "autoscale paused for 60s: the Heroku API rate limit was reached (429" in err, err
    assert len(api.requests) == 1  # nothing asked during the pause


def test_a_stray_queue_key_of_another_type_never_holds_autoscaling_still(r, redis_server, api):
    """Issue 32.16: while `queue:x` (listed in `queues`) held a string, every poll said metrics.up=0 and autoscaling
    held still, however long the real queue's jobs waited."""
    set_latency(r, "default", 100)
    r.sadd("queues", "x")
    r.set("queue:x", "oops")
    proc = spawn("run", env=autoscale_env(redis_server.url, api))
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: api.patches()[:1] == [2], 20), api.patches()
        # The line comes once the PATCH has been answered: wait for it, not for the PATCH (a loaded machine
        # was stopped in between).
        assert wait_until(lambda: "scaled type=worker from=1 to=2" in "".join(said), 10), said
    finally:
        proc.terminate()
        out = proc.stdout.read()
        proc.wait(10)
        reader.join(10)
    err = "".join(said)
    assert err.count("WRONGTYPE") == 1, err
    assert "sample#sidekiq.metrics.up=0" not in out


def test_a_paused_queues_backlog_asks_for_no_dyno_until_it_is_resumed(r, redis_server, api):
    """`SADD paused default` is what Sidekiq Pro's Queue#pause! does to Redis (its stand-in here: Pro's processes,
    which then stop fetching from the queue, and its pub/sub notice to them are not reproduced). A queue paused with
    a backlog of 100 s asks for no dyno, and both its gauge and the count say so; resumed, it scales up."""
    set_latency(r, "default", 100)
    r.sadd("paused", "default")
    try:
        out, err = run_for(1.5, autoscale_env(redis_server.url, api))
        assert api.patches() == []
        last = parse_l2met(out.splitlines()[-1]) | parse_l2met(out.splitlines()[-2])
        assert last["sample#sidekiq.default.paused"] == "1" and last["sample#sidekiq.queues.paused"] == "1"
        assert "autoscale worker: paused (Sidekiq Pro), left out as their jobs cannot run whatever the dynos: " \
               "'default'" in err
    finally:
        r.delete("paused")
    run_for(1.5, autoscale_env(redis_server.url, api))
    assert api.patches()[:1] == [2]
