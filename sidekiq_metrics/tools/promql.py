"""The series names and selectors that alert rules and the dashboard query, made from the catalogue and each
output's own naming, never typed by hand: a metric renamed in the catalogue or an output renames it here.

Two namings. `prometheus`: what our Prometheus endpoint serves (outputs/prometheus.py). `otlp`: what a backend
that receives our OTLP export and stores it in Prometheus form makes of it, by OpenTelemetry's written rules for
Prometheus compatibility (docs/outputs.md, "Alerts and dashboards for OTLP users").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sidekiq_metrics.catalogue import Kind, Metric
from sidekiq_metrics.metrics.samples import SHARD, SHARDS_TOTAL
from sidekiq_metrics.outputs.otlp import UNITS, otel_name
from sidekiq_metrics.outputs.prometheus import series_name

NAMINGS = ("prometheus", "otlp")

# OpenTelemetry's units in Prometheus's words: the unit suffix a name is given.
_PROMETHEUS_UNITS = {"s": "seconds", "ms": "milliseconds", "MBy": "megabytes", "By": "bytes", "1": "ratio"}
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour"}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]+")
_SEPARATORS = re.compile(r"[^a-zA-Z0-9:]+")  # the translator splits on these, underscores included


def prometheus_name_of_otel(name: str, unit: str, monotonic_sum: bool, gauge: bool) -> str:
    """An OpenTelemetry metric's name once translated for Prometheus: split into words on every run of characters
    outside [a-zA-Z0-9:], underscores included, the words joined by one `_` (so `sidekiq_.queue` and
    `sidekiq.queue` are both `sidekiq_queue`; `_` before a leading digit); the unit becomes a suffix
    (`s` -> `_seconds`; `1` -> `_ratio`, for gauges only; an annotation in braces, `{job}`, is dropped; `x/s` ->
    `_x_per_second`), unless the name already ends with it; a monotonic Sum ends `_total`."""
    words = [word for word in _SEPARATORS.split(name) if word]
    main, _, per = unit.partition("/")
    suffix: list[str] = []
    if main and not main.startswith("{") and (main != "1" or gauge):
        suffix.append(_PROMETHEUS_UNITS.get(main, _INVALID.sub("", main)))
    if per:
        suffix += ["per", _PER_UNITS.get(per, _INVALID.sub("", per))]
    if suffix and words[-len(suffix):] != suffix:
        words += suffix
    if monotonic_sum and words[-1] != "total":
        words.append("total")
    joined = "_".join(words)
    return "_" + joined if joined[:1].isdigit() else joined


@dataclass(frozen=True)
class Naming:
    """How the series of a metric are named in the store the rules are evaluated on."""

    prefix: str
    style: str = "prometheus"
    matchers: tuple[str, ...] = ()  # `--selector`: added to every selector, to pick one app's series in a store

    @property
    def kept(self) -> tuple[str, ...]:
        """The labels of `matchers`: every aggregation keeps them, so one app's series are never summed or joined
        with another's (`job` and `instance` are not among them unless the selector names them)."""
        return tuple(dict.fromkeys(re.split(r"[=!]", matcher, maxsplit=1)[0] for matcher in self.matchers))

    def by(self, *labels: str) -> str:
        """The labels of a `by (...)` or `on (...)`: these and the selector's."""
        return ", ".join(dict.fromkeys((*labels, *self.kept)))

    def record(self, name: str) -> str:
        """A recording rule's series, of this app only."""
        return f"{name}{{{', '.join(self.matchers)}}}" if self.matchers else name

    def name(self, metric: Metric) -> str:
        if self.style == "otlp":
            sent = otel_name(self.prefix, metric)
            return prometheus_name_of_otel(sent, UNITS[metric.unit], metric.kind is not Kind.GAUGE,
                                           metric.kind is Kind.GAUGE)
        return series_name(self.prefix, metric)

    def series(self, metric: Metric, *matchers: str, each_shard: bool = True) -> str:
        """A selector of the metric's series. `each_shard`: each shard's own series, never the `shard="all"` sums
        beside them (with shards, a plain sum() over both would count every job twice); without shards there is
        no shard label, which `!=` matches too."""
        chosen = [*matchers, *self.matchers] + ([f'{SHARD}!="{SHARDS_TOTAL}"'] if each_shard else [])
        return f"{self.name(metric)}{{{', '.join(chosen)}}}" if chosen else self.name(metric)


def duration(seconds: float) -> str:
    """A duration as PromQL writes it: `90s` -> `1m30s`, `0.5` -> `500ms`."""
    ms = max(0, round(seconds * 1000))
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts) or "0s"


def quoted(value: str) -> str:
    """A label value in a PromQL string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def regex_quoted(value: str) -> str:
    """A label value matched exactly inside a PromQL regular expression."""
    return quoted(re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", value))


_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_MATCHER = re.compile(rf'\s*({_LABEL})\s*(=~|!~|!=|=)\s*("(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\')\s*')


def parse_matchers(text: str) -> tuple[str, ...] | None:
    """PromQL label matchers, `app="shop", env=~"prod|eu"` (the braces optional), each written back as
    `label op "value"`; None when the text is not that. Reserved names (`__name__`) are refused."""
    inner = text.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    found: list[str] = []
    position = 0
    while position < len(inner):
        match = _MATCHER.match(inner, position)
        if not match or match[1].startswith("__"):
            return None
        value = match[3][1:-1]
        if match[3][0] == "'":  # the same string in double quotes
            value = value.replace("\\'", "'").replace('"', '\\"')
        found.append(f'{match[1]}{match[2]}"{value}"')
        position = match.end()
        if position < len(inner):
            if inner[position] != ",":
                return None
            position += 1
    return tuple(found)
