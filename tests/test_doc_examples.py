"""The example lines of docs/metrics.md and docs/outputs.md held to what a real emitter prints for the example's data
(issue 32.21: they had left out the lag metrics that every poll prints, and the process and Redis metrics).

An example is the code block after an `<!-- example: NAME -->` line. Its data is written below into a real
redis-server, as Sidekiq writes it; a real emitter polls it until a poll sees the example's processed total (the poll
before it saw the smaller one, so the increases are the example's too). A whole-poll example must name exactly what
that poll printed, in the same lines and order; an excerpt's lines must each be among what it printed. Values are
the example's, but for latencies (they grow while the test runs: the example's is the oldest job's age when seeded)
and what only Redis decides (its memory, clients, load)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.commands import Polling, l2met_polls
from support.redis_server import free_port
from support.sidekiq_data import job, push

DOCS = Path(__file__).resolve().parent.parent / "docs"
REDIS_DECIDES = re.compile(r"redis\.(memory\.used|clients|ops_per_second)|RedisMemoryUsed|RedisClients|RedisOps")
GROWS = re.compile(r"latency|Latency|breakdown\.age|BreakdownAge|\.oldest|Oldest")


def example(page: str, name: str) -> list[str]:
    found = re.search(rf"<!-- example: {name} -->\n```\n(.*?)\n```\n", (DOCS / page).read_text(), re.S)
    assert found, f"docs/{page} has no example {name}"
    return found[1].splitlines()


def same_value(name: str, documented: object, printed: object) -> bool:
    if REDIS_DECIDES.search(name):
        return type(documented) is type(printed)
    if GROWS.search(name) and isinstance(documented, float | int) and isinstance(printed, float | int):
        return documented <= printed < documented + 10
    return documented == printed


def measurements(line: str) -> list[tuple[str, float]]:
    return [(name, float(value)) for name, value in (token.split("=") for token in line.split(" "))]


def flat(value: object, path: str = "") -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from flat(inner, f"{path}/{key}")
    else:
        yield path, value


def assert_same_json(documented: str, printed: str) -> None:
    ours, theirs = dict(flat(json.loads(documented))), dict(flat(json.loads(printed)))
    assert list(ours) == list(theirs), (documented, printed)
    for path, value in ours.items():
        if not path.endswith(("/time", "/Timestamp")):
            assert same_value(path, value, theirs[path]), (path, value, theirs[path])


def metrics_md_data(r) -> None:
    """docs/metrics.md's poll: `default` with 2 jobs, the oldest 42.5 s old, `mailers` with 1 of 7 s; a retry due in a
    minute (a HardJob that first failed 90 s ago, Net::ReadTimeout); one Sidekiq 7 process on worker.1 running 2 jobs
    of its 4 threads (200 MB, 1.2 ms to Redis); 2 jobs failed, and 3 jobs done since the poll before (2, then 5)."""
    now = time.time()
    push(r, "default", job(now - 42.5), job(now - 1))
    push(r, "mailers", job(now - 7.0))
    r.zadd("retry", {job(now, retry_count=1, error_class="Net::ReadTimeout", failed_at=now - 90): now + 60})
    identity = "worker.1:4:0123456789ab"
    r.sadd("processes", identity)
    r.hset(identity, mapping={"busy": 2, "concurrency": 4, "quiet": "false", "rss": 204800, "rtt_us": 1200,
                              "info": json.dumps({"hostname": "worker.1", "concurrency": 4, "version": "7.3.9"})})
    r.set("stat:failed", 2)


def outputs_md_data(r) -> None:
    """docs/outputs.md's poll: `default` with 2 jobs, the oldest 12.5 s old, `low priority` with 1 of 3 s; no process
    running; 5 jobs done since the poll before (37, then 42)."""
    now = time.time()
    push(r, "default", job(now - 12.5), job(now - 1))
    push(r, "low priority", job(now - 3.0))


def polled(r, url: str, data, processed: tuple[int, int], during=lambda: None, **env: str) -> tuple[list[str], str]:
    """What the emitter printed (stdout by lines, stderr) over a few polls, the last ones seeing the final processed
    total; `during` is called while it still runs."""
    data(r)
    r.set("stat:processed", processed[0])
    run = Polling({"REDIS_URL": url, "SIDEKIQ_METRICS_INTERVAL": "0.3", **env})
    try:
        run.wait(1)
        r.set("stat:processed", processed[1])
        run.wait(2)  # the poll that may have begun before the change, then one that surely saw it
        during()
    finally:
        lines, err = run.stop()
    return lines, err


def test_the_l2met_example_of_docs_metrics_md_is_what_a_poll_prints(r, redis_server):
    lines, err = polled(r, redis_server.url, metrics_md_data, (2, 5))
    ends = [n for n, line in enumerate(lines) if "#sidekiq.metrics.up=" in line]
    poll = next(lines[start + 1:end + 1] for start, end in zip([-1, *ends], ends, strict=False)
                if any(token == "sample#sidekiq.processed=5" for line in lines[start + 1:end + 1]
                       for token in line.split(" ")))
    documented = example("metrics.md", "l2met")
    assert [[name for name, _ in measurements(line)] for line in documented] == \
        [[name for name, _ in measurements(line)] for line in poll], (documented, poll)
    for ours, theirs in zip(documented, poll, strict=True):
        for (name, value), (_, printed) in zip(measurements(ours), measurements(theirs), strict=True):
            assert same_value(name, value, printed), (name, value, printed)
    assert l2met_polls(lines) and err.count("\n") == 1, err  # the start line only


@pytest.fixture
def statsd_agent():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def test_the_examples_of_docs_outputs_md_are_what_a_poll_prints(r, redis_server, statsd_agent):
    port = free_port()
    served: list[str] = []

    def scrape() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            served.extend(response.read().decode().splitlines())

    lines, _ = polled(r, redis_server.url, outputs_md_data, (37, 42), scrape,
                      SIDEKIQ_METRICS_OUTPUT="json,cloudwatch,statsd,prometheus",
                      SIDEKIQ_METRICS_PROMETHEUS_HOST="127.0.0.1", SIDEKIQ_METRICS_PROMETHEUS_PORT=str(port),
                      DD_AGENT_HOST="127.0.0.1", DD_DOGSTATSD_PORT=str(statsd_agent.getsockname()[1]))
    final = next(n for n, line in enumerate(lines) if line.startswith('{"time"') and
                 json.loads(line)["totals"]["processed"] == 42)
    (documented_json,) = example("outputs.md", "json")
    assert_same_json(documented_json, lines[final])
    # cloudwatch: the example is the default queue's record of that poll
    (documented_emf,) = example("outputs.md", "cloudwatch")
    emf = next(line for line in lines[final:] if line.startswith('{"_aws"') and '"Queue":"default"' in line)
    assert_same_json(documented_emf, emf)
    # statsd and prometheus: excerpts, each line among what was sent or served
    sent = []
    with contextlib.suppress(TimeoutError):
        while True:
            sent += statsd_agent.recv(65536).decode().split("\n")
    for line in example("outputs.md", "statsd"):
        name, _, rest = line.partition(":")
        value, _, kind = rest.partition("|")
        assert any(s.startswith(f"{name}:") and s.partition("|")[2] == kind and
                   same_value(name, float(value), float(s.partition(":")[2].partition("|")[0])) for s in sent), line
    for line in example("outputs.md", "prometheus"):
        if line.startswith("#"):
            assert line in served, line
            continue
        name, _, value = line.rpartition(" ")
        assert any(s.rpartition(" ")[0] == name and same_value(name, float(value), float(s.rpartition(" ")[2]))
                   for s in served), line
