"""Several Redis shards read by one emitter (SIDEKIQ_METRICS_SHARDS), against real redis-servers, real Sidekiq 7.3
and 8.1 pushing with Sidekiq::Client.via, and Sidekiq's own API inside `via` as the reference for each shard."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import threading

import pytest

from sidekiq_metrics.config import load_settings
from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.metrics.samples import Measurements
from sidekiq_metrics.outputs.cloudwatch import CloudWatchOutput
from sidekiq_metrics.outputs.prometheus import render
from sidekiq_metrics.outputs.statsd import StatsdOutput
from sidekiq_metrics.wiring import build_poller
from support.commands import ROOT, Polling, cli, l2met_polls, parse_l2met, spawn
from support.fake_platform_api import FakePlatformApi
from support.fault_proxy import FaultProxy
from support.redis_server import RedisServer, monitored, wait_until
from support.sidekiq_data import seed

NAMES = ("default", "orders", "mail")


@pytest.fixture
def shards():
    servers = [RedisServer().start() for _ in NAMES]
    yield dict(zip(NAMES, servers, strict=True))
    for server in servers:
        server.cleanup()


def shard_env(urls: dict[str, str], **env: str) -> dict[str, str]:
    """The shards' URLs in config vars, as Heroku add-ons set them, and the setting that names them."""
    variables = {"default": "REDIS_URL", "orders": "HEROKU_REDIS_COBALT_URL", "mail": "REDISCLOUD_URL"}
    return {**{variables[name]: url for name, url in urls.items()},
            "SIDEKIQ_METRICS_SHARDS": ",".join(f"{name}:{variables[name]}" for name in urls), **env}


def test_every_shard_is_read_and_labelled_and_the_sums_are_over_all(shards):
    seed(shards["default"].client(), {"default": (2.0, 3)})
    seed(shards["orders"].client(), {"default": (5.0, 5), "orders": (1.0, 1)})
    for n, server in enumerate(shards.values()):
        server.client().set("stat:processed", 10 ** n)
    result = cli("run", "--once", env=shard_env({n: s.url for n, s in shards.items()}))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    seen = parse_l2met(result.stdout)
    # The default shard keeps the original's names; the others carry theirs after the prefix.
    assert seen["sample#sidekiq.default.size"] == "3" and seen["sample#sidekiq.enqueued"] == "3"
    assert seen["sample#sidekiq:orders.default.size"] == "5" and seen["sample#sidekiq:orders.orders.size"] == "1"
    assert seen["sample#sidekiq:orders.enqueued"] == "6" and seen["sample#sidekiq:mail.enqueued"] == "0"
    assert float(seen["sample#sidekiq:orders.default.latency"]) >= 5.0
    assert seen["sample#sidekiq:all.enqueued"] == "9" and seen["sample#sidekiq:all.processed"] == "111"
    assert float(seen["sample#sidekiq:all.max_latency"]) == float(seen["sample#sidekiq:orders.max_latency"])
    assert seen["sample#sidekiq.metrics.up"] == "1"
    assert all(seen[f"sample#sidekiq:{name}.metrics.up"] == "1" for name in NAMES)  # each its own heartbeat
    assert seen["sample#sidekiq:orders.redis.clients"] >= "1"  # each Redis's own health
    assert not any(key.startswith("sample#sidekiq:all.redis.") for key in seen)  # no sum of several Redis's memory
    assert not any(key.startswith("sample#sidekiq:mail.") and key.endswith((".size", ".latency")) for key in seen)

    record = json.loads(cli("run", "--once", env=shard_env({n: s.url for n, s in shards.items()},
                                                           SIDEKIQ_METRICS_OUTPUT="json")).stdout)
    assert record["queues"]["default"]["size"] == 3 and record["totals"]["enqueued"] == 3
    assert record["shards"]["orders"]["queues"]["orders"]["size"] == 1
    assert record["shards"]["all"]["totals"]["enqueued"] == 9


def test_tag_based_outputs_give_the_shard_as_a_tag_label_and_dimension(shards):
    seed(shards["orders"].client(), {"default": (5.0, 2)})
    settings = load_settings(shard_env({n: s.url for n, s in shards.items()}))
    poller = build_poller(settings, io.StringIO(), io.StringIO())
    polled: list[Measurements] = []
    poller.outputs.append(type("Capture", (), {"emit": lambda self, m, at: polled.append(m)})())
    assert poller.poll()
    lines = StatsdOutput("sidekiq", "127.0.0.1", 9).lines(polled[0])
    assert "sidekiq.queue.size:2|g|#queue:default,shard:orders" in lines
    assert "sidekiq.enqueued:2|g|#shard:orders" in lines and "sidekiq.enqueued:0|g" in lines
    body = render("sidekiq", list(polled[0]))
    assert 'sidekiq_queue_size{queue="default",shard="orders"} 2\n' in body
    assert 'sidekiq_enqueued{shard="all"} 2\n' in body and "\nsidekiq_enqueued 0\n" in body
    written: list[str] = []
    CloudWatchOutput("Sidekiq", written.extend).emit(polled[0], 0)
    record = next(r for r in map(json.loads, written) if r.get("Shard") == "orders" and "Queue" in r)
    assert record["QueueSize"] == 2 and record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Queue", "Shard"]]


@pytest.mark.parametrize(("shards_value", "env", "message"), [
    ("default:redis://:pw-9f8e7d@127.0.0.1:1/0", {}, "must list shards as name:VARIABLE"),
    ("default:REDIS_URL,orders:ORDERS_URL", {}, "names ORDERS_URL for the shard 'orders', but ORDERS_URL is not set"),
    ("default:REDIS_URL,all:ORDERS_URL", {"ORDERS_URL": "redis://127.0.0.1:2/0"}, "names a shard 'all'"),
    ("default:REDIS_URL,Orders!:ORDERS_URL", {"ORDERS_URL": "redis://127.0.0.1:2/0"}, "must list shards"),
    ("default:REDIS_URL,orders:REDIS_URL", {}, "twice"),
    ("default:REDIS_URL,orders:ORDERS_URL", {"ORDERS_URL": "redis://:pw-9f8e7d@127.0.0.1:1/0"}, "same Redis"),
    ("default:REDIS_URL,orders:ORDERS_URL", {"ORDERS_URL": "http://:pw-9f8e7d@host/0"}, "ORDERS_URL must be a"),
])
def test_bad_shard_settings_exit_2_with_one_line_and_no_secret(shards_value, env, message):
    result = cli("run", "--once", env={"REDIS_URL": "redis://:pw-9f8e7d@127.0.0.1:1/0",
                                       "SIDEKIQ_METRICS_SHARDS": shards_value, **env})
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert "pw-9f8e7d" not in result.stderr and "Traceback" not in result.stderr


def test_a_dead_then_stalled_shard_never_stops_the_others_lines(shards):
    """The orders shard behind the fault proxy: killed, then stalled. Every poll still prints the other shards'
    lines, with their heartbeats 1 and its 0, the overall one 0; it names the shard, never its password."""
    orders = shards["orders"]
    orders.client().config_set("requirepass", "pw-9f8e7d")
    proxy = FaultProxy(orders.port)
    seed(shards["default"].client(), {"default": (1.0, 2)})
    urls = {"default": shards["default"].url, "orders": f"redis://:pw-9f8e7d@127.0.0.1:{proxy.port}/0",
            "mail": shards["mail"].url}
    run = Polling(shard_env(urls, SIDEKIQ_METRICS_INTERVAL="0.5"))
    try:
        run.wait(2)
        healthy = l2met_polls(run.lines)
        orders.stop()
        run.wait(3)
        dead = l2met_polls(run.lines)[len(healthy) + 1:]  # (the poll under way when it died may have read it)
        orders.start()
        proxy.mode = "stall"
        run.wait(3)
        stalled = l2met_polls(run.lines)[len(healthy) + len(dead) + 2:]
    finally:
        _, err = run.stop()
        proxy.close()
    assert len(healthy) >= 2 and len(dead) >= 2 and len(stalled) >= 2
    assert all(p["sample#sidekiq:orders.metrics.up"] == "1" and p["sample#sidekiq.metrics.up"] == "1" for p in healthy)
    for poll in dead + stalled:
        assert poll["sample#sidekiq:orders.metrics.up"] == "0" and poll["sample#sidekiq.metrics.up"] == "0"
        assert poll["sample#sidekiq:default.metrics.up"] == "1" and poll["sample#sidekiq:mail.metrics.up"] == "1"
        assert poll["sample#sidekiq.default.size"] == "2" and poll["sample#sidekiq:mail.enqueued"] == "0"
        assert not any(key.startswith("sample#sidekiq:all.") for key in poll)  # no sum over part of the shards
    assert "poll failed (shard orders)" in err and "pw-9f8e7d" not in err and "Traceback" not in err


def test_a_process_type_whose_queues_span_two_shards_scales_on_the_worst_of_them(shards):
    api = FakePlatformApi(formation={"worker": 1})
    try:
        seed(shards["default"].client(), {"default": (0.5, 1)})
        seed(shards["orders"].client(), {"urgent": (100.0, 3)})
        urls = {name: shards[name].url for name in ("default", "orders")}
        env = shard_env(urls, SIDEKIQ_METRICS_INTERVAL="0.5", SIDEKIQ_METRICS_AUTOSCALE="worker",
                        SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES="default,orders:urgent",
                        SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX="2", SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_POLLS="1",
                        HEROKU_API_TOKEN=api.token, HEROKU_APP_NAME=api.app, SIDEKIQ_METRICS_HEROKU_API_URL=api.url)
        proc = spawn("run", env=env)
        said = stderr_lines(proc)
        try:  # (the change is said after Heroku had it: wait for the line, not for the PATCH)
            assert wait_until(lambda: any("from=1 to=2" in line for line in said), 10), said
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(5)
        assert api.patches() == [2]
        change = next(line for line in said if "from=1 to=2" in line)
        assert float(re.search(r"latency=([0-9.]+)", change)[1]) >= 100 and "backlog=4" in change
    finally:
        api.close()


def test_an_evicting_redis_is_said_once_and_a_refused_info_leaves_the_health_out(shards):
    orders = shards["orders"]
    orders.client().config_set("maxmemory-policy", "allkeys-lru")
    orders.client().config_set("maxmemory", "100mb")
    renamed = RedisServer("--rename-command", "INFO", "").start()  # a managed Redis that renamed INFO away
    try:
        urls = {"default": renamed.url, "orders": orders.url}
        run = Polling(shard_env(urls, SIDEKIQ_METRICS_INTERVAL="0.3"))
        run.wait(3)
        lines, err = run.stop()
    finally:
        renamed.cleanup()
    assert err.count("maxmemory-policy allkeys-lru") == 1 and "shard orders" in err, err
    assert err.count("refuses INFO") == 1, err
    every = l2met_polls(lines)
    assert len(every) >= 3
    for seen in every:
        assert float(seen["sample#sidekiq:orders.redis.memory.max"]) == 100.0
        assert 0 < float(seen["sample#sidekiq:orders.redis.memory.ratio"]) < 1
        assert not any(key.startswith("sample#sidekiq.redis.") for key in seen)  # left out, every poll
        assert seen["sample#sidekiq.metrics.up"] == "1"  # never the poll


WORKERS = "require 'sidekiq'\nclass FixtureJob\n  include Sidekiq::Job\n  def perform; end\nend\n"


@pytest.mark.parametrize("version", ["7", "8"])
def test_real_sidekiq_pushing_through_via_and_a_server_on_each_shard(shards, reference_sidekiq, tmp_path, version):
    """Sidekiq's own API, run inside Sidekiq::Client.via(pool) on each shard, is the reference for its numbers."""
    urls = {name: shards[name].url for name in ("default", "orders")}
    workers = tmp_path / "workers.rb"
    workers.write_text(WORKERS)
    servers = [subprocess.Popen([*reference_sidekiq[f"{version}-server"], "-r", str(workers), "-c", str(2 + n),
                                 "-q", "nothing"], env={**os.environ, "REDIS_URL": url, "DYNO": f"worker.{n + 1}"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
               for n, url in enumerate(urls.values())]
    try:
        assert wait_until(lambda: all(shards[name].client().scard("processes") for name in urls), 30)
        pushed = {"shards": urls, "push": [{"shard": "default", "queue": "default", "count": 2},
                                           {"shard": "orders", "queue": "urgent", "count": 3},
                                           {"shard": "orders", "queue": "default", "count": 1}]}
        reference = _shards_ref(reference_sidekiq[version], pushed)
        result = cli("run", "--once", env=shard_env(urls))
        after = _shards_ref(reference_sidekiq[version], {"shards": urls})
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            server.wait(15)
    assert result.returncode == 0, result.stderr
    seen = parse_l2met(result.stdout)
    for name, head in (("default", "sidekiq."), ("orders", "sidekiq:orders.")):
        assert int(seen[f"sample#{head}enqueued"]) == reference[name]["enqueued"] == after[name]["enqueued"]
        for queue, (size, _) in reference[name]["queues"].items():
            assert int(seen[f"sample#{head}{queue}.size"]) == size
            if version == "8":  # (7.x's own Queue#latency misreads the millisecond stamps an 8.x client writes)
                assert reference[name]["queues"][queue][1] <= float(seen[f"sample#{head}{queue}.latency"]) \
                    <= after[name]["queues"][queue][1]
        assert int(seen[f"sample#{head}processes"]) == reference[name]["processes"] == 1
    assert seen["sample#sidekiq.process.worker.concurrency"] == "2"  # each process belongs to its own shard
    assert seen["sample#sidekiq:orders.process.worker.concurrency"] == "3"
    assert seen["sample#sidekiq:all.process.worker.concurrency"] == "5"
    assert seen["sample#sidekiq:all.enqueued"] == "6"


def _shards_ref(ruby: list[str], request: dict) -> dict:
    out = subprocess.run([*ruby, str(ROOT / "tests/support/shards_ref.rb")], input=json.dumps(request),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_fault_proxy_ends_a_connection_at_once_while_redis_is_down_and_passes_again_after(own_redis):
    """The stand-in first: in front of a stopped Redis it must refuse as a dead port does (its accept loop used
    to die there, and every later connection hung), and pass again once Redis is back."""
    proxy = FaultProxy(own_redis.port)
    try:
        own_redis.stop()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock:
            assert sock.recv(10) == b""  # ended at once, not left hanging
        own_redis.start()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            assert sock.recv(10) == b"+PONG\r\n"
    finally:
        proxy.close()


def test_doctor_checks_every_shards_health_and_names_each_without_its_password(shards):
    orders = shards["orders"]
    orders.client().config_set("maxmemory-policy", "allkeys-lru")
    orders.client().config_set("requirepass", "pw-9f8e7d")
    urls = {"default": shards["default"].url, "orders": f"redis://:pw-9f8e7d@127.0.0.1:{orders.port}/0"}
    result = cli("doctor", env={**shard_env(urls), "DYNO": "web.1"})
    out = result.stdout
    assert "ok    health: Redis (shard default) never evicts keys (maxmemory-policy noeviction)" in out, out
    assert "warn  health: Redis (shard orders) has maxmemory-policy allkeys-lru" in out, out
    assert f"orders:HEROKU_REDIS_COBALT_URL=redis://***@127.0.0.1:{orders.port}/0" in out
    assert "pw-9f8e7d" not in out + result.stderr and result.returncode == 0


def test_simulate_reads_a_sharded_recording_in_either_format_as_autoscaling_names_the_queues(shards, tmp_path):
    from sidekiq_metrics.tools.simulate import polls as recorded_polls

    seed(shards["default"].client(), {"default": (1.0, 2)})
    seed(shards["orders"].client(), {"urgent": (120.0, 3)})
    urls = {name: shards[name].url for name in ("default", "orders")}
    recordings = {}
    for output in ("l2met", "json"):
        run = Polling(shard_env(urls, SIDEKIQ_METRICS_OUTPUT=output, SIDEKIQ_METRICS_INTERVAL="0.3"))
        run.wait(3)
        out, _ = run.stop()
        stamp = "2026-12-02T03:{:02d}:{:02d}.000000+00:00"  # `heroku logs` times, a second a line
        lines = out if output == "json" else \
            [f"{stamp.format(n // 60, n % 60)} app[web.1]: {line}" for n, line in enumerate(out)]
        recordings[output] = list(recorded_polls(lines))
    for read in recordings.values():
        assert len(read) >= 3
        for poll in read:
            sizes = dict(zip(poll.series[0].queues, poll.series[0].values, strict=True))
            assert sizes == {"default": 2, "orders:urgent": 3}
            waits = dict(zip(poll.series[1].queues, poll.series[1].values, strict=True))
            assert waits["orders:urgent"] >= 120 and waits["default"] >= 1
    path = tmp_path / "recording.jsonl"
    path.write_text(json.dumps(json.loads(
        cli("run", "--once", env=shard_env(urls, SIDEKIQ_METRICS_OUTPUT="json")).stdout)) + "\n")
    result = cli("autoscale", "simulate", str(path), env={
        "SIDEKIQ_METRICS_AUTOSCALE": "worker", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "default,orders:urgent",
        "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "3", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_POLLS": "1"})
    assert result.returncode == 0 and "scale type=worker from=1 to=2" in result.stdout and "backlog=5" in result.stdout


def test_a_user_named_default_is_no_secret_but_every_password_stays_masked(shards):
    """Redis Cloud's URLs are redis://default:pw@host. The user's name is a common word (here also a shard's and a
    queue's): the failure line names the shard `default`, autoscaling names the queue `default`; no password shows."""
    api = FakePlatformApi(formation={"worker": 1})
    orders = shards["orders"]
    orders.client().config_set("requirepass", "pw-4c3b2a")
    shards["default"].stop()  # the shard named default is down: its failure line names it
    urls = {"default": f"redis://default:pw-9f8e7d@127.0.0.1:{shards['default'].port}/0",
            "orders": f"redis://default:pw-4c3b2a@127.0.0.1:{orders.port}/0"}
    env = shard_env(urls, SIDEKIQ_METRICS_INTERVAL="0.3", SIDEKIQ_METRICS_AUTOSCALE="worker",
                    SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES="default,mailers", SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX="2",
                    HEROKU_API_TOKEN=api.token, HEROKU_APP_NAME=api.app, SIDEKIQ_METRICS_HEROKU_API_URL=api.url)
    try:
        run = Polling(env)
        run.wait(2)
        lines, err = run.stop()
    finally:
        api.close()
    assert "poll failed (shard default): cannot connect to Redis at 127.0.0.1:" in err, err
    assert "on the latency of default,mailers" in err, err
    assert "pw-9f8e7d" not in err + "\n".join(lines) and "pw-4c3b2a" not in err + "\n".join(lines)
    assert "sample#sidekiq:default.metrics.up=0" in "\n".join(lines) and "Traceback" not in err


@pytest.mark.parametrize("leftover", [
    {"REDIS_PROVIDER": "redis://:pw-9f8e7d@127.0.0.1:1/0"},  # the URL pasted where its variable's name belongs
    {"SIDEKIQ_METRICS_REDIS_URL": "http://:pw-9f8e7d@nowhere/0"},
    {"SIDEKIQ_METRICS_REDIS_URL": "redis://127.0.0.1:1/0?ssl_cert_reqs=required"},
])
def test_the_settings_not_read_with_shards_are_not_read(shards, leftover):
    """Issue 32.13: with SIDEKIQ_METRICS_SHARDS set, each shard's URL comes from its variable; what would name the one
    Redis without shards is not read, so a leftover of it neither stops the emitter nor shows in `doctor`."""
    seed(shards["orders"].client(), {"urgent": (1.0, 2)})
    env = shard_env({name: shards[name].url for name in ("default", "orders")}, **leftover)
    result = cli("run", "--once", env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert parse_l2met(result.stdout)["sample#sidekiq:all.enqueued"] == "2"
    report = cli("doctor", env={**env, "DYNO": "web.1"})
    assert report.returncode == 0 and "FAIL" not in report.stdout, report.stdout
    assert f"ok    redis url = {shards['default'].url} (REDIS_URL, the first shard's)" in report.stdout
    assert "pw-9f8e7d" not in report.stdout + result.stderr


@pytest.mark.parametrize("shards_value", ["default:REDIS_URL,orders:ORDERS_URL", "default:REDIS_URL,Orders!:X"])
def test_doctor_probes_no_stand_in_while_a_shard_is_unknown(shards, shards_value):
    """A shard whose URL is unknown (its variable unset, or the setting refused) is said once, and no Redis is
    probed in its place: not localhost, nor the one Redis URL that SIDEKIQ_METRICS_SHARDS leaves unread."""
    result = cli("doctor", env={"REDIS_URL": shards["default"].url, "SIDEKIQ_METRICS_SHARDS": shards_value,
                                "DYNO": "web.1"})
    assert result.returncode == 1 and "FAIL  SIDEKIQ_METRICS_SHARDS " in result.stdout, result.stdout
    assert "FAIL  not checked: the shards are not all known (see Configuration above)" in result.stdout
    assert "redis url =" not in result.stdout and "Redis answers" not in result.stdout


def stderr_lines(proc: subprocess.Popen[str]) -> list[str]:
    """The process's stderr lines as they come (read by a thread of their own), to wait for one."""
    lines: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _autoscaling(api: FakePlatformApi, queues: str, **env: str) -> dict[str, str]:
    return {"SIDEKIQ_METRICS_AUTOSCALE": "worker", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": queues,
            "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "3", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_POLLS": "1",
            "HEROKU_API_TOKEN": api.token, "HEROKU_APP_NAME": api.app, "SIDEKIQ_METRICS_HEROKU_API_URL": api.url, **env}


@pytest.mark.parametrize("queues", ["ordrs:urgent", "default,mail:urgent", "orders:"])
def test_autoscaling_on_a_shard_that_is_not_listed_is_refused_at_start_and_by_doctor(shards, queues):
    """Issue 32.9: a typo in a shard's name made its queue unknown, hence empty, and the type scaled down while the
    real queue's jobs waited. It is refused: `run` exits 2 with one line, `doctor` fails on it."""
    api = FakePlatformApi(formation={"worker": 3})
    try:
        env = shard_env({name: shards[name].url for name in ("default", "orders")}, **_autoscaling(api, queues))
        result = cli("run", env=env, timeout=10)
        report = cli("doctor", env={**env, "DYNO": "web.1"})
    finally:
        api.close()
    assert result.returncode == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("sidekiq-metrics: SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES names ")
    assert "SIDEKIQ_METRICS_SHARDS lists default, orders" in result.stderr, result.stderr
    assert report.returncode == 1 and "FAIL  SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES names " in report.stdout
    assert api.patches() == []


def test_the_first_shard_named_by_its_name_is_its_queue_not_an_unknown_one(shards):
    """Issue 32.9: `default:urgent`, the first shard named by its name, is the queue `urgent` of that shard (its
    readings are named without it), so its latency scales the type up; never an unknown queue, read as empty."""
    api = FakePlatformApi(formation={"worker": 1})
    seed(shards["default"].client(), {"urgent": (100.0, 3)})
    env = shard_env({name: shards[name].url for name in ("default", "orders")}, SIDEKIQ_METRICS_INTERVAL="0.5",
                    **_autoscaling(api, "default:urgent,orders:urgent"))
    proc = spawn("run", env=env)
    said = stderr_lines(proc)
    try:
        assert wait_until(lambda: any("from=1 to=2" in line for line in said), 10), said  # (it is said after the PATCH)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
        api.close()
    assert api.patches() == [2] and any("on the latency of urgent,orders:urgent" in line for line in said), said
    change = next(line for line in said if "from=1 to=2" in line)
    assert float(re.search(r"latency=([0-9.]+)", change)[1]) >= 100 and "backlog=3" in change


def test_no_sums_while_a_shard_that_answers_was_not_wholly_read(shards):
    """Issue 32.10: the orders shard answers, but its user may not read the queue list (SMEMBERS). Its up is 0, and
    no `sidekiq:all.*` sum is printed: a sum over the other shard alone would hide its waiting queue."""
    orders = shards["orders"]
    seed(shards["default"].client(), {"default": (1.0, 2)})
    seed(orders.client(), {"urgent": (500.0, 4)})
    orders.client().acl_setuser("reader", enabled=True, passwords=["+reader-pw-7e6d"], keys=["*"],
                                commands=["+@all", "-smembers"])
    urls = {"default": shards["default"].url, "orders": f"redis://reader:reader-pw-7e6d@127.0.0.1:{orders.port}/0"}
    for output in ("l2met", "json"):
        result = cli("run", "--once", env=shard_env(urls, SIDEKIQ_METRICS_OUTPUT=output))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        if output == "json":
            assert "all" not in json.loads(result.stdout).get("shards", {}), result.stdout
            continue
        seen = parse_l2met(result.stdout)
        assert seen["sample#sidekiq:orders.metrics.up"] == "0" and seen["sample#sidekiq.metrics.up"] == "0"
        assert seen["sample#sidekiq:default.metrics.up"] == "1" and seen["sample#sidekiq.default.size"] == "2"
        assert [key for key in seen if key.startswith("sample#sidekiq:all.")] == [], result.stdout


SAME_REDIS = "poll failed (shard orders): it is the same Redis as the shard 'default'"


def test_one_redis_under_two_names_is_refused_at_the_first_poll(shards):
    """Issue 32.11: 127.0.0.1 for one shard, localhost for the other; host text cannot tell, INFO's run_id can. The
    later shard is not read (its up 0, no sums): one job is never counted twice. `doctor` fails on it."""
    default = shards["default"]
    seed(default.client(), {"default": (1.0, 1)})
    urls = {"default": default.url, "orders": f"redis://localhost:{default.port}/0"}
    result = cli("run", "--once", env=shard_env(urls))
    seen = parse_l2met(result.stdout)
    assert result.returncode == 1 and SAME_REDIS in result.stderr, result.stderr
    assert seen["sample#sidekiq.enqueued"] == "1" and seen["sample#sidekiq:default.metrics.up"] == "1"
    assert seen["sample#sidekiq:orders.metrics.up"] == "0" and seen["sample#sidekiq.metrics.up"] == "0"
    assert not any(key.startswith(("sample#sidekiq:all.", "sample#sidekiq:orders.enqueued")) for key in seen)
    report = cli("doctor", env={**shard_env(urls), "DYNO": "web.1"})
    assert report.returncode == 1 and f"FAIL  sidekiq-metrics: {SAME_REDIS}" in report.stdout, report.stdout
    # Two databases of one server are two shards: their jobs are not the same.
    other_db = cli("run", "--once", env=shard_env({"default": default.url, "orders": f"redis://localhost:{default.port}/1"}))
    assert other_db.returncode == 0 and parse_l2met(other_db.stdout)["sample#sidekiq:all.enqueued"] == "1"


def test_a_shard_that_reconnects_to_another_shards_redis_is_refused_until_it_is_back(shards):
    """Issue 32.11: the orders shard's name (a proxy here, DNS or a failover in life) leads to the default shard's
    Redis after a reconnect: refused from that poll on, and read again once it leads back to its own."""
    default, orders = shards["default"], shards["orders"]
    seed(default.client(), {"default": (1.0, 1)})
    seed(orders.client(), {"urgent": (1.0, 2)})
    proxy = FaultProxy(orders.port)
    run = Polling(shard_env({"default": default.url, "orders": proxy.url}, SIDEKIQ_METRICS_INTERVAL="0.3"))
    try:
        run.wait(2)
        before = len(l2met_polls(run.lines))
        proxy.upstream_port = default.port
        proxy.mode = "reset"  # the orders connection ends; the next one reaches the default shard's Redis
        run.wait(1)
        proxy.mode = "pass"
        turned = len(l2met_polls(run.lines))
        run.wait(3)
        moved = l2met_polls(run.lines)[turned + 1:]
        proxy.upstream_port, proxy.mode = orders.port, "reset"
        run.wait(1)
        proxy.mode = "pass"
        run.wait(3)
        back = l2met_polls(run.lines)[-2:]
    finally:
        _, err = run.stop()
        proxy.close()
    healthy = l2met_polls(run.lines)[:before]
    assert all(p["sample#sidekiq:all.enqueued"] == "3" for p in healthy) and len(healthy) >= 2
    assert len(moved) >= 2, err
    for poll in moved:
        assert poll["sample#sidekiq:orders.metrics.up"] == "0" and "sample#sidekiq:all.enqueued" not in poll, poll
        assert poll["sample#sidekiq.enqueued"] == "1"
    assert all(p["sample#sidekiq:all.enqueued"] == "3" and p["sample#sidekiq.metrics.up"] == "1" for p in back), back
    assert SAME_REDIS in err and "Traceback" not in err


def test_the_server_of_a_shard_is_asked_once_a_connection_not_every_poll(shards):
    """Issue 32.11, its cost: INFO server (the run_id) once for each connection, never on every poll."""
    urls = {name: shards[name].url for name in ("default", "orders")}
    with monitored(shards["default"]) as default_seen, monitored(shards["orders"]) as orders_seen:
        run = Polling(shard_env(urls, SIDEKIQ_METRICS_INTERVAL="0.2"))
        run.wait(5)
        run.stop()
    for seen in (default_seen, orders_seen):
        assert seen.count("INFO server") == 1, seen[:20]
        assert sum(command.startswith("SMEMBERS") for command in seen) >= 5


def test_a_shard_whose_user_may_not_ask_info_is_read_and_the_doubt_said_once(shards):
    """Issue 32.11: an ACL that refuses INFO must not fail the poll. Whether that shard is another's Redis cannot be
    told then: it is read as its own shard (the host check at start still holds), and one line says so."""
    orders = shards["orders"]
    seed(orders.client(), {"urgent": (1.0, 2)})
    orders.client().acl_setuser("reader", enabled=True, passwords=["+reader-pw-7e6d"], keys=["*"],
                                commands=["+@all", "-info"])
    urls = {"default": shards["default"].url, "orders": f"redis://reader:reader-pw-7e6d@127.0.0.1:{orders.port}/0"}
    run = Polling(shard_env(urls, SIDEKIQ_METRICS_INTERVAL="0.3"))
    run.wait(3)
    lines, err = run.stop()
    polls = l2met_polls(lines)
    assert all(p["sample#sidekiq.metrics.up"] == "1" and p["sample#sidekiq:all.enqueued"] == "2" for p in polls)
    assert err.count("cannot tell whether the shard orders is the same Redis as another") == 1, err
    assert "reader-pw-7e6d" not in err


# Attacks on the fixes above, as a customer's production would make them; each kept as a test.

def test_a_shard_down_at_start_is_known_by_its_server_once_it_answers(shards):
    """The orders shard is down at start, so its server is unknown; when its name then leads to the default shard's
    Redis it is refused, and when its own Redis comes up it is read, with the sums."""
    default, orders = shards["default"], shards["orders"]
    seed(default.client(), {"default": (1.0, 1)})
    seed(orders.client(), {"urgent": (1.0, 2)})
    orders.stop()
    proxy = FaultProxy(orders.port)
    run = Polling(shard_env({"default": default.url, "orders": proxy.url}, SIDEKIQ_METRICS_INTERVAL="0.3"))
    try:
        run.wait(2)
        down = len(l2met_polls(run.lines))
        proxy.upstream_port = default.port
        run.wait(3)
        elsewhere = len(l2met_polls(run.lines))
        proxy.upstream_port, proxy.mode = orders.port, "reset"
        orders.start()  # (empty: it keeps nothing on disk)
        seed(orders.client(), {"urgent": (1.0, 2)})
        run.wait(1)
        proxy.mode = "pass"
        run.wait(3)
    finally:
        _, err = run.stop()
        proxy.close()
    polls = l2met_polls(run.lines)
    assert all(p["sample#sidekiq:orders.metrics.up"] == "0" and "sample#sidekiq:all.enqueued" not in p
               for p in polls[:elsewhere]), polls[:elsewhere]
    assert SAME_REDIS in err and "Traceback" not in err and elsewhere > down
    assert all(p["sample#sidekiq:all.enqueued"] == "3" for p in polls[-2:]), polls[-2:]


def test_one_redis_by_its_unix_socket_and_by_tcp_is_one_redis(tmp_path):
    """Odd URLs: a socket path and a TCP address share no text at all; the run_id still tells one server."""
    socket_path = tmp_path / "redis.sock"
    server = RedisServer("--unixsocket", str(socket_path)).start()
    try:
        urls = {"default": f"unix://{socket_path}?db=0", "orders": server.url}
        result = cli("run", "--once", env=shard_env(urls))
    finally:
        server.cleanup()
    assert result.returncode == 1 and SAME_REDIS in result.stderr, result.stderr
    assert parse_l2met(result.stdout)["sample#sidekiq:default.metrics.up"] == "1"


def test_odd_queue_names_in_autoscaling_with_shards():
    """A queue whose name holds a colon: another shard's (`orders:a:b`), and the first shard's, by its name
    (`default:low:priority`); a repeat by two spellings is one queue; a shard name is matched as written."""
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "ORDERS_URL": "redis://127.0.0.1:2/0",
           "SIDEKIQ_METRICS_SHARDS": "default:REDIS_URL,orders:ORDERS_URL", "SIDEKIQ_METRICS_AUTOSCALE": "worker",
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "2", "HEROKU_API_TOKEN": "tok", "HEROKU_APP_NAME": "shop"}
    rule = load_settings({**env, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES":
                          "default:low:priority,orders:a:b,critical,default:critical"}).autoscale.rules[0]
    assert rule.queues == ("low:priority", "orders:a:b", "critical")
    listed = load_settings({**env, "SIDEKIQ_METRICS_QUEUES": "critical", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES":
                            "default:critical,orders:critical"}).autoscale.rules[0]
    assert listed.queues == ("critical", "orders:critical")
    # Spaces around the colon are read as around a comma (review of issue 32: `orders: urgent` was ' urgent').
    spaced = load_settings({**env, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "default, orders: urgent"})
    assert spaced.autoscale.rules[0].queues == ("default", "orders:urgent")
    for queues in ("Orders:urgent", ":urgent", "low:priority"):
        with pytest.raises(ConfigError, match="SIDEKIQ_METRICS_SHARDS lists default, orders"):
            load_settings({**env, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": queues})
    # Without shards a colon is part of a queue's name, as ever.
    alone = {k: v for k, v in env.items() if k not in ("SIDEKIQ_METRICS_SHARDS", "ORDERS_URL")}
    assert load_settings({**alone, "SIDEKIQ_METRICS_AUTOSCALE_WORKER_QUEUES": "ordrs:urgent"}).autoscale.rules[0] \
        .queues == ("ordrs:urgent",)


def test_the_redis_url_flag_is_not_read_with_shards_either(shards):
    urls = {name: shards[name].url for name in ("default", "orders")}
    result = cli("run", "--once", "--redis-url", "http://nowhere/0", env=shard_env(urls))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert parse_l2met(result.stdout)["sample#sidekiq:all.enqueued"] == "0"


def test_a_shard_that_is_a_replica_of_another_is_refused_as_the_same_redis(shards):
    """Found in review of issue 32: a shard's variable naming a read replica of another shard's Redis was read as a
    Redis of its own (its own run_id) and every job counted twice, `doctor` saying all was good. A replica shares its
    primary's replication id (INFO replication's master_replid): the later shard is not read."""
    default, orders = shards["default"], shards["orders"]
    seed(default.client(), {"default": (1.0, 1)})
    orders.client().replicaof("127.0.0.1", default.port)
    assert wait_until(lambda: orders.client().info("replication").get("master_link_status") == "up", 15)
    urls = {"default": default.url, "orders": orders.url}
    result = cli("run", "--once", env=shard_env(urls))
    seen = parse_l2met(result.stdout)
    assert result.returncode == 1 and SAME_REDIS in result.stderr, result.stderr
    assert seen["sample#sidekiq:orders.metrics.up"] == "0"
    assert not any(key.startswith("sample#sidekiq:all.") for key in seen)
    # Promoted, it is a Redis of its own again (a new replication id): read, and summed.
    orders.client().replicaof("no", "one")
    again = cli("run", "--once", env=shard_env(urls))
    assert again.returncode == 0 and parse_l2met(again.stdout)["sample#sidekiq:all.enqueued"] == "2", again.stderr
