"""Benchmark: the cost of a poll, to Redis and to the dyno, beside Sidekiq's own Ruby API.

    .venv/bin/python benchmarks/bench_poll.py [--queues 10000] [--runs 15]
    .venv/bin/python benchmarks/bench_poll.py --large-jobs    # only: the cost of a large oldest job, both ways
    .venv/bin/python benchmarks/bench_poll.py --shards        # only: 3 shards of --queues each against 1 shard
    .venv/bin/python benchmarks/bench_poll.py --running       # only: reading what the processes run (work hashes)

Not part of the test run (pytest collects tests/ only). It starts its own
redis-server on a free loopback port, seeds it the way Sidekiq writes jobs, and
prints one table: medians of several runs, with ratios measured in this same run.
Sidekiq's API is measured when Debian's ruby-sidekiq is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

from sidekiq_metrics.config import load_settings
from sidekiq_metrics.loop.poll import Poller
from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq.reader import SidekiqReader
from sidekiq_metrics.wiring import build_poller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' helpers, as `support`
from support.otlp_receiver import OtlpReceiver  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402

SCRIPT_ENTRY = Path(sys.executable).parent / "sidekiq-metrics"


def seed(r: redis.Redis, queues: int, jobs: int = 3) -> None:
    now = time.time()
    pipe = r.pipeline(transaction=False)
    for i in range(queues):
        name = f"queue{i:05d}"
        pipe.sadd("queues", name)
        for j in range(jobs):
            pipe.lpush(f"queue:{name}", json.dumps({
                "retry": True, "queue": name, "class": "HardJob", "args": [i, j], "jid": f"{i:012x}{j:012x}",
                "created_at": now - 60 + j, "enqueued_at": now - 60 + j}, separators=(",", ":")))
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def commandstats(r: redis.Redis) -> dict[str, dict]:
    return r.info("commandstats")


def server_usec(before: dict, after: dict, inside_scripts: tuple[str, ...] = ()) -> float:
    """Redis's time for the commands run between two INFO commandstats. Commands a script runs are
    counted both on their own and in the script's EVALSHA: name them in `inside_scripts`."""
    skip = {f"cmdstat_{c}" for c in ("info", "slowlog", "config|set", *inside_scripts)}
    return sum(after[k]["usec"] - before.get(k, {"usec": 0})["usec"] for k in after if k not in skip)


def measure_ours(url: str, runs: int, r: redis.Redis) -> dict:
    """A whole poll as the loop makes it (read, derive, render, write), output to /dev/null."""
    poller = build_poller(load_settings({"REDIS_URL": url}), open(os.devnull, "w"), sys.stderr)  # noqa: SIM115
    reader = poller.reader
    poller.poll()  # connected and the script loaded, as in the loop
    walls, servers, received = [], [], []
    r.config_set("slowlog-log-slower-than", 1000)  # every call over 1 ms is recorded with its duration
    r.config_set("slowlog-max-len", 100_000)
    r.slowlog_reset()
    for _ in range(runs):
        before, got = commandstats(r), reader.connection.received
        start = time.perf_counter()
        assert poller.poll()
        walls.append(time.perf_counter() - start)
        servers.append(server_usec(before, commandstats(r), inside_scripts=("llen", "lindex")) / 1e6)
        received.append(reader.connection.received - got)
    ours_calls = [(e["duration"], e["command"].split(b" ", 1)[0].decode()) for e in r.slowlog_get(100_000)
                  if e["command"].split(b" ", 1)[0].upper() not in (b"INFO", b"SLOWLOG", b"CONFIG")]
    longest, longest_name = max(ours_calls, default=(0, "-"))
    r.config_set("slowlog-log-slower-than", 10_000)
    return {"wall": statistics.median(walls), "server": statistics.median(servers),
            "bytes": statistics.median(received), "longest_call": longest / 1e6, "longest_name": longest_name}


def measure_floor(r: redis.Redis, runs: int) -> float:
    """Redis's own time for SMEMBERS plus LLEN and LINDEX -1 of every queue (INFO commandstats)."""
    names = sorted(r.smembers("queues"))
    times = []
    for _ in range(runs):
        before = commandstats(r)
        r.smembers("queues")
        pipe = r.pipeline(transaction=False)
        for name in names:
            pipe.llen(b"queue:" + name).lindex(b"queue:" + name, -1)
        pipe.execute()
        times.append(server_usec(before, commandstats(r)) / 1e6)
    return statistics.median(times)


def measure_naive(r: redis.Redis, runs: int) -> float:
    """A plain redis-py pipeline with json.loads per queue: what a first Python port does."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        names = r.smembers("queues")
        pipe = r.pipeline(transaction=False)
        for name in names:
            pipe.llen(b"queue:" + name).lindex(b"queue:" + name, -1)
        replies = pipe.execute()
        for job in replies[1::2]:
            if job:
                json.loads(job)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


SIDEKIQ_API = """
require "sidekiq/api"
Sidekiq.configure_client { |c| c.redis = { url: ENV.fetch("REDIS_URL") } }
Sidekiq::Queue.all.each { |q| q.size; q.latency } # warm, as ours is
times = Integer(ENV.fetch("RUNS")).times.map do
  t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  Sidekiq::Queue.all.each { |q| q.size; q.latency }
  Process.clock_gettime(Process::CLOCK_MONOTONIC) - t
end
hwm = File.read("/proc/self/status")[/VmHWM:\\s+(\\d+)/, 1].to_i
puts({ "median" => times.sort[times.size / 2], "rss_kb" => hwm }.to_json)
"""


def measure_sidekiq(url: str, runs: int) -> dict | None:
    if not shutil.which("ruby") or subprocess.run(["ruby", "-e", "require 'sidekiq/api'"],
                                                  capture_output=True).returncode:
        return None
    out = subprocess.run(["ruby", "-rjson", "-e", SIDEKIQ_API], env={**os.environ, "REDIS_URL": url, "RUNS": str(runs)},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# The kernel's peak RSS of a child counts the pages it shared with its parent between fork and
# exec, so the child is started by a small helper process, not by this (large) benchmark.
PEAK_RSS_HELPER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss if os.waitstatus_to_exitcode(status) == 0 else -1)
"""


def peak_rss_once(url: str, **env: str) -> float:
    """Peak RSS (MB) of `sidekiq-metrics run --once`, from the kernel's accounting of that process."""
    out = subprocess.run([sys.executable, "-I", "-c", PEAK_RSS_HELPER, str(SCRIPT_ENTRY), "run", "--once"],
                         env={**os.environ, "REDIS_URL": url, **env}, capture_output=True, text=True, check=True)
    kb = int(out.stdout)
    assert kb > 0, "run --once failed"
    return kb / 1024


def first_line_seconds(url: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen([str(SCRIPT_ENTRY), "run", "--once"], env={**os.environ, "REDIS_URL": url},
                                stdout=subprocess.PIPE)
        proc.stdout.readline()
        times.append(time.perf_counter() - start)
        proc.wait()
    return statistics.median(times)


def rss_kb(pid: int) -> int:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])


def rss_growth_over_polls(url: str, polls: int) -> tuple[float, float]:
    """RSS (MB) after 1,000 polls and its growth by poll `polls`, polling back to back."""
    proc = subprocess.Popen([str(SCRIPT_ENTRY), "run", "--interval", "0.0005"], env={**os.environ, "REDIS_URL": url},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    seen, at_1000 = 0, 0
    for line in proc.stdout:
        if b"metrics.up=1" in line:
            seen += 1
            if seen == 1000:
                at_1000 = rss_kb(proc.pid)
            if seen == polls:
                break
    end = rss_kb(proc.pid)
    proc.terminate()
    proc.wait()
    return at_1000 / 1024, (end - at_1000) / 1024


def big_jobs_bytes(url: str, r: redis.Redis) -> tuple[float, float]:
    """Bytes per poll with 100 queues whose oldest job is 256 KB: ours, and reading the jobs whole."""
    r.flushall()
    filler = "x" * (256 * 1024)
    for i in range(100):
        r.sadd("queues", f"big{i}")
        r.lpush(f"queue:big{i}", json.dumps({"class": "Sidekiq::ActiveJob::Wrapper", "args": [{"blob": filler}],
                                             "enqueued_at": time.time()}))
    results = []
    for scripts in (True, False):
        reader = SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=10), scripts=scripts)
        reader.read(totals=True)
        got = reader.connection.received
        reader.read(totals=True)
        results.append(reader.connection.received - got)
    return results[0], results[1]


def large_job_costs(url: str, r: redis.Redis, sizes_mb: tuple[int, ...] = (1, 5, 20), runs: int = 5) -> list[tuple]:
    """For one queue whose oldest job (as Sidekiq writes it) weighs N MB: Redis's time to scan it inside
    our script, and to hand it over with LINDEX; then what our poll does from its second read on (the
    script for jobs up to LARGE_JOB, LINDEX above): its Redis time and the bytes it moves."""
    from sidekiq_metrics.sidekiq.queue_scan import SCRIPT as QUEUE_SCAN

    rows = []
    for mb in sizes_mb:
        r.flushall()
        sha = r.script_load(QUEUE_SCAN)
        r.sadd("queues", "big")
        r.lpush("queue:big", json.dumps({"class": "A", "args": ["x" * (mb * 1_000_000)],
                                         "enqueued_at": time.time()}, separators=(",", ":")))
        script, lindex = [], []
        for _ in range(runs):
            before = commandstats(r)
            r.evalsha(sha, 1, "queue:big", 1 << 30, 1 << 30)  # scan it, whatever its size
            script.append(server_usec(before, commandstats(r), ("llen", "lindex")))
            before = commandstats(r)
            r.lindex("queue:big", -1)
            lindex.append(server_usec(before, commandstats(r)))
        reader = SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=30))
        reader.read()  # the first read learns the job's size
        before, got = commandstats(r), reader.connection.received
        for _ in range(runs):
            reader.read()
        after = commandstats(r)
        scanned = after.get("cmdstat_evalsha", {}).get("calls", 0) > before.get("cmdstat_evalsha", {}).get("calls", 0)
        ours_usec = server_usec(before, after, ("llen", "lindex") if scanned else ()) / runs
        ours_bytes = (reader.connection.received - got) / runs
        rows.append((mb, statistics.median(script) / 1000, statistics.median(lindex) / 1000, ours_usec / 1000,
                     ours_bytes))
    return rows


def print_large_jobs(rows: list[tuple]) -> None:
    print("\n# one queue whose oldest job weighs N MB: Redis's time (ms, median of 5) and bytes per poll")
    print(f"{'N MB':>5}  {'script scan':>11}  {'LINDEX':>7}  {'our poll':>8}  {'our bytes':>10}  "
          "per MB: script / LINDEX")
    for mb, script, lindex, ours, moved in rows:
        print(f"{mb:>5}  {script:>9.2f}ms  {lindex:>5.2f}ms  {ours:>6.2f}ms  {moved / 1e6:>8.2f}MB  "
              f"{script / mb:.2f} / {lindex / mb:.2f} ms")


def seed_job_metrics(r: redis.Redis, classes: int, minute: int) -> None:
    """One minute of Sidekiq 8's execution metrics for `classes` job classes, as its tracker writes them."""
    from sidekiq_metrics.sidekiq.job_metrics import histogram_keys, minute_keys

    pipe = r.pipeline(transaction=False)
    key = minute_keys(minute)[1]
    for i in range(classes):
        name = f"App::Jobs::Class{i:04d}Job".encode()
        pipe.hincrby(key, name + b"|p", 100 + i)
        pipe.hincrby(key, name + b"|f", i % 7)
        pipe.hincrby(key, name + b"|ms", 5000 + 37 * i)
        pipe.execute_command("BITFIELD", histogram_keys(name, minute)[1], "OVERFLOW", "SAT",
                             "INCRBY", "u16", "#3", 60, "INCRBY", "u16", "#9", 30, "INCRBY", "u16", f"#{i % 26}", 5)
    pipe.execute()


def job_metrics_costs(url: str, r: redis.Redis, runs: int) -> list[tuple[int, float, float, float, int]]:
    """A whole poll of the queues already seeded, with job metrics: when no minute completes, and when one
    does with 50 or 500 classes. Per count: (classes, ms without, ms with a minute, extra ms, extra bytes)."""
    from sidekiq_metrics.sidekiq.job_metrics import GRACE, JobMetricsReader

    minute = int(time.time() // 60) - 30
    out = []
    for classes in (50, 500):
        clear_job_metrics(r)
        seed_job_metrics(r, classes, minute)
        quiet, busy, extra = [], [], []
        for _ in range(runs):
            reader = SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=10), jobs=JobMetricsReader())
            reader.read(None, totals=True, clock=lambda: minute * 60 + GRACE + 1)  # primed: the plan, minute 0
            start = time.perf_counter()
            received = reader.connection.received
            reader.read(None, totals=True, clock=lambda: minute * 60 + GRACE + 2)  # nothing complete
            quiet.append(time.perf_counter() - start)
            base = reader.connection.received - received
            start = time.perf_counter()
            received = reader.connection.received
            reader.read(None, totals=True, clock=lambda: (minute + 1) * 60 + GRACE + 1)  # the minute completes
            busy.append(time.perf_counter() - start)
            extra.append(reader.connection.received - received - base)
        q, b = statistics.median(quiet), statistics.median(busy)
        out.append((classes, q * 1000, b * 1000, (b - q) * 1000, int(statistics.median(extra))))
    clear_job_metrics(r)
    return out


def clear_job_metrics(r: redis.Redis) -> None:
    """The benchmark's own keys, listed to delete them (the emitter never lists keys)."""
    keys = r.keys("j|*") + r.keys("h|*")
    if keys:
        r.delete(*keys)


def shard_costs(queues: int, runs: int) -> None:
    """A whole poll of three shards of `queues` queues each (three redis-servers, the same data and so the same
    bytes per shard) against a poll of one of them alone: in rounds, side by side, the ratio taken per round."""
    servers = [RedisServer().start() for _ in range(3)]
    try:
        for server in servers:
            seed(server.client(), queues)
        env = {"REDIS_URL": servers[0].url, "SHARD_B": servers[1].url, "SHARD_C": servers[2].url}
        one = build_poller(load_settings(env), open(os.devnull, "w"), sys.stderr)  # noqa: SIM115
        three = build_poller(load_settings({**env, "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,b:SHARD_B,c:SHARD_C"}),
                       open(os.devnull, "w"), sys.stderr)  # noqa: SIM115
        assert one.poll() and three.poll()  # connected and the script loaded, as in the loop
        received = [s.reader.connection.received for s in three.shards]
        assert three.poll()
        per_shard = [s.reader.connection.received - before for s, before in zip(three.shards, received, strict=True)]

        def timed(poller: Poller) -> tuple[float, float, float]:
            """Wall time, this process's CPU time, and the Redis servers' time, of one poll."""
            before = [commandstats(server.client()) for server in servers]
            start, cpu = time.perf_counter(), time.process_time()
            assert poller.poll()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            redis_time = sum(server_usec(b, commandstats(server.client()), inside_scripts=("llen", "lindex"))
                             for b, server in zip(before, servers, strict=True)) / 1e6
            return wall, cpu, redis_time

        rounds = []
        for _ in range(5):
            a = [timed(one) for _ in range(runs)]
            b = [timed(three) for _ in range(runs)]
            rounds.append(tuple(statistics.median(x[i] for x in side) for side in (a, b) for i in range(3)))
    finally:
        for server in servers:
            server.cleanup()

    def median(i: int) -> float:
        return statistics.median(r[i] for r in rounds)

    cores = os.cpu_count() or 1
    print(f"# {platform.processor() or platform.machine()}, {cores} cores, Python {platform.python_version()}; "
          f"{queues} queues of 3 jobs a shard, each shard its own redis-server on this machine; 5 rounds of {runs} "
          "polls each way, medians")
    print("                    wall      our CPU   Redis time")
    print(f"poll of 1 shard   {median(0) * 1000:7.1f} ms {median(1) * 1000:7.1f} ms {median(2) * 1000:7.1f} ms")
    print(f"poll of 3 shards  {median(3) * 1000:7.1f} ms {median(4) * 1000:7.1f} ms {median(5) * 1000:7.1f} ms")
    ratios = [r[3] / r[0] for r in rounds]
    print(f"3 shards / 1 shard, wall: {statistics.median(ratios):.2f}x (per round: "
          f"{', '.join(f'{x:.2f}' for x in ratios)}; target <= 1.5x)")
    # Three times the work of one shard, ours and Redis's, shares this machine's cores: no schedule does better.
    floor = [max(r[4], (3 * (r[1] + r[2])) / cores) / r[0] for r in rounds]
    print(f"the least any reader could take here: {statistics.median(floor):.2f}x (3 x (our CPU + Redis time) / "
          f"{cores} cores, or our own CPU if more)")
    print(f"bytes Redis sends a poll: {', '.join(f'{b / 1024:.0f} KB' for b in per_shard)} (each shard)")


def running_costs(runs: int) -> None:
    """What reading the processes' work hashes costs, by running jobs' size: bytes a poll (our script, and HGETALL
    where scripts are refused) and Redis's longest single call, median and worst of `runs` polls."""
    server = RedisServer().start()
    try:
        r = server.client()
        print("| processes x threads | job args | bytes/poll, script | bytes/poll, HGETALL | Redis's time a poll | "
              "longest call (median, worst) |\n|---|---|---|---|---|---|")
        # 100 processes of 1 MB jobs would hold 2.5 GB in Redis: more than this machine has to spare.
        for processes, threads, size in ((10, 25, 2_000), (10, 25, 30_000), (10, 25, 1_000_000), (100, 25, 2_000),
                                         (100, 25, 30_000)):
            r.flushall()
            r.sadd("queues", "default")
            now = int(time.time())
            for p in range(processes):
                identity = f"worker.{p}:1:abc"
                r.sadd("processes", identity)
                r.hset(identity, mapping={"busy": threads, "info": json.dumps({"hostname": f"worker.{p}"})})
                payload = json.dumps({"class": "HardJob", "args": ["x" * size], "jid": "a" * 24})
                r.hset(f"{identity}:work", mapping={f"t{t}": json.dumps(
                    {"queue": "default", "payload": payload, "run_at": now - t}) for t in range(threads)})
            reader = SidekiqReader(Connection(parse_redis_url(server.url, "url"), timeout=30))
            reader.read(totals=True)
            longest, held = [], []
            # Calls over 0.5 ms are logged with their duration (logging every one would slow the script: Redis
            # logs the commands a script runs too); a poll with none counts 0.5 ms.
            r.config_set("slowlog-log-slower-than", 500)
            r.config_set("slowlog-max-len", 100_000)
            for _ in range(runs):
                r.slowlog_reset()
                before = commandstats(r)
                reader.read(totals=True)
                held.append(server_usec(before, commandstats(r), ("hkeys", "hstrlen", "hget", "llen", "lindex")))
                longest.append(max((e["duration"] for e in r.slowlog_get(100_000)
                                    if e["command"].upper().startswith(b"EVALSHA")), default=500))
            received = []
            for scripts in (True, False):
                reader = SidekiqReader(Connection(parse_redis_url(server.url, "url"), timeout=30), scripts=scripts)
                reader.read(totals=True)
                got = reader.connection.received
                reader.read(totals=True)
                received.append(reader.connection.received - got)
            print(f"| {processes} x {threads} | {size / 1000:g} KB | {received[0] / 1000:.1f} KB | "
                  f"{received[1] / 1e6:.2f} MB | {statistics.median(held) / 1000:.1f} ms | "
                  f"{statistics.median(longest) / 1000:.2f} ms, "
                  f"{max(longest) / 1000:.2f} ms |")
    finally:
        server.cleanup()


# What running.OUTSIDE is chosen from: a script that copies one hash value (HGET inside the script) and keeps its
# two ends, as reading a record's queue and run_at from its ends would have to. HSTRLEN, what the script does instead
# for a record over the limit, beside it.
_COPY_ENDS = "local v = redis.call('HGET', KEYS[1], ARGV[1]) return {string.sub(v, 1, 64), string.sub(v, -48)}"
_LENGTH = "return redis.call('HSTRLEN', KEYS[1], ARGV[1])"


def record_copy_costs(runs: int) -> None:
    """Redis's time (SLOWLOG, every call logged) of copying one work record of 0.5 to 16 MiB into a script, and of
    HSTRLEN of it; median and worst of `runs` calls each."""
    server = RedisServer().start()
    try:
        r = server.client()
        r.config_set("slowlog-log-slower-than", 0)
        print("| record | HGET inside the script, median / worst | HSTRLEN, median / worst |\n|---|---|---|")
        scripts = [r.script_load(_COPY_ENDS), r.script_load(_LENGTH)]
        for mib in (0.5, 1, 2, 5, 16):
            r.hset("w:work", "t", b'{"queue":"default","payload":"' + b"x" * int(mib * (1 << 20)) +
                   b'","run_at":1733600000}')
            cells = []
            for sha in scripts:
                took = []
                for _ in range(runs):
                    r.slowlog_reset()
                    r.evalsha(sha, 1, "w:work", "t")
                    took.append(next(e["duration"] for e in r.slowlog_get(10)
                                     if e["command"].upper().startswith(b"EVALSHA")))
                cells.append(f"{statistics.median(took) / 1000:.2f} / {max(took) / 1000:.2f} ms")
            print(f"| {mib:g} MiB | {cells[0]} | {cells[1]} |")
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--large-jobs", action="store_true", help="only the large-oldest-job table")
    parser.add_argument("--shards", action="store_true", help="only: 3 shards against 1, each of --queues queues")
    parser.add_argument("--running", action="store_true", help="only: the cost of reading what processes run")
    parser.add_argument("--record-copy", action="store_true",
                        help="only: Redis's time of copying one large work record into a script")
    args = parser.parse_args()
    if args.record_copy:
        record_copy_costs(args.runs)
        return
    if args.running:
        running_costs(args.runs)
        return
    if args.shards:
        shard_costs(args.queues, args.runs)
        return
    if args.large_jobs:
        server = RedisServer().start()
        try:
            print_large_jobs(large_job_costs(server.url, server.client()))
        finally:
            server.cleanup()
        return

    server = RedisServer().start()
    try:
        r = server.client()
        version = r.info("server")["redis_version"]
        seed(r, args.queues)
        # This machine's speed drifts from minute to minute, so ours, the floor and Sidekiq's API are
        # measured in rounds, side by side, and the ratios are taken within each round.
        rounds = []
        for _ in range(3):
            ours = measure_ours(server.url, args.runs, r)
            floor = measure_floor(r, args.runs)
            ruby = measure_sidekiq(server.url, 1)
            rounds.append((ours, floor, ruby))
        ours = {k: statistics.median(o[k] for o, _, _ in rounds) for k in ("wall", "server", "bytes")}
        ours["longest_call"], ours["longest_name"] = max((o["longest_call"], o["longest_name"]) for o, _, _ in rounds)
        floor = statistics.median(f for _, f, _ in rounds)
        floor_ratio = statistics.median(o["wall"] / f for o, f, _ in rounds)
        ruby = None
        if rounds[0][2]:
            ruby = {"median": statistics.median(x["median"] for _, _, x in rounds),
                    "rss_kb": max(x["rss_kb"] for _, _, x in rounds),
                    "ratio": statistics.median(x["median"] / o["wall"] for o, _, x in rounds)}
        naive = measure_naive(r, max(3, args.runs // 3))
        jobs = job_metrics_costs(server.url, r, max(5, args.runs // 2))
        receiver = OtlpReceiver()  # the otlp output's cost, against a real receiver on loopback
        otlp = {"SIDEKIQ_METRICS_OUTPUT": "l2met,otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        rss_many = statistics.median(peak_rss_once(server.url) for _ in range(3))
        rss_many_otlp = statistics.median(peak_rss_once(server.url, **otlp) for _ in range(3))
        r.flushall()
        seed(r, 1)
        rss_one = statistics.median(peak_rss_once(server.url) for _ in range(3))
        rss_one_otlp = statistics.median(peak_rss_once(server.url, **otlp) for _ in range(3))
        assert len(receiver.requests) == 6 and not receiver.refused, "the otlp output did not export"
        receiver.close()
        first_line = first_line_seconds(server.url, 5)
        rss_after_1000, growth = rss_growth_over_polls(server.url, 10_000)
        big_ours, big_whole = big_jobs_bytes(server.url, r)
        large = large_job_costs(server.url, r)
    finally:
        server.cleanup()

    ms = 1000
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, redis-server {version}; {args.queues} queues of 3 jobs; "
          f"3 rounds of {args.runs} polls, medians")
    rows = [("poll, wall time (ours)", f"{ours['wall'] * ms:.1f} ms", "")]
    if ruby:
        rows.append(("poll, Sidekiq::Queue.all size+latency (Ruby)", f"{ruby['median'] * ms:.1f} ms",
                     f"ours is {ruby['ratio']:.0f}x faster (target >= 40x)"))
    rows += [
        ("poll, redis-py pipeline + json.loads", f"{naive * ms:.1f} ms", f"ours is {naive / ours['wall']:.1f}x faster"),
        ("Redis floor: SMEMBERS + LLEN + LINDEX -1 (server time)", f"{floor * ms:.1f} ms",
         f"ours = {floor_ratio:.1f}x the floor (target <= 8x)"),
        ("Redis time of our poll (server time)", f"{ours['server'] * ms:.1f} ms",
         f"{ours['server'] / floor:.1f}x the floor"),
        ("longest single command or script call of ours", f"{ours['longest_call'] * ms:.2f} ms",
         f"{ours['longest_name']} (target <= 5 ms; 0: none took 1 ms)"),
        ("bytes Redis sends per poll", f"{ours['bytes'] / 1024:.0f} KB", ""),
        ("bytes per poll, 100 queues with 256 KB oldest jobs", f"{big_ours / 1024:.1f} KB",
         f"reading them whole: {big_whole / 1024 / 1024:.1f} MB (target < 64 KB)"),
        ("peak RSS, run --once, 1 queue", f"{rss_one:.1f} MB", "target <= 30 MB"),
        (f"peak RSS, run --once, {args.queues} queues", f"{rss_many:.1f} MB", "target <= 40 MB"),
        ("peak RSS, run --once, l2met + otlp, 1 queue", f"{rss_one_otlp:.1f} MB", f"{rss_one_otlp - rss_one:+.1f} MB"),
        (f"peak RSS, run --once, l2met + otlp, {args.queues} queues", f"{rss_many_otlp:.1f} MB",
         f"{rss_many_otlp - rss_many:+.1f} MB"),
        ("RSS growth from poll 1,000 to 10,000 (1 queue)", f"{growth * 1024:+.0f} KB",
         f"at poll 1,000: {rss_after_1000:.1f} MB (target < 1 MB growth)"),
        ("first line after process start", f"{first_line * ms:.0f} ms", "target <= 300 ms"),
    ]
    if ruby:
        rows.append(("peak RSS, the Ruby API poll", f"{ruby['rss_kb'] / 1024:.1f} MB", ""))
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    print_large_jobs(large)
    print(f"\n# job-class metrics: a whole poll of the {args.queues} queues (ms, median), when no minute completes "
          "and when one does; the extra bytes Redis sends for it")
    print(" classes  no minute  a minute  extra ms  extra bytes")
    for classes, quiet, busy, extra, extra_bytes in jobs:
        print(f"{classes:>8}  {quiet:>9.1f}  {busy:>8.1f}  {extra:>8.1f}  {extra_bytes / 1024:>9.1f} KB")


if __name__ == "__main__":
    main()
