"""The Lua queue scan against reading each oldest job whole: same numbers, a fraction of the bytes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import redis

from sidekiq_metrics.redis.resp import Connection, RedisError
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq.job_payload import latency
from sidekiq_metrics.sidekiq.queue_scan import SCRIPT as QUEUE_SCAN
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from support.commands import cli_env, console_script, parse_l2met, spawn
from support.redis_server import monitored, reader
from support.sidekiq_data import job, push, sidekiq


def payload_shapes(NOW: float) -> dict[str, str]:  # noqa: N803 - reads as a constant below
    """Every shape of job we have met, aged relative to NOW."""
    MS = int(NOW * 1000)  # noqa: N806
    return {
        "sidekiq7": json.dumps({"retry": True, "queue": "q", "class": "A", "args": [1], "jid": "a" * 24,
                                "created_at": NOW - 20.5, "enqueued_at": NOW - 10.25}, separators=(",", ":")),
        "sidekiq8": json.dumps({"queue": "q", "args": [], "created_at": MS - 20_000, "enqueued_at": MS - 10_000}),
        "activejob": json.dumps({"class": "Sidekiq::ActiveJob::Wrapper", "wrapped": "J", "queue": "q",
                                 "args": [{"job_class": "J", "enqueued_at": "2024-01-01T00:00:00Z",
                                           "arguments": [{"created_at": 5, "enqueued_at": 7}]}],
                                 "created_at": NOW - 30.0, "enqueued_at": NOW - 12.5}),
        "top_level_first": json.dumps({"enqueued_at": NOW - 3.0, "args": [{"enqueued_at": NOW - 999.0}]}),
        "spaces_python_client": json.dumps({"class": "A", "args": [], "created_at": NOW - 4.0,
                                            "enqueued_at": NOW - 4.0}, indent=2) + "\n  ",
        "escaped_lookalike": json.dumps({"args": ['x"enqueued_at":1', '\\"enqueued_at\\": 2', "enqueued_at"],
                                         "enqueued_at": NOW - 6.0}),
        "key_ends_like_it": json.dumps({"my_enqueued_at": 1, "enqueued_at": NOW - 7.0}),
        # compact, ending the way Sidekiq's jobs end, but the key is `x"enqueued_at`: no enqueued_at at all
        "escaped_key_at_end": f'{{"created_at":{NOW - 16.0!r},"x\\"enqueued_at":{NOW - 999.0!r}}}',
        "created_only": json.dumps({"args": [{"enqueued_at": NOW}], "created_at": MS - 8_000}),
        "null_enqueued": json.dumps({"created_at": NOW - 9.0, "enqueued_at": None}),
        "false_enqueued": json.dumps({"created_at": NOW - 9.5, "enqueued_at": False}),
        "duplicate_keys": '{"enqueued_at": 1.5, "args": [], "enqueued_at": %r}' % (NOW - 11.0),
        "string_stamp": json.dumps({"enqueued_at": f"{NOW - 13.0:.6f}"}),
        # "\u0031\u0037" is "17", the first two digits of today's epoch seconds
        "escaped_string_stamp": '{"enqueued_at": "\\u0031\\u0037' + f"{NOW - 14.0:.3f}"[2:] + '"}',
        "no_stamps": json.dumps({"class": "A", "args": [{"enqueued_at": NOW - 1000}]}),
        "nan": '{"enqueued_at": NaN}',
        "array_stamp": json.dumps({"enqueued_at": [1, 2]}),
        "object_stamp": json.dumps({"enqueued_at": {"at": 1}}),
        "huge_number": '{"enqueued_at": 1' + "0" * 80 + "}",
        "unicode": json.dumps({"args": ["日本語 \u2028"], "enqueued_at": NOW - 15.0}, ensure_ascii=False),
        "not_json": "{not json",
        "bad_number": '{"enqueued_at": 1446506041.608039.0000455}',
        "array": "[1, 2]",
        "empty_string": "",
        "string_job": '"job"',
    }


@pytest.fixture
def both_ways(r, redis_server):
    def read(payloads: dict[str, str]):
        for name, payload in payloads.items():
            r.sadd("queues", name)
            r.lpush(f"queue:{name}", payload)
        scripted = reader(redis_server).read()
        plain = reader(redis_server, scripts=False).read()
        return scripted, plain
    return read


def test_script_reads_every_payload_shape_as_parsing_it_whole_does(both_ways):
    made = time.time()
    shapes = payload_shapes(made)
    scripted, plain = both_ways(shapes)
    now = time.time()
    assert [q.name for q in scripted.queues] == [q.name for q in plain.queues] == sorted(shapes)
    for s, p in zip(scripted.queues, plain.queues, strict=True):
        assert s.size == p.size == 1, s.name
        lat_s = None if s.problem else latency(s.oldest, now)
        lat_p = None if p.problem else latency(p.oldest, now)
        assert lat_s == pytest.approx(lat_p, abs=1e-6) if lat_p is not None else lat_s is None, s.name
    by_name = {q.name: q for q in scripted.queues}
    expected = {"sidekiq7": 10.25, "sidekiq8": 10.0, "activejob": 12.5, "top_level_first": 3.0,
                "spaces_python_client": 4.0, "escaped_lookalike": 6.0, "key_ends_like_it": 7.0, "created_only": 8.0,
                "null_enqueued": 9.0, "false_enqueued": 9.5, "duplicate_keys": 11.0, "string_stamp": 13.0,
                "escaped_string_stamp": 14.0, "unicode": 15.0, "escaped_key_at_end": 16.0, "no_stamps": 0.0}
    for name, age in expected.items():
        # the age given when the jobs were made, plus the time since (a busy machine's, whatever it is)
        aged = age + (now - made) if name != "no_stamps" else 0.0  # a job without a stamp is 0 (Sidekiq's rule)
        assert latency(by_name[name].oldest, now) == pytest.approx(aged, abs=0.002), name
    for name in ("nan", "array_stamp", "object_stamp", "bad_number", "huge_number"):  # unknown, both ways
        q = by_name[name]
        assert q.problem is not None or latency(q.oldest, now) is None, name
    plain_by_name = {q.name: q for q in plain.queues}
    for name in ("not_json", "array", "empty_string", "string_job"):  # said alike both ways
        assert by_name[name].problem == plain_by_name[name].problem, name
        assert by_name[name].problem in ("the oldest job is not a JSON object", "the oldest job is not valid JSON")
    # Sidekiq 8 integers stay integers, Sidekiq 7 floats stay floats
    assert isinstance(by_name["sidekiq8"].oldest.enqueued_at, int)
    assert isinstance(by_name["sidekiq7"].oldest.enqueued_at, float)


def test_jobs_as_sidekiq_writes_them_take_the_short_line(r, redis_server):
    """The script's fast path is what keeps a poll of 10,000 queues cheap: real Sidekiq jobs, plain
    and ActiveJob-wrapped, must come back as `<size> TAB <number>`, not through the full JSON walk."""
    sidekiq(redis_server.url, [{"push": {"queue": "plain", "args": [1, {"enqueued_at": 5}]}},
                               {"push_active_job": {"queue": "wrapped"}}])
    lines, done, whole, large = r.eval(QUEUE_SCAN, 2, "queue:plain", "queue:wrapped", 1 << 20)
    assert done == 2 and whole == [] and large == []  # nothing handed back whole, nothing large
    for line in lines.split(b"\n"):
        size, number = line.split(b"\t")
        assert size == b"1" and abs(float(number) - time.time()) < 60, line


@pytest.mark.parametrize("kind", ["seconds", "milliseconds", "both"])
def test_whole_calls_of_usual_lines_read_every_stamp_as_its_own_type(r, redis_server, kind):
    """Calls whose lines are all `<size> TAB <number>` are parsed whole: float seconds (Sidekiq <= 7),
    integer milliseconds (Sidekiq 8), or both in one call, over two script calls of 250 queues."""
    now = time.time()
    ages = {}
    for i in range(300):
        name = f"q{i:03d}"
        ages[name] = float(i % 50)
        millis = kind == "milliseconds" or (kind == "both" and i % 2)
        stamp = int((now - ages[name]) * 1000) if millis else now - ages[name]
        job = json.dumps({"class": "Job", "args": [i], "enqueued_at": stamp}, separators=(",", ":"))
        r.lpush(f"queue:{name}", *[job] * (i % 3 + 1))
        r.sadd("queues", name)
    snapshot = reader(redis_server).read()
    assert [q.name for q in snapshot.queues] == sorted(ages)
    for q in snapshot.queues:
        i = int(q.name[1:])
        millis = kind == "milliseconds" or (kind == "both" and i % 2)
        assert q.size == i % 3 + 1 and q.problem is None
        assert type(q.oldest.enqueued_at) is (int if millis else float) and q.oldest.created_at is None
        assert ages[q.name] - 0.001 <= latency(q.oldest, snapshot.read_at) <= ages[q.name] + 5, q


def test_big_jobs_cost_timestamps_not_payloads(r, redis_server):
    """100 queues whose oldest job is 256 KB: the naive LINDEX reads 25 MB every poll."""
    filler = "x" * (256 * 1024)
    ms = int(time.time() * 1000)
    for i in range(100):
        r.sadd("queues", f"big{i:03d}")
        job = {"class": "Sidekiq::ActiveJob::Wrapper", "args": [{"blob": filler, "enqueued_at": "2020-01-01"}],
               "created_at": ms - 60_000, "enqueued_at": ms - 5_000 - i}
        r.lpush(f"queue:big{i:03d}", json.dumps(job))
        r.lpush(f"queue:big{i:03d}", json.dumps({"enqueued_at": ms}))  # newer jobs are not read
    scripted = reader(redis_server)
    scripted.read(["big000"])  # connected, so only a poll's bytes are counted
    before = scripted.connection.received
    snapshot = scripted.read()
    used = scripted.connection.received - before
    assert used < 64 * 1024
    now = time.time()
    for i, q in enumerate(snapshot.queues):
        # exactly the age at `now` of a job enqueued at ms - 5000 - i (not 5 s: pushing 25 MB takes a busy machine
        # more than half a second)
        assert q.size == 2 and latency(q.oldest, now) == pytest.approx(now - (ms - 5_000 - i) / 1000, abs=0.002)
    plain = reader(redis_server, scripts=False)
    plain.read(["big000"])
    before = plain.connection.received
    plain.read()
    assert plain.connection.received - before > 25 * 1024 * 1024  # what we avoid


def test_where_scripts_are_refused_it_falls_back_and_says_so_once(r, redis_server):
    r.execute_command("ACL", "SETUSER", "metrics", "on", ">reader-pass", "~*", "+@read", "+@connection",
                      "-@scripting")
    try:
        push(r, "default", job(time.time() - 2.0))
        url = f"redis://metrics:reader-pass@127.0.0.1:{redis_server.port}/0"
        proc = spawn(  # a loop of several polls, to see the notice only once
            "run", env={"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": "0.2"})
        time.sleep(1.5)
        proc.terminate()
        out, err = proc.communicate(timeout=5)
    finally:
        r.execute_command("ACL", "DELUSER", "metrics")
    assert err.count("Redis refuses our read-only Lua script (NOPERM") == 1, err
    assert "reading each queue's oldest job whole with LINDEX instead" in err
    assert "poll failed" not in err and "reader-pass" not in err
    measured = [parse_l2met(line) for line in out.splitlines() if ".latency=" in line]
    assert len(measured) >= 4
    assert all(2.0 <= float(m["sample#sidekiq.default.latency"]) < 4 for m in measured)



def test_a_passing_error_on_a_fresh_connection_never_turns_the_script_off(own_redis):
    """NOAUTH answers a fresh connection's first command while a password is being rotated in, say. It used
    to turn the script off for good, and the fallback then read whole jobs (a 100 MB job: 430 MB of RSS)."""
    admin = own_redis.client()
    push(admin, "default")
    said: list[str] = []
    ours = reader(own_redis, log=said.append)
    admin.config_set("requirepass", "rotating-pw")
    try:
        with pytest.raises(RedisError, match="NOAUTH"):
            ours.read()
    finally:
        redis.Redis(host="127.0.0.1", port=own_redis.port, password="rotating-pw").config_set("requirepass", "")
    assert ours.read().queues[0].name == "default"
    assert ours.scripts and said == []


def test_a_refused_script_is_offered_again_later_and_said_once(r, redis_server):
    r.execute_command("ACL", "SETUSER", "metrics", "on", ">reader-pass", "~*", "+@read", "+@connection",
                      "-@scripting")
    try:
        push(r, "default")
        said: list[str] = []
        url = f"redis://metrics:reader-pass@127.0.0.1:{redis_server.port}/0"
        ours = SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=5), log=said.append)  # our user
        ours.recheck_after = 0.2
        ours.read()
        assert not ours.scripts
        time.sleep(0.3)
        ours.read()  # offered again, refused again: not said again
        assert len(said) == 1 and "refuses our read-only Lua script (NOPERM" in said[0]
        r.execute_command("ACL", "SETUSER", "metrics", "+@scripting")
        time.sleep(0.3)
        assert ours.read().queues[0].size == 0
        assert ours.scripts and said[1:] == ["Redis runs our read-only Lua script again; reading only the stamps "
                                             "of each oldest job"]
    finally:
        r.execute_command("ACL", "DELUSER", "metrics")


def test_without_the_script_a_huge_oldest_job_is_dropped_unread_and_memory_stays_bounded(r, redis_server):
    """The LINDEX fallback read every oldest job whole: a 100 MB job cost 430 MB of RSS."""
    r.execute_command("ACL", "SETUSER", "metrics", "on", ">reader-pass", "~*", "+@read", "+@connection",
                      "-@scripting")
    try:
        r.sadd("queues", "huge", "small", "sidekiq_shaped")
        r.lpush("queue:huge", json.dumps({"enqueued_at": time.time() - 5, "args": ["x" * 50_000_000]}))
        r.lpush("queue:small", json.dumps({"enqueued_at": time.time() - 2}))
        r.lpush("queue:sidekiq_shaped", json.dumps({"class": "A", "args": ["x" * 20_000_000],  # as Sidekiq writes:
                                                    "enqueued_at": time.time() - 7}, separators=(",", ":")))
        url = f"redis://metrics:reader-pass@127.0.0.1:{redis_server.port}/0"
        measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, "
                   "text=True); print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
                   "print(done.stdout + done.stderr)")
        result = subprocess.run([sys.executable, "-c", measure, console_script(), "run", "--once"],
                                env=cli_env(REDIS_URL=url), capture_output=True, text=True, timeout=60)
    finally:
        r.execute_command("ACL", "DELUSER", "metrics")
    status, peak_kb = map(int, result.stdout.splitlines()[0].split())
    output = result.stdout.split("\n", 1)[1]
    assert status == 0, output
    assert peak_kb < 40_000, peak_kb  # not the 50 MB job (217 MB of RSS before), let alone copies of it
    measured = parse_l2met(output)
    assert measured["sample#sidekiq.huge.size"] == "1" and "sample#sidekiq.huge.latency" not in measured
    assert 2 <= float(measured["sample#sidekiq.small.latency"]) < 5
    assert 7 <= float(measured["sample#sidekiq.sidekiq_shaped.latency"]) < 10  # from the job's kept end
    assert "the oldest job is 50.0 MB and does not end as Sidekiq writes jobs: its latency is not read" in output


def test_a_large_oldest_job_is_read_with_lindex_not_scanned_inside_redis(own_redis):
    """Scanning a job inside Redis holds Redis about 1.4 ms a MB, while every other client waits; LINDEX
    holds it a fraction of that and moves the bytes instead. Above LARGE_JOB a queue is read with LINDEX
    (said once, naming the queue and the size), exactly, and back with the script once the job is gone."""
    client = own_redis.client()
    client.sadd("queues", "big", "small")
    client.lpush("queue:big", json.dumps({"class": "A", "args": ["x" * 5_000_000], "enqueued_at": time.time() - 4},
                                         separators=(",", ":")))
    client.lpush("queue:small", json.dumps({"enqueued_at": time.time() - 2}))
    said: list[str] = []
    ours = reader(own_redis, log=said.append)
    with monitored(own_redis) as seen:
        polls = [ours.read() for _ in range(3)]
        client.rpop("queue:big")
        client.lpush("queue:big", json.dumps({"enqueued_at": time.time() - 1}))
        polls += [ours.read() for _ in range(2)]
    now = time.time()
    for poll in polls[:3]:
        big = next(q for q in poll.queues if q.name == "big")
        assert big.problem is None and 4 <= latency(big.oldest, now) < 8
    assert 1 <= latency(next(q for q in polls[-1].queues if q.name == "big").oldest, now) < 4
    on_big = [c.split(" ", 1)[0].upper() for c in seen if "queue:big" in c and not c.startswith(("RPOP", "LPUSH"))]
    # Poll 1 scans it (and learns its size: MONITOR shows the script's own LLEN and LINDEX after EVALSHA);
    # polls 2 and 3 take it with LINDEX; poll 4 finds a small job there, so poll 5 scans it again.
    scanned, taken = ["EVALSHA", "LLEN", "LINDEX"], ["LLEN", "LINDEX"]
    assert on_big == scanned + taken * 3 + scanned, on_big
    assert said == ["queue 'big': its oldest job is 5.0 MB; reading it with LINDEX from now on (5.0 MB over the "
                    "network a poll) rather than inside Redis, which would hold Redis about 7 ms a poll"]


def test_a_script_call_that_stops_early_leaves_the_replies_after_it_in_step(r, redis_server):
    """Queues past the script's budget take one more round trip; the pipeline's replies after the queues (the
    processes' hashes, the paused set) are read before it, never taken for its own. (Its replies were taken for
    theirs: the poll hung until the timeout, or read a queue's reply as a process.)"""
    filler = "x" * (300 * 1024)
    for i in range(6):  # 1.8 MB of oldest jobs: past one call's budget
        r.sadd("queues", f"big{i}")
        r.lpush(f"queue:big{i}", json.dumps({"class": "A", "args": [filler], "enqueued_at": time.time() - 10}))
    r.sadd("processes", "worker.1:1:abc")
    r.hset("worker.1:1:abc", mapping={"busy": 0, "concurrency": 7, "info": json.dumps({"hostname": "worker.1"})})
    r.sadd("paused", "big3")
    for totals in (False, True):
        snapshot = reader(redis_server).read(totals=totals)
        assert [q.size for q in snapshot.queues] == [1] * 6 and snapshot.paused == {"big3"}
        if totals:
            assert [(p.identity, p.concurrency) for p in snapshot.totals.live] == [("worker.1:1:abc", 7)]
