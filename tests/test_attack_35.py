"""Attack on issue 35 (`sidekiq-metrics alerts` / `dashboard`): each test reproduces a defect a customer would meet,
on real parts (redis-server, the real emitter, promtool, Debian's Prometheus). Each FAILS on the current code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from support.commands import cli, spawn
from support.redis_server import RedisServer, free_port, wait_until
from support.sidekiq_data import sidekiq

SHARDED = {"REDIS_URL": "redis://127.0.0.1:1/0", "ORDERS_URL": "redis://127.0.0.1:2/0",
           "SIDEKIQ_METRICS_SHARDS": "main:REDIS_URL,orders:ORDERS_URL"}
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


def alerts(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli("alerts", *args, env={"REDIS_URL": "redis://127.0.0.1:1/0", **(env or {})})


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def promtool_test(tmp_path: Path, rules: str, tests: list[dict]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(json.dumps({"rule_files": ["rules.yml"], "evaluation_interval": "30s",
                                                    "tests": tests}))
    return promtool("test", "rules", "tests.yml", cwd=tmp_path)


# -- 1. SidekiqMetricsStopped: absent() is global ----------------------------------------------------------------

class Prometheus:
    """Debian's prometheus on a loopback port, scraping several emitters (1 s scrape and evaluation)."""

    def __init__(self, targets: dict[str, int], *rules: str) -> None:
        """Each target is its own job, labelled `app` by its name as docs/alerts.md recommends for one store of
        several apps; each rules text its own rule file."""
        self.dir = Path(tempfile.mkdtemp(prefix="attack35-prom-"))
        for n, text in enumerate(rules):
            (self.dir / f"rules{n}.yml").write_text(text)
        (self.dir / "prometheus.yml").write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(self.dir / f"rules{n}.yml") for n in range(len(rules))],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                                                     "labels": {"app": job}}]}
                               for job, port in targets.items()]}))
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(self.ready, 30)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())["data"]

    def firing(self, name: str) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name and a["state"] == "firing"]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


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
    rules = [alerts("--for-scale", "0.01", "--scrape-interval", "1", "--selector", f'app="{app}"',
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
                                      for a in prometheus.firing("SidekiqMetricsStopped")), 15), \
            "production's emitter stopped and SidekiqMetricsStopped never fired"
    finally:
        prometheus.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(5)
        production.cleanup()
        staging.cleanup()


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
    rules = alerts().stdout
    result = promtool_test(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [{"series": "sidekiq_dead", "values": f"{before}x31 {after}x10"},
                         {"series": "sidekiq_dead_last_death_seconds", "values": f"3600+30x31 {age:.0f}x10"}],
        "alert_rule_test": [
            {"eval_time": "14m", "alertname": "SidekiqDeadSetGrowing", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "SidekiqDeadSetGrowing", "exp_alerts": [{
                "exp_labels": {"severity": "warning"},
                "exp_annotations": annotations("SidekiqDeadSetGrowing", f"{age:.0f}")}]}]}])
    assert result.returncode == 0, f"3 jobs died, dead set {before} -> {after}: " + result.stdout[-600:]


# -- 3. --queue-latency with shards: the first shard's name, and a shard that does not exist ----------------------

def test_queue_latency_names_the_first_shards_queue_as_autoscaling_does(tmp_path):
    """docs/alerts.md: `--queue-latency` names a queue "as autoscaling names queues", and autoscaling reads
    `main:critical` as the first shard's `critical` (CHANGELOG). With shards main and orders, a customer writes
    `--queue-latency main:critical=10`: the rule selects a queue literally named "main:critical", which does not
    exist, and the first shard's `critical` keeps the 30 s default. A 15 s wait on `critical` pages nobody."""
    rules = alerts("--queue-latency", "main:critical=10", env=SHARDED).stdout
    result = promtool_test(tmp_path, rules, [{
        "interval": "30s",
        "input_series": [{"series": 'sidekiq_queue_latency_seconds{queue="critical"}', "values": "15x10"},
                         {"series": "sidekiq_metrics_up", "values": "1x10"}],
        "alert_rule_test": [{"eval_time": "5m", "alertname": "SidekiqQueueLatencyHigh",
                             "exp_alerts": [{"exp_labels": {"severity": "warning", "queue": "critical",
                                                            "threshold": "10"},
                                             "exp_annotations": annotations("SidekiqQueueLatencyHigh",
                                                                            queue="critical", value="15")}]}]}])
    assert result.returncode == 0, result.stdout[-800:]


def test_queue_latency_on_a_shard_that_does_not_exist_is_refused():
    """A typo in the shard (`ordres:mailers=5` with shards main and orders) is accepted with exit 0: the rule
    watches a queue "ordres:mailers" of the first shard that does not exist, and the orders shard's `mailers`
    silently keeps the default threshold. Autoscaling refuses the same typo with exit 2 (CHANGELOG); docs/alerts.md
    promises a bad value is one line and exit status 2."""
    result = alerts("--queue-latency", "ordres:mailers=5", env=SHARDED)
    assert result.returncode == 2, (result.returncode, result.stderr)


# -- 4. --docs-url is written into a templated annotation ---------------------------------------------------------

def test_docs_url_with_template_braces_gives_rules_prometheus_loads(tmp_path):
    """`--docs-url` is checked only for spaces, `#` and `"`. A wiki URL with braces (Confluence/Notion-style
    `.../{{space}}/...`, or any `{{`) is written as-is into `runbook_url`, which Prometheus renders as a Go
    template: the command exits 0 and the rule file is refused by `promtool check rules` / Prometheus at load
    (every rule of the group lost), instead of one line and exit 2."""
    result = alerts("--docs-url", "https://wiki.example.com/{{runbook}}/sidekiq")
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
    rules = alerts().stdout
    old, new = 'job="sidekiq",instance="web-5d8f-abcde:9394"', 'job="sidekiq",instance="web-7c2a-fghij:9394"'
    result = promtool_test(tmp_path, rules, [{
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
                                             "exp_annotations": annotations("SidekiqDeadSetGrowing", "60")}]}]}])
    assert result.returncode == 0, result.stdout[-800:]


# -- 7. The ceiling alert ignores the per-queue thresholds ----------------------------------------------------------

def test_autoscale_ceiling_respects_a_queues_own_latency_threshold(tmp_path):
    """`--queue-latency low=900` says the `low` queue may wait 15 minutes: SidekiqQueueLatencyHigh stays silent
    at 5 minutes. But SidekiqAutoscaleAtCeiling compares `max(latency)` of every queue with `--latency` (30 s),
    so a customer whose formation sits at its MAX overnight (by design) is paged "raise the type's MAX" for a
    queue they declared healthy."""
    rules = alerts("--queue-latency", "low=900", env=AUTOSCALING).stdout
    assert "SidekiqAutoscaleAtCeiling" in rules
    result = promtool_test(tmp_path, rules, [{
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
    rules = alerts("--naming", "otlp").stdout
    result = promtool_test(tmp_path, rules, [{
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
    rules = alerts("--naming", "otlp", env={"SIDEKIQ_METRICS_PREFIX": "sidekiq_"}).stdout
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
        pages = rule_annotations(alerts(*args, env=AUTOSCALING).stdout)
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
    result = alerts(env=env)
    named = set(re.findall(r"\b(sidekiq_\w+?)(?:\{|\[| )", result.stdout.replace('\\"', '"')))
    never_served = named - served - {"sidekiq_job_running_longest_seconds", "sidekiq_autoscale_current",
                                     "sidekiq_autoscale_max", "sidekiq_redis_memory_ratio"}
    assert not never_served or "SIDEKIQ_METRICS_STATS" in result.stderr, (sorted(never_served), result.stderr)


# -- 13. One failed poll resolves every firing alert (and re-pages a minute later) ---------------------------------

@pytest.mark.long
def test_one_failed_poll_does_not_resolve_a_firing_latency_alert(own_redis):
    """A queue has waited too long; SidekiqQueueLatencyHigh is firing. Redis stalls for one poll (a 2.5 s
    `CLIENT PAUSE`, as a failover or a slow fork does): the emitter rightly serves `sidekiq_metrics_up 0` and no
    latency, Prometheus marks the latency series stale, and the alert resolves: Alertmanager sends RESOLVED while
    the queue still waits, then pages again once the `for:` has passed. A missing reading is read as "calm". Real
    emitter (interval 1 s), real Prometheus (1 s scrape/evaluation), rules with --latency 1."""
    import threading

    sidekiq(own_redis.url, [{"push": {"queue": "default"}}])
    port = free_port()
    proc = emitter(own_redis.url, port)
    rules = alerts("--latency", "1", "--for-scale", "0.01", "--scrape-interval", "1",
                   env={"SIDEKIQ_METRICS_INTERVAL": "1"}).stdout
    prometheus = Prometheus({"sidekiq": port}, rules)
    try:
        assert wait_until(lambda: prometheus.firing("SidekiqQueueLatencyHigh"), 30)
        blip = threading.Thread(target=lambda: own_redis.client().execute_command("CLIENT", "PAUSE", "2500"))
        blip.start()
        resolved = wait_until(lambda: not prometheus.firing("SidekiqQueueLatencyHigh"), 8)
        blip.join()
        assert not resolved, "one failed poll resolved the firing latency alert (the queue still waits)"
        own_redis.client().delete("queue:default")  # drained: now it resolves, within a few readings
        assert wait_until(lambda: not prometheus.firing("SidekiqQueueLatencyHigh"), 15)
    finally:
        prometheus.close()
        proc.terminate()
        proc.wait(5)
