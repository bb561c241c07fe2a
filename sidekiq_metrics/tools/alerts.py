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
from dataclasses import dataclass, field, replace
from typing import TextIO

from sidekiq_metrics import catalogue as c
from sidekiq_metrics.autoscale.settings import shard_queues
from sidekiq_metrics.config import Settings
from sidekiq_metrics.errors import ConfigError
from sidekiq_metrics.outputs.prometheus import metric_base
from sidekiq_metrics.tools.promql import NAMINGS, Naming, duration, parse_matchers, quoted

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
    dead_age: float = 900.0  # seconds: a job died less long ago than this


@dataclass(frozen=True)
class Context:
    naming: Naming
    thresholds: Thresholds
    interval: float  # the emitter's, seconds
    scrape_interval: float = 60.0  # the store's scrape of our endpoint (`--scrape-interval`), seconds
    # Each autoscaled type and the queues it serves as (shard label, queue), None for every queue: what autoscaling
    # reads (SIDEKIQ_METRICS_AUTOSCALE_<TYPE>_QUEUES), so that the ceiling alert judges a type by its own queues.
    autoscaled: tuple[tuple[str, tuple[tuple[str, str], ...] | None], ...] = ()

    @property
    def poll(self) -> float:
        """How often a new reading reaches the store: each export (OTLP pushes every poll), else each scrape that
        finds a new poll's values."""
        return self.interval if self.naming.style == "otlp" else max(self.interval, self.scrape_interval)

    @property
    def bridge(self) -> str:
        """A gauge read over this window (max_over_time, min_over_time) keeps its last value across one failed
        poll, whose series go stale, so that a firing alert neither resolves (and pages again) on it nor a pending
        one starts over; and it still resolves a few readings after the condition ends. One failed poll leaves
        up to two readings' time between two samples; a third is the margin for a late poll or scrape."""
        return duration(3 * self.poll)


@dataclass(frozen=True)
class Rule:
    expr: str
    labels: dict[str, str] = field(default_factory=dict)
    hold: float | None = None  # this rule's own `for:`, seconds, instead of its alert's


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    condition: str  # for docs/alerts.md
    default: str  # the default threshold, for docs/alerts.md
    anchor: str  # its section of docs/troubleshooting.md
    summary: str  # Prometheus's template language: {{ $labels.queue }}, {{ $value | humanize }}
    exprs: Callable[[Context], list[Rule]]
    hold: Callable[[Context], float]  # `for:`, seconds
    action: str = ""  # what to do, in a line: the `description` of every alert it sends, and docs/alerts.md
    needs: tuple[str, ...] = ()  # what must be on for its series to be served: "stats", "autoscale"


def latency_record(naming: Naming) -> str:
    """Queues over their own threshold (`threshold` label), valued their latency: the latency and ceiling
    alerts read it, so both judge a queue by the same threshold."""
    return f"{metric_base(naming.prefix)}:queue_latency:over_threshold"


def failure_ratio_record(naming: Naming) -> str:
    return f"{metric_base(naming.prefix)}:failure_ratio:rate5m"


def _latency_records(ctx: Context) -> list[Rule]:
    n, t = ctx.naming, ctx.thresholds

    def bridged(*matchers: str) -> str:  # a queue's own: its shard named, never the sums'
        return f"max_over_time({n.series(c.QUEUE_LATENCY, *matchers, each_shard=not matchers)}[{ctx.bridge}])"

    own = [(bridged(f"queue={quoted(queue)}", f"shard={quoted(shard or '')}"), seconds)
           for shard, queue, seconds in t.queue_latency]
    # Each carries its threshold as a label: the series of one record must differ in their labels.
    records = [Rule(f"{selector} > {seconds:g}", {"threshold": f"{seconds:g}"}) for selector, seconds in own]
    rest = f"{bridged()} > {t.latency:g}"
    if own:
        rest += f" unless on({n.by('queue', 'shard')}) ({' or '.join(selector for selector, _ in own)})"
    # A queue Sidekiq Pro holds paused waits by design (someone paused it, often during an incident): it pages
    # nobody, and asks for no more dynos (the ceiling alert reads this record), as autoscaling leaves it out.
    paused = f" unless on({n.by('queue', 'shard')}) (max_over_time({n.series(c.QUEUE_PAUSED)}[{ctx.bridge}]) == 1)"
    return [Rule(rest + paused, {"threshold": f"{t.latency:g}"}),
            *(Rule(f"({rule.expr}){paused}", rule.labels) for rule in records)]


def _failure_records(ctx: Context) -> list[Rule]:
    n = ctx.naming
    processed, failed, by = n.series(c.PROCESSED), n.series(c.FAILED), n.by("shard")
    return [Rule(f"sum by ({by}) (rate({failed}[5m])) / sum by ({by}) (rate({processed}[5m]))")]


def _latency(ctx: Context) -> list[Rule]:
    return [Rule(ctx.naming.record(latency_record(ctx.naming)))]


def _stopped(ctx: Context) -> list[Rule]:
    n = ctx.naming
    up = n.series(c.UP, each_shard=False)
    if n.style == "otlp":
        # Pushed series end with no staleness marker: absent() would wait out the 5-minute lookback. Absent for
        # two readings, then half of one more, as the scraped case's `for:`.
        # (The two rules differ by a label: rules of one name must.)
        return [Rule(f"{up} < 1", {"because": "metrics.up below 1"}),
                Rule(f"absent_over_time({up}[{ctx.bridge}])", hold=ctx.poll / 2)]
    return [Rule(f"{up} < 1 or absent({up})")]


def _no_process(ctx: Context) -> list[Rule]:
    # process_* is left out when no process lives: its absence is the condition, hence `unless`, not a comparison.
    # Jobs a queue Sidekiq Pro holds paused wait by design (autoscaling with MIN=0 rightly takes every dyno away
    # for them): they are taken off the enqueued total, which counts every queue (SIDEKIQ_METRICS_QUEUES or not).
    n, window, by = ctx.naming, ctx.bridge, ctx.naming.by("shard")
    processes = f"sum by ({by}) (max_over_time({n.series(c.PROCESS_COUNT)}[{window}]))"
    enqueued = f"max by ({by}) (max_over_time({n.series(c.ENQUEUED)}[{window}]))"
    paused = f"(max_over_time({n.series(c.QUEUE_PAUSED)}[{window}]) == 1)"
    sizes = f"max_over_time({n.series(c.QUEUE_SIZE)}[{window}])"
    held = f"sum by ({by}) ({sizes} and on({n.by('queue', 'shard')}) {paused})"
    waiting = f"{enqueued} - on({by}) ({held} or on({by}) 0 * {enqueued})"
    return [Rule(f"({waiting}) > 0 unless on({by}) ({processes} > 0)")]


def _scheduler(ctx: Context) -> list[Rule]:
    n, lag, window = ctx.naming, ctx.thresholds.scheduler_lag, ctx.bridge
    return [Rule(f'label_replace(max_over_time({n.series(c.SCHEDULED_LAG)}[{window}]) > {lag:g}, "set", "schedule", '
                 f'"", "") or label_replace(max_over_time({n.series(c.RETRIES_LAG)}[{window}]) > {lag:g}, "set", '
                 f'"retry", "", "")')]


def _dead(ctx: Context) -> list[Rule]:
    # The newest death's age, not the set's size: at Sidekiq's dead_max_jobs cap every death trims the oldest and
    # the size stays flat, and "retry all" empties it; no `offset`, so a new emitter (a lease handover, a
    # deploy) is judged at once, not after 15 minutes of its own.
    n = ctx.naming
    return [Rule(f"min_over_time({n.series(c.DEAD_LAST_DEATH)}[{ctx.bridge}]) < {ctx.thresholds.dead_age:g}")]


def _failures(ctx: Context) -> list[Rule]:
    n = ctx.naming
    return [Rule(f"{n.record(failure_ratio_record(n))} > {ctx.thresholds.failure_ratio:g}")]


def _memory(ctx: Context) -> list[Rule]:
    n = ctx.naming
    return [Rule(f"max_over_time({n.series(c.REDIS_MEMORY_RATIO)}[{ctx.bridge}]) > {ctx.thresholds.memory_ratio:g}")]


def _evictions(ctx: Context) -> list[Rule]:
    return [Rule(f"increase({ctx.naming.series(c.REDIS_EVICTED)}[5m]) > 0")]


def _saturated(ctx: Context) -> list[Rule]:
    # Left out with no live process: then SidekiqNoLiveProcess speaks, not this one.
    n = ctx.naming
    return [Rule(f"max_over_time({n.series(c.PROCESS_UTILIZATION)}[{ctx.bridge}]) >= {ctx.thresholds.utilization:g}")]


def _ceiling(ctx: Context) -> list[Rule]:
    # A type at its MAX while a queue it serves is over that queue's threshold (the latency alert's record, which
    # leaves paused queues out), in the same app: `on` the selector's labels. A type of unknown queues (rules made
    # without the autoscaling settings, or a type that serves every queue) is judged by every queue.
    n, window = ctx.naming, ctx.bridge
    rules = []
    for process_type, queues in ctx.autoscaled or ((None, None),):
        own = (f"process_type={quoted(process_type)}",) if process_type else ()
        current = f"max_over_time({n.series(c.AUTOSCALE_CURRENT, *own, each_shard=False)}[{window}])"
        ceiling = f"max_over_time({n.series(c.AUTOSCALE_MAX, *own, each_shard=False)}[{window}])"
        record = latency_record(n)
        late = " or ".join(f"{record}{{{', '.join((f'queue={quoted(q)}', f'shard={quoted(shard)}', *n.matchers))}}}"
                           for shard, q in queues) if queues else n.record(record)
        waiting = f"count by ({n.by()}) ({late})" if n.kept else f"count({late})"
        rules.append(Rule(f"{current} >= {ceiling} and on({n.by()}) ({waiting} > 0)"))
    return rules


def _stuck(ctx: Context) -> list[Rule]:
    n = ctx.naming
    return [Rule(f"max by ({n.by('job_class', 'shard')}) (max_over_time({n.series(c.JOB_RUNNING_LONGEST)}"
                 f"[{ctx.bridge}])) > {ctx.thresholds.stuck_job:g}")]


def _polls(n: float) -> Callable[[Context], float]:
    return lambda ctx: n * ctx.poll


def _fixed(seconds: float) -> Callable[[Context], float]:
    return lambda ctx: seconds


# Two readings and half of one more: one failed poll (or one lost scrape) never fires or resolves an alert.
READINGS = 2.5

ALERTS: tuple[Alert, ...] = (
    Alert("SidekiqQueueLatencyHigh", "warning",
          "a queue's oldest job has waited longer than its threshold (a queue Sidekiq Pro holds paused excepted)",
          "30 s (`--latency`; per queue: `--queue-latency QUEUE=SECONDS`)", "a-queue-waits-too-long",
          "Sidekiq queue {{ $labels.queue }} has waited {{ $value | humanizeDuration }}", _latency, _polls(READINGS),
          action="add worker threads or dynos for the queue, or find the slow or flooding job class"),
    Alert("SidekiqMetricsStopped", "critical", "`metrics.up` below 1, or no series at all, for two readings and a "
          "half", "2.5 readings", "metrics-stopped",
          "Sidekiq metrics stopped: the emitter is not running or cannot read Redis", _stopped, _polls(READINGS),
          action="check the emitter's dyno and its log, then `sidekiq-metrics doctor`"),
    Alert("SidekiqNoLiveProcess", "critical",
          "jobs wait (in queues not held paused) and no live Sidekiq process is registered",
          "2 min", "no-live-sidekiq-process",
          "{{ $value | humanize }} Sidekiq jobs wait and no Sidekiq process is alive", _no_process, _fixed(120),
          action="start or restart the worker dynos; read their crash log", needs=("stats",)),
    Alert("SidekiqSchedulerStuck", "warning", "the schedule or retry set's earliest due job has been due too long",
          "300 s (`--scheduler-lag`)", "the-scheduler-is-stuck",
          "Sidekiq's {{ $labels.set }} set is {{ $value | humanizeDuration }} late", _scheduler, _polls(READINGS),
          action="restart the workers: no process runs Sidekiq's scheduler, or it is stuck", needs=("stats",)),
    Alert("SidekiqDeadSetGrowing", "warning", "a job went to the dead set in the last 15 minutes (`dead.last_death`)",
          "15 min", "the-dead-set-grows", "A Sidekiq job died {{ $value | humanizeDuration }} ago", _dead, _fixed(0),
          action="read the dead jobs' errors in Sidekiq's Web UI; fix, then retry them", needs=("stats",)),
    Alert("SidekiqFailureRatioHigh", "warning", "failed / processed jobs over 5 minutes above the threshold",
          "0.05 (`--failure-ratio`)", "jobs-fail", "{{ $value | humanizePercentage }} of Sidekiq jobs fail",
          _failures, _fixed(300),
          action="find the failing job class and its error; a deploy may have broken it", needs=("stats",)),
    Alert("SidekiqRedisMemoryHigh", "critical", "Redis's used / max memory above the threshold",
          "0.9 (`--memory-ratio`)", "redis-memory-is-nearly-full",
          "Redis holds {{ $value | humanizePercentage }} of its maxmemory", _memory, _polls(READINGS),
          action="drain or trim queues and sets, or move to a larger Redis plan, before it is full",
          needs=("stats",)),
    Alert("SidekiqRedisEvicting", "critical", "Redis evicted keys in the last 5 minutes", "any eviction",
          "redis-evicts-keys", "Redis evicted {{ $value | humanize }} keys in 5 minutes: jobs may be lost",
          _evictions, _fixed(0),
          action="set `maxmemory-policy noeviction`; jobs may have been lost", needs=("stats",)),
    Alert("SidekiqUtilizationSaturated", "warning", "a process type's busy / concurrency at or above the threshold",
          "0.95 for 15 min (`--utilization`)", "every-thread-is-busy",
          "Sidekiq {{ $labels.process_type }} processes are {{ $value | humanizePercentage }} busy", _saturated,
          _fixed(900),
          action="add dynos or threads for the type (or let autoscaling do it)", needs=("stats",)),
    Alert("SidekiqAutoscaleAtCeiling", "warning", "a type's autoscaling at its maximum while a queue it serves "
          "(`AUTOSCALE_<TYPE>_QUEUES`, paused ones excepted) is over that queue's threshold",
          "at MAX and a queue over its threshold for 5 min", "autoscaling-is-at-its-ceiling",
          "{{ $labels.process_type }} is at its autoscaling maximum of {{ $value | humanize }} dynos and queues "
          "still wait", _ceiling, _fixed(300),
          action="raise the type's autoscaling MAX, or find why jobs got slower", needs=("autoscale",)),
    Alert("SidekiqJobStuck", "warning", "a job class's longest-running job has run longer than the threshold "
          "(`job.<class>.running.longest`)", "3600 s (`--stuck-job`)", "a-job-is-stuck",
          "A {{ $labels.job_class }} job has run for {{ $value | humanizeDuration }}", _stuck, _polls(READINGS),
          action="look at the job in the Web UI's Busy page; a hung call needs a timeout", needs=("stats",)),
)

# Why a need is not met, by the setting that turns it off.
UNMET = {"stats": "SIDEKIQ_METRICS_STATS=false: only the queues' size and latency are served",
         "autoscale": "no SIDEKIQ_METRICS_AUTOSCALE: autoscale.<type>.* is not served"}


def group_name(naming: Naming) -> str:
    """Unique per prefix and selector: two apps' rule files load side by side into one store."""
    name = f"{metric_base(naming.prefix)}-metrics"
    return f"{name} {{{', '.join(naming.matchers)}}}" if naming.matchers else name


def rules(ctx: Context, docs_url: str = DEFAULT_DOCS_URL, for_scale: float = 1.0,
          unmet: Sequence[str] = ()) -> dict[str, object]:
    """The rule file, as a structure: one group, the recording rules first. Alerts that need what `unmet` names
    (and the records only they read) are left out."""
    n = ctx.naming
    kept = [alert for alert in ALERTS if not set(alert.needs) & set(unmet)]
    entries: list[dict[str, object]] = [{"record": latency_record(n), "expr": r.expr, "labels": r.labels}
                                        for r in _latency_records(ctx)]
    if "stats" not in unmet:
        entries += [{"record": failure_ratio_record(n), "expr": r.expr} for r in _failure_records(ctx)]
    for alert in kept:
        for made in alert.exprs(ctx):
            rule: dict[str, object] = {"alert": alert.name, "expr": made.expr}
            if hold := (alert.hold(ctx) if made.hold is None else made.hold) * for_scale:
                rule["for"] = duration(hold)
            rule["labels"] = {"severity": alert.severity, **made.labels}
            rule["annotations"] = {"summary": alert.summary, "description": f"What to do: {alert.action}.",
                                   "runbook_url": f"{docs_url}#{alert.anchor}"}
            entries.append(rule)
    return {"groups": [{"name": group_name(n), "rules": entries}]}


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
    """`QUEUE=SECONDS`, the queue named as autoscaling names it (its own parser): `orders:critical` on the shard
    `orders`, the first shard's plain or by that shard's name (`main:critical`); a shard not listed is refused."""
    found = []
    for entry in entries:
        queue, equals, seconds = entry.rpartition("=")
        if not equals or not queue:
            raise ConfigError("--queue-latency", f"must be QUEUE=SECONDS, not {entry[:40]!r}")
        label: str | None = None
        if len(shards) > 1:  # without shards a colon is part of the queue's name, as for autoscaling
            (queue,) = shard_queues((queue,), tuple(shards), "--queue-latency")
            shard, colon, rest = queue.partition(":")
            if colon and shard in shards[1:] and rest:  # shard_queues named another shard's queue `shard:queue`
                label, queue = shard, rest
        found.append((label, queue, parse_number("--queue-latency", seconds)))
    return tuple(found)


def parse_naming(text: str) -> str:
    if text not in NAMINGS:
        raise ConfigError("--naming", f"must be one of {', '.join(NAMINGS)}, not {text[:40]!r}")
    return text


def parse_selector(text: str) -> tuple[str, ...]:
    matchers = parse_matchers(text)
    if matchers is None:
        raise ConfigError("--selector", f"must be PromQL label matchers such as app=\"shop\", not {text[:60]!r}")
    return matchers


# An absolute http(s) URL of characters a URL may hold unescaped, but none that a Go template (`{{`), YAML or
# our `#anchor` would read: `{`, `}`, `"`, `\\`, `#`, spaces, `<`, `>`, `|`, `^`, a backquote.
_DOCS_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?")


def parse_docs_url(text: str) -> str:
    if text != DEFAULT_DOCS_URL and not _DOCS_URL.fullmatch(text):
        raise ConfigError("--docs-url", "must be an absolute http(s) URL of docs/troubleshooting.md without {, }, "
                                        f"quotes, spaces or #, not {text[:60]!r}")
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
    selector: str = ""
    scrape_interval: str = "60"


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
    scrape = parse_number("--scrape-interval", flags.scrape_interval, 0.001)
    parse_docs_url(flags.docs_url)
    naming = Naming(prefix, parse_naming(flags.naming), parse_selector(flags.selector))
    if naming.style == "otlp" and (foreign := [label for label in naming.kept if label not in OTLP_SELECTABLE]):
        raise ConfigError("--selector", f"with --naming otlp cannot name {foreign[0]!r}: a store of OTLP series "
                                        "has only job (service.name) and instance from the resource; use "
                                        'job="<service.name>" (docs/alerts.md)')
    return Context(naming, thresholds, interval, scrape), scale


# The labels an OTLP-fed store gives every series of ours from the resource, by OpenTelemetry's Prometheus rules:
# service.name -> job, service.instance.id -> instance; every other resource attribute goes to target_info only.
OTLP_SELECTABLE = ("job", "instance")


def settings_context(flags: AlertFlags, settings: Settings) -> tuple[Context, float]:
    """context_of() with the emitter's prefix, shards and interval, and the queues each autoscaled type serves."""
    shards = [shard.name for shard in settings.shards]
    ctx, scale = context_of(flags, settings.prefix, shards, settings.interval)
    return replace(ctx, autoscaled=autoscaled_queues(settings, shards)), scale


def autoscaled_queues(settings: Settings, shards: Sequence[str]) -> tuple[tuple[str, tuple[tuple[str, str], ...]
                                                                                  | None], ...]:
    """Each autoscaled type's queues as (shard label, queue): `orders:urgent` (its settings' name for a queue of
    the shard `orders`) is `urgent` with shard="orders"; the first shard's have no shard label."""
    def labelled(queue: str) -> tuple[str, str]:
        shard, colon, rest = queue.partition(":")
        return (shard, rest) if len(shards) > 1 and colon and rest and shard in shards[1:] else ("", queue)

    rules = settings.autoscale.rules if settings.autoscale else ()
    return tuple((rule.process_type, None if rule.queues is None else tuple(map(labelled, rule.queues)))
                 for rule in rules)


def unmet_needs(settings: Settings) -> list[str]:
    """What the settings turn off, of what some alerts need (Alert.needs)."""
    return [need for need, off in (("stats", not settings.stats), ("autoscale", settings.autoscale is None)) if off]


def run_alerts(flags: AlertFlags, ctx: Context, scale: float, settings: Settings, out: TextIO, err: TextIO) -> int:
    unmet = unmet_needs(settings)
    if left := [f"{', '.join(a.name for a in ALERTS if need in a.needs)} ({UNMET[need]})" for need in unmet]:
        err.write(f"sidekiq-metrics: left out, as they could never fire: {'; '.join(left)}\n")
    return write_rules(ctx, scale, flags.docs_url, out, unmet)


def write_rules(ctx: Context, scale: float, docs_url: str, out: TextIO, unmet: Sequence[str] = ()) -> int:
    out.write("# Prometheus rules made by `sidekiq-metrics alerts`: load with rule_files (prometheus.yml), or\n"
              "# `mimirtool rules load`, or as a PrometheusRule's spec. docs/alerts.md lists them.\n")
    out.write(to_yaml(rules(ctx, docs_url, scale, unmet)) + "\n")
    return 0


def alert_table() -> str:
    """docs/alerts.md's table: each alert, its condition, default threshold and what to do."""
    rows = ["| alert | severity | fires when | default threshold | what to do |", "|---|---|---|---|---|"]
    rows += [f"| `{a.name}` | {a.severity} | {a.condition} | {a.default} | {a.action} ([more](troubleshooting.md#"
             f"{a.anchor})) |" for a in ALERTS]
    return "\n".join(rows)
