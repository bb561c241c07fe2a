"""`sidekiq-metrics dashboard`: a Grafana dashboard (JSON model) of our series, with a Prometheus data-source
variable and, with shards, a shard variable. Queries name series through tools/promql.py, as the rules do.

Rates are taken of running totals only (`rate()` of a gauge means nothing); each shard's own series are
selected, never the `shard="all"` sums beside them, so no panel counts a job twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from sidekiq_metrics import catalogue as c
from sidekiq_metrics.catalogue import Metric
from sidekiq_metrics.config import Settings
from sidekiq_metrics.tools.alerts import UNMET, Context, unmet_needs
from sidekiq_metrics.tools.promql import Naming

SCHEMA_VERSION = 39  # Grafana 11's JSON model
SHARD_MATCHER = 'shard=~"$shard"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # Grafana's unit id
    targets: tuple[tuple[str, str], ...]  # (query, legend)
    needs: tuple[Metric, ...]  # the metrics it shows, for the tests
    served_when: str = ""  # what must be on for its series to be served (Alert.needs's words): "stats"


def panels(naming: Naming, sharded: bool) -> list[Panel]:
    """Every panel, each query selecting each shard's own series (and the chosen shard, with shards)."""
    def sel(metric: Metric) -> str:
        return naming.series(metric, *([SHARD_MATCHER] if sharded else []))

    def rate(metric: Metric, by: str) -> str:
        return f"sum by ({by}) (rate({sel(metric)}[{RATE}]))"

    shard = ", shard" if sharded else ""
    where = " ({{shard}})" if sharded else ""
    return [
        Panel("Queue latency", "s", ((f"max by (queue{shard}) ({sel(c.QUEUE_LATENCY)})", "{{queue}}" + where),),
              (c.QUEUE_LATENCY,)),
        Panel("Queue size", "short", ((f"sum by (queue{shard}) ({sel(c.QUEUE_SIZE)})", "{{queue}}" + where),),
              (c.QUEUE_SIZE,)),
        Panel("Throughput and failures (jobs/s)", "ops",
              ((rate(c.PROCESSED, "shard"), "processed" + where),
               (rate(c.FAILED, "shard"), "failed" + where)), (c.PROCESSED, c.FAILED), "stats"),
        Panel("Busy threads per process type", "short",
              ((f"sum by (process_type{shard}) ({sel(c.PROCESS_BUSY)})", "{{process_type}}" + where),
               (f"sum by (process_type{shard}) ({sel(c.PROCESS_CONCURRENCY)})",
                "{{process_type}} concurrency" + where)), (c.PROCESS_BUSY, c.PROCESS_CONCURRENCY), "stats"),
        Panel("Utilization per process type", "percentunit",
              ((f"max by (process_type{shard}) ({sel(c.PROCESS_UTILIZATION)})", "{{process_type}}" + where),),
              (c.PROCESS_UTILIZATION,), "stats"),
        Panel("Retry, dead and scheduled sets", "short",
              ((f"sum by (shard) ({sel(c.RETRIES)})", "retries" + where),
               (f"sum by (shard) ({sel(c.DEAD)})", "dead" + where),
               (f"sum by (shard) ({sel(c.SCHEDULED)})", "scheduled" + where)),
              (c.RETRIES, c.DEAD, c.SCHEDULED), "stats"),
        Panel("Scheduled and retry lag", "s",
              ((f"max by (shard) ({sel(c.SCHEDULED_LAG)})", "scheduled" + where),
               (f"max by (shard) ({sel(c.RETRIES_LAG)})", "retries" + where)),
              (c.SCHEDULED_LAG, c.RETRIES_LAG), "stats"),
        Panel("Job classes: runs (jobs/s)", "ops",
              ((rate(c.JOB_PROCESSED, "job_class"), "{{job_class}}"),), (c.JOB_PROCESSED,)),
        Panel("Job classes: run time p95", "s",
              ((f"max by (job_class) ({sel(c.JOB_RUNTIME_P95)})", "{{job_class}}"),), (c.JOB_RUNTIME_P95,)),
        Panel("Redis memory", "decmbytes",
              ((f"max by (shard) ({sel(c.REDIS_MEMORY_USED)})", "used" + where),
               (f"max by (shard) ({sel(c.REDIS_MEMORY_MAX)})", "maxmemory" + where)),
              (c.REDIS_MEMORY_USED, c.REDIS_MEMORY_MAX), "stats"),
        Panel("Redis clients and evictions", "short",
              ((f"max by (shard) ({sel(c.REDIS_CLIENTS)})", "clients" + where),
               (rate(c.REDIS_EVICTED, "shard"), "evictions/s" + where)), (c.REDIS_CLIENTS, c.REDIS_EVICTED), "stats"),
        Panel("Autoscaling: dynos", "short",
              ((f"max by (process_type) ({naming.series(c.AUTOSCALE_CURRENT, each_shard=False)})",
                "{{process_type}} current"),
               (f"max by (process_type) ({naming.series(c.AUTOSCALE_DESIRED, each_shard=False)})",
                "{{process_type}} desired"),
               (f"max by (process_type) ({naming.series(c.AUTOSCALE_MAX, each_shard=False)})",
                "{{process_type}} max")), (c.AUTOSCALE_CURRENT, c.AUTOSCALE_DESIRED, c.AUTOSCALE_MAX)),
        Panel("Metrics up", "short", ((f"min({naming.series(c.UP, each_shard=False)})", "up"),), (c.UP,)),
    ]


def _panel(panel: Panel, number: int) -> dict[str, object]:
    return {
        "id": number, "type": "timeseries", "title": panel.title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (number % 2), "y": 8 * (number // 2)},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + n), "expr": query, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for n, (query, legend) in enumerate(panel.targets)],
    }


def model(naming: Naming, shards: Sequence[str], unmet: Sequence[str] = ()) -> dict[str, object]:
    """The dashboard, without the panels whose series what `unmet` names turns off (they would read "No data").
    The shard variable lists the shards; the first (Sidekiq's default pool) has no shard label, so it is the empty
    value."""
    sharded = len(shards) > 1
    variables: list[dict[str, object]] = [{
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "refresh": 1}]
    if sharded:
        options = [{"text": name, "value": "" if n == 0 else name, "selected": False} for n, name in enumerate(shards)]
        variables.append({
            "name": "shard", "label": "Shard", "type": "custom", "multi": True, "includeAll": True, "allValue": ".*",
            # Grafana rebuilds the options from `query`, reading `text : value` only where the value has a
            # character, which it trims: the first shard's empty value is written as one space.
            "query": ",".join(f"{o['text']} : {o['value'] or ' '}" for o in options), "options": options,
            "current": {"text": "All", "value": "$__all"}, "hide": 0})
    # Two apps' dashboards (`--selector`) live side by side in one Grafana: their uids and titles differ.
    app = f" {{{', '.join(naming.matchers)}}}" if naming.matchers else ""
    tag = "-" + hashlib.sha256(app.encode()).hexdigest()[:8] if app else ""
    return {
        "title": f"Sidekiq ({naming.prefix}){app}",
        "uid": f"sidekiq-metrics-{naming.style}-{naming.prefix}"[:40 - len(tag)] + tag,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "tags": ["sidekiq"],
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s",
        "templating": {"list": variables},
        "panels": [_panel(p, n) for n, p in enumerate(p for p in panels(naming, sharded)
                                                      if p.served_when not in unmet)],
        "annotations": {"list": []},
    }


def run_dashboard(ctx: Context, settings: Settings, out: TextIO, err: TextIO) -> int:
    unmet = [need for need in unmet_needs(settings) if need == "stats"]  # the autoscaling panel stays, for later
    if left := [p.title for p in panels(ctx.naming, False) if p.served_when in unmet]:
        err.write(f"sidekiq-metrics: left out, as they would show no data: {', '.join(left)} ({UNMET['stats']})\n")
    out.write(json.dumps(model(ctx.naming, [shard.name for shard in settings.shards], unmet), indent=2) + "\n")
    return 0

