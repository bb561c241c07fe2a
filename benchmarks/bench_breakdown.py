"""Benchmark: what the breakdowns (sidekiq/breakdown.py) cost Redis, at two sizes, on redis-server and Valkey 8.

    .venv/bin/python benchmarks/bench_breakdown.py [--sizes 10000,100000] [--runs 5] [--servers redis,valkey]
    .venv/bin/python benchmarks/bench_breakdown.py --small       # jobs of about 250 bytes
    .venv/bin/python benchmarks/bench_breakdown.py --poll-against cf2a8c7 [--runs 5]   # only: the poll, A/B
    .venv/bin/python benchmarks/bench_breakdown.py --costs [--runs 7]   # only: a call over large and dense jobs

Not part of the test run. For each server and size it starts a server of its own on a loopback port, seeds a
retry set and one queue with `size` jobs of about 2 KB each (as Sidekiq writes them: ActiveJob-wrapped, several
classes, failed with an error class), and takes whole passes of both breakdowns through our reader, as polls do
(at most breakdown.ROUNDS round trips of calls a poll). Redis's own time for each call of our script is read from
SLOWLOG (threshold 0). Prints, per server and size: calls per pass, polls per pass, and each call's Redis time
over `runs` passes: the median of the runs' medians, the 99th percentile and the worst of every call, how many
calls took over 5 ms, and, as a control, the worst of every other command Redis ran meanwhile (SLOWLOG's time is
wall time: on a shared machine a preempted server makes any command look slow, a one-key read included); then
Redis's own CPU time for each call of one more pass over the retry set (INFO cpu, main thread), which holds no
other process's turn on the CPU.

`--costs`: Redis's time (INFO commandstats, and its main thread's CPU) of one call over a retry set of one job of
1, 4 and 16 MB (Redis copies each job into the script whole: what no budget can cut), and Redis's CPU a call over
3,000 jobs of 2 KB of three shapes (one long string, [id, quantity] pairs, a list nested 400 deep), the median and
the worst of `runs`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from sidekiq_metrics.redis.resp import Connection
from sidekiq_metrics.redis.target import parse_redis_url
from sidekiq_metrics.sidekiq import breakdown
from sidekiq_metrics.sidekiq.breakdown import SHA, Breakdowns
from sidekiq_metrics.sidekiq.reader import SidekiqReader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' helpers, as `support`
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_poll's seeding
from support.redis_server import RedisServer  # noqa: E402

REFERENCE_VALKEY = Path(__file__).resolve().parents[2] / "shared" / "reference-valkey"
WRAPPER = "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"


def payload(i: int, now: float, small: bool = False) -> str:
    """About 2 KB: an ActiveJob job of one of 7 classes, with its arguments and a failure's fields; `small`: about
    250 bytes, a plain Sidekiq job of one of 7 classes, failed."""
    job_class = f"Billing::Job{i % 7}"
    if small:
        return json.dumps({"retry": True, "queue": "default", "class": job_class, "args": [i, "ok"],
                           "jid": f"{i:024x}", "created_at": now - 3600, "enqueued_at": now - 3600,
                           "error_message": "declined", "error_class": f"Billing::Error{i % 3}",
                           "failed_at": now - 3600 + i % 100, "retry_count": 1}, separators=(",", ":"))
    return json.dumps({
        "retry": True, "queue": "default", "class": WRAPPER, "wrapped": job_class,
        "args": [{"job_class": job_class, "job_id": f"{i:036d}", "queue_name": "default", "priority": None,
                  "arguments": [{"account_id": i, "note": "x" * 1500, "_aj_symbol_keys": []}],
                  "executions": 0, "locale": "en", "enqueued_at": "2026-12-07T20:00:00.000000Z"}],
        "jid": f"{i:024x}", "created_at": now - 3600, "enqueued_at": now - 3600, "error_message": "declined",
        "error_class": f"Billing::Error{i % 3}", "failed_at": now - 3600 + i % 100, "retry_count": 1,
    }, separators=(",", ":"))


def seed(r: redis.Redis, size: int, small: bool = False) -> int:
    now = time.time()
    pipe = r.pipeline(transaction=False)
    total = 0
    for i in range(size):
        job = payload(i, now, small)
        total += len(job)
        pipe.zadd("retry", {job: now + i})
        pipe.lpush("queue:default", job)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.sadd("queues", "default")
    pipe.execute()
    return total // size


def one_pass(url: str, r: redis.Redis) -> tuple[int, int, list[float], list[float]]:
    """Polls until both breakdowns have a pass that began at the first: (polls, calls, µs of each call, µs of each
    other command of those polls: the control, as a shared machine's scheduling delays any command alike)."""
    tallies = Breakdowns(b"", frozenset({"retries", "queues"}), max_size=10**9, queue_count=1)
    reader = SidekiqReader(Connection(parse_redis_url(url, "url"), timeout=30), breakdowns=tallies)
    r.slowlog_reset()
    start = time.time()
    polls, done = 0, {}  # the first poll begins both passes (the queue's once its size is read)
    while not {"retries", "queues"} <= done.keys():
        polls += 1
        done = {b.kind: b for b in reader.read(["default"]).breakdowns if b.started >= start}
    entries = r.slowlog_get(10**6)
    mine = [e["command"].startswith(b"EVALSHA " + SHA.encode()) for e in entries]
    ours = [e["duration"] for e, m in zip(entries, mine, strict=True) if m]
    others = [e["duration"] for e, m in zip(entries, mine, strict=True) if not m]
    reader.connection.close()
    return polls, sum(b.calls for b in done.values()), ours, others


POLL_TIMING = """
import os, statistics, sys, time
from sidekiq_metrics.config import load_settings
from sidekiq_metrics.wiring import build_poller
poller = build_poller(load_settings({"REDIS_URL": sys.argv[1]}), open(os.devnull, "w"), sys.stderr)
for _ in range(3):
    poller.poll()  # connected, the scripts loaded, the passes of the breakdowns begun
walls = []
for _ in range(15):
    start = time.perf_counter()
    assert poller.poll()
    walls.append(time.perf_counter() - start)
print(statistics.median(walls))
"""


def poll_against(commit: str, runs: int) -> None:
    """The 10,000-queue poll of bench_poll.py, default settings, of `commit`'s code and of this checkout's,
    alternating in `runs` rounds of 15 polls each (each in a process of its own, the same Redis)."""
    from bench_poll import seed as seed_queues  # the same 10,000 queues of 3 jobs as bench_poll.py

    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as base:
        archive = subprocess.run(["git", "-C", str(here), "archive", commit, "sidekiq_metrics"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        server = RedisServer().start()
        try:
            seed_queues(server.client(), 10_000)
            medians: dict[str, list[float]] = {commit: [], "this checkout": []}
            for _ in range(runs):
                for name, path in ((commit, base), ("this checkout", str(here))):
                    out = subprocess.run([sys.executable, "-c", POLL_TIMING, server.url], check=True,
                                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
                    medians[name].append(float(out.stdout) * 1000)
        finally:
            server.cleanup()
    print("| code | poll of 10,000 queues, median of each round's median | rounds |")
    print("|---|---|---|")
    for name, values in medians.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {statistics.median(values):.1f} ms | {rounds} |")


def cpu_per_call(r: redis.Redis) -> list[float]:
    """Redis's own CPU time (µs, its main thread's user + system time from INFO cpu, less what INFO itself costs)
    for each call of one pass over the retry set: unlike SLOWLOG's wall time, no other process's turn on the CPU
    is in it."""
    def cpu() -> float:
        info = r.info("cpu")
        return (float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])) * 1e6

    r.script_load(breakdown.SCRIPT)
    idle = []
    for _ in range(50):
        before = cpu()
        idle.append(cpu() - before)
    info_cost = statistics.median(idle)
    spent, cursor = [], breakdown.START
    while True:
        command = breakdown.call("retries", [b"retry"], 10**9, True, cursor)
        before = cpu()
        reply = r.execute_command(*command)
        spent.append(max(0.0, cpu() - before - info_cost))
        part = breakdown.parse(reply)[0]
        if part.done != 0:
            return spent
        cursor = part.cursor


def costs(runs: int) -> None:
    """One call over one large job, and calls over jobs of dense shapes (see the module's doc)."""
    server = RedisServer().start()
    try:
        r = server.client()

        def cpu_ms() -> float:
            info = r.info("cpu")
            return (float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])) * 1000

        print("| jobs in the retry set | Redis time a call (commandstats), median | worst | CPU a call, median | "
              "worst |")
        print("|---|---|---|---|---|")
        for label, jobs in [(f"one of {mb} MB", [["x" * (mb << 20)]]) for mb in (1, 4, 16)] + [
                ("3,000 of 2 KB: one string", [["x" * 1900]] * 3000),
                ("3,000 of 2 KB: [id, quantity] pairs", [[[i, 1] for i in range(10, 280)]] * 3000),
                ("3,000 of 2 KB: a list nested 400 deep", [json.loads("[" * 400 + "1" + "]" * 400)] * 3000)]:
            r.flushall()
            pipe = r.pipeline(transaction=False)
            for i, args in enumerate(jobs):
                pipe.zadd("retry", {json.dumps({"class": "ImportJob", "jid": f"{i:024x}", "args": args,
                                                "error_class": "E", "failed_at": 1}, separators=(",", ":")): i})
            pipe.execute()
            r.script_load(breakdown.SCRIPT)
            walls, cpus = [], []
            for _ in range(runs):
                r.config_resetstat()
                before = cpu_ms()
                r.execute_command(*breakdown.call("retries", [b"retry"], 10**9, True, breakdown.START))
                cpus.append(cpu_ms() - before)
                walls.append(r.info("commandstats")["cmdstat_evalsha"]["usec"] / 1000)
            print(f"| {label} | {statistics.median(walls):.1f} ms | {max(walls):.1f} ms | "
                  f"{statistics.median(cpus):.1f} ms | {max(cpus):.1f} ms |", flush=True)
    finally:
        server.cleanup()


def valkey_binary() -> str:
    target = Path(tempfile.gettempdir()) / "bench-valkey"
    subprocess.run(["bash", str(REFERENCE_VALKEY / "setup.sh"), str(target)], check=True, capture_output=True)
    return str(target / "bin" / "valkey-server")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--servers", default="redis,valkey")
    parser.add_argument("--small", action="store_true", help="jobs of about 250 bytes rather than 2 KB")
    parser.add_argument("--poll-against", metavar="COMMIT", help="only: the 10,000-queue poll, COMMIT's and ours")
    parser.add_argument("--costs", action="store_true", help="only: a call over large jobs and dense ones")
    args = parser.parse_args()
    if args.costs:
        costs(args.runs)
        return
    if args.poll_against:
        poll_against(args.poll_against, args.runs)
        return
    print(f"budget a call: {breakdown.BUDGET // 1024} KB of work (bytes, and a weight per JSON value) or "
          f"{breakdown.ENTRIES} jobs; at most {breakdown.ROUNDS} calls a breakdown a poll")
    print("| server | jobs in the set and the queue | job size | calls a pass (both) | polls a pass | "
          "call, median | p99 | worst | calls over 5 ms | worst other command | CPU a call, median | CPU, worst |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in args.servers.split(","):
        binary = "redis-server" if kind == "redis" else valkey_binary()
        if kind == "redis" and not shutil.which(binary):
            raise SystemExit("redis-server is not installed")
        for size in map(int, args.sizes.split(",")):
            server = RedisServer(binary=binary).start()
            try:
                r = server.client()
                r.config_set("slowlog-log-slower-than", 0)
                r.config_set("slowlog-max-len", 1_000_000)
                version = r.info("server").get("valkey_version") or r.info("server")["redis_version"]
                job = seed(r, size, args.small)
                runs = [one_pass(server.url, r) for _ in range(args.runs)]
                cpu = sorted(cpu_per_call(r))
            finally:
                server.cleanup()
            every = sorted(d for run in runs for d in run[2])
            medians = [statistics.median(run[2]) for run in runs]
            p99 = every[int(len(every) * 0.99)]
            over = sum(1 for d in every if d > 5000)
            control = max(d for run in runs for d in run[3])
            polls = sorted({run[0] for run in runs})
            calls = sorted({run[1] for run in runs})
            print(f"| {kind} {version} | {size:,} | {job:,} B | {'-'.join(map(str, calls))} | "
                  f"{'-'.join(map(str, polls))} | {statistics.median(medians) / 1000:.2f} ms | {p99 / 1000:.2f} ms | "
                  f"{every[-1] / 1000:.2f} ms | {over} of {len(every)} | {control / 1000:.2f} ms | "
                  f"{statistics.median(cpu) / 1000:.2f} ms | {cpu[-1] / 1000:.2f} ms |", flush=True)

if __name__ == "__main__":
    main()
