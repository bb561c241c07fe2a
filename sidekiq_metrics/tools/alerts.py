"""`sidekiq-metrics alerts`: Prometheus alerting and recording rules for the series our outputs make, with the
user's prefix, shards and thresholds. Any Prometheus-compatible store reads them (Prometheus, Grafana Cloud or
Mimir, Amazon Managed Prometheus, VictoriaMetrics).

Each alert is declared once (ALERTS): its rule, its severity, its summary, and the section of
docs/troubleshooting.md that says what to do, which its rule links to and from which docs/alerts.md's table is
made (docs/tables.py). Names come from the catalogue through tools/promql.py, never typed here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from sidekiq_metrics import catalogue as c
from sidekiq_metrics.catalogue import Kind, Metric, Unit
from sidekiq_metrics.config import Settings
from sidekiq_metrics.errors import EXIT_CONFIG, ConfigError
from sidekiq_metrics.outputs.prometheus import metric_base
from sidekiq_metrics.tools.promql import NAMINGS, Naming, duration, quoted

# Issue 34 adds the longest-running job to the catalogue; until it lands the stuck-job rule names the metric by
# the agreed declaration, and finds no series (so never fires). Once merged: catalogue.JOB_RUNNING_LONGEST.
JOB_RUNNING_LONGEST = getattr(c, "JOB_RUNNING_LONGEST", None) or Metric(
    "job.<class>.running.longest", Kind.GAUGE, Unit.SECONDS, "seconds the longest-running job of the class has run",
    label="job_class")

TROUBLESHOOTING = "docs/troubleshooting.md"
# Where the buildpack's docs are read: its path in the repository unless told where it is hosted (`--docs-url`).
DEFAULT_DOCS_URL = TROUBLESHOOTING


@dataclass(frozen=True)
class Thresholds:
    """What the user may change; each has its flag (cli.py) and its default in docs/alerts.md."""

    latency: float = 30.0  # seconds: the original buildpack's users' alert
    queue_latency: tuple[tuple[str | None, str, float], ...] = ()  # (shard label, queue, seconds)
    failure_ratio: float = 0.05
    memory_ratio: float = 0.9
    utilization: float = 0.95
    scheduler_lag: float = 300.0  # seconds
    stuck_job: float = 3600.0  # seconds


@dataclass(frozen=True)
class Context:
    naming: Naming
    thresholds: Thresholds
    interval: float  # the emitter's, seconds


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    condition: str  # for docs/alerts.md
    default: str  # the default threshold, for docs/alerts.md
    anchor: str  # its section of docs/troubleshooting.md
    summary: str  # Prometheus's template language: {{ $labels.queue }}, {{ $value | humanize }}
    exprs: Callable[[Context], list[str] | list[tuple[str, dict[str, str]]]]  # and each one's own labels
    hold: Callable[[Context], float]  # `for:`, seconds
    action: str = ""  # what to do, in a line (docs/alerts.md; troubleshooting.md has the rest)


def _latency(ctx: Context) -> list[tuple[str, dict[str, str]]]:
    n, t = ctx.naming, ctx.thresholds
    own = [(n.series(c.QUEUE_LATENCY, f"queue={quoted(queue)}", f"shard={quoted(shard or '')}", each_shard=False),
            seconds) for shard, queue, seconds in t.queue_latency]
    # Each rule carries its threshold as a label: rules of one name must differ in their labels.
    exprs = [(f"{selector} > {seconds:g}", {"threshold": f"{seconds:g}"}) for selector, seconds in own]
    rest = f"{n.series(c.QUEUE_LATENCY)} > {t.latency:g}"
    if own:
        rest += f" unless on(queue, shard) ({' or '.join(selector for selector, _ in own)})"
    return [(rest, {"threshold": f"{t.latency:g}"}), *exprs]


def _stopped(ctx: Context) -> list[str]:
    n = ctx.naming
    return [f"{n.series(c.UP, each_shard=False)} < 1 or absent({n.name(c.UP)})"]


def _no_process(ctx: Context) -> list[str]:
    # process_* is left out when no process lives: its absence is the condition, hence `unless`, not a comparison.
    n = ctx.naming
    return [f"{n.series(c.ENQUEUED)} > 0 unless on(shard) (sum by (shard) ({n.series(c.PROCESS_COUNT)}) > 0)"]


def _scheduler(ctx: Context) -> list[str]:
    n, lag = ctx.naming, ctx.thresholds.scheduler_lag
    return [f'label_replace({n.series(c.SCHEDULED_LAG)} > {lag:g}, "set", "schedule", "", "") or '
            f'label_replace({n.series(c.RETRIES_LAG)} > {lag:g}, "set", "retry", "", "")']


def _dead(ctx: Context) -> list[str]:
    dead = ctx.naming.series(c.DEAD)
    return [f"{dead} - ({dead} offset 15m) > 0"]


def failure_ratio_record(naming: Naming) -> str:
    return f"{metric_base(naming.prefix)}:failure_ratio:rate5m"


def _failures(ctx: Context) -> list[str]:
    return [f"{failure_ratio_record(ctx.naming)} > {ctx.thresholds.failure_ratio:g}"]


def _memory(ctx: Context) -> list[str]:
    return [f"{ctx.naming.series(c.REDIS_MEMORY_RATIO)} > {ctx.thresholds.memory_ratio:g}"]


def _evictions(ctx: Context) -> list[str]:
    return [f"increase({ctx.naming.series(c.REDIS_EVICTED)}[5m]) > 0"]


def _saturated(ctx: Context) -> list[str]:
    # Left out with no live process: then SidekiqNoLiveProcess speaks, not this one.
    return [f"{ctx.naming.series(c.PROCESS_UTILIZATION)} >= {ctx.thresholds.utilization:g}"]


def _ceiling(ctx: Context) -> list[str]:
    n = ctx.naming
    current, ceiling = n.series(c.AUTOSCALE_CURRENT, each_shard=False), n.series(c.AUTOSCALE_MAX, each_shard=False)
    return [f"{current} >= {ceiling} and on() (max({n.series(c.QUEUE_LATENCY)}) > {ctx.thresholds.latency:g})"]


def _stuck(ctx: Context) -> list[str]:
    return [f"max by (job_class, shard) ({ctx.naming.series(JOB_RUNNING_LONGEST)}) > {ctx.thresholds.stuck_job:g}"]


def _polls(n: float) -> Callable[[Context], float]:
    return lambda ctx: n * ctx.interval


def _fixed(seconds: float) -> Callable[[Context], float]:
    return lambda ctx: seconds


ALERTS: tuple[Alert, ...] = (
    Alert("SidekiqQueueLatencyHigh", "warning", "a queue's oldest job has waited longer than its threshold",
          "30 s (`--latency`; per queue: `--queue-latency QUEUE=SECONDS`)", "a-queue-waits-too-long",
          "Sidekiq queue {{ $labels.queue }} has waited {{ $value | humanize }}s", _latency, _polls(2),
          action="add worker threads or dynos for the queue, or find the slow or flooding job class"),
    Alert("SidekiqMetricsStopped", "critical", "`metrics.up` below 1, or no series at all, for two intervals",
          "2 intervals", "metrics-stopped",
          "Sidekiq metrics stopped: the emitter is not running or cannot read Redis", _stopped, _polls(2),
          action="check the emitter's dyno and its log, then `sidekiq-metrics doctor`"),
    Alert("SidekiqNoLiveProcess", "critical", "jobs wait and no live Sidekiq process is registered",
          "2 min", "no-live-sidekiq-process",
          "{{ $value | humanize }} Sidekiq jobs wait and no Sidekiq process is alive", _no_process, _fixed(120),
          action="start or restart the worker dynos; read their crash log"),
    Alert("SidekiqSchedulerStuck", "warning", "the schedule or retry set's earliest due job has been due too long",
          "300 s (`--scheduler-lag`)", "the-scheduler-is-stuck",
          "Sidekiq's {{ $labels.set }} set is {{ $value | humanize }}s late", _scheduler, _polls(2),
          action="restart the workers: no process runs Sidekiq's scheduler, or it is stuck"),
    Alert("SidekiqDeadSetGrowing", "warning", "the dead set grew in the last 15 minutes", "any growth",
          "the-dead-set-grows", "{{ $value | humanize }} more dead Sidekiq jobs in 15 minutes", _dead, _fixed(0),
          action="read the dead jobs' errors in Sidekiq's Web UI; fix, then retry them"),
    Alert("SidekiqFailureRatioHigh", "warning", "failed / processed jobs over 5 minutes above the threshold",
          "0.05 (`--failure-ratio`)", "jobs-fail", "{{ $value | humanizePercentage }} of Sidekiq jobs fail",
          _failures, _fixed(300),
          action="find the failing job class and its error; a deploy may have broken it"),
    Alert("SidekiqRedisMemoryHigh", "critical", "Redis's used / max memory above the threshold",
          "0.9 (`--memory-ratio`)", "redis-memory-is-nearly-full",
          "Redis holds {{ $value | humanizePercentage }} of its maxmemory", _memory, _polls(2),
          action="drain or trim queues and sets, or move to a larger Redis plan, before it is full"),
    Alert("SidekiqRedisEvicting", "critical", "Redis evicted keys in the last 5 minutes", "any eviction",
          "redis-evicts-keys", "Redis evicted {{ $value | humanize }} keys in 5 minutes: jobs may be lost",
          _evictions, _fixed(0),
          action="set `maxmemory-policy noeviction`; jobs may have been lost"),
    Alert("SidekiqUtilizationSaturated", "warning", "a process type's busy / concurrency at or above the threshold",
          "0.95 for 15 min (`--utilization`)", "every-thread-is-busy",
          "Sidekiq {{ $labels.process_type }} processes are {{ $value | humanizePercentage }} busy", _saturated,
          _fixed(900),
          action="add dynos or threads for the type (or let autoscaling do it)"),
    Alert("SidekiqAutoscaleAtCeiling", "warning", "autoscaling at its maximum while a queue's latency is over the "
          "latency threshold", "at MAX and over 30 s for 5 min", "autoscaling-is-at-its-ceiling",
          "{{ $labels.process_type }} is at its autoscaling maximum of {{ $value | humanize }} dynos and queues "
          "still wait", _ceiling, _fixed(300),
          action="raise the type's autoscaling MAX, or find why jobs got slower"),
    Alert("SidekiqJobStuck", "warning", "a job class's longest-running job has run longer than the threshold "
          "(no series, so no alert, until the emitter reports it)", "3600 s (`--stuck-job`)", "a-job-is-stuck",
          "A {{ $labels.job_class }} job has run for {{ $value | humanize }}s", _stuck, _polls(2),
          action="look at the job in the Web UI's Busy page; a hung call needs a timeout"),
)


def rules(ctx: Context, docs_url: str = DEFAULT_DOCS_URL, for_scale: float = 1.0) -> dict[str, object]:
    """The rule file, as a structure: one group, the recording rule first."""
    n = ctx.naming
    processed, failed = n.series(c.PROCESSED), n.series(c.FAILED)
    entries: list[dict[str, object]] = [{
        "record": failure_ratio_record(n),
        "expr": f"sum by (shard) (rate({failed}[5m])) / sum by (shard) (rate({processed}[5m]))"}]
    for alert in ALERTS:
        for made in alert.exprs(ctx):
            expr, labels = (made, {}) if isinstance(made, str) else made
            rule: dict[str, object] = {"alert": alert.name, "expr": expr}
            if hold := alert.hold(ctx) * for_scale:
                rule["for"] = duration(hold)
            rule["labels"] = {"severity": alert.severity, **labels}
            rule["annotations"] = {"summary": alert.summary, "runbook_url": f"{docs_url}#{alert.anchor}"}
            entries.append(rule)
    return {"groups": [{"name": f"{metric_base(n.prefix)}-metrics", "rules": entries}]}


def to_yaml(value: object, indent: int = 0) -> str:
    """YAML of plain maps, lists and scalars; strings double-quoted (JSON's escapes are YAML's)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {to_yaml(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        out = []
        for item in value:
            text = to_yaml(item, indent + 2)
            out.append(f"{pad}- {text.lstrip()}")
        return "\n".join(out)
    return json.dumps(value)


def parse_number(flag: str, text: str, low: float = 0.0, high: float = math.inf) -> float:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        bound = f"from {low:g} to {high:g}" if math.isfinite(high) else f"of {low:g} or more"
        raise ConfigError(flag, f"must be a number {bound}, not {text[:40]!r}")
    return number


def parse_queue_latency(entries: Sequence[str], shards: Sequence[str]) -> tuple[tuple[str | None, str, float], ...]:
    """`QUEUE=SECONDS`, the queue named as autoscaling names it: `orders:critical` on the shard `orders`, plain
    on the default (first) one."""
    found = []
    for entry in entries:
        queue, equals, seconds = entry.rpartition("=")
        if not equals or not queue:
            raise ConfigError("--queue-latency", f"must be QUEUE=SECONDS, not {entry[:40]!r}")
        shard, colon, rest = queue.partition(":")
        label = shard if colon and shard in shards[1:] else None
        found.append((label, rest if label else queue, parse_number("--queue-latency", seconds)))
    return tuple(found)


def parse_naming(text: str) -> str:
    if text not in NAMINGS:
        raise ConfigError("--naming", f"must be one of {', '.join(NAMINGS)}, not {text[:40]!r}")
    return text


@dataclass(frozen=True)
class AlertFlags:
    """The command's own flags, as typed (parsed here, so that a bad one is one line and status 2)."""

    naming: str = "prometheus"
    latency: str = "30"
    queue_latency: tuple[str, ...] = ()
    failure_ratio: str = "0.05"
    memory_ratio: str = "0.9"
    utilization: str = "0.95"
    scheduler_lag: str = "300"
    stuck_job: str = "3600"
    for_scale: str = "1"
    docs_url: str = DEFAULT_DOCS_URL


def context_of(flags: AlertFlags, prefix: str, shards: Sequence[str], interval: float) -> tuple[Context, float]:
    """The rules' context and the `for:` scale, or ConfigError naming the bad flag."""
    thresholds = Thresholds(
        latency=parse_number("--latency", flags.latency),
        queue_latency=parse_queue_latency(flags.queue_latency, shards),
        failure_ratio=parse_number("--failure-ratio", flags.failure_ratio, 0, 1),
        memory_ratio=parse_number("--memory-ratio", flags.memory_ratio, 0, 1),
        utilization=parse_number("--utilization", flags.utilization, 0, 1),
        scheduler_lag=parse_number("--scheduler-lag", flags.scheduler_lag),
        stuck_job=parse_number("--stuck-job", flags.stuck_job))
    scale = parse_number("--for-scale", flags.for_scale, 0, 1)
    if not re.fullmatch(r"[^\s#\"]+", flags.docs_url):
        raise ConfigError("--docs-url", f"must be a URL without spaces or #, not {flags.docs_url[:40]!r}")
    return Context(Naming(prefix, parse_naming(flags.naming)), thresholds, interval), scale


def settings_context(flags: AlertFlags, settings: Settings) -> tuple[Context, float]:
    """context_of() with the emitter's prefix, shards and interval."""
    return context_of(flags, settings.prefix, [shard.name for shard in settings.shards], settings.interval)


def run_alerts(flags: AlertFlags, settings: Settings, out: TextIO, err: TextIO) -> int:
    try:
        ctx, scale = settings_context(flags, settings)
    except ConfigError as exc:
        err.write(f"sidekiq-metrics: {exc}\n")
        return EXIT_CONFIG
    return write_rules(ctx, scale, flags.docs_url, out)


def write_rules(ctx: Context, scale: float, docs_url: str, out: TextIO) -> int:
    out.write("# Prometheus rules made by `sidekiq-metrics alerts`: load with rule_files (prometheus.yml), or\n"
              "# `mimirtool rules load`, or as a PrometheusRule's spec. docs/alerts.md lists them.\n")
    out.write(to_yaml(rules(ctx, docs_url, scale)) + "\n")
    return 0


def alert_table() -> str:
    """docs/alerts.md's table: each alert, its condition, default threshold and what to do."""
    rows = ["| alert | severity | fires when | default threshold | what to do |", "|---|---|---|---|---|"]
    rows += [f"| `{a.name}` | {a.severity} | {a.condition} | {a.default} | {a.action} ([more](troubleshooting.md#"
             f"{a.anchor})) |" for a in ALERTS]
    return "\n".join(rows)
