"""`alerts` and `dashboard` (issue 35) on real parts: promtool checks and unit-tests the rules on series scraped
from the real emitter; a real Prometheus (Debian's, 1 s scrape and evaluation) scrapes the emitter while real
Sidekiq pushes jobs nobody takes, and the alerts go pending, then firing, in its /api/v1/alerts; every dashboard
panel's query returns series from it. One Prometheus, one emitter and one redis-server serve the whole module's
real-system test, which runs its steps in order (the last one stops the emitter)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from test_autoscale import autoscale_env, run_for

from support.commands import ROOT, cli, spawn
from support.fake_platform_api import FakePlatformApi
from support.otlp_receiver import OtlpReceiver
from support.redis_server import RedisServer, free_port, wait_until
from support.sidekiq_data import busy_process, idle_process, job, push, seed, sidekiq

INTERVAL = "1"
LATENCY = 2.0  # seconds: jobs pushed at the start pass it while the other parts start
FOR_SCALE = "0.01"  # every `for:` a hundredth: 5 min become 3 s (pending still lasts one evaluation)


def alerts_cli(*args: str, env: dict[str, str] | None = None) -> str:
    result = cli("alerts", *args, env={"SIDEKIQ_METRICS_INTERVAL": INTERVAL, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not shutil.which("promtool"):
        pytest.fail("promtool is not installed: run the README's test command (tests/run)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


# -- the rules, checked by promtool ---------------------------------------------------------------------------

SHARDED = {"REDIS_URL": "redis://127.0.0.1:1/0", "ORDERS_URL": "redis://127.0.0.1:2/0",
           "SIDEKIQ_METRICS_SHARDS": "main:REDIS_URL,orders:ORDERS_URL"}


@pytest.mark.parametrize(("args", "env"), [
    ((), {}),
    (("--queue-latency", "critical=5", "--queue-latency", "orders:mailers=120", "--latency", "45"), SHARDED),
    (("--naming", "otlp", "--failure-ratio", "0.2"), {"SIDEKIQ_METRICS_PREFIX": "9shop.jobs"}),
])
def test_promtool_accepts_the_rules_for_every_kind_of_settings(tmp_path, args, env):
    rules = tmp_path / "rules.yml"
    rules.write_text(alerts_cli(*args, env=env))
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = rules.read_text()
    if "SIDEKIQ_METRICS_PREFIX" in env:
        assert "_9shop_jobs_queue_latency_seconds" in text and "_9shop_jobs_jobs_failed_total" in text
    if "--queue-latency" in args:  # the queue of the shard orders, by its label; the first shard's has none
        assert r'queue=\"mailers\", shard=\"orders\"}[3m]) > 120' in text
        assert r'queue=\"critical\", shard=\"\"}[3m]) > 5' in text


@pytest.mark.parametrize(("command", "args", "message"), [
    ("alerts", ("--latency", "soon"), "--latency must be a number of 0 or more, not 'soon'"),
    ("alerts", ("--naming", "statsd"), "--naming must be one of prometheus, otlp, not 'statsd'"),
    ("dashboard", ("--naming", "graphite"), "--naming must be one of prometheus, otlp, not 'graphite'"),
    ("alerts", ("--queue-latency", "critical"), "--queue-latency must be QUEUE=SECONDS, not 'critical'"),
    ("alerts", ("--memory-ratio", "90"), "--memory-ratio must be a number from 0 to 1, not '90'"),
    ("alerts", ("--for-scale", "nan"), "--for-scale must be a number from 0 to 1, not 'nan'"),
    ("alerts", ("--scrape-interval", "0"), "--scrape-interval must be a number of 0.001 or more, not '0'"),
    ("dashboard", ("--selector", "app=shop"),
     "--selector must be PromQL label matchers such as app=\"shop\", not 'app=shop'"),
    ("alerts", ("--selector", '__name__="x"'),
     "--selector must be PromQL label matchers such as app=\"shop\", not '__name__=\"x\"'"),
    ("alerts", ("--docs-url", "wiki.example.com/runbook"), "--docs-url must be an absolute http(s) URL of "
     "docs/troubleshooting.md without {, }, quotes, spaces or #, not 'wiki.example.com/runbook'"),
])
def test_bad_flags_are_one_line_and_status_2(command, args, message):
    result = cli(command, *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"sidekiq-metrics: {message}\n")


def scraped(port: int) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(body) for s in family.samples]


def series_text(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def served_by_the_emitter(env: dict[str, str], wanted: str) -> list[tuple[str, dict[str, str], float]]:
    """What a real emitter's endpoint serves once a scrape holds `wanted` (a series name's end)."""
    port = free_port()
    proc = spawn("run", env={**env, "SIDEKIQ_METRICS_OUTPUT": "prometheus", "SIDEKIQ_METRICS_INTERVAL": "0.2",
                             "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1",
                             "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port)})
    try:
        assert wait_until(lambda: _served(port, wanted), 20)
        return scraped(port)
    finally:
        proc.terminate()
        proc.wait(5)


def what_to_do(name: str) -> str:
    from sidekiq_metrics.tools.alerts import ALERTS

    return next(f"What to do: {a.action}." for a in ALERTS if a.name == name)


def promtool_test(tmp_path: Path, rules: str, tests: list[dict]) -> None:
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(json.dumps({"rule_files": ["rules.yml"], "evaluation_interval": "30s",
                                                    "tests": tests}))
    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_drive_the_rules_with_series_the_emitter_served(tmp_path, own_redis):
    """The input series are what the real endpoint served, by name and labels: a rule that names a series the
    emitter does not serve (or serves under another name) finds nothing, and the expected alert is missing."""
    r = own_redis.client()
    sidekiq(own_redis.url, [{"push": {"queue": "default"}}, {"push": {"queue": "critical"}}])
    busy_process(r, "worker.1", "HardJob", 5)
    served = served_by_the_emitter({"REDIS_URL": own_redis.url}, "_queue_latency_seconds")
    latency = {labels["queue"] for name, labels, _ in served if name.endswith("_queue_latency_seconds")}
    assert latency == {"default", "critical"}
    values = {"default": "100x10", "critical": "8x10"}  # 100 s over 30; 8 s under 30 but over critical's own 5
    series = [{"series": series_text(name, labels),
               "values": values[labels["queue"]] if name.endswith("_queue_latency_seconds") else f"{value:g}x10"}
              for name, labels, value in served]
    summary = "Sidekiq queue {queue} has waited {value}"
    promtool_test(tmp_path, alerts_cli("--queue-latency", "critical=5"), [{
        "interval": "30s", "input_series": series,
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "SidekiqQueueLatencyHigh", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "queue": queue, "threshold": threshold},
                 "exp_annotations": {"summary": summary.format(queue=queue, value=value),
                                     "description": what_to_do("SidekiqQueueLatencyHigh"),
                                     "runbook_url": "docs/troubleshooting.md#a-queue-waits-too-long"}}
                for queue, threshold, value in (("default", "30", "1m 40s"), ("critical", "5", "8s"))]},
            # Silent: a live process is registered, the emitter was up, Redis evicted nothing.
            {"eval_time": "5m", "alertname": "SidekiqNoLiveProcess", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "SidekiqMetricsStopped", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "SidekiqRedisEvicting", "exp_alerts": []},
        ]}])


def test_with_shards_rules_and_panels_count_each_job_once(tmp_path):
    """Issue 35: the `shard="all"` sums stand beside each shard's own series, and the first shard's carry no
    shard label. Served by a real sharded emitter: the dashboard's sums equal the jobs there are (not twice as
    many), and the no-process alert names the one shard without a process."""
    servers = [RedisServer().start() for _ in range(2)]
    try:
        main, orders = (server.client() for server in servers)
        sidekiq(servers[0].url, [{"push": {"queue": "default"}}] * 2)
        sidekiq(servers[1].url, [{"push": {"queue": "default"}}] * 3)
        busy_process(main, "worker.1", "HardJob", 5)
        env = {"REDIS_URL": servers[0].url, "ORDERS_URL": servers[1].url,
               "SIDEKIQ_METRICS_SHARDS": "main:REDIS_URL,orders:ORDERS_URL"}
        served = served_by_the_emitter(env, "_enqueued")
    finally:
        for server in servers:
            server.cleanup()
    assert {labels.get("shard") for name, labels, _ in served if name.endswith("_enqueued")} == {None, "orders", "all"}
    series = [{"series": series_text(name, labels), "values": f"{value:g}x10"} for name, labels, value in served]
    model = json.loads(cli("dashboard", env=env).stdout)
    sizes = next(p for p in model["panels"] if p["title"] == "Queue size")["targets"][0]["expr"]
    sets = next(p for p in model["panels"] if p["title"] == "Retry, dead and scheduled sets")["targets"][0]["expr"]

    def chosen(expr: str) -> str:
        return expr.replace("$shard", ".*")  # Grafana's "All" of the shard variable

    promtool_test(tmp_path, alerts_cli(env=env), [{
        "interval": "30s", "input_series": series,
        "promql_expr_test": [
            {"expr": f"sum({chosen(sizes)})", "eval_time": "1m", "exp_samples": [{"labels": "{}", "value": 5}]},
            # one value a shard, the first one's included, and never the sums over them beside them
            {"expr": f"count({chosen(sets)})", "eval_time": "1m", "exp_samples": [{"labels": "{}", "value": 2}]}],
        "alert_rule_test": [{"eval_time": "5m", "alertname": "SidekiqNoLiveProcess", "exp_alerts": [{
            "exp_labels": {"severity": "critical", "shard": "orders"},
            "exp_annotations": {"summary": "3 Sidekiq jobs wait and no Sidekiq process is alive",
                                "description": what_to_do("SidekiqNoLiveProcess"),
                                "runbook_url": "docs/troubleshooting.md#no-live-sidekiq-process"}}]}]}])


def _served(port: int, suffix: str) -> bool:
    try:
        return any(name.endswith(suffix) for name, _, _ in scraped(port))
    except OSError:
        return False


# -- OTLP naming ----------------------------------------------------------------------------------------------

def translated(name: str, unit: str, kind: str) -> str:
    """OpenTelemetry's Prometheus compatibility rules, written out here apart from the code's: the name split into
    words on every run of characters outside [a-zA-Z0-9:] (underscores too, as prometheus/otlptranslator does),
    joined by one `_`; the unit as a suffix (`s` seconds, `ms` milliseconds, `MBy` megabytes, `1` ratio for
    gauges; braces dropped; `/s` per_second), unless already there; `_total` for a monotonic Sum."""
    words = [word for word in re.split(r"[^a-zA-Z0-9:]+", name) if word]
    head, _, per = unit.partition("/")
    suffix = {"s": ["seconds"], "ms": ["milliseconds"], "MBy": ["megabytes"]}.get(head, [])
    if head == "1" and kind == "gauge":
        suffix = ["ratio"]
    suffix += ["per", "second"] if per == "s" else []
    if suffix and words[-len(suffix):] != suffix:
        words += suffix
    joined = "_".join(words + (["total"] if kind == "sum" and words[-1] != "total" else []))
    return "_" + joined if joined[0].isdigit() else joined


def test_otlp_naming_is_our_own_otlp_export_translated_by_the_written_rules(own_redis):
    r = own_redis.client()
    sidekiq(own_redis.url, [{"push": {"queue": "default"}}])
    busy_process(r, "worker.1", "HardJob", 5)
    r.sadd("paused", "default")  # so that the rules' paused series is among the export's
    r.zadd("dead", {json.dumps({"class": "HardJob", "queue": "default", "jid": "d" * 24}): time.time()})
    receiver = OtlpReceiver()
    try:
        result = cli("run", "--once", env={"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_OUTPUT": "otlp",
                                           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
        assert result.returncode == 0, result.stderr
        (export,) = receiver.wait_for(1, 10)
    finally:
        receiver.close()
    derived = {translated(name, m.unit, "sum" if m.HasField("sum") else "gauge")
               for name, m in export.metrics().items()}
    used = alerts_cli("--naming", "otlp") + cli("dashboard", "--naming", "otlp").stdout
    names = set(re.findall(r"\b(sidekiq_[a-z0-9_]+)\b(?=[{ )\[])", used.replace('\\"', '"')))
    assert {"sidekiq_queue_latency_seconds", "sidekiq_jobs_processed_total", "sidekiq_metrics_up_ratio",
            "sidekiq_process_utilization_ratio", "sidekiq_redis_evictions_total"} <= names & derived
    # The others are of metrics this poll had no value of, named by the same code: autoscaling (off), job classes
    # (no minute read yet), Redis's limit (none set) and issue 34's longest-running job (not reported yet).
    assert names - derived <= {"sidekiq_autoscale_current", "sidekiq_autoscale_desired", "sidekiq_autoscale_max",
                               "sidekiq_job_processed_total", "sidekiq_job_runtime_p95_seconds",
                               "sidekiq_redis_memory_max_megabytes", "sidekiq_redis_memory_ratio",
                               "sidekiq_job_running_longest_seconds"}
    assert "sidekiq_processed_total" not in names  # the Prometheus endpoint's name, not the export's


def test_the_latency_alert_stays_silent_for_a_queue_sidekiq_pro_holds_paused(tmp_path, own_redis):
    """Found by the review of issue 34: `watch` marks a paused queue `P` and autoscaling leaves it out, but the
    rules paged for it (`sidekiq_queue_latency_seconds > 30`, no `unless` on the paused series), so an operator who
    pauses `mail` during an incident was paged every evaluation until it was resumed. Series as the real emitter
    serves them, driven through promtool; `default`, as late and not paused, fires (so the test can fail)."""
    r = own_redis.client()
    seed(r, {"mail": (100.0, 3), "default": (100.0, 3)})
    r.sadd("paused", "mail")
    idle_process(r, "worker.1")
    served = served_by_the_emitter({"REDIS_URL": own_redis.url}, "_queue_paused")
    assert any(name.endswith("_queue_paused") for name, _, _ in served)
    series = [{"series": series_text(name, labels),
               "values": "100x20" if name.endswith("_queue_latency_seconds") else f"{value:g}x20"}
              for name, labels, value in served]
    promtool_test(tmp_path, alerts_cli(), [{
        "interval": "30s", "input_series": series,
        "alert_rule_test": [{"eval_time": "6m", "alertname": "SidekiqQueueLatencyHigh", "exp_alerts": [
            {"exp_labels": {"severity": "warning", "queue": "default", "threshold": "30"},
             "exp_annotations": {"summary": "Sidekiq queue default has waited 1m 40s",
                                 "description": what_to_do("SidekiqQueueLatencyHigh"),
                                 "runbook_url": "docs/troubleshooting.md#a-queue-waits-too-long"}}]}]}])


# -- a real Prometheus -----------------------------------------------------------------------------------------

class Prometheus:
    """Debian's prometheus on a loopback port of our own, with its own temporary storage."""

    def __init__(self, targets: dict[str, int], *rules: str) -> None:
        """Each target is a job of its name, labelled `app` by it as docs/alerts.md recommends for one store of
        several apps; each rules text is a rule file."""
        if not shutil.which("prometheus"):
            pytest.fail("prometheus is not installed: run the README's test command (tests/run)")
        self.dir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
        for n, text in enumerate(rules):
            (self.dir / f"rules{n}.yml").write_text(text)
        (self.dir / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(self.dir / f"rules{n}.yml") for n in range(len(rules))],
            "scrape_configs": [{"job_name": job, "static_configs": [
                {"targets": [f"127.0.0.1:{port}"], "labels": {"app": job}}]} for job, port in targets.items()]}))
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "w"))  # noqa: SIM115 - its log, for failures
        if not wait_until(self.ready, 30):
            self.close()
            pytest.fail(f"prometheus did not start: {(self.dir / 'log').read_text()[-2000:]}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> object:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def alerts(self, name: str) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def rule_states(self) -> dict[str, set[str]]:
        states: dict[str, set[str]] = {}
        for group in self.api("rules")["groups"]:
            for rule in group["rules"]:
                assert rule["health"] == "ok", rule
                if rule["type"] == "alerting":
                    states.setdefault(rule["name"], set()).add(rule["state"])
        return states

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_states(prometheus: Prometheus, name: str, last: str, by: str = "alertname", of: tuple[str, ...] = (),
                    timeout: float = 30.0) -> dict[str, list[str]]:
    """The states each of an alert's instances went through, in order, told apart by the label `by`: polled until
    every one of `of` (or any one) is in state `last`, never for a fixed time."""
    seen: dict[str, list[str]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for alert in prometheus.alerts(name):
            states = seen.setdefault(alert["labels"].get(by, ""), [])
            if not states or states[-1] != alert["state"]:
                states.append(alert["state"])
        done = [key for key, states in seen.items() if states[-1] == last]
        if (set(of) <= set(done)) if of else done:
            return seen
        time.sleep(0.1)
    pytest.fail(f"{name} went through {seen}, never all {last} within {timeout} s")


@pytest.fixture(scope="module")
def stack(reference_sidekiq):
    """redis-server with real Sidekiq's jobs (pushed, never taken), a process heartbeat, a dead job, a scheduled
    one, failures, and this minute's execution metrics written by real Sidekiq 7.3's tracker; the emitter with
    autoscaling against a Platform API on loopback; and a real Prometheus scraping it with our rules loaded."""
    redis_server = RedisServer().start()
    r = redis_server.client()
    r.config_set("maxmemory", str(512 * 1024 * 1024))  # a limit, so redis.memory.max and .ratio are served
    r.config_set("maxmemory-policy", "noeviction")
    sidekiq(redis_server.url, [{"push": {"queue": "default", "class": "HardJob"}},
                               {"push": {"queue": "mailers", "class": "MailJob"}},
                               {"push": {"queue": "held", "class": "HardJob"}},
                               {"schedule": {"queue": "default", "in": 600}}])
    r.sadd("paused", "held")  # as Sidekiq Pro's Queue#pause! does: its latency grows by design, and pages nobody
    r.zadd("dead", {json.dumps({"class": "HardJob", "queue": "default", "jid": "d" * 24, "args": []}): time.time()})
    r.mset({"stat:processed": 40, "stat:failed": 4})
    worker = busy_process(r, "worker.1", "HardJob", 5)
    # A second job of that process has run for 1,000 s: past --stuck-job 600 (HardJob stays far below it).
    stuck = {"class": "StuckJob", "queue": "mailers", "jid": "e" * 24, "args": []}
    r.hset(f"{worker}:work", "tid-2", json.dumps({"queue": "mailers", "payload": json.dumps(stuck),
                                                  "run_at": int(time.time() - 1000)}))
    r.hset(worker, "busy", 2)
    minute_started = time.time()
    subprocess.run([*reference_sidekiq["7"], str(ROOT / "tests/support/metrics_ref.rb")], check=True, text=True,
                   capture_output=True, timeout=60, env={**os.environ, "REDIS_URL": redis_server.url},
                   input=json.dumps([{"track": {"class": "HardJob", "ms": [120, 900], "failures": 1,
                                                "at": int(minute_started)}}]))
    api = FakePlatformApi(formation={"worker": 1})
    port = free_port()
    env = {"REDIS_URL": redis_server.url, "SIDEKIQ_METRICS_OUTPUT": "prometheus",
           "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1", "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port),
           "SIDEKIQ_METRICS_INTERVAL": INTERVAL, "SIDEKIQ_METRICS_AUTOSCALE": "worker",
           "HEROKU_API_TOKEN": api.token, "HEROKU_APP_NAME": api.app, "SIDEKIQ_METRICS_HEROKU_API_URL": api.url,
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "2", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_LATENCY": "1",
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_DOWN_LATENCY": "0.5",
           "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_POLLS": "1", "SIDEKIQ_METRICS_AUTOSCALE_WORKER_UP_COOLDOWN": "0"}
    # Readings of 2 s (the rules bridge gaps of about two): the 2.5 s pause below is one failed poll even when a
    # loaded machine delays the polls around it (with 1 s it once looked like three and resolved the alerts).
    rules = alerts_cli("--latency", f"{LATENCY:g}", "--for-scale", FOR_SCALE, "--scrape-interval", "2",
                       "--stuck-job", "600", env=env)
    emitter = spawn("run", env=env)
    prometheus = None
    try:
        prometheus = Prometheus({"sidekiq": port}, rules)
        yield prometheus, emitter, r, minute_started
    finally:
        if prometheus:
            prometheus.close()
        if emitter.poll() is None:
            emitter.terminate()
            emitter.wait(5)
        api.close()
        redis_server.cleanup()


def query_range(prometheus: Prometheus, query: str) -> list[dict]:
    now = time.time()
    return prometheus.api("query_range", query=query, start=f"{now - 60:.3f}", end=f"{now:.3f}", step="1")["result"]


def dashboard_queries() -> list[tuple[str, str]]:
    model = json.loads(cli("dashboard", env={"SIDEKIQ_METRICS_INTERVAL": INTERVAL}).stdout)
    return [(panel["title"], target["expr"].replace("$__rate_interval", "10s"))
            for panel in model["panels"] for target in panel["targets"]]


@pytest.mark.long
def test_alerts_and_dashboard_on_a_real_prometheus(stack):
    prometheus, emitter, r, minute_started = stack

    # Jobs wait and no worker takes them: the latency alert goes pending, then firing, for each queue.
    seen = wait_for_states(prometheus, "SidekiqQueueLatencyHigh", "firing", by="queue", of=("default", "mailers"))
    assert seen == {"default": ["pending", "firing"], "mailers": ["pending", "firing"]}
    # `held` has waited as long, but Sidekiq Pro holds it paused: neither pending nor firing.
    assert {a["labels"]["queue"] for a in prometheus.alerts("SidekiqQueueLatencyHigh")} == {"default", "mailers"}
    [firing] = [a for a in prometheus.alerts("SidekiqQueueLatencyHigh") if a["labels"]["queue"] == "default"]
    assert firing["labels"]["severity"] == "warning" and firing["annotations"]["runbook_url"].endswith(
        "troubleshooting.md#a-queue-waits-too-long")
    assert re.fullmatch(r"Sidekiq queue default has waited ([0-9]+[hm] )*[0-9.]+s", firing["annotations"]["summary"])

    # Autoscaling went to its maximum of 2 with latency over the threshold: the ceiling alert.
    wait_for_states(prometheus, "SidekiqAutoscaleAtCeiling", "firing", by="process_type", of=("worker",))

    # Silent where the condition does not hold: a live process is registered while jobs wait, nothing evicted.
    states = prometheus.rule_states()
    assert states["SidekiqNoLiveProcess"] == {"inactive"} and states["SidekiqRedisEvicting"] == {"inactive"}

    # The job that has run 1,000 s fires the stuck-job alert, for its class only.
    # (Firing from the first evaluations: it may have gone through pending before this looks.)
    assert wait_for_states(prometheus, "SidekiqJobStuck", "firing", by="job_class", of=("StuckJob",))[
        "StuckJob"][-1] == "firing"
    assert {a["labels"]["job_class"] for a in prometheus.alerts("SidekiqJobStuck")} == {"StuckJob"}

    # Redis near its limit: maxmemory just above what it holds, then filled.
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", str(used + 4 * 1024 * 1024))
    filler = b"x" * 100_000
    for n in range(60):  # ~6 MB: noeviction refuses the writes past the limit
        try:
            r.set(f"alerts-test-filler:{n}", filler)
        except Exception:  # noqa: BLE001 - OOM: full, as wanted
            break
    wait_for_states(prometheus, "SidekiqRedisMemoryHigh", "firing")
    r.delete(*[f"alerts-test-filler:{n}" for n in range(60)])
    r.config_set("maxmemory", str(512 * 1024 * 1024))

    # Every dashboard panel's query returns series, job classes included once real Sidekiq's minute is read.
    assert wait_until(lambda: time.time() > (minute_started // 60 + 1) * 60 + 12, 75)
    queries = dashboard_queries()
    assert wait_until(lambda: all(query_range(prometheus, q) for _, q in queries), 30), [
        title for title, q in queries if not query_range(prometheus, q)]

    # One failed poll (Redis paused 2.5 s, as a failover or a slow fork does: `metrics.up` 0, no queue series)
    # resolves no firing latency alert; draining the queue does, within a few readings.
    def firing_queues() -> set[str]:
        return {a["labels"]["queue"] for a in firing_alerts(prometheus, "SidekiqQueueLatencyHigh")}

    def scraped(query: str) -> bool:
        return bool(prometheus.api("query", query=query)["result"])

    recovered: list[float] = []

    def over() -> bool:
        """Resolved (the defect); or the failed poll scraped (up 0), a whole poll scraped since, and the rules
        evaluated twice more: the gap watched to its end by events, never for a fixed time."""
        if firing_queues() != {"default", "mailers"}:
            return True
        if not recovered:
            if scraped("min_over_time(sidekiq_metrics_up[15s]) == 0") and scraped("sidekiq_metrics_up == 1"):
                recovered.append(time.time())
            return False
        return scraped(f'timestamp(ALERTS{{alertname="SidekiqQueueLatencyHigh"}}) > {recovered[0] + 1.5:.3f}')

    assert firing_queues() == {"default", "mailers"}
    blip = threading.Thread(target=lambda: r.execute_command("CLIENT", "PAUSE", "2500"))
    blip.start()
    assert wait_until(over, 20)
    blip.join()
    assert scraped("min_over_time(sidekiq_metrics_up[30s]) == 0"), "the pause failed no poll: it shows nothing"
    assert firing_queues() == {"default", "mailers"}, "one failed poll resolved a firing latency alert"
    r.delete("queue:default")
    assert wait_until(lambda: firing_queues() == {"mailers"}, 15)

    # Stopping the emitter fires the metrics-stopped alert.
    emitter.terminate()
    emitter.wait(5)
    assert wait_for_states(prometheus, "SidekiqMetricsStopped", "firing") == {"SidekiqMetricsStopped": [
        "pending", "firing"]}


@pytest.mark.parametrize("env", [{}, SHARDED])
def test_the_dashboard_takes_rates_of_totals_only_and_has_a_shard_variable_with_shards(env):
    model = json.loads(cli("dashboard", env=env).stdout)
    assert model["schemaVersion"] >= 39
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    queries = [t["expr"] for p in model["panels"] for t in p["targets"]]
    assert all(t["datasource"]["uid"] == "${datasource}" for p in model["panels"] for t in p["targets"])
    rated = re.findall(r"rate\((\w+)\{", " ".join(queries))
    assert rated and all(name.endswith("_total") for name in rated)  # never rate() of a gauge
    if env:  # the first shard's series have no shard label: its value is empty; the sums are never selected
        assert [(o["text"], o["value"]) for o in variables["shard"]["options"]] == [("main", ""), ("orders", "orders")]
        assert all('shard=~"$shard"' in q and 'shard!="all"' in q for q in queries
                   if "autoscale" not in q and "metrics_up" not in q)
    else:
        assert "shard" not in variables and "$shard" not in " ".join(queries)


def test_every_alert_links_to_a_section_of_troubleshooting_that_exists():
    from sidekiq_metrics.tools.alerts import ALERTS

    headings = re.findall(r"^#+ (.+)$", (ROOT / "docs/troubleshooting.md").read_text(), re.M)
    slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    assert {a.anchor for a in ALERTS} <= slugs
    assert "alerts-what-to-do" in slugs  # docs/alerts.md links the part


@given(st.lists(st.tuples(st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,8}", fullmatch=True),
                          st.sampled_from(["=", "!=", "=~", "!~"]), st.text(max_size=12)), max_size=4))
def test_selector_matchers_are_read_back_as_written(matchers):
    """Any matchers written as PromQL writes them are read back the same; any text at all is read or refused,
    never an exception."""
    from sidekiq_metrics.tools.promql import parse_matchers, quoted

    written = [f"{label}{op}{quoted(value)}" for label, op, value in matchers]
    assert parse_matchers(", ".join(written)) == tuple(written)
    assert parse_matchers("{" + ",".join(written) + "}") == tuple(written)


@given(st.text(max_size=40))
def test_any_selector_text_is_read_or_refused(text):
    from sidekiq_metrics.tools.promql import parse_matchers

    parsed = parse_matchers(text)
    assert parsed is None or all(m.count('"') >= 2 for m in parsed)


def test_with_a_selector_every_query_and_rule_selects_the_app_and_keeps_its_label():
    """Two apps in one store: every selector of the rules and the dashboard has the app's matcher, every
    aggregation and join keeps its label, and the group is named apart from the other app's."""
    selector = 'app="shop"'
    rules = alerts_cli("--selector", selector, env=SHARDED).replace('\\"', '"')
    model = json.loads(cli("dashboard", "--selector", selector, env=SHARDED).stdout)
    queries = [t["expr"] for p in model["panels"] for t in p["targets"]]
    exprs = [line for line in rules.splitlines() if "expr:" in line] + queries  # not the records' own names
    selectors = re.findall(r"\b(?:sidekiq_[a-z0-9_]+|sidekiq:[a-z_:0-9]+)(\{[^}]*\})?", " ".join(exprs))
    assert selectors and all(selector in found for found in selectors)
    assert all("app" in by for by in re.findall(r"\b(?:by|on) ?\(([^)]*)\)", rules))
    assert 'name: "sidekiq-metrics {app=\\"shop\\"}"' in alerts_cli("--selector", selector)


# -- issue 35's attack: each test failed before its fix ---------------------------------------------------------

AUTOSCALING = {"SIDEKIQ_METRICS_AUTOSCALE": "worker", "HEROKU_API_TOKEN": "t", "HEROKU_APP_NAME": "shop",
               "SIDEKIQ_METRICS_AUTOSCALE_WORKER_MAX": "4"}


def annotations(name: str, value: str = "", **labels: str) -> dict[str, str]:
    """The annotations promtool expects of an alert: its summary with the value and labels filled in as
    Prometheus's templates do for plain numbers, its what-to-do line, its link."""
    import re

    from sidekiq_metrics.tools.alerts import ALERTS

    [alert] = [a for a in ALERTS if a.name == name]
    summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], alert.summary)
    summary = re.sub(r"\{\{ \$value[^}]*\}\}", value, summary)
    return {"summary": summary, "description": f"What to do: {alert.action}.",
            "runbook_url": f"docs/troubleshooting.md#{alert.anchor}"}


def duration_text(seconds: int) -> str:
    """Prometheus's `humanizeDuration` of whole seconds: `45s`, `1m 0s`, `1h 17m 40s`."""
    minutes, hours = seconds // 60 % 60, seconds // 3600
    return f"{hours}h {minutes}m {seconds % 60}s" if hours else f"{minutes}m {seconds % 60}s" if minutes \
        else f"{seconds}s"


def alerts_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`alerts` with the emitter's default interval (30 s), whatever its status."""
    return cli("alerts", *args, env={"REDIS_URL": "redis://127.0.0.1:1/0", **(env or {})})


def promtool_result(tmp_path: Path, rules: str, tests: list[dict]) -> subprocess.CompletedProcess[str]:
    """promtool_test(), its result returned for the caller's own message."""
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(json.dumps({"rule_files": ["rules.yml"], "evaluation_interval": "30s",
                                                    "tests": tests}))
    return promtool("test", "rules", "tests.yml", cwd=tmp_path)



# -- 2. SidekiqDeadSetGrowing at Sidekiq's trim cap ---------------------------------------------------------------

KILL = """
require "sidekiq"
require "sidekiq/api"
Sidekiq.default_configuration[:dead_max_jobs] = Integer(ARGV[0])
Integer(ARGV[1]).times do |n|
  jid = ARGV[2] + n.to_s
  Sidekiq::DeadSet.new.kill(Sidekiq.dump_json("class" => "ChargeJob", "queue" => "default", "jid" => jid,
                                                "args" => [], "error_class" => "RuntimeError"),
                            notify_failure: false)
end
"""


def dead_served(redis_url: str) -> tuple[int, float]:
    """The dead set's size and the newest death's age, as the emitter serves them."""
    result = cli("run", "--once", env={"REDIS_URL": redis_url, "SIDEKIQ_METRICS_OUTPUT": "json"})
    assert result.returncode == 0, result.stderr
    totals = json.loads(result.stdout.splitlines()[-1])["totals"]
    return int(totals["dead"]), float(totals["dead.last_death"])


@pytest.mark.sidekiq
def test_dead_set_growing_fires_while_jobs_die_at_sidekiqs_dead_max_jobs(tmp_path, own_redis, reference_sidekiq):
    """A busy app's dead set sits at Sidekiq's cap (dead_max_jobs, 10,000 by default; 5 here). Every new death
    pushes the oldest dead job out, so `sidekiq_dead` stays flat while jobs keep dying. SidekiqDeadSetGrowing
    ("the dead set grew in the last 15 minutes") compares sizes, so it never fires: jobs are being lost to the dead
    set (and silently trimmed from it) and nobody is told. Real Sidekiq 7.3 kills the jobs; the real emitter reads
    the set; promtool evaluates the rule on the served values."""
    env = {"REDIS_URL": own_redis.url}
    empty = cli("run", "--once", env={"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_OUTPUT": "json"})
    assert "dead.last_death" not in json.loads(empty.stdout.splitlines()[-1])["totals"]  # no death: left out
    ruby = [*reference_sidekiq["7"], "-e", KILL]
    subprocess.run([*ruby, "5", "5", "old"], check=True, env={**os.environ, **env}, timeout=60)
    before = dead_served(own_redis.url)
    subprocess.run([*ruby, "5", "3", "new"], check=True, env={**os.environ, **env}, timeout=60)
    after = dead_served(own_redis.url)
    jids = {json.loads(m)["jid"] for m in own_redis.client().zrange("dead", 0, -1)}
    assert {"new0", "new1", "new2"} <= jids  # three jobs died in these "15 minutes"
    (before, _), (after, age) = before, after
    assert before == after and age < 60  # flat at Sidekiq's cap, and a job died just now
    # Before: the last death an hour old and growing; then as served after the deaths (held: jobs keep dying).
    rules = alerts_run().stdout
    result = promtool_result(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [{"series": "sidekiq_dead", "values": f"{before}x31 {after}x10"},
                         {"series": "sidekiq_dead_last_death_seconds", "values": f"3600+30x31 {age:.0f}x10"}],
        "alert_rule_test": [
            {"eval_time": "14m", "alertname": "SidekiqDeadSetGrowing", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "SidekiqDeadSetGrowing", "exp_alerts": [{
                "exp_labels": {"severity": "warning"},
                "exp_annotations": annotations("SidekiqDeadSetGrowing", duration_text(round(age)))}]}]}])
    assert result.returncode == 0, f"3 jobs died, dead set {before} -> {after}: " + result.stdout[-600:]


# -- 3. --queue-latency with shards: the first shard's name, and a shard that does not exist ----------------------

def test_queue_latency_names_the_first_shards_queue_as_autoscaling_does(tmp_path):
    """docs/alerts.md: `--queue-latency` names a queue "as autoscaling names queues", and autoscaling reads
    `main:critical` as the first shard's `critical` (CHANGELOG). With shards main and orders, a customer writes
    `--queue-latency main:critical=10`: the rule selects a queue literally named "main:critical", which does not
    exist, and the first shard's `critical` keeps the 30 s default. A 15 s wait on `critical` pages nobody."""
    rules = alerts_run("--queue-latency", "main:critical=10", env=SHARDED).stdout
    result = promtool_result(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [{"series": 'sidekiq_queue_latency_seconds{queue="critical"}', "values": "15x10"},
                         {"series": "sidekiq_metrics_up", "values": "1x10"}],
        "alert_rule_test": [{"eval_time": "5m", "alertname": "SidekiqQueueLatencyHigh",
                             "exp_alerts": [{"exp_labels": {"severity": "warning", "queue": "critical",
                                                            "threshold": "10"},
                                             "exp_annotations": annotations("SidekiqQueueLatencyHigh",
                                                                            queue="critical", value="15s")}]}]}])
    assert result.returncode == 0, result.stdout[-800:]


def test_queue_latency_on_a_shard_that_does_not_exist_is_refused():
    """A typo in the shard (`ordres:mailers=5` with shards main and orders) is accepted with exit 0: the rule
    watches a queue "ordres:mailers" of the first shard that does not exist, and the orders shard's `mailers`
    silently keeps the default threshold. Autoscaling refuses the same typo with exit 2 (CHANGELOG); docs/alerts.md
    promises a bad value is one line and exit status 2."""
    result = alerts_run("--queue-latency", "ordres:mailers=5", env=SHARDED)
    assert result.returncode == 2, (result.returncode, result.stderr)


# -- 4. --docs-url is written into a templated annotation ---------------------------------------------------------

def test_docs_url_with_template_braces_gives_rules_prometheus_loads(tmp_path):
    """`--docs-url` is checked only for spaces, `#` and `"`. A wiki URL with braces (Confluence/Notion-style
    `.../{{space}}/...`, or any `{{`) is written as-is into `runbook_url`, which Prometheus renders as a Go
    template: the command exits 0 and the rule file is refused by `promtool check rules` / Prometheus at load
    (every rule of the group lost), instead of one line and exit 2."""
    result = alerts_run("--docs-url", "https://wiki.example.com/{{runbook}}/sidekiq")
    rules = tmp_path / "rules.yml"
    rules.write_text(result.stdout)
    checked = promtool("check", "rules", str(rules))
    assert result.returncode == 2 or checked.returncode == 0, checked.stdout + checked.stderr


# -- 5. The dashboard's shard variable as Grafana reads it --------------------------------------------------------

def grafana_custom_options(query: str) -> list[tuple[str, str]]:
    """How Grafana (11+, @grafana/scenes CustomVariable.getValueOptions / transformCsvStringToOptions) turns a
    custom variable's `query` into its options, each time the dashboard loads: split on unescaped commas, then
    `label : value` only where the regex /^\\s*(.+)\\s:\\s(.+)$/ matches (a value of at least one character),
    else the whole trimmed text is both label and value. A stand-in for a real Grafana (none is installed here),
    worth exactly this parsing rule, copied in behaviour from Grafana's public source."""
    import re

    options = []
    for text in re.findall(r"(?:\\,|[^,])+", query):
        text = text.replace("\\,", ",")
        match = re.match(r"^\s*(.+)\s:\s(.+)$", text)
        options.append((match[1].strip(), match[2].strip()) if match else (text.strip(), text.strip()))
    return options


def test_dashboard_first_shard_option_keeps_its_empty_value_in_grafana():
    """With shards, the `shard` variable's first option is meant to have the empty value (the first shard's
    series carry no shard label). But Grafana rebuilds a custom variable's options from its `query`,
    "main : ,orders : orders", and "main : " (nothing after the colon) does not match Grafana's `label : value`
    pattern: the option becomes label "main :", value "main :". Choosing the first shard in the dropdown queries
    shard=~"main :" and every panel of the customer's main Redis shows "No data"."""
    model = json.loads(cli("dashboard", env=SHARDED).stdout)
    [shard] = [v for v in model["templating"]["list"] if v["name"] == "shard"]
    assert grafana_custom_options(shard["query"])[0] == ("main", "")


# -- 6. Rules that compare a series with its own past break at every emitter handover -----------------------------

def test_dead_set_growing_survives_a_lease_handover(tmp_path):
    """On Fir every web dyno runs the sidecar and Prometheus scrapes each of them; only the lease holder serves
    series, so after a deploy or a dyno restart `sidekiq_dead` comes from another `instance`. The rule
    `sidekiq_dead - (sidekiq_dead offset 15m) > 0` only subtracts series with identical labels: for 15 minutes
    after every handover it compares nothing, and 50 jobs dying across a deploy never alert."""
    rules = alerts_run().stdout
    old, new = 'job="sidekiq",instance="web-5d8f-abcde:9394"', 'job="sidekiq",instance="web-7c2a-fghij:9394"'
    result = promtool_result(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [
            {"series": f"sidekiq_dead{{{old}}}", "values": "100x20"},
            {"series": f"sidekiq_dead_last_death_seconds{{{old}}}", "values": "5000+30x20"},
            {"series": f"sidekiq_dead{{{new}}}", "values": " ".join(["_"] * 21) + " 150x20"},
            # 50 jobs died across the deploy, the last one 60 s after the handover
            {"series": f"sidekiq_dead_last_death_seconds{{{new}}}", "values": " ".join(["_"] * 21) + " 60+30x20"}],
        "alert_rule_test": [{"eval_time": "11m", "alertname": "SidekiqDeadSetGrowing",
                             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "sidekiq",
                                                            "instance": "web-7c2a-fghij:9394"},
                                             "exp_annotations": annotations("SidekiqDeadSetGrowing", "1m 0s")}]}]}])
    assert result.returncode == 0, result.stdout[-800:]


# -- 7. The ceiling alert ignores the per-queue thresholds ----------------------------------------------------------

def test_autoscale_ceiling_respects_a_queues_own_latency_threshold(tmp_path):
    """`--queue-latency low=900` says the `low` queue may wait 15 minutes: SidekiqQueueLatencyHigh stays silent
    at 5 minutes. But SidekiqAutoscaleAtCeiling compares `max(latency)` of every queue with `--latency` (30 s),
    so a customer whose formation sits at its MAX overnight (by design) is paged "raise the type's MAX" for a
    queue they declared healthy."""
    rules = alerts_run("--queue-latency", "low=900", env=AUTOSCALING).stdout
    assert "SidekiqAutoscaleAtCeiling" in rules
    result = promtool_result(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [
            {"series": 'sidekiq_queue_latency_seconds{queue="low"}', "values": "300x60"},
            {"series": 'sidekiq_queue_latency_seconds{queue="default"}', "values": "0x30 100x30"},
            {"series": 'sidekiq_autoscale_current{process_type="worker"}', "values": "4x60"},
            {"series": 'sidekiq_autoscale_max{process_type="worker"}', "values": "4x60"}],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "SidekiqQueueLatencyHigh", "exp_alerts": []},
            {"eval_time": "15m", "alertname": "SidekiqAutoscaleAtCeiling", "exp_alerts": []},
            {"eval_time": "29m", "alertname": "SidekiqAutoscaleAtCeiling", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "process_type": "worker"},
                "exp_annotations": annotations("SidekiqAutoscaleAtCeiling", process_type="worker", value="4")}]}]}])
    assert result.returncode == 0, result.stdout[-800:]


# -- 8. The autoscaling rename is not in the CHANGELOG ---------------------------------------------------------

def test_changelog_tells_upgraders_that_the_autoscale_metrics_were_renamed():
    """Issue 35 renamed autoscaling's metrics in four outputs: Prometheus `sidekiq_autoscale_worker_current` ->
    `sidekiq_autoscale_current{process_type="worker"}`, DogStatsD `sidekiq.autoscale.worker.current` -> a
    `process_type` tag, CloudWatch `AutoscaleWorkerCurrent` -> `AutoscaleCurrent` by `ProcessType`, JSON
    `totals."autoscale.worker.current"` -> `process_type.worker`. A customer's Datadog monitor or Grafana panel on
    the old name goes silently to "no data" on upgrade; the CHANGELOG's Unreleased section says nothing (nor does
    it mention the `alerts` and `dashboard` commands)."""
    from support.commands import ROOT

    unreleased = (ROOT / "CHANGELOG.md").read_text().split("## [0.1.0]")[0]
    assert "autoscale_worker_current" in unreleased or "autoscale.worker.current" in unreleased
    assert "sidekiq-metrics alerts" in unreleased or "`alerts`" in unreleased



# -- 9. OTLP users: absent() waits Prometheus's 5-minute lookback on pushed series ------------------------------

def test_otlp_metrics_stopped_fires_within_a_few_intervals_of_the_last_export(tmp_path):
    """With `--naming otlp` the series are pushed (OTLP into Grafana Cloud / Mimir / Prometheus's OTLP receiver):
    no scrape fails, so no staleness marker ends them, and `absent(sidekiq_metrics_up_ratio)` stays false for the
    5-minute lookback after the last export. The emitter stops: the customer is told about 6 minutes later, not
    "two intervals" (docs/alerts.md table; metrics.md even names `absent_over_time` for this). Here: 30 s
    interval, exports stop at 2 min, nothing has fired 2.5 minutes later."""
    rules = alerts_run("--naming", "otlp").stdout
    result = promtool_result(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [{"series": 'sidekiq_metrics_up_ratio{job="sidekiq"}', "values": "1x4"}],
        "alert_rule_test": [{"eval_time": "4m30s", "alertname": "SidekiqMetricsStopped",
                             "exp_alerts": [{"exp_labels": {"severity": "critical"},
                                             "exp_annotations": annotations("SidekiqMetricsStopped")}]}]}])
    assert result.returncode == 0, result.stdout[-800:]


# -- 10. --naming otlp with a prefix that has an underscore beside a separator ------------------------------------

def test_otlp_naming_collapses_underscores_as_the_translator_does():
    """Prometheus's OTLP translator (prometheus/otlptranslator, used by Prometheus 3's OTLP receiver and Mimir /
    Grafana Cloud) splits a name into tokens on every character outside [a-zA-Z0-9:], underscores included, and
    joins them with one `_`. With SIDEKIQ_METRICS_PREFIX=sidekiq_ (accepted), the export's `sidekiq_.queue.latency`
    is stored as `sidekiq_queue_latency_seconds`, but the rules and dashboard name `sidekiq__queue_latency_seconds`:
    no rule finds a series, and SidekiqMetricsStopped's absent() fires for ever."""
    rules = alerts_run("--naming", "otlp", env={"SIDEKIQ_METRICS_PREFIX": "sidekiq_"}).stdout
    assert "sidekiq__" not in rules and "sidekiq_queue_latency_seconds" in rules


# -- 11. The default runbook links go nowhere ----------------------------------------------------------------------

def test_every_page_says_what_to_do_and_with_docs_url_every_link_opens_its_section():
    """We cannot know where a user's copy of the docs is hosted, so the default runbook_url stays relative. But a
    page must say what to do without the link: every alert carries a `description`, its "what to do" line, as
    docs/alerts.md's table says it. And with `--docs-url` every runbook link is absolute and opens the alert's
    own section of troubleshooting.md (an anchor that exists)."""
    import re

    from sidekiq_metrics.tools.alerts import ALERTS
    from support.commands import ROOT

    actions = {a.name: a.action for a in ALERTS}
    table = (ROOT / "docs/alerts.md").read_text()
    headings = re.findall(r"^#+ (.+)$", (ROOT / "docs/troubleshooting.md").read_text(), re.M)
    slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    url = "https://github.com/shop/heroku-buildpack-sidekiq-metrics/blob/main/docs/troubleshooting.md"
    for args in ((), ("--docs-url", url)):
        pages = rule_annotations(alerts_run(*args, env=AUTOSCALING).stdout)
        assert {name for name, _ in pages} == set(actions)
        for name, annotation in pages:
            assert annotation["description"] == f"What to do: {actions[name]}." and actions[name] in table
            anchor = next(a.anchor for a in ALERTS if a.name == name)
            assert anchor in slugs
            if args:
                assert annotation["runbook_url"] == f"{url}#{anchor}"
                assert urllib.parse.urlparse(annotation["runbook_url"]).scheme == "https"
            else:
                assert annotation["runbook_url"] == f"docs/troubleshooting.md#{anchor}"


def rule_annotations(rules: str) -> list[tuple[str, dict[str, str]]]:
    """Each alerting rule's name and annotations, read from the YAML we print (double-quoted scalars, JSON's)."""
    found: list[tuple[str, dict[str, str]]] = []
    for line in rules.splitlines():
        key, _, value = line.strip().lstrip("- ").partition(": ")
        if key == "alert":
            found.append((json.loads(value), {}))
        elif key in ("summary", "description", "runbook_url") and found:
            found[-1][1][key] = json.loads(value)
    return found


# -- 12. SIDEKIQ_METRICS_STATS=false: rules on series the emitter never serves --------------------------------------

def test_alerts_with_stats_off_do_not_ship_rules_that_can_never_fire(own_redis):
    """docs/alerts.md: the commands "read the same settings as `run`". An original-buildpack user with
    SIDEKIQ_METRICS_STATS=false (only the per-queue lines) gets all eleven alerts, exit 0, not a word on stderr;
    but the real emitter then serves only queue size/latency and metrics.up. SidekiqNoLiveProcess (critical),
    SidekiqRedisMemoryHigh (critical), SidekiqRedisEvicting (critical), the scheduler, dead-set, failure and
    utilization alerts are loaded, green, and can never fire: calm that is really blindness."""
    import re

    from support.sidekiq_data import busy_process

    sidekiq(own_redis.url, [{"push": {"queue": "default"}}])
    busy_process(own_redis.client(), "worker.1", "HardJob", 5)
    env = {"REDIS_URL": own_redis.url, "SIDEKIQ_METRICS_STATS": "false"}
    port = free_port()
    proc = spawn("run", env={**env, "SIDEKIQ_METRICS_OUTPUT": "prometheus", "SIDEKIQ_METRICS_INTERVAL": "0.5",
                             "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1",
                             "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port)})

    def body() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                return response.read().decode()
        except OSError:
            return ""

    try:
        assert wait_until(lambda: "sidekiq_metrics_up 1" in body(), 20)
        served = set(re.findall(r"^(\w+)[{ ]", body(), re.M))
    finally:
        proc.terminate()
        proc.wait(5)
    result = alerts_run(env=env)
    named = set(re.findall(r"\b(sidekiq_\w+?)(?:\{|\[| )", result.stdout.replace('\\"', '"')))
    never_served = named - served - {"sidekiq_job_running_longest_seconds", "sidekiq_autoscale_current",
                                     "sidekiq_autoscale_max", "sidekiq_redis_memory_ratio"}
    assert not never_served or "SIDEKIQ_METRICS_STATS" in result.stderr, (sorted(never_served), result.stderr)


def emitter(redis_url: str, port: int):
    return spawn("run", env={"REDIS_URL": redis_url, "SIDEKIQ_METRICS_OUTPUT": "prometheus",
                             "SIDEKIQ_METRICS_INTERVAL": "1", "SIDEKIQ_METRICS_PROMETHEUS_HOST": "127.0.0.1",
                             "SIDEKIQ_METRICS_PROMETHEUS_PORT": str(port)})


@pytest.mark.long
def test_metrics_stopped_fires_when_one_of_two_apps_emitter_stops():
    """A customer scrapes production and staging (two apps, default prefix) into one Prometheus / Grafana Cloud
    stack. Production's emitter dies: its series go stale, but `absent(sidekiq_metrics_up)` is false because
    staging's series exists, and `sidekiq_metrics_up < 1` has nothing to compare. SidekiqMetricsStopped never
    fires: production's metrics stopped in silence ("silence is never calm" is broken)."""
    production, staging = RedisServer().start(), RedisServer().start()
    ports = {"production": free_port(), "staging": free_port()}
    procs = {"production": emitter(production.url, ports["production"]),
             "staging": emitter(staging.url, ports["staging"])}
    # docs/alerts.md: several apps in one store, one rule file each, `--selector` on the label that tells them apart.
    rules = [alerts_run("--for-scale", "0.01", "--scrape-interval", "1", "--selector", f'app="{app}"',
                    env={"SIDEKIQ_METRICS_INTERVAL": "1"}).stdout for app in ports]
    prometheus = Prometheus(ports, *rules)
    try:
        assert wait_until(lambda: len(prometheus.api("query", query="sidekiq_metrics_up == 1")["result"]) == 2, 30)
        procs["production"].terminate()
        procs["production"].wait(5)
        # production's heartbeat is gone from Prometheus (stale) ...
        assert wait_until(lambda: not prometheus.api("query", query='sidekiq_metrics_up{job="production"}')["result"],
                          30)
        # ... and the alert that exists for exactly this should fire within a few evaluations (for: 1.2 s here).
        assert wait_until(lambda: any(a["labels"].get("app") == "production"
                                      for a in firing_alerts(prometheus, "SidekiqMetricsStopped")), 15), \
            "production's emitter stopped and SidekiqMetricsStopped never fired"
    finally:
        prometheus.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(5)
        production.cleanup()
        staging.cleanup()


def firing_alerts(prometheus: Prometheus, name: str) -> list[dict]:
    return [a for a in prometheus.alerts(name) if a["state"] == "firing"]



# -- The second review: paused queues, OTLP selectors, the stuck-job alert, durations, stats off --------------

def _values(served, default: str, **by_name: str):
    """promtool input series from what the real endpoint served: every series keeps its served value over the
    test (`<v>x<n>`) unless a name's end is given its own values."""
    out = []
    for name, labels, value in served:
        own = next((v for end, v in by_name.items() if name.endswith(end)), None)
        out.append({"series": series_text(name, labels), "values": own or default.format(v=f"{value:g}")})
    return out


def test_no_live_process_is_silent_for_jobs_held_in_a_paused_queue(tmp_path):
    """A customer pauses the `default` queue (Sidekiq Pro's Pause button) during an incident, and its jobs wait by
    design. Autoscaling with MIN=0 leaves a paused queue's backlog out ("asks for no dyno, holds no scale-down"),
    and an operator may scale the workers to 0 for the maintenance. SidekiqQueueLatencyHigh knows the queue is
    paused and stays silent, but SidekiqNoLiveProcess reads `sidekiq_enqueued` (paused queues' jobs included) and
    pages CRITICAL "jobs wait and no Sidekiq process is alive" at 3 a.m. for jobs nobody wants run."""
    server = RedisServer().start()
    api = FakePlatformApi(formation={"worker": 1})
    try:
        r = server.client()
        push(r, "default", *[job(time.time() - 100, args=[i]) for i in range(5)])
        r.sadd("paused", "default")
        worker = idle_process(r, "worker.1")
        # autoscaling (MIN=0) takes the worker dyno away, by design, as the only backlog is paused ...
        run_for(2, autoscale_env(server.url, api, MIN="0"))
        assert api.patches() == [0]
        r.srem("processes", worker)  # ... and the dyno stops: its heartbeat goes
        served = served_by_the_emitter({"REDIS_URL": server.url}, "_queue_paused")
    finally:
        api.close()
        server.stop()
        server.cleanup()
    names = {name for name, _, _ in served}
    assert "sidekiq_queue_paused" in names and "sidekiq_process_count" not in names
    result = promtool_result(tmp_path, alerts_run().stdout, [{
        "interval": "30s", "input_series": _values(served, "{v}x40"),
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "SidekiqQueueLatencyHigh", "exp_alerts": []},
            {"eval_time": "15m", "alertname": "SidekiqNoLiveProcess", "exp_alerts": []}]}])
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]


def test_job_stuck_does_not_resolve_and_page_again_on_one_failed_poll(tmp_path):
    """docs/alerts.md: "Every alert on a gauge reads it over three readings (max_over_time ...), so a firing alert
    does not resolve on one failed poll (and page again once its for: has passed)". SidekiqJobStuck reads
    `job_running_longest_seconds` bare. A failed poll serves only `metrics_up 0` (checked here on the real
    endpoint), the series goes stale for one 60 s scrape, and the stuck-job page resolves, then pages again
    2m30s later, for the same job that never stopped running."""
    server = RedisServer().start()
    try:
        r = server.client()
        busy_process(r, "worker.1", "HardJob", 4000)
        served = served_by_the_emitter({"REDIS_URL": server.url}, "_job_running_longest_seconds")
    finally:
        server.stop()
        server.cleanup()
    [(name, labels, _)] = [s for s in served if s[0].endswith("_job_running_longest_seconds")]
    # 4000 s and growing a scrape (60 s) at a time; the 11th scrape was a failed poll (the series is stale)
    values = "4000+60x10 stale 4660+60x10"
    # at 11m, the failed poll's scrape, the alert still fires, valued the last reading (4600 s)
    result = promtool_result(tmp_path, alerts_run().stdout, [{
        "interval": "60s",
        "input_series": [{"series": series_text(name, labels), "values": values},
                         {"series": "sidekiq_metrics_up", "values": "1x10 0 1x10"}],
        "alert_rule_test": [{"eval_time": "11m", "alertname": "SidekiqJobStuck", "exp_alerts": [{
            "exp_labels": {"severity": "warning", "job_class": "HardJob"},
            "exp_annotations": annotations("SidekiqJobStuck", "1h 16m 40s", job_class="HardJob")}]}]}])
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]


def test_summaries_in_seconds_read_as_durations_not_kiloseconds(tmp_path):
    """The summaries render seconds with `humanize`, an SI formatter: a job stuck past the default 3600 s pages
    "A HardJob job has run for 3.9ks", a queue 20 minutes late "has waited 1.2ks", a death 10 minutes ago "died
    600s ago" but 16 minutes "1ks": at 3 a.m. nobody reads kiloseconds (Prometheus's `humanizeDuration` says
    "1h 5m 0s"). Every SidekiqJobStuck page reads so, as its threshold is over 1,000 s."""
    rules = alerts_run().stdout
    result = promtool_result(tmp_path, rules, [{
        "interval": "60s",
        "input_series": [{"series": 'sidekiq_job_running_longest_seconds{job_class="HardJob"}', "values": "3900x10"},
                         {"series": 'sidekiq_queue_latency_seconds{queue="default"}', "values": "1200x10"},
                         {"series": "sidekiq_metrics_up", "values": "1x10"}],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "SidekiqJobStuck",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job_class": "HardJob"}}]},
            {"eval_time": "5m", "alertname": "SidekiqQueueLatencyHigh",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "queue": "default", "threshold": "30"}}]}]}])
    got = [line for line in (result.stdout + result.stderr).splitlines() if "summary=" in line]
    assert len(got) == 2, result.stdout[-1500:] + result.stderr[-1500:]  # promtool printed both alerts it got
    assert not [line for line in got if re.search(r"[0-9]ks\b", line)], got


def test_otlp_selector_names_the_service_name_and_refuses_labels_an_otlp_store_lacks(tmp_path):
    """A Fir app has no scrape target: it pushes OTLP, and a backend stores it by OpenTelemetry's Prometheus rules:
    `service.name` becomes `job`, `service.instance.id` `instance`, and every other resource attribute (an `app=shop`
    in OTEL_RESOURCE_ATTRIBUTES too) goes to `target_info`, not onto the series. A selector `app="shop"` would
    select nothing (no latency page ever, and SidekiqMetricsStopped paging from the moment the file loads): it is
    refused in one line naming what to use; `job="<service.name>"`, from our real export's resource, works."""
    server = RedisServer().start()
    receiver = OtlpReceiver()
    try:
        push(server.client(), "default", job(time.time() - 100))
        result = cli("run", "--once", env={"REDIS_URL": server.url, "SIDEKIQ_METRICS_OUTPUT": "otlp",
                                           "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "HEROKU_APP_NAME": "shop",
                                           "DYNO": "web.1", "OTEL_RESOURCE_ATTRIBUTES": "app=shop"})
        assert result.returncode == 0, result.stderr
        (export,) = receiver.wait_for(1, 10)
    finally:
        receiver.close()
        server.stop()
        server.cleanup()
    resource = export.resource()
    assert resource.get("app") == "shop" and resource["service.name"] == "shop"  # HEROKU_APP_NAME's
    refused = alerts_run("--naming", "otlp", "--selector", 'app="shop"')
    assert refused.returncode == 2 and not refused.stdout, refused
    assert len(refused.stderr.splitlines()) == 1 and 'job="<service.name>"' in refused.stderr, refused.stderr
    assert cli("dashboard", "--naming", "otlp", "--selector", 'app="shop"').returncode == 2
    # the OpenTelemetry spec's mapping of the resource onto every stored series: job and instance only
    labels = {"job": resource["service.name"], "instance": resource["service.instance.id"]}
    assert "sidekiq.metrics.up" in export.metrics()
    rules = alerts_run("--naming", "otlp", "--selector", f'job="{resource["service.name"]}"').stdout
    result = promtool_result(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [{"series": series_text("sidekiq_metrics_up_ratio", labels), "values": "1x40"},
                         {"series": series_text("sidekiq_queue_latency_seconds", {**labels, "queue": "default"}),
                          "values": "100+30x40"}],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "SidekiqMetricsStopped", "exp_alerts": []},
            {"eval_time": "15m", "alertname": "SidekiqQueueLatencyHigh", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "queue": "default", "threshold": "30", **labels},
                 "exp_annotations": annotations("SidekiqQueueLatencyHigh", "16m 40s", queue="default")}]}]}])
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]


def test_stats_off_leaves_out_the_stuck_job_alert_and_says_so():
    """docs/alerts.md: "Rules your settings could never fire are left out ... stderr says in one line which".
    With SIDEKIQ_METRICS_STATS=false (the original buildpack's per-queue lines) the emitter serves no
    `job_running_longest_seconds` (configuration.md: STATS covers "the longest-running job"; checked here on the
    real endpoint with a job running for 4000 s), yet `alerts` still ships SidekiqJobStuck and names it nowhere on
    stderr: the customer believes hung jobs are watched, and an hour-long job never pages."""
    server = RedisServer().start()
    try:
        busy_process(server.client(), "worker.1", "HardJob", 4000)
        env = {"REDIS_URL": server.url, "SIDEKIQ_METRICS_STATS": "false"}
        served = served_by_the_emitter(env, "_metrics_up")
    finally:
        server.stop()
        server.cleanup()
    assert not [name for name, _, _ in served if "running_longest" in name]
    result = alerts_run(env={"SIDEKIQ_METRICS_STATS": "false"})
    assert result.returncode == 0, result.stderr
    assert "SidekiqJobStuck" not in result.stdout or "SidekiqJobStuck" in result.stderr, result.stderr


def test_dashboard_with_stats_off_leaves_out_the_panels_it_never_fills():
    """`alerts` leaves out what SIDEKIQ_METRICS_STATS=false never serves and says so; `dashboard`, given the same
    settings, still ships every panel. An original-buildpack user (per-queue lines only) imports it and finds most
    panels "No data" (throughput, busy threads, utilization, the sets, their lag, Redis), with nothing saying why:
    it reads as a broken emitter. Issue 35: "A panel that returns nothing is a failing test." Checked against what
    the real endpoint serves with those settings."""
    server = RedisServer().start()
    try:
        r = server.client()
        push(r, "default", job(time.time() - 100))
        busy_process(r, "worker.1", "HardJob", 50)
        served = {name for name, _, _ in served_by_the_emitter(
            {"REDIS_URL": server.url, "SIDEKIQ_METRICS_STATS": "false"}, "_metrics_up")}
    finally:
        server.stop()
        server.cleanup()
    result = cli("dashboard", env={"REDIS_URL": "redis://127.0.0.1:1/0", "SIDEKIQ_METRICS_STATS": "false"})
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    blind = []
    for panel in model["panels"]:
        names = {n for t in panel.get("targets", [])
                 for n in re.findall(r"\b(sidekiq_\w+?)(?:\{|\[| |\))", t.get("expr", ""))}
        # job classes (Sidekiq 7+ minutes) and autoscaling are out of this question
        if names and not names & served and not any(k in n for n in names for k in ("job_", "autoscale")):
            blind.append(panel["title"])
    assert not blind or "SIDEKIQ_METRICS_STATS" in result.stderr, blind


def test_autoscale_ceiling_judges_each_type_by_its_own_queues(tmp_path):
    """Two autoscaled types, each on its own queues (SIDEKIQ_METRICS_AUTOSCALE_<TYPE>_QUEUES): `worker` on
    `default`, held at its MAX of 2 on purpose with `default` 5 s late; `urgent` on `urgent`, 3 dynos of 10, its queue
    100 s late. SidekiqAutoscaleAtCeiling joins "a type at its max" with "any queue over its threshold" (`and on()`),
    so it pages "raise worker's autoscaling MAX" for a queue worker never serves, while the type that is late is
    far from its ceiling. Raising worker's MAX as told buys dynos that cannot help. The generator knows each type's
    queues from the same settings."""
    server = RedisServer().start()
    api = FakePlatformApi(formation={"worker": 2, "urgent": 3})
    env = {**autoscale_env(server.url, api, QUEUES="default", MAX="2", MIN="2"),
           "SIDEKIQ_METRICS_AUTOSCALE": "worker,urgent", "SIDEKIQ_METRICS_AUTOSCALE_URGENT_QUEUES": "urgent",
           "SIDEKIQ_METRICS_AUTOSCALE_URGENT_MIN": "3", "SIDEKIQ_METRICS_AUTOSCALE_URGENT_MAX": "10",
           "SIDEKIQ_METRICS_AUTOSCALE_URGENT_UP_COOLDOWN": "3600"}
    try:
        r = server.client()
        push(r, "default", job(time.time() - 5))
        push(r, "urgent", job(time.time() - 100, queue="urgent"))
        served = served_by_the_emitter(env, "_autoscale_max")
    finally:
        api.close()
        server.stop()
        server.cleanup()
    values = {("sidekiq_autoscale_current", "worker"): "2x40", ("sidekiq_autoscale_max", "worker"): "2x40",
              ("sidekiq_autoscale_current", "urgent"): "3x40", ("sidekiq_autoscale_max", "urgent"): "10x40",
              ("sidekiq_queue_latency_seconds", "default"): "5x40",
              ("sidekiq_queue_latency_seconds", "urgent"): "100+30x40"}
    series = [{"series": series_text(name, labels),
               "values": values[(name, labels.get("process_type") or labels.get("queue"))]}
              for name, labels, _ in served
              if (name, labels.get("process_type") or labels.get("queue")) in values]
    assert len(series) == 6, served
    rules = alerts_run(env={k: v for k, v in env.items() if k != "REDIS_URL"}).stdout
    assert "SidekiqAutoscaleAtCeiling" in rules
    result = promtool_result(tmp_path, rules, [{
        "interval": "60s", "input_series": series,
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": "SidekiqAutoscaleAtCeiling", "exp_alerts": []}]}])
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-1500:]
