"""Outputs. Each renders the same Measurements of a poll for one kind of consumer.

An output is anything with `emit(measurements, at)`; `at` is the poll's time in epoch
seconds. Outputs that print take a `write(lines)` that writes and flushes
stdout. Each lives in a module of its own, imported only when chosen, so an
unused one costs no memory; adding one is its module and its entry in FACTORIES below
(and in PRINTING, if it prints): SIDEKIQ_METRICS_OUTPUT accepts exactly FACTORIES' names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sidekiq_metrics.errors import ConfigError, OutputUnavailable
from sidekiq_metrics.parsing import host, matching, one_of, parse_port, quote
from sidekiq_metrics.setting import Setting

if TYPE_CHECKING:
    from sidekiq_metrics.metrics.samples import Measurements
    from sidekiq_metrics.outputs.otlp_settings import OtlpSettings

Write = Callable[[list[str]], None]
Log = Callable[[str], None]


class Output(Protocol):
    def emit(self, measurements: Measurements, at: float) -> None: ...


@runtime_checkable
class StandingBy(Protocol):
    """An output that holds the last poll for others to read (a scrape endpoint): when this emitter stops being
    the active one (run --lease), it must not go on showing that poll as if current."""

    def stand_by(self) -> None: ...

    def serve_while(self, serving: Callable[[], bool]) -> None: ...


@runtime_checkable
class Flushing(Protocol):
    """An output that sends in the background: `run --once` waits for it (at most `timeout` seconds)."""

    def flush(self, timeout: float) -> bool: ...


@dataclass(frozen=True)
class OutputSettings:
    """The outputs' section of the settings (declared below and in otlp_settings.py): the factories hand each
    output only the values it uses."""

    outputs: tuple[str, ...]
    prefix: str
    metric_type: str
    source: str | None
    statsd_host: str
    statsd_port: int
    prometheus_host: str
    prometheus_port: int
    cloudwatch_namespace: str
    otlp: OtlpSettings | None  # None: the otlp output is not chosen


def _l2met(settings: OutputSettings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.l2met import L2metOutput
    return L2metOutput(settings.prefix, settings.metric_type, settings.source, write)


def _json(settings: OutputSettings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.json_lines import JsonOutput
    return JsonOutput(write)


def _statsd(settings: OutputSettings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.statsd import StatsdOutput
    return StatsdOutput(settings.prefix, settings.statsd_host, settings.statsd_port)


def _prometheus(settings: OutputSettings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.prometheus import PrometheusOutput
    return PrometheusOutput(settings.prefix, settings.prometheus_host, settings.prometheus_port)


def _cloudwatch(settings: OutputSettings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.cloudwatch import CloudWatchOutput
    return CloudWatchOutput(settings.cloudwatch_namespace, write)


def _otlp(settings: OutputSettings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.otlp import OtlpOutput  # protobuf and http.client: about 7 MB, only when chosen
    if settings.otlp is None:  # config.py resolves it whenever `otlp` is among the outputs
        raise OutputUnavailable("the otlp output has no settings")
    return OtlpOutput(settings.prefix, settings.otlp, log)


FACTORIES: dict[str, Callable[[OutputSettings, Write, Log], Output]] = {
    "l2met": _l2met, "json": _json, "statsd": _statsd, "prometheus": _prometheus, "cloudwatch": _cloudwatch,
    "otlp": _otlp,
}
OUTPUTS = tuple(FACTORIES)  # the output names, declared once, with the code that builds each
DEFAULT_PREFIX = "sidekiq"
METRIC_TYPES = ("sample", "measure", "count")
# Librato's metric-name alphabet. A prefix also may not start or end with a dot,
# so that "<prefix>.<queue>.size" never has an empty part.
_PREFIX_RE = re.compile(r"[A-Za-z0-9_:-]([A-Za-z0-9._:-]{0,62}[A-Za-z0-9_:-])?")
_SOURCE_RE = re.compile(r"[A-Za-z0-9._:-]{1,255}")
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9.\-_/#: ]{1,255}")  # CloudWatch's own rule for namespaces


def parse_outputs(raw: str, label: str) -> tuple[str, ...]:
    outputs = tuple(dict.fromkeys(o.strip().lower() for o in raw.split(",") if o.strip()))
    if not outputs or any(o not in OUTPUTS for o in outputs):
        raise ConfigError(label, f"must list outputs from {', '.join(OUTPUTS)}, separated by commas, "
                                 f"got {quote(raw)}")
    return outputs


# The outputs' sections: which outputs, the names they all share, and each output's own (otlp's are in
# otlp_settings.py, read only when it is chosen).
OUTPUT_SETTINGS = (
    Setting("outputs", ("SIDEKIQ_METRICS_OUTPUT",), ("l2met",), f"comma-separated outputs: {', '.join(OUTPUTS)}",
            parse_outputs, flag="--output"),
    Setting("prefix", ("SIDEKIQ_METRICS_PREFIX",), DEFAULT_PREFIX,
            "first part of every metric name (1 to 64 of `A-Za-z0-9._:-`)",
            matching(_PREFIX_RE, "1 to 64 of A-Z a-z 0-9 . _ : - (not starting or ending with a dot)"),
            flag="--prefix"),
)
L2MET_SETTINGS = (
    Setting("metric_type", ("SIDEKIQ_METRICS_TYPE",), "sample",
            "l2met measurement type of the levels: `sample`, `measure` or `count`", one_of(METRIC_TYPES),
            flag="--type"),
    Setting("source", ("SIDEKIQ_METRICS_SOURCE",), None,
            "adds `source=<value>` to every l2met line (Librato's source; 1 to 255 of `A-Za-z0-9._:-`)",
            matching(_SOURCE_RE, "1 to 255 of A-Z a-z 0-9 . _ : -"), flag="--source"),
)
STATSD_SETTINGS = (
    Setting("statsd_host", ("DD_AGENT_HOST",), "127.0.0.1", "the DogStatsD agent's host (statsd output)",
            host("a host name or IP address"), flag="--statsd-host"),
    Setting("statsd_port", ("DD_DOGSTATSD_PORT",), 8125, "the DogStatsD agent's UDP port (statsd output)",
            parse_port, flag="--statsd-port"),
)
PROMETHEUS_SETTINGS = (
    Setting("prometheus_host", ("SIDEKIQ_METRICS_PROMETHEUS_HOST",), "0.0.0.0",
            "the address the Prometheus endpoint listens on (prometheus output)",
            host("a host name or IP address to listen on"), flag="--prometheus-host"),
    Setting("prometheus_port", ("SIDEKIQ_METRICS_PROMETHEUS_PORT",), 9394,
            "the port of the Prometheus endpoint (prometheus output)", parse_port, flag="--prometheus-port"),
)
CLOUDWATCH_SETTINGS = (
    Setting("cloudwatch_namespace", ("SIDEKIQ_METRICS_CLOUDWATCH_NAMESPACE",), "Sidekiq",
            "the CloudWatch namespace of the EMF lines (cloudwatch output)",
            matching(_NAMESPACE_RE, "1 to 255 of A-Z a-z 0-9 . - _ / # : and spaces"),
            flag="--cloudwatch-namespace"),
)

# The outputs that print their lines on stdout (`doctor` shows a poll's lines through them); the others send or
# serve, which a check must not do.
PRINTING = frozenset({"l2met", "json", "cloudwatch"})


def build_outputs(settings: OutputSettings, write: Write, log: Log) -> list[Output]:
    """The chosen outputs that could start; one log line for each that could not.
    Raises OutputUnavailable when none could."""
    outputs: list[Output] = []
    failures: list[str] = []
    for name in settings.outputs:
        try:
            outputs.append(FACTORIES[name](settings, write, log))
        except OutputUnavailable as exc:
            failures.append(f"{name} output off: {exc}")
    if not outputs:
        raise OutputUnavailable("; ".join(failures))
    for failure in failures:
        log(f"{failure}; the other outputs go on")
    return outputs
