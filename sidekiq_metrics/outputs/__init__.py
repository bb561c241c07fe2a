"""Outputs. Each renders the same Measurements of a poll for one kind of consumer.

An output is anything with `emit(measurements, at)`; `at` is the poll's time in epoch
seconds. Outputs that print take a `write(lines)` that writes and flushes
stdout. Each lives in a module of its own, imported only when chosen, so an
unused one costs no memory; adding one is its module and its entry in FACTORIES below
(and in PRINTING, if it prints): SIDEKIQ_METRICS_OUTPUT accepts exactly FACTORIES' names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sidekiq_metrics.errors import OutputUnavailable

if TYPE_CHECKING:  # not at run time: config.py imports this module for the names of the outputs, and the
    # factories below hand each output only the values it uses
    from sidekiq_metrics.config import Settings
    from sidekiq_metrics.metrics import Measurements

Write = Callable[[list[str]], None]
Log = Callable[[str], None]


class Output(Protocol):
    def emit(self, measurements: Measurements, at: float) -> None: ...


@runtime_checkable
class Flushing(Protocol):
    """An output that sends in the background: `run --once` waits for it (at most `timeout` seconds)."""

    def flush(self, timeout: float) -> bool: ...


def _l2met(settings: Settings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.l2met import L2metOutput
    return L2metOutput(settings.prefix, settings.metric_type, settings.source, write)


def _json(settings: Settings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.json_lines import JsonOutput
    return JsonOutput(write)


def _statsd(settings: Settings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.statsd import StatsdOutput
    return StatsdOutput(settings.prefix, settings.statsd_host, settings.statsd_port)


def _prometheus(settings: Settings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.prometheus import PrometheusOutput
    return PrometheusOutput(settings.prefix, settings.prometheus_host, settings.prometheus_port)


def _cloudwatch(settings: Settings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.cloudwatch import CloudWatchOutput
    return CloudWatchOutput(settings.cloudwatch_namespace, write)


def _otlp(settings: Settings, write: Write, log: Log) -> Output:
    from sidekiq_metrics.outputs.otlp import OtlpOutput  # protobuf and http.client: about 7 MB, only when chosen
    if settings.otlp is None:  # config.py resolves it whenever `otlp` is among the outputs
        raise OutputUnavailable("the otlp output has no settings")
    return OtlpOutput(settings.prefix, settings.otlp, log)


FACTORIES: dict[str, Callable[[Settings, Write, Log], Output]] = {
    "l2met": _l2met, "json": _json, "statsd": _statsd, "prometheus": _prometheus, "cloudwatch": _cloudwatch,
    "otlp": _otlp,
}
# The outputs that print their lines on stdout (`doctor` shows a poll's lines through them); the others send or
# serve, which a check must not do.
PRINTING = frozenset({"l2met", "json", "cloudwatch"})


@dataclass
class Recorded:
    """What one recorded poll of a printing output says, read back by that output's own reader (`autoscale
    simulate`): names after the prefix, as the json output spells them."""

    sizes: dict[str, float] = field(default_factory=dict)  # by queue
    waits: dict[str, float] = field(default_factory=dict)  # latencies, by queue
    totals: dict[str, float] = field(default_factory=dict)  # `processed`, `busy`, ...
    process_types: dict[str, dict[str, float]] = field(default_factory=dict)  # {"worker": {"process.busy": 3}}


def build_outputs(settings: Settings, write: Write, log: Log) -> list[Output]:
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
