"""Outputs. Each renders the same Measurements of a poll for one kind of consumer.

An output is anything with `emit(measurements, at)`; `at` is the poll's time in epoch
seconds. Outputs that print take a `write(lines)` that writes and flushes
stdout. Each lives in a module of its own, imported only when chosen, so an
unused one costs no memory; adding one touches this file and its module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sidekiq_metrics.config import Settings
from sidekiq_metrics.metrics import Measurements

Write = Callable[[list[str]], None]


class Output(Protocol):
    def emit(self, measurements: Measurements, at: float) -> None: ...


def build_outputs(settings: Settings, write: Write) -> list[Output]:
    outputs: list[Output] = []
    for name in settings.outputs:
        if name == "l2met":
            from sidekiq_metrics.formats.l2met import L2metOutput
            outputs.append(L2metOutput(settings, write))
        elif name == "json":
            from sidekiq_metrics.formats.json_lines import JsonOutput
            outputs.append(JsonOutput(write))
        elif name == "statsd":
            from sidekiq_metrics.formats.statsd import StatsdOutput
            outputs.append(StatsdOutput(settings.prefix, settings.statsd_host, settings.statsd_port))
        elif name == "prometheus":
            from sidekiq_metrics.formats.prometheus import PrometheusOutput
            outputs.append(PrometheusOutput(settings.prefix, settings.prometheus_host, settings.prometheus_port))
        elif name == "cloudwatch":
            from sidekiq_metrics.formats.cloudwatch import CloudWatchOutput
            outputs.append(CloudWatchOutput(settings.cloudwatch_namespace, write))
    return outputs
